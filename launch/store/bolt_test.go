package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"

	"github.com/hooklaunch/caddy-valohai/launch"
	"github.com/hooklaunch/caddy-valohai/launch/store"
	"github.com/hooklaunch/caddy-valohai/launch/store/storetest"
)

func openBolt(tb testing.TB, path string, opts store.BoltOptions) *store.Bolt {
	tb.Helper()
	s, err := store.OpenBolt(path, opts)
	if err != nil {
		tb.Fatalf("OpenBolt: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestBoltConformance(t *testing.T) {
	storetest.RunConformance(t, storetest.Factory{
		New: func(t *testing.T) launch.Store {
			return openBolt(t, filepath.Join(t.TempDir(), "valohai", "store.db"), store.BoltOptions{})
		},
		Reopen: func(t *testing.T, old launch.Store) launch.Store {
			path := old.(*store.Bolt).Path()
			if err := old.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			return openBolt(t, path, store.BoltOptions{})
		},
	})
}

func TestBoltSecondOpenerFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.db")
	openBolt(t, path, store.BoltOptions{})
	start := time.Now()
	s, err := store.OpenBolt(path, store.BoltOptions{Timeout: 200 * time.Millisecond})
	if err == nil {
		s.Close()
		t.Fatal("a second OpenBolt on a locked file succeeded")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("second OpenBolt took %v to fail", took)
	}
	if !errors.Is(err, bolt.ErrTimeout) || !strings.Contains(err.Error(), "locked by another process") || !strings.Contains(err.Error(), path) {
		t.Fatalf("error does not say what happened: %v", err)
	}
}

func TestBoltFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "valohai")
	openBolt(t, filepath.Join(dir, "store.db"), store.BoltOptions{})
	for path, want := range map[string]os.FileMode{dir: 0o700, filepath.Join(dir, "store.db"): 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&^want != 0 {
			t.Errorf("%s has mode %v, want at most %v: it holds webhook bodies and secrets", path, perm, want)
		}
	}
}

