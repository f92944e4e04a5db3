package store

import (
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeTx records the writes applied in one transaction.
type fakeTx struct{ writes []int }

// TestGroupCommitPipelines checks the pipelined commit of an engine whose
// transactions are visible before they are durable: the next leader
// applies its writes while the previous transaction waits for its fsync,
// no writer is answered before its own transaction is durable, and a
// failed fsync fails (and undoes) exactly its own writers.
func TestGroupCommitPipelines(t *testing.T) {
	syncs := make(chan error) // each receive ends one transaction's wait
	var applied atomic.Int32
	g := &groupCommit[*fakeTx]{update: func(apply func(*fakeTx) error) (func() error, error) {
		tx := &fakeTx{}
		if err := apply(tx); err != nil {
			return nil, err
		}
		applied.Add(int32(len(tx.writes)))
		return func() error { return <-syncs }, nil
	}}
	var undone atomic.Int32
	start := func(n int) chan error {
		out := make(chan error, 1)
		go func() {
			out <- g.do(func(tx *fakeTx, w *write[*fakeTx]) error {
				tx.writes = append(tx.writes, n)
				w.onRollback(func() { undone.Add(1) })
				return nil
			})
		}()
		return out
	}
	waitApplied := func(n int32) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); applied.Load() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d writes applied, want %d", applied.Load(), n)
			}
		}
	}
	first := start(1)
	waitApplied(1)
	// The first transaction waits for its fsync; the second is applied
	// meanwhile, and neither writer is answered.
	second := start(2)
	waitApplied(2)
	select {
	case err := <-first:
		t.Fatalf("first writer answered (%v) before its transaction was durable", err)
	case err := <-second:
		t.Fatalf("second writer answered (%v) before its transaction was durable", err)
	case <-time.After(50 * time.Millisecond):
	}
	syncs <- nil
	if err := <-first; err != nil {
		t.Fatalf("first writer: %v", err)
	}
	failure := errors.New("fsync: input/output error")
	syncs <- failure
	if err := <-second; !errors.Is(err, failure) {
		t.Fatalf("second writer: %v, want the fsync's error", err)
	}
	if n := undone.Load(); n != 1 {
		t.Fatalf("%d writes undone, want the failed transaction's one", n)
	}
	if n := g.commits.Load(); n != 1 {
		t.Fatalf("%d commits counted, want 1", n)
	}
	// Many concurrent writers: every one answered once its transaction
	// is durable, none lost.
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case syncs <- nil:
			case <-stop:
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := <-start(100 + i); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	if n := applied.Load(); n != 66 {
		t.Fatalf("%d writes applied, want 66", n)
	}
}

// TestGroupCommitObserver: the observer hears of each durable commit once,
// with the writes that shared it and the time from the start of its
// transaction until it was durable; a failed commit is not reported.
func TestGroupCommitObserver(t *testing.T) {
	release := make(chan struct{})
	var fail atomic.Bool
	g := &groupCommit[*fakeTx]{update: func(apply func(*fakeTx) error) (func() error, error) {
		<-release
		if err := apply(&fakeTx{}); err != nil {
			return nil, err
		}
		if fail.Load() {
			return nil, errors.New("fsync: input/output error")
		}
		return nil, nil
	}}
	type commit struct {
		writes int
		took   time.Duration
	}
	var mu sync.Mutex
	var seen []commit
	g.setObserver(func(writes int, took time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, commit{writes, took})
	})
	write := func() chan error {
		out := make(chan error, 1)
		go func() { out <- g.do(func(*fakeTx, *write[*fakeTx]) error { return nil }) }()
		return out
	}
	pending := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			g.mu.Lock()
			got := len(g.pending)
			g.mu.Unlock()
			if got == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d writers queued, want %d", got, n)
			}
		}
	}
	// The first writer leads and holds its transaction open while three
	// more queue: they share the next commit.
	first := write()
	pending(0)
	time.Sleep(20 * time.Millisecond) // the first transaction is open
	rest := []chan error{write(), write(), write()}
	pending(3)
	release <- struct{}{}
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	release <- struct{}{}
	for _, c := range rest {
		if err := <-c; err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	got := slices.Clone(seen)
	mu.Unlock()
	if len(got) != 2 || got[0].writes != 1 || got[1].writes != 3 {
		t.Fatalf("observed %v, want a commit of 1 write, then one of 3", got)
	}
	if got[0].took < 20*time.Millisecond {
		t.Fatalf("first commit took %v, want at least the 20ms its transaction was held", got[0].took)
	}
	// A commit that fails is not a commit; with no observer nothing is told.
	fail.Store(true)
	c := write()
	release <- struct{}{}
	if err := <-c; err == nil {
		t.Fatal("the failed commit succeeded")
	}
	g.setObserver(nil)
	fail.Store(false)
	c = write()
	release <- struct{}{}
	if err := <-c; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("observed %d commits, want the 2 before (a failed one and one after the observer was removed are not told)", len(seen))
	}
}

// A redis store writes one script per request, with no group commits to
// report: the app exports the commit metrics only for stores that are
// CommitObservable (README.md, "Operations").
func TestRedisIsNotCommitObservable(t *testing.T) {
	if _, ok := any((*Redis)(nil)).(CommitObservable); ok {
		t.Fatal("the redis store claims group commits")
	}
}
