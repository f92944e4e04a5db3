// Package storetest is the conformance suite every launch.Store
// implementation runs, so that bbolt and redis behave the same and the rest
// of caddy-valohai can rely on the contract rather than on one backend.
//
// Stores must judge time by the now argument of the methods that take one
// (ClaimRun, TakeQuota, RememberKey): the suite moves it freely, hours ahead,
// without sleeping. It starts from the real present, so a backend that also
// sets real TTLs for cleanup still passes as long as those TTLs are generous.
package storetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// Factory makes the stores the suite runs against.
type Factory struct {
	// New returns an empty store and arranges (t.Cleanup) for it to be closed.
	New func(t *testing.T) launch.Store
	// Reopen closes old and returns a store over the same data, as after a
	// restart of Caddy. Nil skips the persistence tests.
	Reopen func(t *testing.T, old launch.Store) launch.Store
}

// RunConformance runs the whole contract of launch.Store against f's stores,
// each subtest on a fresh store.
func RunConformance(t *testing.T, f Factory) {
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"Runs", testRuns},
		{"ListDefaultLimit", testListDefaultLimit},
		{"Payload", testPayload},
		{"QueueOrder", testQueueOrder},
		{"QueueConcurrentClaims", testQueueConcurrentClaims},
		{"QueueLeaseExpiry", testQueueLeaseExpiry},
		{"QueueRequeue", testQueueRequeue},
		{"QueueComplete", testQueueComplete},
		{"QuotaConcurrent", testQuotaConcurrent},
		{"QuotaWindows", testQuotaWindows},
		{"RememberKey", testRememberKey},
		{"RememberKeyConcurrent", testRememberKeyConcurrent},
		{"ForgetKey", testForgetKey},
		{"Rejections", testRejections},
		{"Secret", testSecret},
		{"DeleteRunsBefore", testDeleteRunsBefore},
		{"MixedRunIDs", testMixedRunIDs},
		{"Persistence", testPersistence},
		{"ClaimsQuotaConcurrent", testClaimsQuotaConcurrent},
		{"ClaimsKeyConcurrent", testClaimsKeyConcurrent},
		{"ClaimsAllOrNothing", testClaimsAllOrNothing},
		{"ClaimsShareState", testClaimsShareState},
		{"ClaimsPersist", testClaimsPersist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, f) })
	}
}

// epoch is the suite's "now": the real present, whole seconds, UTC.
func epoch() time.Time { return time.Now().UTC().Truncate(time.Second) }

func newRun(id, trigger, path string, created time.Time, status launch.RunStatus) *launch.Run {
	return &launch.Run{
		ID: id, Trigger: trigger, Host: "hooks.example.com", Path: path,
		CreatedAt: created, UpdatedAt: created, Status: status, NextAttemptAt: created,
		Actions: []launch.Action{{
			Kind: launch.ActionRunExecution, Project: "proj-1", Name: "train",
			Body: json.RawMessage(`{"step":"train","parameters":{"epochs":10}}`), State: launch.ActionPending,
		}},
	}
}

func mustCreate(t *testing.T, s launch.Store, r *launch.Run, p *launch.Payload) {
	t.Helper()
	if err := s.CreateRun(context.Background(), r, p); err != nil {
		t.Fatalf("CreateRun(%s): %v", r.ID, err)
	}
}

// sameRun compares runs by their JSON form, which is what a store keeps.
func sameRun(t *testing.T, got, want *launch.Run) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Fatalf("run differs:\n got  %s\n want %s", g, w)
	}
}

func runIDs(runs []*launch.Run) []string {
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	return ids
}

func wantNotFound(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, launch.ErrNotFound) {
		t.Fatalf("%s: err = %v, want launch.ErrNotFound", what, err)
	}
}