func TestBoltPayloadExpiresByClock(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := openBolt(t, filepath.Join(t.TempDir(), "store.db"), store.BoltOptions{Now: func() time.Time { return now }})
	ctx := context.Background()
	run := &launch.Run{ID: "r", CreatedAt: now, Status: launch.StatusPending}
	if err := s.CreateRun(ctx, run, &launch.Payload{Body: []byte("x"), ContentType: "text/plain", ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPayload(ctx, "r"); err != nil {
		t.Fatalf("GetPayload before expiry: %v", err)
	}
	now = now.Add(time.Hour)
	if _, err := s.GetPayload(ctx, "r"); !errors.Is(err, launch.ErrNotFound) {
		t.Fatalf("GetPayload at expiry: err = %v, want ErrNotFound", err)
	}
	if got := s.BucketLen("payloads"); got != 1 {
		t.Fatalf("payloads = %d before the sweep, want 1", got)
	}
	// The retention sweep purges expired payloads of runs it keeps.
	if n, err := s.DeleteRunsBefore(ctx, now.Add(-24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("DeleteRunsBefore = %d, %v", n, err)
	}
	if got := s.BucketLen("payloads") + s.BucketLen("payload_exp"); got != 0 {
		t.Fatalf("%d payload records left after the sweep, want 0", got)
	}
	if _, err := s.GetRun(ctx, "r"); err != nil {
		t.Fatalf("the pending run went with its payload: %v", err)
	}
}

func TestBoltRejectionCap(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "store.db"), store.BoltOptions{MaxRejections: 5})
	ctx := context.Background()
	for i := range 8 {
		if err := s.LogRejection(ctx, launch.Rejected{Path: "/t", Reason: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.ListRejections(ctx, launch.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var reasons []string
	for _, r := range got {
		reasons = append(reasons, r.Reason)
	}
	if strings.Join(reasons, ",") != "7,6,5,4,3" || s.BucketLen("rejections") != 5 {
		t.Fatalf("log holds %v (%d records), want the newest 5", reasons, s.BucketLen("rejections"))
	}
}

func TestBoltPrunesExpiredWindowsAndKeys(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "store.db"), store.BoltOptions{})
	ctx := context.Background()
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 100 {
		now := t0.Add(time.Duration(i) * 2 * time.Second)
		if _, _, err := s.TakeQuota(ctx, "k", 1, time.Second, now); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.RememberKey(ctx, fmt.Sprint("delivery-", i), "run", time.Second, now); err != nil {
			t.Fatal(err)
		}
	}
	for _, bucket := range []string{"quota", "dedupe", "dedupe_exp"} {
		if n := s.BucketLen(bucket); n > 2 {
			t.Errorf("%s holds %d records after 100 expired windows, want them pruned", bucket, n)
		}
	}
}

func TestBoltLongKeys(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "store.db"), store.BoltOptions{})
	ctx, now := context.Background(), time.Now()
	long := strings.Repeat("x", 64<<10) // beyond bbolt's 32 KiB key limit
	if _, first, err := s.RememberKey(ctx, long, "run-1", time.Hour, now); err != nil || !first {
		t.Fatalf("RememberKey(long) = %v, %v", first, err)
	}
	if held, first, _ := s.RememberKey(ctx, long, "run-2", time.Hour, now); first || held != "run-1" {
		t.Fatalf("repeat RememberKey(long) = %q, %v", held, first)
	}
	if held, first, _ := s.RememberKey(ctx, long+"y", "run-3", time.Hour, now); !first || held != "run-3" {
		t.Fatalf("a different long key collided: %q, %v", held, first)
	}
	if ok, _, err := s.TakeQuota(ctx, long, 1, time.Hour, now); err != nil || !ok {
		t.Fatalf("TakeQuota(long) = %v, %v", ok, err)
	}
}

// benchmarkCreateRun stores runs with a 1 KiB payload, as webhooks arriving
// in parallel would, and reports how many runs shared each commit (fsync)
// and how many pages each run cost the commits.
func benchmarkCreateRun(b *testing.B, parallel bool) {
	s := openBolt(b, filepath.Join(b.TempDir(), "store.db"), store.BoltOptions{})
	ctx := context.Background()
	body := make([]byte, 1024)
	create := func() {
		// As the gateway makes them: a UUIDv7 id, then the run's time.
		id := uuid.Must(uuid.NewV7()).String()
		now := time.Now()
		run := &launch.Run{
			ID: id, Trigger: "bench", Path: "/bench",
			CreatedAt: now, UpdatedAt: now, NextAttemptAt: now, Status: launch.StatusPending,
			Actions: []launch.Action{{Kind: launch.ActionRunExecution, State: launch.ActionPending}},
		}
		if err := s.CreateRun(ctx, run, &launch.Payload{Body: body, ContentType: "application/json", ExpiresAt: now.Add(time.Hour)}); err != nil {
			b.Error(err)
		}
	}
	commits, writes := s.LastTxID(), s.PageWrites()
	b.ResetTimer()
	if parallel {
		b.SetParallelism(32) // webhooks wait on I/O, not CPU: many in flight per core
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				create()
			}
		})
	} else {
		for b.Loop() {
			create()
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/float64(s.LastTxID()-commits), "runs/commit")
	b.ReportMetric(float64(s.PageWrites()-writes)/float64(b.N), "pages/run")
}

