package store

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// valsepRun is an accepted request as CreateRun stores it: a run whose
// action body is actionSize bytes, and its payload.
func valsepRun(i int, body []byte, actionSize int, now time.Time) (*launch.Run, *launch.Payload) {
	id := fmt.Sprintf("run-%09d", i)
	action := []byte(`{"step":"` + string(varied(max(0, actionSize-11), -i)) + `"}`)
	run := &launch.Run{ID: id, Trigger: "bench", Path: "/hook", CreatedAt: now, NextAttemptAt: now, Status: launch.StatusPending,
		Actions: []launch.Action{{Kind: launch.ActionRunExecution, Name: "train", Body: action}}}
	return run, &launch.Payload{Body: body, ContentType: "application/json", ExpiresAt: now.Add(time.Hour)}
}

// varied is n bytes that snappy cannot shrink much, different for each seed.
func varied(n, seed int) []byte {
	b := make([]byte, n)
	x := uint32(seed*2654435761 + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = 'a' + byte(x%26)
	}
	return b
}

// Webhook bodies and run records go to blob files at a flush; the other
// records (here delivery keys with values as large) stay in their tables;
// every body, run and key reads back exact after the flush and after a
// reopen (README.md, "The durable write path").
func TestPebbleSeparatesBodiesAndRunsIntoBlobFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pebble")
	p, err := OpenPebble(dir, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, now := context.Background(), time.Now().UTC().Truncate(time.Millisecond)
	const n = 200
	var separated, keyBytes int
	bodies := map[string][]byte{}
	for i := range n {
		size := 4 << 10 // separated
		if i%4 == 0 {
			size = 100 // under pebbleSeparateValues: stays in its table
		}
		body := varied(size, i)
		run, payload := valsepRun(i, body, 3<<10, now)
		if err := p.CreateRun(ctx, run, payload); err != nil {
			t.Fatal(err)
		}
		bodies[run.ID] = body
		if size >= pebbleSeparateValues {
			separated += size
		}
		separated += 3 << 10
		// A delivery key whose value is as large as a body: above the
		// separation size, but outside the separated ranges.
		value := string(varied(2<<10, n+i))
		if _, first, err := p.RememberKey(ctx, "delivery-"+run.ID, value, time.Hour, now); err != nil || !first {
			t.Fatalf("delivery key of %s: first %v, %v", run.ID, first, err)
		}
		keyBytes += len(value)
	}
	if err := p.db.Flush(); err != nil {
		t.Fatal(err)
	}
	m := p.db.Metrics()
	blob := m.Total().BlobBytesFlushed
	if m.BlobFiles.LiveCount == 0 || blob < uint64(separated) {
		t.Fatalf("after a flush: %d blob files, %d bytes written to them; want the %d bytes of %d bodies of 4 KiB and %d run records of 3 KiB in blob files",
			m.BlobFiles.LiveCount, blob, separated, n-n/4, n)
	}
	if blob >= uint64(separated+keyBytes/2) {
		t.Fatalf("%d bytes written to blob files for %d bytes of bodies and runs: the delivery keys' values (%d bytes) were separated too", blob, separated, keyBytes)
	}
	check := func(s *Pebble) {
		t.Helper()
		for i := range n {
			id := fmt.Sprintf("run-%09d", i)
			got, err := s.GetPayload(ctx, id)
			if want := bodies[id]; err != nil || !bytes.Equal(got.Body, want) || got.ContentType != "application/json" {
				t.Fatalf("payload of %s: %d bytes, %v; want the %d bytes stored", id, len(got.Body), err, len(want))
			}
			run, err := s.GetRun(ctx, id)
			if err != nil || run.ID != id || len(run.Actions) != 1 || len(run.Actions[0].Body) != 3<<10 {
				t.Fatalf("run %s after the flush: %+v, %v", id, run, err)
			}
			want := string(varied(2<<10, n+i))
			if held, first, err := s.RememberKey(ctx, "delivery-"+id, "again", time.Hour, now); err != nil || first || held != want {
				t.Fatalf("delivery key of %s after the flush: first %v, %d bytes held, %v; want the %d bytes stored", id, first, len(held), err, len(want))
			}
		}
	}
	check(p)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err = OpenPebble(dir, BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	check(p)
}

// createFlushed stores runs from..to-1 (records of 990 bytes) with bodies
// of 2 KiB in s, notes their bodies, and flushes the memtable to tables
// (and blob files).
func createFlushed(t *testing.T, s *Pebble, bodies map[string][]byte, from, to int, now time.Time) {
	t.Helper()
	for i := from; i < to; i++ {
		run, payload := valsepRun(i, varied(2<<10, i), valsepActionSize, now)
		if err := s.CreateRun(context.Background(), run, payload); err != nil {
			t.Fatal(err)
		}
		bodies[run.ID] = payload.Body
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
}

// A store written before value separation (pebble's default format, every
// value in its table) opens with everything it held, is moved up to
// FormatValueSeparation, and separates the bodies and runs written after; the
// previous build still opens and reads it.
func TestPebbleOpensStoreWithValuesInline(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pebble")
	old, err := openPebble(dir, BoltOptions{}, pebbleInlineOptions)
	if err != nil {
		t.Fatal(err)
	}
	ctx, now := context.Background(), time.Now().UTC().Truncate(time.Millisecond)
	bodies := map[string][]byte{}
	createFlushed(t, old, bodies, 0, 50, now)
	if v := old.db.FormatMajorVersion(); v >= pebble.FormatValueSeparation {
		t.Fatalf("setup: the inline store is at format %v already", v)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	p, err := OpenPebble(dir, BoltOptions{})
	if err != nil {
		t.Fatalf("opening a store written with values inline: %v", err)
	}
	defer p.Close()
	if v := p.db.FormatMajorVersion(); v != pebble.FormatValueSeparation {
		t.Fatalf("format after open = %v, want %v", v, pebble.FormatValueSeparation)
	}
	createFlushed(t, p, bodies, 50, 100, now)
	if m := p.db.Metrics(); m.BlobFiles.LiveCount == 0 {
		t.Fatal("no blob file after writing 50 bodies of 2 KiB to the upgraded store")
	}
	if err := p.db.Compact(ctx, []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}
	for id, want := range bodies {
		got, err := p.GetPayload(ctx, id)
		if err != nil || !bytes.Equal(got.Body, want) {
			t.Fatalf("payload of %s after the upgrade and a full compaction: %d bytes, %v", id, len(got.Body), err)
		}
	}
	if depth, err := p.QueueDepth(ctx); err != nil || depth != 100 {
		t.Fatalf("queue depth %d, %v; want the 100 runs", depth, err)
	}

	// Rolled back to a build without value separation, the gateway opens
	// the upgraded store (same pebble) and reads the separated bodies.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	back, err := openPebble(dir, BoltOptions{}, pebbleInlineOptions)
	if err != nil {
		t.Fatalf("opening the upgraded store with the options of before: %v", err)
	}
	defer back.Close()
	for id, want := range bodies {
		got, err := back.GetPayload(ctx, id)
		if err != nil || !bytes.Equal(got.Body, want) {
			t.Fatalf("payload of %s after rolling back: %d bytes, %v", id, len(got.Body), err)
		}
		run, err := back.GetRun(ctx, id)
		if err != nil || run.ID != id || len(run.Actions) != 1 || len(run.Actions[0].Body) != valsepActionSize {
			t.Fatalf("run %s after rolling back: %v; want its one action of %d bytes", id, err, valsepActionSize)
		}
	}
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// processWritten is how many bytes the process has passed to write calls
// (wchar in /proc/self/io): the log, tables and blob files pebble wrote.
func processWritten(b *testing.B) int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		b.Skipf("no /proc/self/io: %v", err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "wchar: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Skip("no wchar in /proc/self/io")
	return 0
}

// valsepActionSize is the size of the action body in the benchmark's run
// records, which makes them about as large as a run of bench/run.sh's
// launch scenario (its execution body and payload URL): 990 bytes.
const valsepActionSize = 712

// BenchmarkPebbleValueSeparation: 32 goroutines commit what accepted
// requests commit (a run, its body, queue entry, quota unit and delivery
// key) on pebble with the store's options ("separated": bodies and run
// records in blob files), with the bodies alone in blob files ("bodies",
// the store of bench/README.md's session 11) and with every value in its
// table ("inline", the store before value separation), at
// 1 KiB and 1 MiB bodies. Per accepted request it reports the whole
// process's CPU, background flushes and compactions included (cpu-ns/run),
// and the bytes pebble wrote: its log, and the tables and blob files of
// flushes and compactions (written-B/run). Run it with a fixed count,
// so every variant writes the same amount (bench/README.md, "Webhook
// bodies in blob files" and "Run records in blob files, and the trigger
// without syncs"):
//
//	go test -run '^$' -bench 'PebbleValueSeparation/.*/1KiB' -benchtime 200000x ./launch/store
//	go test -run '^$' -bench 'PebbleValueSeparation/.*/1MiB' -benchtime 800x ./launch/store
func BenchmarkPebbleValueSeparation(b *testing.B) {
	variants := []struct {
		name    string
		options func() *pebble.Options
	}{{"inline", pebbleInlineOptions}, {"bodies", func() *pebble.Options {
		// Session 11's store: bodies in blob files, runs in their tables.
		o := pebbleOptions()
		o.Experimental.SpanPolicyFunc = separateOnly([]byte{pPayloads})
		return o
	}}, {"separated", pebbleOptions}}
	for _, v := range variants {
		for _, size := range []int{1 << 10, 1 << 20} {
			name := fmt.Sprintf("%s/%dKiB", v.name, size>>10)
			if size >= 1<<20 {
				name = fmt.Sprintf("%s/%dMiB", v.name, size>>20)
			}
			b.Run(name, func(b *testing.B) {
				body := varied(size, 1)
				p, err := openPebble(filepath.Join(b.TempDir(), "pebble"), BoltOptions{}, v.options)
				if err != nil {
					b.Fatal(err)
				}
				defer p.Close()
				ctx, now := context.Background(), time.Now()
				var n atomic.Int64
				cpu, written := processCPU(), processWritten(b)
				b.ResetTimer()
				var wg sync.WaitGroup
				for range 32 {
					wg.Go(func() {
						for {
							i := n.Add(1)
							if i > int64(b.N) {
								return
							}
							run, payload := valsepRun(int(i), body, valsepActionSize, now)
							if err := p.CreateRun(ctx, run, payload,
								launch.KeyClaim("scope#delivery-"+run.ID, 24*time.Hour, now),
								launch.QuotaClaim("scope#1000000000/1h#", 1_000_000_000, time.Hour, now)); err != nil {
								b.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				cpu = processCPU() - cpu
				written = processWritten(b) - written
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/run")
				b.ReportMetric(float64(written)/float64(b.N), "written-B/run")
			})
		}
	}
}

// pebbleSpanPolicy hands pebble spans that cover every prefix, each
// separable exactly when it is in pebbleSeparable.
func TestPebbleSpanPolicyCoversEveryPrefix(t *testing.T) {
	separable := map[byte]bool{}
	for _, p := range pebbleSeparable {
		separable[p] = true
	}
	for _, prefix := range []byte{pDedupeExp, pRejectSeq, pQueueByRun, pDedupe, pPayloadExp, pRejections, pQuota, pPayloads, pQueue, pRuns, pSecrets, pRunsByTime} {
		key := []byte{prefix, 0, 1}
		// Pebble asks again from the end of each span it was given.
		start := []byte{}
		var policy pebble.SpanPolicy
		for {
			var end []byte
			var err error
			policy, end, err = pebbleSpanPolicy(start)
			if err != nil {
				t.Fatal(err)
			}
			if end == nil || bytes.Compare(key, end) < 0 {
				break
			}
			if bytes.Compare(end, start) <= 0 {
				t.Fatalf("span from %q ends at %q", start, end)
			}
			start = end
		}
		inline := policy.ValueStoragePolicy == pebble.ValueStorageLowReadLatency
		if inline == separable[prefix] {
			t.Errorf("prefix %q: values kept inline %v, want separable %v", prefix, inline, separable[prefix])
		}
	}
}