func testRuns(t *testing.T, f Factory) {
	s, ctx, t0 := f.New(t), context.Background(), epoch()
	a := newRun("a", "github", "/gh", t0, launch.StatusCompleted)
	b := newRun("b", "slack", "/slack", t0.Add(time.Second), launch.StatusPending)
	c := newRun("c", "github", "/gh", t0.Add(2*time.Second), launch.StatusError)
	d := newRun("d", "github", "/gh2", t0.Add(3*time.Second), launch.StatusPending)
	for _, r := range []*launch.Run{c, a, d, b} { // not in time order: the listing must sort
		mustCreate(t, s, r, nil)
	}
	for _, r := range []*launch.Run{a, b, c, d} {
		got, err := s.GetRun(ctx, r.ID)
		if err != nil {
			t.Fatalf("GetRun(%s): %v", r.ID, err)
		}
		sameRun(t, got, r)
	}
	_, err := s.GetRun(ctx, "missing")
	wantNotFound(t, "GetRun(missing)", err)
	if err := s.CreateRun(ctx, newRun("a", "x", "/x", t0, launch.StatusPending), nil); err == nil {
		t.Fatal("CreateRun with an existing id succeeded")
	}
	if got, _ := s.GetRun(ctx, "a"); got == nil || got.Trigger != "github" {
		t.Fatalf("duplicate CreateRun changed the stored run: %+v", got)
	}

	for _, tc := range []struct {
		f    launch.RunFilter
		want []string
	}{
		{launch.RunFilter{}, []string{"d", "c", "b", "a"}},
		{launch.RunFilter{Trigger: "github"}, []string{"d", "c", "a"}},
		{launch.RunFilter{Path: "/gh"}, []string{"c", "a"}},
		{launch.RunFilter{Status: launch.StatusPending}, []string{"d", "b"}},
		{launch.RunFilter{Trigger: "github", Status: launch.StatusPending}, []string{"d"}},
		{launch.RunFilter{Trigger: "nope"}, []string{}},
		{launch.RunFilter{Limit: 2}, []string{"d", "c"}},
		{launch.RunFilter{Trigger: "github", Limit: 2}, []string{"d", "c"}},
	} {
		runs, err := s.ListRuns(ctx, tc.f)
		if err != nil {
			t.Fatalf("ListRuns(%+v): %v", tc.f, err)
		}
		if got := runIDs(runs); !slices.Equal(got, tc.want) {
			t.Errorf("ListRuns(%+v) = %v, want %v", tc.f, got, tc.want)
		}
	}

	// A returned run is the caller's: changing it changes nothing stored.
	got, _ := s.GetRun(ctx, "b")
	got.Status = launch.StatusError
	if again, _ := s.GetRun(ctx, "b"); again.Status != launch.StatusPending {
		t.Fatal("mutating a returned run changed the store")
	}

	b.Actions[0].State = launch.ActionDone
	b.Actions[0].Result = &launch.ActionResult{ID: "exec-1", Counter: 42, URL: "https://app.valohai.com/api/v0/executions/exec-1/"}
	b.Refresh()
	b.UpdatedAt = t0.Add(time.Minute)
	if err := s.UpdateRun(ctx, b); err != nil {
		t.Fatalf("UpdateRun: %v", err)
	}
	got, err = s.GetRun(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	sameRun(t, got, b)
	runs, _ := s.ListRuns(ctx, launch.RunFilter{Status: launch.StatusPending})
	if ids := runIDs(runs); !slices.Equal(ids, []string{"d"}) {
		t.Errorf("pending after update = %v, want [d]", ids)
	}
	wantNotFound(t, "UpdateRun(missing)", s.UpdateRun(ctx, newRun("missing", "x", "/x", t0, launch.StatusPending)))

	// The listing follows a run whose creation time an update changed.
	a.CreatedAt = t0.Add(time.Hour)
	if err := s.UpdateRun(ctx, a); err != nil {
		t.Fatal(err)
	}
	runs, _ = s.ListRuns(ctx, launch.RunFilter{})
	if ids := runIDs(runs); !slices.Equal(ids, []string{"a", "d", "c", "b"}) {
		t.Errorf("runs after moving a = %v, want [a d c b]", ids)
	}
}

func testListDefaultLimit(t *testing.T, f Factory) {
	s, ctx, t0 := f.New(t), context.Background(), epoch()
	const n = 105
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- s.CreateRun(ctx, newRun(fmt.Sprintf("run-%03d", i), "t", "/t", t0.Add(time.Duration(i)*time.Millisecond), launch.StatusPending), nil)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent CreateRun: %v", err)
		}
	}
	runs, err := s.ListRuns(ctx, launch.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 100 {
		t.Fatalf("default limit: got %d runs, want 100", len(runs))
	}
	for i, r := range runs {
		if want := fmt.Sprintf("run-%03d", n-1-i); r.ID != want {
			t.Fatalf("runs[%d] = %s, want %s (newest first)", i, r.ID, want)
		}
	}
	if runs, _ := s.ListRuns(ctx, launch.RunFilter{Limit: 500}); len(runs) != n {
		t.Fatalf("limit 500: got %d runs, want %d", len(runs), n)
	}
}

func testPayload(t *testing.T, f Factory) {
	s, ctx, t0 := f.New(t), context.Background(), epoch()
	body := make([]byte, 0, 4096)
	for i := range 4096 {
		body = append(body, byte(i*7)) // every byte value, NULs and invalid UTF-8 included
	}
	orig := bytes.Clone(body)
	exp := time.Now().Add(time.Hour).Truncate(time.Millisecond)
	const ct = "application/x-www-form-urlencoded; charset=utf-8"
	mustCreate(t, s, newRun("p1", "t", "/t", t0, launch.StatusPending), &launch.Payload{Body: body, ContentType: ct, ExpiresAt: exp})
	body[0]++ // the store must have kept its own copy

	p, err := s.GetPayload(ctx, "p1")
	if err != nil {
		t.Fatalf("GetPayload: %v", err)
	}
	if !bytes.Equal(p.Body, orig) {
		t.Fatalf("payload body differs (%d bytes, want %d)", len(p.Body), len(orig))
	}
	if p.ContentType != ct || !p.ExpiresAt.Equal(exp) {
		t.Fatalf("payload = %q expiring %v, want %q expiring %v", p.ContentType, p.ExpiresAt, ct, exp)
	}

	mustCreate(t, s, newRun("p2", "t", "/t", t0, launch.StatusPending), &launch.Payload{Body: []byte{}, ContentType: "text/plain", ExpiresAt: exp})
	if p, err := s.GetPayload(ctx, "p2"); err != nil || len(p.Body) != 0 || p.ContentType != "text/plain" {
		t.Fatalf("empty payload: %+v, %v", p, err)
	}
	mustCreate(t, s, newRun("p3", "t", "/t", t0, launch.StatusPending), nil)
	_, err = s.GetPayload(ctx, "p3")
	wantNotFound(t, "GetPayload of a run without payload", err)
	mustCreate(t, s, newRun("p4", "t", "/t", t0, launch.StatusPending), &launch.Payload{Body: []byte("old"), ContentType: "text/plain", ExpiresAt: time.Now().Add(-time.Second)})
	_, err = s.GetPayload(ctx, "p4")
	wantNotFound(t, "GetPayload of an expired payload", err)
	_, err = s.GetPayload(ctx, "missing")
	wantNotFound(t, "GetPayload(missing)", err)

	// A body read with room before it (Payload.Framed, as the gateway
	// reads every body): the store may lay its record out in that room,
	// never in the body; with too little room, or a Framed that does not
	// end with the body, it copies. Each is stored exactly.
	for i, c := range []struct {
		name string
		room int
		ct   string
		own  bool // Framed ends with Body
	}{
		{"room for the header", 12 + len(ct), ct, true},
		{"more room than needed", 200, "application/json", true},
		{"one byte short", 11 + len(ct), ct, true},
		{"no room", 0, ct, true},
		{"another buffer", 64, "text/plain", false},
	} {
		framed := make([]byte, c.room, c.room+len(orig))
		for j := range framed {
			framed[j] = 0xA5 // what was there before
		}
		framed = append(framed, orig...)
		body := framed[c.room:]
		if !c.own {
			body = bytes.Clone(orig)
		}
		id := fmt.Sprintf("framed%d", i)
		mustCreate(t, s, newRun(id, "t", "/t", t0, launch.StatusPending),
			&launch.Payload{Body: body, Framed: framed, ContentType: c.ct, ExpiresAt: exp})
		if !bytes.Equal(body, orig) {
			t.Fatalf("%s: CreateRun changed the body", c.name)
		}
		body[0]++ // the store must have kept its own copy
		p, err := s.GetPayload(ctx, id)
		if err != nil {
			t.Fatalf("%s: GetPayload: %v", c.name, err)
		}
		if !bytes.Equal(p.Body, orig) || p.ContentType != c.ct || !p.ExpiresAt.Equal(exp) || p.Framed != nil {
			t.Fatalf("%s: payload %d bytes %q expiring %v (framed %d), want %d bytes %q expiring %v",
				c.name, len(p.Body), p.ContentType, p.ExpiresAt, len(p.Framed), len(orig), c.ct, exp)
		}
	}
}

