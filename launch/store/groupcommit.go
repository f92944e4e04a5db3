package store

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// groupCommit shares write transactions of type T (a bbolt transaction, a
// pebble batch) between concurrent writers
// without a timer: a writer that finds no commit running becomes the
// leader and commits every write queued so far in one transaction (one
// fsync); writers that arrive while it commits queue up, and the first of
// them leads the next commit as soon as this one ends. A lone writer thus
// pays one fsync and no wait, and under load every fsync carries whatever
// queued during the previous one (README.md, "The durable write path").
//
// It replaces bbolt's DB.Batch, whose MaxBatchDelay timer made every write
// wait for it when fewer than MaxBatchSize writers were queued.
//
// An engine that makes a transaction visible before it is durable (pebble
// applies a batch to its memtable, then waits for the log's fsync) lets the
// next leader build and apply its transaction while this one's fsync runs:
// the commits form a pipeline, and the log syncs whatever was written while
// the previous sync ran. A later transaction is durable only after every
// earlier one (one log, synced in order).
type groupCommit[T any] struct {
	// update runs apply in one write transaction and commits it, or rolls
	// it back when apply fails. When it returns a nil wait, the
	// transaction is durable; otherwise it is applied (later transactions
	// see it) and durable once wait returns nil.
	update func(apply func(T) error) (wait func() error, err error)

	// commits counts the transactions committed, hence fsyncs.
	commits atomic.Int64

	// observe, when set, hears of every durable commit (ObserveCommits).
	observe atomic.Pointer[CommitObserver]

	mu      sync.Mutex
	pending []*write[T]
	leading bool
}

// write is one caller's part of a commit.
type write[T any] struct {
	// fn applies the write inside the shared transaction. It may run more
	// than once (after a rollback caused by another write), so it must
	// derive everything from its inputs; it registers with onRollback
	// whatever it changed outside the transaction.
	fn func(tx T, w *write[T]) error
	// undo reverses in-memory effects of fn when the transaction is
	// rolled back.
	undo []func()
	// done receives the outcome, or nil on lead when this writer must
	// lead the next commit.
	done chan result
}

// CommitObserver hears of each durable commit of an embedded store: how
// many writes it carried (writers that shared its fsync) and how long it
// took from the start of its transaction until it was durable. It runs
// before the commit's writers are answered, so it must be quick (a
// histogram's Observe). The valohai app turns it into the store commit
// metrics (README.md, "Operations").
type CommitObserver func(writes int, took time.Duration)

// CommitObservable is a store whose writes share group commits: the
// embedded engines (bbolt and pebble). A redis store has no such commits
// (one script per write) and does not implement it.
type CommitObservable interface {
	ObserveCommits(f CommitObserver)
}

// setObserver makes f hear of every later durable commit; nil stops it.
func (g *groupCommit[T]) setObserver(f CommitObserver) {
	if f == nil {
		g.observe.Store(nil)
		return
	}
	g.observe.Store(&f)
}

type result struct {
	err  error
	lead bool
}

// onRollback registers f to run if the transaction fn ran in is not committed.
func (w *write[T]) onRollback(f func()) { w.undo = append(w.undo, f) }

func (w *write[T]) rollback() {
	for i := len(w.undo) - 1; i >= 0; i-- {
		w.undo[i]()
	}
	w.undo = nil
}

// do runs fn in a shared, durable write transaction and returns once it is
// committed (or failed).
func (g *groupCommit[T]) do(fn func(tx T, w *write[T]) error) error {
	w := &write[T]{fn: fn, done: make(chan result, 1)}
	g.mu.Lock()
	g.pending = append(g.pending, w)
	if g.leading {
		g.mu.Unlock()
		r := <-w.done
		if !r.lead {
			return r.err
		}
		// The previous leader handed over: w is still pending.
	} else {
		g.leading = true
		g.mu.Unlock()
	}
	// Let writers that are already runnable join before the batch is
	// taken: a yield to the scheduler, not a wait.
	runtime.Gosched()
	g.mu.Lock()
	batch := g.pending
	g.pending = nil
	g.mu.Unlock()

	var finish func()
	func() {
		defer func() {
			if p := recover(); p != nil {
				// A bug in a write function: fail the batch and pass the
				// lead on before the panic goes up, or every later write
				// would wait for a leader that is gone.
				for _, w := range batch {
					select {
					case w.done <- result{err: errPanicked}:
					default:
					}
				}
				g.handOver()
				panic(p)
			}
		}()
		finish = g.commit(batch)
	}()
	// The next leader may start as soon as this transaction is applied;
	// this one's writers are answered once it is durable.
	g.handOver()
	if finish != nil {
		finish()
	}
	return (<-w.done).err
}

// handOver makes the first queued writer the next leader, or ends leading.
func (g *groupCommit[T]) handOver() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.pending) > 0 {
		g.pending[0].done <- result{lead: true}
		return
	}
	g.leading = false
}

// commit applies batch in one transaction. A write whose fn fails is taken
// out and answered with its error, and the rest is tried again, so one bad
// write never fails the others. The writers of the transaction are
// answered by finish (nil when every writer is answered already), which
// waits until the transaction is durable.
func (g *groupCommit[T]) commit(batch []*write[T]) (finish func()) {
	start := time.Now()
	for len(batch) > 0 {
		failed := -1
		var ferr error
		wait, err := g.update(func(tx T) error {
			for i, w := range batch {
				if err := w.fn(tx, w); err != nil {
					failed, ferr = i, err
					return err
				}
			}
			return nil
		})
		if err == nil {
			return func() { g.settle(batch, wait, start) }
		}
		for _, w := range batch {
			w.rollback()
		}
		if failed < 0 {
			// The commit itself failed (disk full, I/O error): every
			// write of the batch shares the failure.
			for _, w := range batch {
				w.done <- result{err: fmt.Errorf("store: commit: %w", err)}
			}
			return
		}
		batch[failed].done <- result{err: ferr}
		batch = append(batch[:failed:failed], batch[failed+1:]...)
	}
	return nil
}

// settle waits until the transaction of batch, begun at start, is durable
// and answers its writers: success, or the commit's failure (their
// in-memory effects undone).
func (g *groupCommit[T]) settle(batch []*write[T], wait func() error, start time.Time) {
	var err error
	if wait != nil {
		err = wait()
	}
	if err != nil {
		for _, w := range batch {
			w.rollback()
			w.done <- result{err: fmt.Errorf("store: commit: %w", err)}
		}
		return
	}
	g.commits.Add(1)
	if f := g.observe.Load(); f != nil {
		(*f)(len(batch), time.Since(start))
	}
	for _, w := range batch {
		w.undo = nil
		w.done <- result{}
	}
}

// errPanicked stands for a write function that panicked.
var errPanicked = errors.New("store: write panicked")
