package store

import (
	"errors"
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