func claim(t *testing.T, s launch.Store, now time.Time, lease time.Duration) string {
	t.Helper()
	id, ok, err := s.ClaimRun(context.Background(), now, lease)
	if err != nil {
		t.Fatalf("ClaimRun: %v", err)
	}
	if ok == (id == "") {
		t.Fatalf("ClaimRun = %q, ok %v: ok must mean an id", id, ok)
	}
	return id
}

func wantDepth(t *testing.T, s launch.Store, want int) {
	t.Helper()
	if n, err := s.QueueDepth(context.Background()); err != nil || n != want {
		t.Fatalf("QueueDepth = %d, %v; want %d", n, err, want)
	}
}

func queued(t *testing.T, s launch.Store, id string, due time.Time) {
	t.Helper()
	r := newRun(id, "t", "/t", due, launch.StatusPending)
	r.NextAttemptAt = due
	mustCreate(t, s, r, nil)
}

func testQueueOrder(t *testing.T, f Factory) {
	s, t0 := f.New(t), epoch()
	wantDepth(t, s, 0)
	if id := claim(t, s, t0, time.Minute); id != "" {
		t.Fatalf("claimed %q from an empty queue", id)
	}
	queued(t, s, "r1", t0.Add(2*time.Second))
	queued(t, s, "r2", t0.Add(time.Second))
	queued(t, s, "r3", t0.Add(3*time.Second))
	queued(t, s, "later", t0.Add(time.Hour))
	wantDepth(t, s, 4)
	if id := claim(t, s, t0, time.Minute); id != "" {
		t.Fatalf("claimed %q before anything was due", id)
	}
	var got []string
	for {
		id := claim(t, s, t0.Add(5*time.Second), 2*time.Hour)
		if id == "" {
			break
		}
		got = append(got, id)
	}
	if !slices.Equal(got, []string{"r2", "r1", "r3"}) {
		t.Fatalf("claim order = %v, want [r2 r1 r3] (by due time, not-yet-due left)", got)
	}
	wantDepth(t, s, 4) // leased runs stay queued until completed
	if id := claim(t, s, t0.Add(time.Hour), time.Minute); id != "later" {
		t.Fatalf("claim at due time of 'later' = %q", id)
	}
}

