package launch

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Performer sends one action to Valohai. *Client is the real one.
type Performer interface {
	Perform(ctx context.Context, a *Action) (*ActionResult, error)
}

// RetryPolicy bounds how a run's failing action is retried.
type RetryPolicy struct {
	Attempts int           // total tries of one action, first included
	First    time.Duration // backoff before the second try
	Max      time.Duration // cap of the backoff
}

// DefaultRetry is the app's default `retry 12 1s 10m` (README.md, "Global
// option `valohai`").
var DefaultRetry = RetryPolicy{Attempts: 12, First: time.Second, Max: 10 * time.Minute}

// Backoff is the wait before try number attempt+1 (attempt >= 1): exponential
// from First, capped at Max, with jitter in [d/2, d] so that runs failing
// together do not retry in lockstep. A Retry-After from Valohai wins when
// it is longer.
func (p RetryPolicy) Backoff(attempt int, retryAfter time.Duration) time.Duration {
	d := p.First
	for i := 1; i < attempt && d < p.Max; i++ {
		d *= 2
	}
	if d > p.Max {
		d = p.Max
	}
	if d > 0 {
		d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	}
	if retryAfter > d {
		d = retryAfter
	}
	return d
}

// DispatchStore is what a Dispatcher needs of the store: the runs and the
// queue.
type DispatchStore interface {
	RunStore
	Queue
}

// Dispatcher runs the actions of stored runs against Valohai. A submitted run
// is stored (durably, with its payload) and queued before Submit returns, and
// then started at once in this process; the queue lease keeps other workers
// (here or on another instance sharing the store) away from it until the
// lease runs out, which is what hands a dead instance's runs to a live one.
type Dispatcher struct {
	// Store holds the runs and the queue.
	Store     DispatchStore
	Performer Performer
	Logger    *zap.Logger
	Retry     RetryPolicy
	// Workers is how many goroutines take due runs from the queue (bursts,
	// retries, runs of dead instances), and also how many runs may start
	// inline at Submit: at most 2×Workers Valohai calls are in flight.
	Workers int
	// Lease is how long a claimed run stays invisible to other workers
	// (default 15s). The worker holding a run renews the lease every third
	// of it while it works, so a live worker keeps its run however slow
	// Valohai is, and a dead one's run is taken over within one lease.
	Lease time.Duration
	// Poll is how often idle workers look at the queue.
	Poll time.Duration
	// OnFinal is called once when a run reaches a final status.
	OnFinal func(run *Run)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Observe, when set, is told the outcome of every Valohai call: result
	// is "ok", "retry" or "failed".
	Observe func(kind ActionKind, result string, took time.Duration)

	mu sync.Mutex
	// finalMu serializes the read-modify-write of final runs (RetryRun,
	// MarkNotified), so that neither overwrites the other's update.
	finalMu sync.Mutex
	waiters map[string][]chan struct{}
	wake    chan struct{}
	slots   chan struct{} // inline processing slots, Workers of them
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	ctx     context.Context
}

func (d *Dispatcher) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Start launches the queue workers. Stop ends them.
func (d *Dispatcher) Start() {
	if d.Logger == nil {
		d.Logger = zap.NewNop()
	}
	if d.Lease <= 0 {
		d.Lease = 15 * time.Second
	}
	if d.Poll <= 0 {
		d.Poll = time.Second
	}
	if d.Retry.Attempts <= 0 {
		d.Retry = DefaultRetry
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.wake = make(chan struct{}, max(d.Workers, 1))
	d.slots = make(chan struct{}, max(d.Workers, 1))
	d.mu.Lock()
	if d.waiters == nil {
		d.waiters = map[string][]chan struct{}{}
	}
	d.mu.Unlock()
	for i := 0; i < max(d.Workers, 1); i++ {
		d.wg.Add(1)
		go d.worker()
	}
}

// Stop ends the workers and waits for runs in progress to reach a stored
// state; queued runs stay in the store for the next start.
func (d *Dispatcher) Stop() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
}

// Submit stores run (with payload) durably and queues it, together with
// the claims of the conditions that admitted it (RunStore.CreateRun): one
// store operation. When Submit returns nil the run can no longer be lost;
// a *ClaimDenied means nothing was stored.
//
// Concurrency towards Valohai is bounded: a run starts at once in this
// process only while one of the Workers inline slots is free (leased to
// this instance from birth, so no other worker touches it unless this
// instance dies); otherwise it is queued due now and the queue workers (here,
// or on any instance sharing the store) take it in turn. A burst of webhooks
// thus never turns into a burst of goroutines and connections to Valohai.
func (d *Dispatcher) Submit(ctx context.Context, run *Run, payload *Payload, claims ...Claim) error {
	now := d.now()
	run.CreatedAt, run.UpdatedAt = now, now
	run.Status = StatusPending
	for i := range run.Actions {
		if run.Actions[i].State == "" {
			run.Actions[i].State = ActionPending
		}
	}
	inline := false
	select {
	case d.slots <- struct{}{}:
		inline = true
		run.NextAttemptAt = now.Add(d.Lease)
	default:
		run.NextAttemptAt = now
	}
	if err := d.Store.CreateRun(ctx, run, payload, claims...); err != nil {
		if inline {
			<-d.slots
		}
		return err
	}
	if !inline {
		d.kick()
		return nil
	}
	// The worker starts from the run just stored instead of reading it
	// back, on its own copy: the caller keeps using run.
	own := *run
	own.Actions = slices.Clone(run.Actions)
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer func() { <-d.slots }()
		d.process(own.ID, &own)
	}()
	return nil
}

