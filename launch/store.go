package launch

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned by a Store for a run, payload or key it does not hold.
var ErrNotFound = errors.New("not found")

// RunFilter selects runs for the trigger log. Zero fields match everything.
type RunFilter struct {
	Trigger string
	Path    string
	Status  RunStatus
	Limit   int // 0 = store default (100)
}

// Claim is state a condition before valohai_launch reserves for an accepted
// request: one unit of a fixed-window quota, or a delivery key held by the
// run. Claims are committed with the run they admit, in the same store
// operation, or not at all (README.md, "The durable write path"): a request
// rejected later, or whose run could not be stored, has taken nothing.
type Claim struct {
	// Key is the quota or delivery key (validators.QuotaKey, DedupeKey).
	Key string
	// Limit and Period make a quota claim: one unit of at most Limit per
	// fixed window of Period (windows aligned to the Unix epoch).
	Limit  int
	Period time.Duration
	// Window makes a key claim: the run holds Key until At+Window unless
	// an unexpired holder exists.
	Window time.Duration
	// At is the request's clock, which windows and expiry are judged by.
	At time.Time
}

// QuotaClaim is a claim of one unit of key's quota of limit per period.
func QuotaClaim(key string, limit int, period time.Duration, at time.Time) Claim {
	return Claim{Key: key, Limit: limit, Period: period, At: at}
}

// KeyClaim is a claim of a delivery key for window.
func KeyClaim(key string, window time.Duration, at time.Time) Claim {
	return Claim{Key: key, Window: window, At: at}
}

// IsQuota reports whether c is a quota claim (else a key claim).
func (c Claim) IsQuota() bool { return c.Period > 0 }

// Check reports what makes a claim unusable, for the store to refuse it
// before writing anything.
func (c Claim) Check() error {
	switch {
	case c.Key == "":
		return errors.New("store: a claim needs a key")
	case c.Period > 0 && c.Window > 0, c.Period <= 0 && c.Window <= 0:
		return fmt.Errorf("store: claim %q: give either a quota period or a key window", c.Key)
	}
	return nil
}

// ClaimDenied is the error of CreateRun when one of its claims cannot be
// had; nothing was written. Claims are judged in the order given, and the
// first that fails is reported.
type ClaimDenied struct {
	// Index is the position of the claim in the CreateRun call.
	Index int
	// RetryAfter is, for a quota claim, the time until its window resets.
	RetryAfter time.Duration
	// Held is, for a key claim, the id of the run holding the key.
	Held string
}

// Error describes the denial.
func (e *ClaimDenied) Error() string {
	if e.Held != "" {
		return fmt.Sprintf("store: claim %d: key held by run %s", e.Index, e.Held)
	}
	return fmt.Sprintf("store: claim %d: quota exhausted for %s", e.Index, e.RetryAfter)
}

// AsClaimDenied returns the ClaimDenied inside err, if any.
func AsClaimDenied(err error) (*ClaimDenied, bool) {
	var d *ClaimDenied
	ok := errors.As(err, &d)
	return d, ok
}

// RunStore keeps runs and their payloads: what valohai_launch writes, the
// workers update and the trigger log, run info and payload URLs read.
type RunStore interface {
	// CreateRun stores a new run, its payload (nil for none, kept until
	// payload.ExpiresAt), the claims that admit it, and puts the run on
	// the queue: one atomic, durable operation. A key claim holds run.ID.
	// When a claim cannot be had, CreateRun writes nothing and returns a
	// *ClaimDenied.
	CreateRun(ctx context.Context, run *Run, payload *Payload, claims ...Claim) error
	// UpdateRun replaces a stored run (progress, results, status).
	UpdateRun(ctx context.Context, run *Run) error
	// GetRun returns a run or ErrNotFound.
	GetRun(ctx context.Context, id string) (*Run, error)
	// ListRuns returns runs, newest first.
	ListRuns(ctx context.Context, f RunFilter) ([]*Run, error)
	// DeleteRunsBefore removes final runs created before t, with their
	// payloads, and returns how many it removed.
	DeleteRunsBefore(ctx context.Context, t time.Time) (int, error)
	// GetPayload returns a stored payload or ErrNotFound (also once expired).
	GetPayload(ctx context.Context, runID string) (*Payload, error)
}

// Queue is the launch queue the workers take runs from.
type Queue interface {
	// ClaimRun takes the first queued run due at now for a worker, leasing it
	// until now+lease; a run whose lease expired (its worker died) is due
	// again. ok is false when nothing is due.
	ClaimRun(ctx context.Context, now time.Time, lease time.Duration) (runID string, ok bool, err error)
	// RequeueRun puts a claimed run back, due at the given time.
	RequeueRun(ctx context.Context, runID string, at time.Time) error
	// CompleteRun removes a run from the queue for good.
	CompleteRun(ctx context.Context, runID string) error
	// QueueDepth counts queued runs.
	QueueDepth(ctx context.Context) (int, error)
}

// Admission is the state of the conditions on routes whose requests are
// not stored as runs (no valohai_launch after them): quotas and delivery
// keys taken on their own. Routes that launch claim them with CreateRun.
type Admission interface {
	// TakeQuota consumes one unit of a fixed-window quota of limit per
	// period for key. allowed is false when the window is exhausted;
	// retryAfter is then the time until it resets. Exact under concurrency;
	// an embedded store may persist the unit in batches (README.md,
	// "webhook_rate_limit").
	TakeQuota(ctx context.Context, key string, limit int, period time.Duration, now time.Time) (allowed bool, retryAfter time.Duration, err error)
	// RememberKey records value under key for window unless the key is
	// already held; it returns the held value and first=false then.
	RememberKey(ctx context.Context, key, value string, window time.Duration, now time.Time) (held string, first bool, err error)
	// ForgetKey releases key if it still holds value (a first delivery that
	// was rejected after it was remembered must not block its redelivery).
	// Forgetting an absent key or one holding another value is a no-op.
	ForgetKey(ctx context.Context, key, value string) error
}

// TriggerLog keeps the rejected requests shown beside the runs.
type TriggerLog interface {
	// LogRejection appends a trigger-log entry for a rejected request.
	LogRejection(ctx context.Context, r Rejected) error
	// ListRejections returns rejections, newest first (Limit and Path of f apply).
	ListRejections(ctx context.Context, f RunFilter) ([]Rejected, error)
}

// Secrets keeps small secrets such as the payload-URL signing key.
type Secrets interface {
	// Secret returns the named secret, creating it with gen the first time,
	// so every instance sharing the store agrees on it.
	Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
}

// Store is everything caddy-valohai keeps, composed of the roles above so
// that each consumer asks for the one it uses (the dispatcher a RunStore
// and a Queue, the conditions Admission, the console a TriggerLog).
// Implementations (bbolt, redis) must be safe for concurrent use, and
// durable when a method returns nil: the caller answers the sender 2xx on it.
type Store interface {
	RunStore
	Queue
	Admission
	TriggerLog
	Secrets

	// Close releases the store.
	Close() error
}