func testQueueConcurrentClaims(t *testing.T, f Factory) {
	s, t0 := f.New(t), epoch()
	const runs, workers = 5, 20
	for i := range runs {
		queued(t, s, fmt.Sprintf("r%d", i), t0)
	}
	var mu sync.Mutex
	var claimed []string
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				id, ok, err := s.ClaimRun(context.Background(), t0.Add(time.Second), time.Hour)
				if err != nil {
					t.Errorf("ClaimRun: %v", err)
					return
				}
				if !ok {
					return
				}
				mu.Lock()
				claimed = append(claimed, id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(claimed)
	if want := []string{"r0", "r1", "r2", "r3", "r4"}; !slices.Equal(claimed, want) {
		t.Fatalf("%d workers claimed %v, want each of %v exactly once", workers, claimed, want)
	}
}

func testQueueLeaseExpiry(t *testing.T, f Factory) {
	s, t0 := f.New(t), epoch()
	queued(t, s, "r", t0)
	if id := claim(t, s, t0, 30*time.Second); id != "r" {
		t.Fatalf("claim = %q, want r", id)
	}
	if id := claim(t, s, t0.Add(29*time.Second), 30*time.Second); id != "" {
		t.Fatalf("claimed %q while leased", id)
	}
	// The worker died: once the lease runs out, another worker gets the run.
	if id := claim(t, s, t0.Add(31*time.Second), 30*time.Second); id != "r" {
		t.Fatalf("claim after lease expiry = %q, want r", id)
	}
	if id := claim(t, s, t0.Add(32*time.Second), 30*time.Second); id != "" {
		t.Fatalf("re-claim took a new lease, yet %q was claimed again", id)
	}
}

func testQueueRequeue(t *testing.T, f Factory) {
	s, ctx, t0 := f.New(t), context.Background(), epoch()
	queued(t, s, "r", t0)
	if id := claim(t, s, t0, time.Hour); id != "r" {
		t.Fatalf("claim = %q", id)
	}
	if err := s.RequeueRun(ctx, "r", t0.Add(time.Minute)); err != nil {
		t.Fatalf("RequeueRun: %v", err)
	}
	wantDepth(t, s, 1)
	if id := claim(t, s, t0.Add(59*time.Second), time.Hour); id != "" {
		t.Fatalf("claimed %q before its requeue time", id)
	}
	if id := claim(t, s, t0.Add(time.Minute), time.Hour); id != "r" {
		t.Fatalf("claim at requeue time = %q, want r (requeue must replace the hour lease)", id)
	}
	// A completed run can be requeued again: a manual retry.
	if err := s.CompleteRun(ctx, "r"); err != nil {
		t.Fatal(err)
	}
	wantDepth(t, s, 0)
	if err := s.RequeueRun(ctx, "r", t0); err != nil {
		t.Fatalf("RequeueRun after completion: %v", err)
	}
	wantDepth(t, s, 1)
	if id := claim(t, s, t0, time.Hour); id != "r" {
		t.Fatalf("claim of retried run = %q", id)
	}
	wantNotFound(t, "RequeueRun(missing)", s.RequeueRun(ctx, "missing", t0))
}

func testQueueComplete(t *testing.T, f Factory) {
	s, ctx, t0 := f.New(t), context.Background(), epoch()
	queued(t, s, "a", t0)
	queued(t, s, "b", t0.Add(time.Second))
	if id := claim(t, s, t0, time.Minute); id != "a" {
		t.Fatalf("claim = %q", id)
	}
	if err := s.CompleteRun(ctx, "a"); err != nil {
		t.Fatalf("CompleteRun: %v", err)
	}
	wantDepth(t, s, 1)
	if err := s.CompleteRun(ctx, "a"); err != nil {
		t.Fatalf("repeated CompleteRun: %v", err)
	}
	if id := claim(t, s, t0.Add(24*time.Hour), time.Minute); id != "b" {
		t.Fatalf("claim = %q, want b (a is complete)", id)
	}
	if err := s.CompleteRun(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	wantDepth(t, s, 0)
	if id := claim(t, s, t0.Add(48*time.Hour), time.Minute); id != "" {
		t.Fatalf("claimed %q from an emptied queue", id)
	}
	if _, err := s.GetRun(ctx, "a"); err != nil {
		t.Fatalf("CompleteRun must keep the run record: %v", err)
	}
}

func testQuotaConcurrent(t *testing.T, f Factory) {
	s, now := f.New(t), epoch()
	const takers, limit, period = 50, 10, time.Hour
	var allowed atomic.Int32
	var wg sync.WaitGroup
	for range takers {
		wg.Go(func() {
			ok, retry, err := s.TakeQuota(context.Background(), "hooks.example.com/gh", limit, period, now)
			switch {
			case err != nil:
				t.Errorf("TakeQuota: %v", err)
			case ok:
				allowed.Add(1)
			case retry <= 0 || retry > period:
				t.Errorf("denied with retryAfter %v, want in (0, %v]", retry, period)
			}
		})
	}
	wg.Wait()
	if n := allowed.Load(); n != limit {
		t.Fatalf("%d concurrent takers on limit %d: %d allowed", takers, limit, n)
	}
}

func take(t *testing.T, s launch.Store, key string, limit int, period time.Duration, now time.Time) (bool, time.Duration) {
	t.Helper()
	ok, retry, err := s.TakeQuota(context.Background(), key, limit, period, now)
	if err != nil {
		t.Fatalf("TakeQuota: %v", err)
	}
	return ok, retry
}

func testQuotaWindows(t *testing.T, f Factory) {
	s := f.New(t)
	// Windows are aligned to multiples of the period since the Unix epoch.
	start := epoch().Truncate(24 * time.Hour).Add(24 * time.Hour)
	now := start.Add(10 * time.Minute)
	for i := range 3 {
		if ok, _ := take(t, s, "k", 3, time.Hour, now.Add(time.Duration(i)*time.Minute)); !ok {
			t.Fatalf("take %d of 3 denied", i+1)
		}
	}
	ok, retry := take(t, s, "k", 3, time.Hour, now.Add(5*time.Minute))
	if ok || retry != 45*time.Minute {
		t.Fatalf("4th take = %v, retryAfter %v; want denied, 45m (until the window ends)", ok, retry)
	}
	if ok, _ := take(t, s, "other", 3, time.Hour, now); !ok {
		t.Fatal("another key shares the exhausted quota")
	}
	// The same key under another period (limit 10 1h + limit 100 24h) is a
	// separate counter, even where the windows start together.
	if ok, _ := take(t, s, "k", 3, 24*time.Hour, now); !ok {
		t.Fatal("the 24h quota of a key shares the 1h counter")
	}
	next := start.Add(time.Hour)
	for i := range 3 {
		if ok, _ := take(t, s, "k", 3, time.Hour, next); !ok {
			t.Fatalf("take %d in the next window denied", i+1)
		}
	}
	if ok, _ := take(t, s, "k", 3, time.Hour, next.Add(59*time.Minute)); ok {
		t.Fatal("4th take in the next window allowed")
	}
}

func remember(t *testing.T, s launch.Store, key, value string, window time.Duration, now time.Time) (string, bool) {
	t.Helper()
	held, first, err := s.RememberKey(context.Background(), key, value, window, now)
	if err != nil {
		t.Fatalf("RememberKey: %v", err)
	}
	return held, first
}

func testRememberKey(t *testing.T, f Factory) {
	s, t0 := f.New(t), epoch()
	const day = 24 * time.Hour
	steps := []struct {
		key, value string
		at         time.Duration
		held       string
		first      bool
	}{
		{"delivery-1", "run-1", 0, "run-1", true},
		{"delivery-1", "run-2", time.Hour, "run-1", false},
		{"delivery-2", "run-3", time.Hour, "run-3", true},
		{"delivery-1", "run-4", day - time.Second, "run-1", false},
		{"delivery-1", "run-5", day + time.Second, "run-5", true}, // expired: overwritten
		{"delivery-1", "run-6", day + 2*time.Second, "run-5", false},
	}
	for i, st := range steps {
		held, first := remember(t, s, st.key, st.value, day, t0.Add(st.at))
		if held != st.held || first != st.first {
			t.Fatalf("step %d: RememberKey(%s, %s) = %q, %v; want %q, %v", i, st.key, st.value, held, first, st.held, st.first)
		}
	}
}

func testForgetKey(t *testing.T, f Factory) {
	s, t0 := f.New(t), epoch()
	ctx := context.Background()
	remember(t, s, "delivery", "run-1", time.Hour, t0)
	// Another value does not release the key.
	if err := s.ForgetKey(ctx, "delivery", "run-2"); err != nil {
		t.Fatalf("ForgetKey: %v", err)
	}
	if held, first := remember(t, s, "delivery", "run-3", time.Hour, t0); first || held != "run-1" {
		t.Fatalf("after forgetting another value: held %q first %v; want run-1, false", held, first)
	}
	// Its own value does.
	if err := s.ForgetKey(ctx, "delivery", "run-1"); err != nil {
		t.Fatalf("ForgetKey: %v", err)
	}
	if held, first := remember(t, s, "delivery", "run-4", time.Hour, t0); !first || held != "run-4" {
		t.Fatalf("after forgetting: held %q first %v; want run-4, true", held, first)
	}
	// Absent keys are a no-op.
	if err := s.ForgetKey(ctx, "never-seen", "run-9"); err != nil {
		t.Fatalf("ForgetKey of an absent key: %v", err)
	}
}

func testRememberKeyConcurrent(t *testing.T, f Factory) {
	s, t0 := f.New(t), epoch()
	const callers = 20
	var wg sync.WaitGroup
	var firsts atomic.Int32
	helds := make([]string, callers)
	for i := range callers {
		wg.Go(func() {
			held, first, err := s.RememberKey(context.Background(), "delivery", fmt.Sprintf("run-%d", i), time.Hour, t0)
			if err != nil {
				t.Errorf("RememberKey: %v", err)
			}
			if first {
				firsts.Add(1)
			}
			helds[i] = held
		})
	}
	wg.Wait()
	if n := firsts.Load(); n != 1 {
		t.Fatalf("%d concurrent callers: %d were first, want 1", callers, n)
	}
	for i, h := range helds {
		if h != helds[0] || h == "" {
			t.Fatalf("caller %d holds %q, caller 0 %q: all must see the winner", i, h, helds[0])
		}
	}
}

func testRejections(t *testing.T, f Factory) {
	s, ctx, t0 := f.New(t), context.Background(), epoch()
	if got, err := s.ListRejections(ctx, launch.RunFilter{}); err != nil || len(got) != 0 {
		t.Fatalf("empty log = %v, %v", got, err)
	}
	var logged []launch.Rejected
	for i := range 5 {
		r := launch.Rejected{
			At: t0.Add(time.Duration(i) * time.Second), Host: "hooks.example.com",
			Path: []string{"/a", "/b"}[i%2], Directive: "webhook_hmac",
			Reason: fmt.Sprintf("signature mismatch %d", i), RemoteAddr: "192.0.2.1:5000",
		}
		if err := s.LogRejection(ctx, r); err != nil {
			t.Fatalf("LogRejection: %v", err)
		}
		logged = append(logged, r)
	}
	reasons := func(rs []launch.Rejected) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.Reason[len(r.Reason)-1:])
		}
		return out
	}
	for _, tc := range []struct {
		f    launch.RunFilter
		want []string
	}{
		{launch.RunFilter{}, []string{"4", "3", "2", "1", "0"}},
		{launch.RunFilter{Path: "/a"}, []string{"4", "2", "0"}},
		{launch.RunFilter{Limit: 2}, []string{"4", "3"}},
		{launch.RunFilter{Path: "/b", Limit: 1}, []string{"3"}},
		{launch.RunFilter{Path: "/c"}, []string{}},
	} {
		got, err := s.ListRejections(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if r := reasons(got); !slices.Equal(r, tc.want) {
			t.Errorf("ListRejections(%+v) = %v, want %v", tc.f, r, tc.want)
		}
	}
	got, _ := s.ListRejections(ctx, launch.RunFilter{Limit: 1})
	g, _ := json.Marshal(got[0])
	w, _ := json.Marshal(logged[4])
	if !bytes.Equal(g, w) {
		t.Fatalf("rejection = %s, want %s", g, w)
	}
}