// Wait blocks until the run is final, timeout passes or ctx ends, and returns
// the run as stored then.
func (d *Dispatcher) Wait(ctx context.Context, runID string, timeout time.Duration) (*Run, error) {
	ch := make(chan struct{})
	d.mu.Lock()
	d.waiters[runID] = append(d.waiters[runID], ch)
	d.mu.Unlock()
	defer d.dropWaiter(runID, ch)

	run, err := d.Store.GetRun(ctx, runID)
	if err != nil || run.Status.Final() || timeout <= 0 {
		return run, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
	return d.Store.GetRun(context.WithoutCancel(ctx), runID)
}

func (d *Dispatcher) dropWaiter(runID string, ch chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	list := d.waiters[runID]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(d.waiters, runID)
	} else {
		d.waiters[runID] = list
	}
}

func (d *Dispatcher) notify(runID string) {
	d.mu.Lock()
	list := d.waiters[runID]
	delete(d.waiters, runID)
	d.mu.Unlock()
	for _, c := range list {
		close(c)
	}
}

// ErrRunPending is returned by RetryRun for a run that is not final yet.
var ErrRunPending = errors.New("run is still pending")

// RetryRun makes a final run with failed actions pending again (failed actions
// get a fresh set of attempts) and starts it.
func (d *Dispatcher) RetryRun(ctx context.Context, runID string) (*Run, error) {
	d.finalMu.Lock()
	defer d.finalMu.Unlock()
	run, err := d.Store.GetRun(ctx, runID)
	if err != nil {
		return nil, err
	}
	if !run.Status.Final() {
		return run, ErrRunPending
	}
	for i := range run.Actions {
		if run.Actions[i].State == ActionFailed {
			run.Actions[i].State = ActionPending
			run.Actions[i].Attempts = 0
		}
	}
	run.Refresh()
	run.Notified = false
	run.UpdatedAt = d.now()
	run.NextAttemptAt = d.now()
	if err := d.Store.UpdateRun(ctx, run); err != nil {
		return nil, err
	}
	if err := d.Store.RequeueRun(ctx, runID, d.now()); err != nil {
		return nil, err
	}
	d.kick()
	return run, nil
}

// MarkNotified records that the failure note of run was sent, unless the
// run changed since that note was built (a retry made it pending, or it
// finished again): then the stored run is left as it is, and the newer
// outcome is reported on its own. Reported is whether the mark was stored.
func (d *Dispatcher) MarkNotified(ctx context.Context, runID string, notifiedAt time.Time) (reported bool, err error) {
	d.finalMu.Lock()
	defer d.finalMu.Unlock()
	run, err := d.Store.GetRun(ctx, runID)
	if err != nil {
		return false, err
	}
	if !run.Status.Final() || !run.UpdatedAt.Equal(notifiedAt) || run.Notified {
		return false, nil
	}
	run.Notified = true
	if err := d.Store.UpdateRun(ctx, run); err != nil {
		return false, err
	}
	return true, nil
}

// kick wakes an idle queue worker, if any is waiting.
func (d *Dispatcher) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) worker() {
	defer d.wg.Done()
	t := time.NewTicker(d.Poll)
	defer t.Stop()
	for {
		for {
			if d.ctx.Err() != nil {
				return
			}
			id, ok, err := d.Store.ClaimRun(d.ctx, d.now(), d.Lease)
			if err != nil {
				if d.ctx.Err() == nil {
					d.Logger.Warn("claiming a queued run failed", zap.Error(err))
				}
				break
			}
			if !ok {
				break
			}
			d.process(id, nil)
		}
		select {
		case <-d.ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
	}
}

// renewLease keeps the run's lease alive while this worker holds it, and
// returns the function that stops the renewal and waits until it has.
func (d *Dispatcher) renewLease(ctx context.Context, runID string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(d.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if err := d.Store.RequeueRun(ctx, runID, d.now().Add(d.Lease)); err != nil {
					d.Logger.Warn("renewing a run's lease failed", zap.String("run_id", runID), zap.Error(err))
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
		})
	}
}

