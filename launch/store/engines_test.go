package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hooklaunch/caddy-valohai/launch"
	"github.com/hooklaunch/caddy-valohai/launch/store"
	"github.com/hooklaunch/caddy-valohai/launch/store/storetest"
)

func openPebble(tb testing.TB, dir string) *store.Pebble {
	tb.Helper()
	s, err := store.OpenPebble(dir, store.BoltOptions{})
	if err != nil {
		tb.Fatalf("OpenPebble: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func TestPebbleConformance(t *testing.T) {
	dirs := map[launch.Store]string{}
	storetest.RunConformance(t, storetest.Factory{
		New: func(t *testing.T) launch.Store {
			dir := filepath.Join(t.TempDir(), "valohai")
			s := openPebble(t, dir)
			dirs[s] = dir
			return s
		},
		Reopen: func(t *testing.T, old launch.Store) launch.Store {
			if err := old.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			s := openPebble(t, dirs[old])
			dirs[s] = dirs[old]
			return s
		},
	})
}

// acceptedCommitter is what BenchmarkAcceptedCommit needs of an engine.
type acceptedCommitter interface {
	launch.RunStore
	Commits() int64
}

// BenchmarkAcceptedCommit is the durable write of accepted webhooks: 32
// goroutines, each committing what one accepted request commits (a run,
// its 1 KiB payload, its queue entry, one unit of the trigger's quota and
// its delivery key) on each engine, beside the raw cost of one 1 KiB
// write + fdatasync on the same disk. ns/op is per accepted request;
// runs/commit is how many requests shared each fsync.
func BenchmarkAcceptedCommit(b *testing.B) {
	body := make([]byte, 1024)
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	b.Run("fsync", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "raw"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		b.ResetTimer()
		for b.Loop() {
			if _, err := f.Write(body); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
		}
	})
	engines := []struct {
		name string
		open func(b *testing.B) acceptedCommitter
	}{
		{"bolt", func(b *testing.B) acceptedCommitter {
			return openBolt(b, filepath.Join(b.TempDir(), "store.db"), store.BoltOptions{})
		}},
		{"pebble", func(b *testing.B) acceptedCommitter { return openPebble(b, filepath.Join(b.TempDir(), "pebble")) }},
	}
	for _, e := range engines {
		b.Run(e.name+"-32", func(b *testing.B) {
			s := e.open(b)
			ctx, now := context.Background(), time.Now()
			var n atomic.Int64
			before := s.Commits()
			b.SetParallelism(max(1, 32/max(1, runtimeProcs())))
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					id := fmt.Sprintf("run-%09d", i)
					run := &launch.Run{ID: id, Trigger: "bench", Path: "/hook", CreatedAt: now, Status: launch.StatusPending,
						Actions: []launch.Action{{Kind: launch.ActionRunExecution, Name: "train", Body: []byte(`{"step":"train"}`)}}}
					err := s.CreateRun(ctx, run, &launch.Payload{Body: body, ContentType: "application/json", ExpiresAt: now.Add(time.Hour)},
						launch.KeyClaim("scope#delivery-"+id, 24*time.Hour, now),
						launch.QuotaClaim("scope#1000000000/1h#", 1_000_000_000, time.Hour, now))
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			if c := s.Commits() - before; c > 0 {
				b.ReportMetric(float64(n.Load())/float64(c), "runs/commit")
			}
		})
	}
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }

func TestPebbleSecondOpenerFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pebble")
	openPebble(t, dir)
	start := time.Now()
	_, err := store.OpenPebble(dir, store.BoltOptions{Timeout: 300 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Fatalf("second OpenPebble = %v, want a lock error naming the cause", err)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Fatalf("gave up after %v, before the timeout", waited)
	}
}

// TestFileMigratesBoltStore: a store directory of an earlier version
// (bbolt) opens as pebble with everything it held: queued runs and their
// payloads, quota counters, delivery keys, the trigger log and the signing
// key. The bbolt file is kept aside, and a second open does not copy again.
func TestFileMigratesBoltStore(t *testing.T) {
	dir := t.TempDir()
	ctx, t0 := context.Background(), time.Now().UTC().Truncate(time.Second)
	old, err := store.OpenBolt(filepath.Join(dir, "valohai.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		run := &launch.Run{ID: fmt.Sprint("run-", i), Trigger: "t", Path: "/t", CreatedAt: t0.Add(time.Duration(i) * time.Second), NextAttemptAt: t0, Status: launch.StatusPending}
		if err := old.CreateRun(ctx, run, &launch.Payload{Body: []byte(fmt.Sprint("body-", i)), ContentType: "text/plain", ExpiresAt: t0.Add(time.Hour)},
			launch.KeyClaim("delivery-"+run.ID, time.Hour, t0), launch.QuotaClaim("quota", 3, time.Hour, t0)); err != nil {
			t.Fatal(err)
		}
	}
	// Runs of this release's gateway (UUIDv7 ids made in the run's
	// millisecond), which bbolt lists and purges without an index: pebble
	// indexes them all.
	var self []string
	for i := range 2 {
		created := t0.Add(time.Duration(i-2) * time.Hour)
		id := v7At(t, created)
		self = append(self, id)
		run := &launch.Run{ID: id, Trigger: "t", Path: "/t", CreatedAt: created, NextAttemptAt: created, Status: launch.StatusCompleted}
		if err := old.CreateRun(ctx, run, &launch.Payload{Body: []byte("v7"), ContentType: "text/plain", ExpiresAt: created.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if err := old.CompleteRun(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 {
		if err := old.LogRejection(ctx, launch.Rejected{At: t0, Path: "/t", Directive: "webhook_token", Reason: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	secret, err := old.Secret(ctx, "payload-key", func() ([]byte, error) { return []byte("0123456789abcdef"), nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s, migrated, err := store.OpenFile(dir, "", store.BoltOptions{})
	if err != nil || !migrated {
		t.Fatalf("OpenFile = %v, migrated %v", err, migrated)
	}
	if _, ok := s.(*store.Pebble); !ok {
		t.Fatalf("OpenFile opened a %T, want pebble", s)
	}
	runs, err := s.ListRuns(ctx, launch.RunFilter{})
	if want := []string{"run-2", "run-1", "run-0", self[1], self[0]}; err != nil || !slices.Equal(runIDsOf(runs), want) {
		t.Fatalf("runs after migration: %v, %v; want %v", runIDsOf(runs), err, want)
	}
	// Pebble's sweep finds them: the older one by its creation time, both
	// payloads (expired) by their expiry.
	if n, err := s.DeleteRunsBefore(ctx, t0.Add(-90*time.Minute)); err != nil || n != 1 {
		t.Fatalf("sweep after migration = %d, %v; want 1", n, err)
	}
	if runs, _ := s.ListRuns(ctx, launch.RunFilter{}); len(runs) != 4 || runs[3].ID != self[1] {
		t.Fatalf("runs after the sweep: %v", runIDsOf(runs))
	}
	if n := s.(*store.Pebble).PrefixLen('p'); n != 3 {
		t.Fatalf("%d payloads after the sweep, want 3 (run-0..2; the UUIDv7 ones expired and went)", n)
	}
	if n, err := s.QueueDepth(ctx); err != nil || n != 3 {
		t.Fatalf("queue after migration: %d, %v", n, err)
	}
	if p, err := s.GetPayload(ctx, "run-1"); err != nil || string(p.Body) != "body-1" {
		t.Fatalf("payload after migration: %v, %v", p, err)
	}
	if id, ok, err := s.ClaimRun(ctx, t0, time.Minute); err != nil || !ok || id != "run-0" {
		t.Fatalf("claim after migration: %q %v %v", id, ok, err)
	}
	if ok, _, _ := s.TakeQuota(ctx, "quota", 3, time.Hour, t0); ok {
		t.Fatal("the quota of 3 spent in bbolt had room after migration")
	}
	if held, first, _ := s.RememberKey(ctx, "delivery-run-2", "x", time.Hour, t0); first || held != "run-2" {
		t.Fatalf("delivery key after migration: %q, %v", held, first)
	}
	if err := s.LogRejection(ctx, launch.Rejected{At: t0, Path: "/t", Reason: "4"}); err != nil {
		t.Fatal(err)
	}
	if rs, _ := s.ListRejections(ctx, launch.RunFilter{}); len(rs) != 5 || rs[0].Reason != "4" || rs[4].Reason != "0" {
		t.Fatalf("trigger log after migration: %+v", rs)
	}
	if got, _ := s.Secret(ctx, "payload-key", nil); string(got) != string(secret) {
		t.Fatalf("signing key after migration: %q", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "valohai.db.migrated")); err != nil {
		t.Fatalf("the bbolt file was not kept aside: %v", err)
	}
	s, migrated, err = store.OpenFile(dir, "", store.BoltOptions{})
	if err != nil || migrated {
		t.Fatalf("second OpenFile = %v, migrated %v; want the pebble store as is", err, migrated)
	}
	defer s.Close()
	if n, _ := s.QueueDepth(ctx); n != 3 {
		t.Fatalf("queue after reopening: %d", n)
	}
}

func runIDsOf(runs []*launch.Run) []string {
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	return ids
}

func TestFileEngines(t *testing.T) {
	dir := t.TempDir()
	s, _, err := store.OpenFile(dir, "bbolt", store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.(*store.Bolt); !ok {
		t.Fatalf("engine bbolt opened a %T", s)
	}
	s.Close()
	if _, _, err := store.OpenFile(dir, "leveldb", store.BoltOptions{}); err == nil || !strings.Contains(err.Error(), "pebble") {
		t.Fatalf("unknown engine: %v, want an error naming the engines", err)
	}
}

// TestEmbeddedQuotaFlush: a unit taken by TakeQuota (a route without a
// launch) reaches the file within the flush interval, without Close, and
// a restart after it finds the unit counted.
func TestEmbeddedQuotaFlush(t *testing.T) {
	for _, engine := range []string{"pebble", "bbolt"} {
		t.Run(engine, func(t *testing.T) {
			dir, ctx, now := t.TempDir(), context.Background(), time.Now()
			opts := store.BoltOptions{QuotaFlush: 20 * time.Millisecond}
			s, _, err := store.OpenFile(dir, engine, opts)
			if err != nil {
				t.Fatal(err)
			}
			if ok, _, err := s.TakeQuota(ctx, "k", 1, time.Hour, now); err != nil || !ok {
				t.Fatalf("TakeQuota = %v, %v", ok, err)
			}
			// Let the flusher run, then drop the store the way a crash would
			// leave its file: flushed state only. Closing would flush again,
			// so the unit is read back through a copy taken before Close.
			time.Sleep(200 * time.Millisecond)
			snapshot := filepath.Join(t.TempDir(), "copy")
			if err := os.CopyFS(snapshot, os.DirFS(dir)); err != nil {
				t.Fatal(err)
			}
			s.Close()
			os.Remove(filepath.Join(snapshot, "pebble", "LOCK"))
			again, _, err := store.OpenFile(snapshot, engine, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			if ok, _, _ := again.TakeQuota(ctx, "k", 1, time.Hour, now); ok {
				t.Fatal("the unit taken before the flush interval ended was not in the file")
			}
		})
	}
}

func TestPebbleFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "valohai")
	s, _, err := store.OpenFile(dir, "", store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.LogRejection(context.Background(), launch.Rejected{At: time.Now(), Reason: "x"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	n := 0
	err = filepath.Walk(dir, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if fi.IsDir() {
			want = 0o700
		}
		if perm := fi.Mode().Perm(); perm&^want != 0 {
			t.Errorf("%s has mode %v, want at most %v: it holds webhook bodies and secrets", path, perm, want)
		}
		n++
		return nil
	})
	if err != nil || n < 3 {
		t.Fatalf("walked %d paths: %v", n, err)
	}
}

// TestPebbleRunIDExistence checks CreateRun's existence check, which skips
// the lookup for ids in a range known to be free (README.md, "The durable write path"),
// against a model: ids of every order (time-ordered, older, random,
// repeated), across reopens, alone and concurrently, and each refusal
// changes nothing.
func TestPebbleRunIDExistence(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "valohai")
	s := openPebble(t, dir)
	ctx, now := context.Background(), time.Now()
	stored := map[string]bool{}
	create := func(id string) {
		t.Helper()
		run := &launch.Run{ID: id, Trigger: "t", Path: "/hook", CreatedAt: now, Status: launch.StatusPending}
		err := s.CreateRun(ctx, run, &launch.Payload{Body: []byte(id), ContentType: "text/plain"})
		if stored[id] != (err != nil) {
			t.Fatalf("CreateRun(%q): %v, but stored before: %v", id, err, stored[id])
		}
		stored[id] = true
		got, err := s.GetPayload(ctx, id)
		if err != nil || string(got.Body) != id {
			t.Fatalf("payload of %q after CreateRun: %v %v (a refused create must change nothing)", id, got, err)
		}
	}
	var v7 []string
	for range 40 {
		v7 = append(v7, uuid.Must(uuid.NewV7()).String())
	}
	// Ids of an earlier version (random v4) around and after today's.
	create("ffffffff-0000-4000-8000-000000000000")
	create("01000000-0000-4000-8000-000000000000")
	create(v7[10])
	for _, i := range []int{11, 12, 10, 13, 9, 14, 14, 20, 15, 20, 39} {
		create(v7[i])
	}
	create("ffffffff-0000-4000-8000-000000000000")
	create("fffffffe-0000-4000-8000-000000000000")
	create("fffffffe-0000-4000-8000-000000000000")
	create(v7[38])
	create(v7[39])
	// Reopened, nothing is known to be free: the first create looks.
	s.Close()
	s = openPebble(t, dir)
	for _, i := range []int{39, 38, 37, 39, 21, 22, 21, 10} {
		create(v7[i])
	}
	create("01000000-0000-4000-8000-000000000000")
	s.Close()
	s = openPebble(t, dir)
	create(v7[5])
	create(v7[6])
	create(v7[5])
	create(v7[39])
	// A seeded random order over a small pool repeats ids often.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		create(v7[rng.IntN(len(v7))])
	}
	// Concurrent creates of one new id (writers of one group commit, whose
	// refused member makes the others run again): exactly one wins.
	for range 20 {
		id := uuid.Must(uuid.NewV7()).String()
		var wins atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				run := &launch.Run{ID: id, Trigger: "t", CreatedAt: now, Status: launch.StatusPending}
				if s.CreateRun(ctx, run, nil) == nil {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			t.Fatalf("%d concurrent creates of run %s succeeded, want 1", n, id)
		}
	}
}

// TestPebbleDeliveryKeyReplaced checks that a delivery key claimed again
// after it expired replaces its old record whole (the record CreateRun read
// while judging the claim is the one it replaces), also when one create
// claims the same key twice: the housekeeping that drops expired keys
// later leaves the new holder alone.
func TestPebbleDeliveryKeyReplaced(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	var clock atomic.Int64
	clock.Store(t0.UnixNano())
	s, err := store.OpenPebble(filepath.Join(t.TempDir(), "valohai"), store.BoltOptions{Now: func() time.Time { return time.Unix(0, clock.Load()) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := context.Background()
	create := func(id string, at time.Time, window time.Duration, keys ...string) {
		t.Helper()
		var claims []launch.Claim
		for _, k := range keys {
			claims = append(claims, launch.KeyClaim(k, window, at))
		}
		if err := s.CreateRun(ctx, &launch.Run{ID: id, Trigger: "t", CreatedAt: at}, nil, claims...); err != nil {
			t.Fatalf("CreateRun(%s): %v", id, err)
		}
	}
	create("a", t0, time.Second, "delivery-1")
	create("b", t0.Add(2*time.Second), time.Hour, "delivery-1")
	create("c", t0, time.Second, "delivery-2")
	create("d", t0.Add(2*time.Second), time.Hour, "delivery-2", "delivery-2")
	clock.Store(t0.Add(3 * time.Second).UnixNano())
	if err := s.FlushQuotas(); err != nil {
		t.Fatal(err)
	}
	for _, kw := range [][2]string{{"delivery-1", "b"}, {"delivery-2", "d"}} {
		key, want := kw[0], kw[1]
		held, first, err := s.RememberKey(ctx, key, "later", time.Hour, t0.Add(3*time.Second))
		if err != nil || first || held != want {
			t.Errorf("RememberKey(%s) after the expired record's cleanup: held %q first %v err %v; want held by %q", key, held, first, err, want)
		}
	}
}
