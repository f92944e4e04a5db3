package launch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hooklaunch/caddy-valohai/launch"
	"github.com/hooklaunch/caddy-valohai/launch/store"
)

// scripted answers Perform calls from a list of errors (nil = accepted),
// each after delay.
type scripted struct {
	mu    sync.Mutex
	errs  []error
	calls atomic.Int32
	delay time.Duration
}

func (s *scripted) Perform(ctx context.Context, a *launch.Action) (*launch.ActionResult, error) {
	n := int(s.calls.Add(1)) - 1
	time.Sleep(s.delay)
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < len(s.errs) && s.errs[n] != nil {
		return nil, s.errs[n]
	}
	return &launch.ActionResult{ID: "exec-1", Counter: int64(n + 1)}, nil
}

func newDispatcher(t *testing.T, p launch.Performer, lease time.Duration) (*launch.Dispatcher, launch.Store, *atomic.Int32) {
	t.Helper()
	st, err := store.OpenBolt(filepath.Join(t.TempDir(), "v.db"), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	finals := &atomic.Int32{}
	d := &launch.Dispatcher{
		Store: st, Performer: p, Workers: 2, Lease: lease, Poll: 20 * time.Millisecond,
		Retry:   launch.RetryPolicy{Attempts: 4, First: 10 * time.Millisecond, Max: 40 * time.Millisecond},
		OnFinal: func(*launch.Run) { finals.Add(1) },
	}
	d.Start()
	t.Cleanup(func() { d.Stop(); st.Close() })
	return d, st, finals
}

func submit(t *testing.T, d *launch.Dispatcher, id string, actions int) {
	t.Helper()
	run := &launch.Run{ID: id, Trigger: "t"}
	for range actions {
		run.Actions = append(run.Actions, launch.Action{Kind: launch.ActionRunExecution, Body: json.RawMessage(`{}`)})
	}
	if err := d.Submit(context.Background(), run, nil); err != nil {
		t.Fatal(err)
	}
}

func waitFinal(t *testing.T, d *launch.Dispatcher, id string) *launch.Run {
	t.Helper()
	run, err := d.Wait(context.Background(), id, 10*time.Second)
	if err != nil || !run.Status.Final() {
		t.Fatalf("run %s not final: %+v %v", id, run, err)
	}
	return run
}

func TestDispatcherRetriesTransientErrors(t *testing.T) {
	p := &scripted{errs: []error{&launch.APIError{Status: 503}, &launch.APIError{Status: 429}}}
	d, st, finals := newDispatcher(t, p, time.Second)
	submit(t, d, "r1", 1)
	run := waitFinal(t, d, "r1")
	if run.Status != launch.StatusCompleted || run.Actions[0].Attempts != 3 || p.calls.Load() != 3 {
		t.Fatalf("status %s attempts %d calls %d", run.Status, run.Actions[0].Attempts, p.calls.Load())
	}
	waitQueueEmpty(t, st)
	time.Sleep(50 * time.Millisecond)
	if finals.Load() != 1 {
		t.Fatalf("OnFinal called %d times", finals.Load())
	}
}

func TestDispatcherPermanentErrorAndProgress(t *testing.T) {
	// Action 1 accepted, action 2 refused for good: complete_with_error,
	// and action 1 is not sent again.
	p := &scripted{errs: []error{nil, &launch.APIError{Status: 400, Body: `{"step":["bad"]}`}}}
	d, _, _ := newDispatcher(t, p, time.Second)
	submit(t, d, "r2", 2)
	run := waitFinal(t, d, "r2")
	if run.Status != launch.StatusCompleteWithError || run.Actions[0].State != launch.ActionDone || run.Actions[1].State != launch.ActionFailed {
		t.Fatalf("run %+v", run)
	}
	if p.calls.Load() != 2 {
		t.Fatalf("%d calls, want 2", p.calls.Load())
	}
	// A retry sends only the failed action.
	if _, err := d.RetryRun(context.Background(), "r2"); err != nil {
		t.Fatal(err)
	}
	run = waitFinal(t, d, "r2")
	if run.Status != launch.StatusCompleted || p.calls.Load() != 3 {
		t.Fatalf("after retry: %s with %d calls", run.Status, p.calls.Load())
	}
}

func TestDispatcherRetriesExhausted(t *testing.T) {
	p := &scripted{errs: []error{&launch.APIError{Status: 503}, &launch.APIError{Status: 503}, &launch.APIError{Status: 503}, &launch.APIError{Status: 503}}}
	d, _, _ := newDispatcher(t, p, time.Second)
	submit(t, d, "r3", 1)
	run := waitFinal(t, d, "r3")
	if run.Status != launch.StatusError || run.Actions[0].Attempts != 4 {
		t.Fatalf("status %s attempts %d", run.Status, run.Actions[0].Attempts)
	}
}

// A worker renews the lease of the run it holds, so a slow Valohai call does
// not hand the run to a second worker (which would launch it twice).
func TestDispatcherRenewsLeaseWhileWorking(t *testing.T) {
	// Generous margins: the renewal runs every lease/3, so only a scheduler
	// stalled for two thirds of a second could let the lease lapse.
	p := &scripted{delay: 2500 * time.Millisecond}
	d, st, _ := newDispatcher(t, p, time.Second)
	submit(t, d, "r4", 1)
	time.Sleep(1500 * time.Millisecond) // one and a half lease lengths into the call
	if id, ok, _ := st.ClaimRun(context.Background(), time.Now(), time.Second); ok {
		t.Fatalf("run %s claimable while its worker is still on it", id)
	}
	waitFinal(t, d, "r4")
	if p.calls.Load() != 1 {
		t.Fatalf("launched %d times, want once", p.calls.Load())
	}
	time.Sleep(200 * time.Millisecond)
	if n, _ := st.QueueDepth(context.Background()); n != 0 {
		t.Fatalf("the renewal put a completed run back on the queue (%d queued)", n)
	}
}

func TestRetryPolicyBackoff(t *testing.T) {
	p := launch.RetryPolicy{Attempts: 10, First: time.Second, Max: 8 * time.Second}
	for attempt, max := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second, 4: 8 * time.Second, 9: 8 * time.Second} {
		for range 20 {
			d := p.Backoff(attempt, 0)
			if d < max/2 || d > max {
				t.Fatalf("Backoff(%d) = %v, want in [%v, %v]", attempt, d, max/2, max)
			}
		}
	}
	if d := p.Backoff(1, 30*time.Second); d != 30*time.Second {
		t.Fatalf("Retry-After not honoured: %v", d)
	}
}