// storeProgress stores a run after one of its actions reached Valohai (or
// failed for good). It retries while the store is away (a redis failover
// takes seconds), for up to four leases, renewing the lease meanwhile: a
// progress not stored would let the next worker send the action again.
// When the dispatcher stops, it gives up after one more try.
func (d *Dispatcher) storeProgress(ctx context.Context, run *Run) {
	deadline := time.Now().Add(4 * d.Lease)
	wait := 100 * time.Millisecond
	for {
		err := d.Store.UpdateRun(ctx, run)
		if err == nil {
			return
		}
		if time.Now().After(deadline) || d.ctx.Err() != nil {
			d.Logger.Error("storing run progress failed", zap.String("run_id", run.ID), zap.Error(err))
			return
		}
		d.Logger.Warn("storing run progress failed, retrying", zap.String("run_id", run.ID), zap.Duration("in", wait), zap.Error(err))
		select {
		case <-d.ctx.Done(): // shutting down: one last try
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func (d *Dispatcher) observe(kind ActionKind, err error, attempts int, took time.Duration) {
	if d.Observe == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "failed"
		if Retryable(err) && attempts < d.Retry.Attempts {
			result = "retry"
		}
	}
	d.Observe(kind, result, took)
}

// process sends the run's (loaded from the store when run is nil) pending actions in order. Progress is stored after
// every action, so an action Valohai accepted is never sent again.
func (d *Dispatcher) process(runID string, run *Run) {
	ctx := context.WithoutCancel(d.ctx)
	stopRenew := d.renewLease(ctx, runID)
	if run == nil {
		var err error
		if run, err = d.Store.GetRun(ctx, runID); err != nil {
			stopRenew()
			d.Logger.Error("loading a queued run failed", zap.String("run_id", runID), zap.Error(err))
			return
		}
	}
	// Every exit below first stops the renewal, so that it cannot put the
	// run back on the queue after it was requeued or completed.
	for i := range run.Actions {
		a := &run.Actions[i]
		if a.State != ActionPending {
			continue
		}
		if d.ctx.Err() != nil {
			// Shutting down: leave the rest to the next start.
			stopRenew()
			_ = d.Store.RequeueRun(ctx, runID, d.now())
			return
		}
		a.Attempts++
		if a.Attempts == 1 && a.Marker != "" {
			// Written down before the first call: a process killed while
			// Valohai handles it leaves Attempts = 1 in the store, so the
			// next process looks for the object by its marker before
			// creating it again (Client.createOnce; README.md, "What
			// Valohai receives"). Later attempts are stored after the
			// failure before them.
			if err := d.Store.UpdateRun(ctx, run); err != nil {
				stopRenew()
				d.Logger.Error("storing a run before its launch failed; the run stays queued", zap.String("run_id", runID), zap.Error(err))
				_ = d.Store.RequeueRun(ctx, runID, d.now().Add(d.Retry.First))
				return
			}
		}
		// Not d.ctx: a call in flight when Caddy stops or reloads is let
		// finish (bounded by the client's timeout), so its outcome is stored
		// and the action is not sent twice.
		started := time.Now()
		res, err := d.Performer.Perform(ctx, a)
		d.observe(a.Kind, err, a.Attempts, time.Since(started))
		switch {
		case err == nil:
			a.State, a.Result, a.LastError = ActionDone, res, ""
		case Retryable(err) && a.Attempts < d.Retry.Attempts:
			a.LastError = err.Error()
			var ra time.Duration
			var apiErr *APIError
			if errors.As(err, &apiErr) {
				ra = apiErr.RetryAfter
			}
			run.UpdatedAt = d.now()
			run.NextAttemptAt = run.UpdatedAt.Add(d.Retry.Backoff(a.Attempts, ra))
			d.Logger.Info("valohai call failed, will retry",
				zap.String("run_id", runID), zap.String("action", string(a.Kind)),
				zap.Int("attempt", a.Attempts), zap.Time("next_attempt", run.NextAttemptAt), zap.Error(err))
			stopRenew()
			if err := d.Store.UpdateRun(ctx, run); err != nil {
				d.Logger.Error("storing run progress failed", zap.String("run_id", runID), zap.Error(err))
			}
			if err := d.Store.RequeueRun(ctx, runID, run.NextAttemptAt); err != nil {
				d.Logger.Error("requeueing run failed", zap.String("run_id", runID), zap.Error(err))
			}
			return
		default:
			a.State, a.LastError = ActionFailed, err.Error()
			d.Logger.Warn("valohai action failed for good",
				zap.String("run_id", runID), zap.String("action", string(a.Kind)), zap.Error(err))
		}
		run.UpdatedAt = d.now()
		d.storeProgress(ctx, run)
	}
	stopRenew()
	run.Refresh()
	run.UpdatedAt = d.now()
	if err := d.Store.UpdateRun(ctx, run); err != nil {
		d.Logger.Error("storing run failed", zap.String("run_id", runID), zap.Error(err))
	}
	if err := d.Store.CompleteRun(ctx, runID); err != nil {
		d.Logger.Error("removing run from queue failed", zap.String("run_id", runID), zap.Error(err))
	}
	if d.OnFinal != nil {
		d.OnFinal(run)
	}
	d.notify(runID)
}