func randomSecret() ([]byte, error) {
	b := make([]byte, 32)
	_, err := rand.Read(b)
	return b, err
}

func noGen(t *testing.T) func() ([]byte, error) {
	return func() ([]byte, error) {
		t.Error("Secret generated a secret that already exists")
		return []byte("wrong"), nil
	}
}

func testSecret(t *testing.T, f Factory) {
	s, ctx := f.New(t), context.Background()
	first, err := s.Secret(ctx, "payload-key", randomSecret)
	if err != nil || len(first) != 32 {
		t.Fatalf("Secret = %x, %v", first, err)
	}
	again, err := s.Secret(ctx, "payload-key", noGen(t))
	if err != nil || !bytes.Equal(again, first) {
		t.Fatalf("second Secret = %x, %v; want %x", again, err, first)
	}
	other, _ := s.Secret(ctx, "other", randomSecret)
	if bytes.Equal(other, first) {
		t.Fatal("two names share a secret")
	}

	boom := errors.New("no entropy")
	if _, err := s.Secret(ctx, "failing", func() ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("Secret with failing gen: err = %v, want it wrapped", err)
	}
	if got, err := s.Secret(ctx, "failing", func() ([]byte, error) { return []byte("ok"), nil }); err != nil || string(got) != "ok" {
		t.Fatalf("Secret after a failed gen = %q, %v; the failure must not be stored", got, err)
	}

	// Several instances starting together must agree on one secret.
	var wg sync.WaitGroup
	got := make([][]byte, 10)
	for i := range got {
		wg.Go(func() {
			var err error
			if got[i], err = s.Secret(ctx, "raced", randomSecret); err != nil {
				t.Errorf("Secret: %v", err)
			}
		})
	}
	wg.Wait()
	for i := range got {
		if !bytes.Equal(got[i], got[0]) {
			t.Fatalf("concurrent Secret callers disagree: %x vs %x", got[i], got[0])
		}
	}
}