// counting tracks how many Perform calls run at once.
type counting struct {
	delay     time.Duration
	now, peak atomic.Int32
	calls     atomic.Int32
}

func (c *counting) Perform(ctx context.Context, a *launch.Action) (*launch.ActionResult, error) {
	n := c.now.Add(1)
	for {
		p := c.peak.Load()
		if n <= p || c.peak.CompareAndSwap(p, n) {
			break
		}
	}
	time.Sleep(c.delay)
	c.now.Add(-1)
	c.calls.Add(1)
	return &launch.ActionResult{ID: "x"}, nil
}

// A burst of runs does not become a burst of Valohai calls: at most
// 2×Workers are in flight, and every run is still launched once.
func TestDispatcherBoundsConcurrency(t *testing.T) {
	p := &counting{delay: 50 * time.Millisecond}
	d, st, _ := newDispatcher(t, p, time.Second) // Workers: 2
	const runs = 40
	for i := range runs {
		submit(t, d, fmt.Sprintf("burst-%d", i), 1)
	}
	for i := range runs {
		waitFinal(t, d, fmt.Sprintf("burst-%d", i))
	}
	if got := p.calls.Load(); got != runs {
		t.Fatalf("%d calls for %d runs", got, runs)
	}
	if peak := p.peak.Load(); peak > 4 {
		t.Fatalf("%d Valohai calls in flight at once, want at most 2×Workers = 4", peak)
	}
	waitQueueEmpty(t, st)
}

// waitQueueEmpty waits for the queue to empty: a run is stored final just
// before it leaves the queue, so Wait may return a moment before the last
// CompleteRun.
func waitQueueEmpty(t *testing.T, st launch.Store) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, _ := st.QueueDepth(context.Background())
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue depth %d, want 0 once the runs are final", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMarkNotifiedKeepsARetry: a failure note for a run that was retried
// meanwhile does not overwrite the retried run with its stale copy; a note
// for the run as it is now is recorded.
func TestMarkNotifiedKeepsARetry(t *testing.T) {
	p := &scripted{errs: []error{&launch.APIError{Status: 400}}}
	d, st, _ := newDispatcher(t, p, time.Second)
	submit(t, d, "r4", 1)
	failed := waitFinal(t, d, "r4")
	waitQueueEmpty(t, st)
	ctx := context.Background()
	if _, err := d.RetryRun(ctx, "r4"); err != nil {
		t.Fatal(err)
	}
	retried := waitFinal(t, d, "r4")
	if retried.Status != launch.StatusCompleted {
		t.Fatalf("retried run %s", retried.Status)
	}
	waitQueueEmpty(t, st)
	// The note about the first failure arrives late.
	if ok, err := d.MarkNotified(ctx, "r4", failed.UpdatedAt); err != nil || ok {
		t.Fatalf("stale mark: stored %v, %v", ok, err)
	}
	stored, err := st.GetRun(ctx, "r4")
	if err != nil || stored.Status != launch.StatusCompleted || stored.Notified {
		t.Fatalf("stored run %+v %v: the retry was overwritten", stored, err)
	}
	if ok, err := d.MarkNotified(ctx, "r4", stored.UpdatedAt); err != nil || !ok {
		t.Fatalf("current mark: stored %v, %v", ok, err)
	}
	if stored, _ = st.GetRun(ctx, "r4"); !stored.Notified {
		t.Fatal("the mark was not stored")
	}
}

// flakyProgress is a store whose UpdateRun fails a few times, as a redis
// does during a failover.
type flakyProgress struct {
	launch.Store
	fails atomic.Int32
}

func (f *flakyProgress) UpdateRun(ctx context.Context, run *launch.Run) error {
	if f.fails.Add(-1) >= 0 {
		return fmt.Errorf("store: redis: connection refused")
	}
	return f.Store.UpdateRun(ctx, run)
}

// A progress write that fails is retried until the store is back, so the
// action Valohai accepted is recorded and never sent again.
func TestDispatcherRetriesStoringProgress(t *testing.T) {
	p := &scripted{}
	d, st, _ := newDispatcher(t, p, time.Second)
	d.Stop()
	flaky := &flakyProgress{Store: st}
	flaky.fails.Store(3)
	d.Store = flaky
	d.Start()
	submit(t, d, "r1", 1)
	run := waitFinal(t, d, "r1")
	if run.Status != launch.StatusCompleted || run.Actions[0].State != launch.ActionDone {
		t.Fatalf("run %+v", run)
	}
	time.Sleep(3 * time.Second) // three leases: a lost progress would be sent again
	if n := p.calls.Load(); n != 1 {
		t.Fatalf("%d Perform calls, want 1", n)
	}
	if f := flaky.fails.Load(); f >= 0 {
		t.Fatalf("UpdateRun failed only %d of 3 times", 3-f-1)
	}
}
