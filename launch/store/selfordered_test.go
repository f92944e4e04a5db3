package store_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hooklaunch/caddy-valohai/launch"
	"github.com/hooklaunch/caddy-valohai/launch/store"
	"github.com/hooklaunch/caddy-valohai/launch/store/storetest"
)

var v7At = storetest.UUIDv7At

func sweepRun(id string, created time.Time) *launch.Run {
	return &launch.Run{ID: id, Trigger: "t", CreatedAt: created, UpdatedAt: created, NextAttemptAt: created, Status: launch.StatusCompleted}
}

// A run the gateway accepts (a UUIDv7 id made in the run's millisecond, a
// payload) writes neither index bucket, each about three pages of bbolt's
// accept commit (README.md, "The durable write path"). Other ids are
// indexed as before.
func TestBoltSelfOrderedRunsWriteNoIndex(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "store.db"), store.BoltOptions{})
	ctx, now := context.Background(), time.Now()
	p := func() *launch.Payload {
		return &launch.Payload{Body: []byte("{}"), ContentType: "application/json", ExpiresAt: now.Add(time.Hour)}
	}
	for range 20 {
		id := uuid.Must(uuid.NewV7()).String()
		created := time.UnixMilli(msOf(t, id)).Add(300 * time.Microsecond) // within the id's millisecond
		if err := s.CreateRun(ctx, sweepRun(id, created), p()); err != nil {
			t.Fatal(err)
		}
	}
	if n, m := s.BucketLen("runs_by_time"), s.BucketLen("payload_exp"); n != 0 || m != 0 {
		t.Fatalf("runs_by_time %d, payload_exp %d entries for self-ordered runs, want 0 and 0", n, m)
	}
	if err := s.CreateRun(ctx, sweepRun("legacy", now), p()); err != nil {
		t.Fatal(err)
	}
	other := v7At(t, now.Add(-time.Second)) // created in another millisecond
	if err := s.CreateRun(ctx, sweepRun(other, now), p()); err != nil {
		t.Fatal(err)
	}
	if n, m := s.BucketLen("runs_by_time"), s.BucketLen("payload_exp"); n != 2 || m != 1 {
		t.Fatalf("runs_by_time %d, payload_exp %d entries, want 2 (legacy, %s) and 1 (legacy)", n, m, other)
	}
	runs, err := s.ListRuns(ctx, launch.RunFilter{Limit: 500})
	if err != nil || len(runs) != 22 {
		t.Fatalf("ListRuns: %d runs, %v; want 22", len(runs), err)
	}
}

func msOf(t *testing.T, id string) int64 {
	t.Helper()
	u := uuid.MustParse(id)
	var ms int64
	for i := range 6 {
		ms = ms<<8 | int64(u[i])
	}
	return ms
}

// The retention sweep purges expired payloads keyed by UUIDv7 ids without
// an index: oldest first, up to the first one still valid; indexed
// payloads (other ids) as before. The runs stay.
func TestBoltSweepPurgesUnindexedPayloads(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	s := openBolt(t, filepath.Join(t.TempDir(), "store.db"), store.BoltOptions{Now: func() time.Time { return now }})
	ctx := context.Background()
	var ids []string
	for i := range 4 {
		created := now.Add(time.Duration(i) * time.Minute)
		id := v7At(t, created)
		ids = append(ids, id)
		run := sweepRun(id, created)
		run.Status = launch.StatusPending
		if err := s.CreateRun(ctx, run, &launch.Payload{Body: []byte("x"), ContentType: "text/plain", ExpiresAt: created.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRun(ctx, sweepRun("legacy", now), &launch.Payload{Body: []byte("x"), ContentType: "text/plain", ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Hour + time.Minute) // the first two and legacy expired
	if n, err := s.DeleteRunsBefore(ctx, now.Add(-24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("DeleteRunsBefore = %d, %v", n, err)
	}
	if got := s.BucketLen("payloads"); got != 2 {
		t.Fatalf("%d payloads after the sweep, want 2 (the two not yet expired)", got)
	}
	for i, id := range ids {
		_, err := s.GetPayload(ctx, id)
		if expired := i < 2; expired != (err != nil) {
			t.Fatalf("payload %d after the sweep: err = %v, expired %v", i, err, expired)
		}
	}
	now = now.Add(time.Hour)
	if _, err := s.DeleteRunsBefore(ctx, now.Add(-24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := s.BucketLen("payloads") + s.BucketLen("payload_exp"); got != 0 {
		t.Fatalf("%d payload records left, want 0", got)
	}
	if runs, _ := s.ListRuns(ctx, launch.RunFilter{}); len(runs) != 5 {
		t.Fatalf("%d runs after purging their payloads, want 5", len(runs))
	}
}

// A file that an older release wrote indexes every run and payload: its
// UUIDv7 runs are listed once, and the sweep removes them with their index
// entries.
func TestBoltReadsOlderReleaseIndexEntries(t *testing.T) {
	s := openBolt(t, filepath.Join(t.TempDir(), "store.db"), store.BoltOptions{})
	ctx, t0 := context.Background(), time.Now().Truncate(time.Second)
	var ids []string
	for i := range 3 {
		created := t0.Add(time.Duration(i-3) * time.Hour)
		id := v7At(t, created)
		ids = append(ids, id)
		if err := s.CreateRun(ctx, sweepRun(id, created), &launch.Payload{Body: []byte("x"), ContentType: "text/plain", ExpiresAt: t0.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if err := s.IndexAsOlderRelease(id); err != nil {
			t.Fatal(err)
		}
	}
	runs, err := s.ListRuns(ctx, launch.RunFilter{})
	if got := runIDsOf(runs); err != nil || !slices.Equal(got, []string{ids[2], ids[1], ids[0]}) {
		t.Fatalf("ListRuns = %v, %v; want each run once, newest first", got, err)
	}
	if n, err := s.DeleteRunsBefore(ctx, t0.Add(-90*time.Minute)); err != nil || n != 2 {
		t.Fatalf("DeleteRunsBefore = %d, %v; want 2", n, err)
	}
	if n, m := s.BucketLen("runs_by_time"), s.BucketLen("payload_exp"); n != 1 || m != 1 {
		t.Fatalf("runs_by_time %d, payload_exp %d entries after the sweep, want 1 and 1 (the run kept)", n, m)
	}
}