func testDeleteRunsBefore(t *testing.T, f Factory) {
	s, ctx, t0 := f.New(t), context.Background(), epoch()
	old := t0.Add(-2 * time.Hour)
	payload := func() *launch.Payload {
		return &launch.Payload{Body: []byte("{}"), ContentType: "application/json", ExpiresAt: time.Now().Add(time.Hour)}
	}
	mustCreate(t, s, newRun("old-done", "t", "/t", old, launch.StatusCompleted), payload())
	mustCreate(t, s, newRun("old-failed", "t", "/t", old.Add(time.Second), launch.StatusError), payload())
	mustCreate(t, s, newRun("old-pending", "t", "/t", old, launch.StatusPending), payload())
	mustCreate(t, s, newRun("new-done", "t", "/t", t0, launch.StatusCompleted), payload())
	wantDepth(t, s, 4)

	n, err := s.DeleteRunsBefore(ctx, t0.Add(-time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("DeleteRunsBefore = %d, %v; want 2", n, err)
	}
	for _, id := range []string{"old-done", "old-failed"} {
		_, err := s.GetRun(ctx, id)
		wantNotFound(t, "GetRun of deleted "+id, err)
		_, err = s.GetPayload(ctx, id)
		wantNotFound(t, "GetPayload of deleted "+id, err)
	}
	for _, id := range []string{"old-pending", "new-done"} {
		if _, err := s.GetRun(ctx, id); err != nil {
			t.Fatalf("GetRun(%s) after the sweep: %v", id, err)
		}
		if _, err := s.GetPayload(ctx, id); err != nil {
			t.Fatalf("GetPayload(%s) after the sweep: %v", id, err)
		}
	}
	runs, _ := s.ListRuns(ctx, launch.RunFilter{})
	if ids := runIDs(runs); !slices.Equal(ids, []string{"new-done", "old-pending"}) {
		t.Fatalf("runs after the sweep = %v", ids)
	}
	wantDepth(t, s, 2)
	var claimed []string
	for id := claim(t, s, t0.Add(time.Hour), time.Hour); id != ""; id = claim(t, s, t0.Add(time.Hour), time.Hour) {
		claimed = append(claimed, id)
	}
	if slices.Sort(claimed); !slices.Equal(claimed, []string{"new-done", "old-pending"}) {
		t.Fatalf("queue after the sweep holds %v", claimed)
	}
	if n, err := s.DeleteRunsBefore(ctx, t0.Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("second sweep = %d, %v; want 0", n, err)
	}
}

// UUIDv7At is a UUIDv7 (canonical lowercase text) of at's millisecond,
// with random bits after it, as the gateway makes run ids.
func UUIDv7At(t testing.TB, at time.Time) string {
	t.Helper()
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	ms := uint64(at.UnixMilli())
	for i := range 6 {
		b[i] = byte(ms >> (40 - 8*i))
	}
	b[6] = 0x70 | b[6]&0x0f // version 7
	b[8] = 0x80 | b[8]&0x3f // variant 10
	h := fmt.Sprintf("%x", b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// testMixedRunIDs: run ids of every shape (UUIDv7 created in the id's
// millisecond, UUIDv7 created in another one, UUIDv4, any string) list
// newest first by creation time and age out together, also after updates
// that move a run's creation time. An embedded store may order UUIDv7 runs
// by their id (README.md, "The durable write path"); none may show it.
func testMixedRunIDs(t *testing.T, f Factory) {
	s, ctx, t0 := f.New(t), context.Background(), epoch()
	early := t0.Add(-3 * time.Hour)
	mk := func(id string, created time.Time, status launch.RunStatus) *launch.Run {
		return newRun(id, "t", "/t", created, status)
	}
	s1 := mk(UUIDv7At(t, early), early.Add(500*time.Microsecond), launch.StatusCompleted)
	m1 := mk(UUIDv7At(t, early.Add(time.Millisecond)), early.Add(5*time.Millisecond), launch.StatusCompleted) // made in another millisecond
	l1 := mk("legacy-1", early.Add(2*time.Millisecond), launch.StatusCompleted)
	s2 := mk(UUIDv7At(t, early.Add(3*time.Millisecond)), early.Add(3*time.Millisecond), launch.StatusPending)
	v4 := mk("ffffffff-ffff-4fff-bfff-ffffffffffff", t0.Add(-time.Second), launch.StatusCompleted) // sorts after every UUIDv7
	s3 := mk(UUIDv7At(t, t0), t0, launch.StatusCompleted)
	s4 := mk(UUIDv7At(t, t0.Add(time.Hour)), t0.Add(time.Hour), launch.StatusCompleted) // a clock ahead
	for _, r := range []*launch.Run{s3, l1, s4, m1, v4, s1, s2} {
		mustCreate(t, s, r, nil)
	}
	list := func(f launch.RunFilter) []string {
		t.Helper()
		runs, err := s.ListRuns(ctx, f)
		if err != nil {
			t.Fatalf("ListRuns(%+v): %v", f, err)
		}
		return runIDs(runs)
	}
	want := func(what string, got []string, want ...*launch.Run) {
		t.Helper()
		ids := runIDs(want)
		if !slices.Equal(got, ids) {
			t.Fatalf("%s = %v, want %v", what, got, ids)
		}
	}
	want("ListRuns", list(launch.RunFilter{}), s4, s3, v4, m1, s2, l1, s1)
	want("ListRuns limit 3", list(launch.RunFilter{Limit: 3}), s4, s3, v4)
	want("ListRuns pending", list(launch.RunFilter{Status: launch.StatusPending}), s2)

	// s3 moves to another millisecond than its id's, m1 into its id's.
	s3.CreatedAt = early.Add(4 * time.Millisecond)
	m1.CreatedAt = early.Add(time.Millisecond + 200*time.Microsecond)
	for _, r := range []*launch.Run{s3, m1} {
		if err := s.UpdateRun(ctx, r); err != nil {
			t.Fatalf("UpdateRun(%s): %v", r.ID, err)
		}
	}
	want("ListRuns after moving two runs", list(launch.RunFilter{}), s4, v4, s3, s2, l1, m1, s1)
	// And back: each run is listed once whatever its history.
	s3.CreatedAt = t0
	if err := s.UpdateRun(ctx, s3); err != nil {
		t.Fatal(err)
	}
	want("ListRuns after moving one back", list(launch.RunFilter{}), s4, s3, v4, s2, l1, m1, s1)

	n, err := s.DeleteRunsBefore(ctx, t0.Add(-time.Hour))
	if err != nil || n != 3 {
		t.Fatalf("DeleteRunsBefore = %d, %v; want 3 (s1, m1, l1; s2 is pending)", n, err)
	}
	want("ListRuns after the sweep", list(launch.RunFilter{}), s4, s3, v4, s2)
	for _, r := range []*launch.Run{s1, m1, l1} {
		_, err := s.GetRun(ctx, r.ID)
		wantNotFound(t, "GetRun of swept "+r.ID, err)
	}
	if n, err := s.DeleteRunsBefore(ctx, t0.Add(time.Minute)); err != nil || n != 2 {
		t.Fatalf("second sweep = %d, %v; want 2 (s3, v4)", n, err)
	}
	want("ListRuns after the second sweep", list(launch.RunFilter{}), s4, s2)
}

func testPersistence(t *testing.T, f Factory) {
	if f.Reopen == nil {
		t.Skip("store cannot be reopened")
	}
	s, ctx, t0 := f.New(t), context.Background(), epoch()
	run := newRun("kept", "t", "/t", t0, launch.StatusPending)
	payload := &launch.Payload{Body: []byte("a=1&b=2"), ContentType: "application/x-www-form-urlencoded", ExpiresAt: time.Now().Add(time.Hour).Truncate(time.Millisecond)}
	mustCreate(t, s, run, payload)
	queued(t, s, "leased", t0.Add(-time.Second))
	if id := claim(t, s, t0, time.Minute); id != "leased" {
		t.Fatalf("claim = %q", id)
	}
	if ok, _ := take(t, s, "quota", 2, time.Hour, t0); !ok {
		t.Fatal("first take denied")
	}
	remember(t, s, "delivery", "run-1", time.Hour, t0)
	if err := s.LogRejection(ctx, launch.Rejected{At: t0, Path: "/t", Directive: "webhook_token", Reason: "missing token"}); err != nil {
		t.Fatal(err)
	}
	secret, err := s.Secret(ctx, "payload-key", randomSecret)
	if err != nil {
		t.Fatal(err)
	}

	s = f.Reopen(t, s)

	got, err := s.GetRun(ctx, "kept")
	if err != nil {
		t.Fatalf("run lost on restart: %v", err)
	}
	sameRun(t, got, run)
	p, err := s.GetPayload(ctx, "kept")
	if err != nil || !bytes.Equal(p.Body, payload.Body) || p.ContentType != payload.ContentType || !p.ExpiresAt.Equal(payload.ExpiresAt) {
		t.Fatalf("payload after restart = %+v, %v", p, err)
	}
	wantDepth(t, s, 2)
	if id := claim(t, s, t0, time.Hour); id != "kept" {
		t.Fatalf("claim after restart = %q, want kept (leased stays leased)", id)
	}
	if id := claim(t, s, t0.Add(2*time.Minute), time.Minute); id != "leased" {
		t.Fatalf("claim after the lease ran out = %q, want leased", id)
	}
	if ok, _ := take(t, s, "quota", 2, time.Hour, t0); !ok {
		t.Fatal("second take denied")
	}
	if ok, _ := take(t, s, "quota", 2, time.Hour, t0); ok {
		t.Fatal("third take allowed: the counter was lost on restart")
	}
	if held, first := remember(t, s, "delivery", "run-2", time.Hour, t0.Add(time.Minute)); first || held != "run-1" {
		t.Fatalf("dedupe key after restart = %q, first %v; want run-1, false", held, first)
	}
	if rs, _ := s.ListRejections(ctx, launch.RunFilter{}); len(rs) != 1 || rs[0].Reason != "missing token" {
		t.Fatalf("rejections after restart = %+v", rs)
	}
	if again, err := s.Secret(ctx, "payload-key", noGen(t)); err != nil || !bytes.Equal(again, secret) {
		t.Fatalf("secret after restart = %x, %v; want %x", again, err, secret)
	}
}

// createClaiming creates run with claims and returns the denial, if any;
// any other error fails the test.
func createClaiming(t *testing.T, s launch.Store, r *launch.Run, claims ...launch.Claim) *launch.ClaimDenied {
	t.Helper()
	err := s.CreateRun(context.Background(), r, nil, claims...)
	if err == nil {
		return nil
	}
	d, ok := launch.AsClaimDenied(err)
	if !ok {
		t.Fatalf("CreateRun(%s) with claims: %v", r.ID, err)
	}
	return d
}

// createConcurrently creates runs run-00 … run-<writers-1> at once, each
// with payload and claim, and returns each one's denial (nil: stored).
// Any other error fails the test.
func createConcurrently(t *testing.T, s launch.Store, writers int, now time.Time, payload *launch.Payload, claim launch.Claim) []*launch.ClaimDenied {
	t.Helper()
	var wg sync.WaitGroup
	denied := make([]*launch.ClaimDenied, writers)
	for i := range writers {
		wg.Go(func() {
			r := newRun(fmt.Sprintf("run-%02d", i), "t", "/t", now, launch.StatusPending)
			err := s.CreateRun(context.Background(), r, payload, claim)
			if err == nil {
				return
			}
			d, ok := launch.AsClaimDenied(err)
			if !ok {
				t.Errorf("CreateRun: %v", err)
				return
			}
			denied[i] = d
		})
	}
	wg.Wait()
	return denied
}

// testClaimsQuotaConcurrent: runs admitted by a quota claim are exact under
// concurrency, and a denied run leaves nothing behind.
func testClaimsQuotaConcurrent(t *testing.T, f Factory) {
	s, now := f.New(t), epoch()
	const writers, limit, period = 40, 10, time.Hour
	denied := createConcurrently(t, s, writers, now, &launch.Payload{Body: []byte("{}"), ContentType: "application/json"},
		launch.QuotaClaim("scope#10/1h#", limit, period, now))
	stored := 0
	for i, d := range denied {
		id := fmt.Sprintf("run-%02d", i)
		_, err := s.GetRun(context.Background(), id)
		_, perr := s.GetPayload(context.Background(), id)
		if d == nil {
			stored++
			if err != nil || perr != nil {
				t.Fatalf("admitted run %s: %v, payload %v", id, err, perr)
			}
			continue
		}
		if d.Index != 0 || d.Held != "" || d.RetryAfter <= 0 || d.RetryAfter > period {
			t.Fatalf("denial %+v, want claim 0 with a retryAfter in (0, %v]", d, period)
		}
		wantNotFound(t, "denied run "+id, err)
		wantNotFound(t, "payload of denied run "+id, perr)
	}
	if stored != limit {
		t.Fatalf("%d concurrent runs on a quota of %d: %d stored", writers, limit, stored)
	}
	wantDepth(t, s, limit)
}

// testClaimsKeyConcurrent: concurrent runs claiming one delivery key store
// exactly one run, and every other learns which.
func testClaimsKeyConcurrent(t *testing.T, f Factory) {
	s, now := f.New(t), epoch()
	const writers = 20
	denied := createConcurrently(t, s, writers, now, nil, launch.KeyClaim("scope#delivery-1", time.Hour, now))
	winner := ""
	for i, d := range denied {
		if d == nil {
			if winner != "" {
				t.Fatalf("runs %s and run-%02d both claimed the key", winner, i)
			}
			winner = fmt.Sprintf("run-%02d", i)
		}
	}
	if winner == "" {
		t.Fatal("no run claimed the key")
	}
	for i, d := range denied {
		if d != nil && (d.Index != 0 || d.Held != winner) {
			t.Fatalf("run-%02d denied with %+v, want claim 0 held by %s", i, d, winner)
		}
	}
	wantDepth(t, s, 1)
}

// testClaimsAllOrNothing: claims are judged in order and a denial writes
// nothing, not even the claims before the one denied.
func testClaimsAllOrNothing(t *testing.T, f Factory) {
	s, t0 := f.New(t), epoch()
	q := func(key string) launch.Claim { return launch.QuotaClaim(key, 1, time.Hour, t0) }
	k := func(key string) launch.Claim { return launch.KeyClaim(key, time.Hour, t0) }
	run := func(id string) *launch.Run { return newRun(id, "t", "/t", t0, launch.StatusPending) }

	if d := createClaiming(t, s, run("r1"), k("d1"), q("q1")); d != nil {
		t.Fatalf("first run denied: %+v", d)
	}
	// The quota is spent: the key claimed before it must not stay held.
	if d := createClaiming(t, s, run("r2"), k("d2"), q("q1")); d == nil || d.Index != 1 || d.Held != "" || d.RetryAfter <= 0 {
		t.Fatalf("second run: denial %+v, want claim 1 (the quota)", d)
	}
	if d := createClaiming(t, s, run("r3"), k("d2")); d != nil {
		t.Fatalf("d2 was left held by a denied run: %+v", d)
	}
	// The key is held: the quota claimed before it must not be spent.
	if d := createClaiming(t, s, run("r4"), q("q2"), k("d1")); d == nil || d.Index != 1 || d.Held != "r1" {
		t.Fatalf("fourth run: denial %+v, want claim 1 held by r1", d)
	}
	if d := createClaiming(t, s, run("r5"), q("q2")); d != nil {
		t.Fatalf("q2 was spent by a denied run: %+v", d)
	}
	// Both fail: the first in order is reported.
	if d := createClaiming(t, s, run("r6"), k("d1"), q("q1")); d == nil || d.Index != 0 || d.Held != "r1" {
		t.Fatalf("sixth run: denial %+v, want claim 0 held by r1", d)
	}
	for _, id := range []string{"r2", "r4", "r6"} {
		_, err := s.GetRun(context.Background(), id)
		wantNotFound(t, "denied run "+id, err)
	}
	wantDepth(t, s, 3)
	// A key claim expires with its window.
	later := t0.Add(2 * time.Hour)
	if d := createClaiming(t, s, newRun("r7", "t", "/t", later, launch.StatusPending), launch.KeyClaim("d1", time.Hour, later)); d != nil {
		t.Fatalf("d1 after its window: %+v", d)
	}
	// A claim that is neither a quota nor a key is refused.
	err := s.CreateRun(context.Background(), run("r8"), nil, launch.Claim{Key: "x", At: t0})
	if err == nil {
		t.Fatal("CreateRun accepted a claim with neither a period nor a window")
	}
	if _, ok := launch.AsClaimDenied(err); ok {
		t.Fatalf("a malformed claim was reported as a denial: %v", err)
	}
}

// testClaimsShareState: a quota unit or delivery key claimed with a run
// and one taken on its own (TakeQuota, RememberKey) are the same state.
func testClaimsShareState(t *testing.T, f Factory) {
	s, t0 := f.New(t), epoch()
	if ok, _ := take(t, s, "q", 2, time.Hour, t0); !ok {
		t.Fatal("first take denied")
	}
	if d := createClaiming(t, s, newRun("r1", "t", "/t", t0, launch.StatusPending), launch.QuotaClaim("q", 2, time.Hour, t0)); d != nil {
		t.Fatalf("claim of the second unit denied: %+v", d)
	}
	if ok, _ := take(t, s, "q", 2, time.Hour, t0); ok {
		t.Fatal("third unit taken: the claimed unit was not counted")
	}
	if held, first := remember(t, s, "d", "run-x", time.Hour, t0); !first || held != "run-x" {
		t.Fatalf("RememberKey = %q, %v", held, first)
	}
	if d := createClaiming(t, s, newRun("r2", "t", "/t", t0, launch.StatusPending), launch.KeyClaim("d", time.Hour, t0)); d == nil || d.Held != "run-x" {
		t.Fatalf("claim of a remembered key: %+v, want held by run-x", d)
	}
	if d := createClaiming(t, s, newRun("r3", "t", "/t", t0, launch.StatusPending), launch.KeyClaim("e", time.Hour, t0)); d != nil {
		t.Fatalf("claim of e: %+v", d)
	}
	if held, first := remember(t, s, "e", "run-y", time.Hour, t0); first || held != "r3" {
		t.Fatalf("RememberKey of a claimed key = %q, %v; want r3, false", held, first)
	}
}

// testClaimsPersist: what a run claimed survives a restart with the run.
func testClaimsPersist(t *testing.T, f Factory) {
	if f.Reopen == nil {
		t.Skip("store cannot be reopened")
	}
	s, t0 := f.New(t), epoch()
	if d := createClaiming(t, s, newRun("r1", "t", "/t", t0, launch.StatusPending),
		launch.KeyClaim("d", time.Hour, t0), launch.QuotaClaim("q", 1, time.Hour, t0)); d != nil {
		t.Fatalf("claims denied: %+v", d)
	}
	s = f.Reopen(t, s)
	if d := createClaiming(t, s, newRun("r2", "t", "/t", t0, launch.StatusPending), launch.KeyClaim("d", time.Hour, t0)); d == nil || d.Held != "r1" {
		t.Fatalf("key after restart: %+v, want held by r1", d)
	}
	if d := createClaiming(t, s, newRun("r3", "t", "/t", t0, launch.StatusPending), launch.QuotaClaim("q", 1, time.Hour, t0)); d == nil || d.Index != 0 {
		t.Fatalf("quota after restart: %+v, want denied", d)
	}
}
