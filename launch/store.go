package launch

import (
	"context"
	"errors"
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

// Store is everything caddy-valohai keeps: runs and their payloads, the
// launch queue, rate-limit counters, dedupe keys, the trigger log of
// rejections and small secrets such as the payload-URL signing key.
// Implementations (bbolt, redis) must be safe for concurrent use, and
// durable when a method returns nil: the caller answers the sender 2xx on it.
type Store interface {
	// CreateRun stores a new run, its payload (nil for none, kept until
	// payload.ExpiresAt) and puts the run on the queue, atomically.
	CreateRun(ctx context.Context, run *Run, payload *Payload) error
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

	// TakeQuota consumes one unit of a fixed-window quota of limit per
	// period for key. allowed is false when the window is exhausted;
	// retryAfter is then the time until it resets. Exact under concurrency.
	TakeQuota(ctx context.Context, key string, limit int, period time.Duration, now time.Time) (allowed bool, retryAfter time.Duration, err error)
	// RememberKey records value under key for window unless the key is
	// already held; it returns the held value and first=false then.
	RememberKey(ctx context.Context, key, value string, window time.Duration, now time.Time) (held string, first bool, err error)
	// ForgetKey releases key if it still holds value (a first delivery that
	// was rejected after it was remembered must not block its redelivery).
	// Forgetting an absent key or one holding another value is a no-op.
	ForgetKey(ctx context.Context, key, value string) error

	// LogRejection appends a trigger-log entry for a rejected request.
	LogRejection(ctx context.Context, r Rejected) error
	// ListRejections returns rejections, newest first (Limit and Path of f apply).
	ListRejections(ctx context.Context, f RunFilter) ([]Rejected, error)

	// Secret returns the named secret, creating it with gen the first time,
	// so every instance sharing the store agrees on it.
	Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)

	// Close releases the store.
	Close() error
}