// Runs arrive in time order (UUIDv7 ids, time-stamped index keys), so a
// commit appends to the last page of each bucket: the pages it fills must
// end up nearly full, not half full as bbolt's default split leaves them
// (which doubles the pages every commit writes and the file holds).
func TestBoltTimeOrderedPagesStayFull(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "store.db"), store.BoltOptions{})
	ctx := context.Background()
	body := make([]byte, 1024)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 150 {
				now := time.Now()
				run := &launch.Run{ID: uuid.Must(uuid.NewV7()).String(), Trigger: "t", CreatedAt: now, UpdatedAt: now, NextAttemptAt: now,
					Status: launch.StatusPending, Actions: []launch.Action{{Kind: launch.ActionRunExecution, State: launch.ActionPending, Body: []byte(`{"step":"train"}`)}}}
				if err := s.CreateRun(ctx, run, &launch.Payload{Body: body, ContentType: "application/json", ExpiresAt: now.Add(time.Hour)}); err != nil {
					t.Errorf("goroutine %d: %v", g, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, bucket := range []string{"runs", "payloads", "queue"} { // runs_by_time stays empty: selfordered_test.go
		if fill := s.LeafFill(bucket); fill < 0.7 {
			t.Errorf("bucket %s: leaf pages %.0f%% full, want at least 70%% (half full is bbolt's default split)", bucket, 100*fill)
		}
	}
}

// BenchmarkBoltCreateRunParallel shows group commit: concurrent CreateRun
// calls share fsyncs, so ns/op falls far below one fsync.
func BenchmarkBoltCreateRunParallel(b *testing.B) { benchmarkCreateRun(b, true) }

// BenchmarkBoltCreateRunSerial is the baseline: one caller, one fsync per run.
func BenchmarkBoltCreateRunSerial(b *testing.B) { benchmarkCreateRun(b, false) }

// A process that opens the file owns it alone, so leases found there belong
// to a dead process: ReleaseLeases makes those runs claimable at once.
func TestBoltReleaseLeases(t *testing.T) {
	ctx := context.Background()
	s := openBolt(t, filepath.Join(t.TempDir(), "v.db"), store.BoltOptions{})
	now := time.Now()
	for i, due := range []time.Duration{-time.Minute, 2 * time.Minute, time.Hour} {
		run := &launch.Run{ID: fmt.Sprintf("run-%d", i), Trigger: "t", CreatedAt: now, Status: launch.StatusPending, NextAttemptAt: now.Add(due)}
		if err := s.CreateRun(ctx, run, nil); err != nil {
			t.Fatal(err)
		}
	}
	moved, err := s.ReleaseLeases(now)
	if err != nil || moved != 2 {
		t.Fatalf("ReleaseLeases = %d, %v; want 2 moved", moved, err)
	}
	claimed := map[string]bool{}
	for range 3 {
		id, ok, err := s.ClaimRun(ctx, now, time.Minute)
		if err != nil || !ok {
			t.Fatalf("ClaimRun after release: %q %v %v", id, ok, err)
		}
		claimed[id] = true
	}
	if len(claimed) != 3 {
		t.Fatalf("claimed %v, want all three runs", claimed)
	}
	if depth, _ := s.QueueDepth(ctx); depth != 3 {
		t.Fatalf("queue depth %d, want 3 (released runs stay queued)", depth)
	}
}

// BenchmarkBoltListRunsFiltered lists with a filter no run matches, so the
// listing reads every one of 10,000 runs made as the gateway makes them:
// the console's worst case.
//
//	go test -run '^$' -bench BoltListRunsFiltered ./launch/store
func BenchmarkBoltListRunsFiltered(b *testing.B) {
	s := openBolt(b, filepath.Join(b.TempDir(), "store.db"), store.BoltOptions{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for range 10000 / 16 {
				now := time.Now()
				run := &launch.Run{ID: uuid.Must(uuid.NewV7()).String(), Trigger: "bench", Path: "/bench", CreatedAt: now, UpdatedAt: now, NextAttemptAt: now,
					Status: launch.StatusPending, Actions: []launch.Action{{Kind: launch.ActionRunExecution, State: launch.ActionPending,
						Body: []byte(`{"step":"train","parameters":{"epochs":10,"learning_rate":0.001},"inputs":{"payload":["https://hooks.example.com/payload"]}}`)}}}
				if err := s.CreateRun(ctx, run, nil); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	for b.Loop() {
		runs, err := s.ListRuns(ctx, launch.RunFilter{Trigger: "none"})
		if err != nil || len(runs) != 0 {
			b.Fatalf("ListRuns = %d runs, %v", len(runs), err)
		}
	}
}
