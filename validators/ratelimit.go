package validators

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
)

// DirectiveRateLimit is the directive name webhook_rate_limit rejections carry.
const DirectiveRateLimit = "webhook_rate_limit"

// reasonQuotaExceeded is the one reason a rate limit rejects with.
const reasonQuotaExceeded = "quota exceeded"

// QuotaTaker is the shared state a rate limit needs on a route without
// valohai_launch: take one unit of a fixed-window quota. launch.Admission
// (the embedded and redis stores) implements it, so that the counters
// survive restarts and are exact across every instance sharing the store;
// validators does not import launch, it only names this method. In front
// of valohai_launch the unit is claimed with the run instead (QuotaKey
// names it; README.md, "The durable write path").
type QuotaTaker interface {
	// TakeQuota consumes one unit of key's quota of limit per period in the
	// window containing now. allowed is false when the window is exhausted;
	// retryAfter is then the time until the window resets.
	TakeQuota(ctx context.Context, key string, limit int, period time.Duration, now time.Time) (allowed bool, retryAfter time.Duration, err error)
}

// Limit is one quota: at most N launches per Period.
type Limit struct {
	N      int
	Period time.Duration
}

// String is the Caddyfile form of the limit, e.g. "10 1h0m0s".
func (l Limit) String() string { return strconv.Itoa(l.N) + " " + l.Period.String() }

// QuotaExceeded is the rejection of a request over its quota. It unwraps to
// the *Rejection (so AsRejection finds it) and tells the sender when to come
// back: the HTTP layer turns RetryAfter into a Retry-After header.
type QuotaExceeded struct {
	// RetryAfter is the time until the exhausted window resets.
	RetryAfter time.Duration
	// Limit is the quota that was exhausted.
	Limit Limit

	rejection *Rejection
}

// Error is the rejection's message, "webhook_rate_limit: quota exceeded".
func (e *QuotaExceeded) Error() string { return e.Unwrap().Error() }

// Unwrap returns the webhook_rate_limit *Rejection (built on demand for a
// QuotaExceeded made by hand).
func (e *QuotaExceeded) Unwrap() error {
	if e.rejection == nil {
		return Reject(DirectiveRateLimit, reasonQuotaExceeded)
	}
	return e.rejection
}

// RetryAfterSeconds is RetryAfter in whole seconds, rounded up and at least
// 1: the value of a Retry-After header. Rounding down would send the sender
// back before the window reset, into another rejection.
func (e *QuotaExceeded) RetryAfterSeconds() int64 {
	return retryAfterSeconds(e.RetryAfter)
}

func retryAfterSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return max(s, 1)
}

// RateLimit is the webhook_rate_limit condition: every request that reaches
// it takes one unit of each limit of its trigger's quota; a request that
// finds a limit exhausted is rejected with QuotaExceeded.
//
// Set the fields, call Validate once, then call Take from any number of
// goroutines. Fields must not change after Validate.
type RateLimit struct {
	// Limits are the quotas, all of which must have room. Validate orders
	// them by period, shortest first (see Take).
	Limits []Limit
	// Store keeps the counters (the valohai app's store).
	Store QuotaTaker
}

// Validate checks the limits and orders them shortest period first.
func (rl *RateLimit) Validate() error {
	if len(rl.Limits) == 0 {
		return fmt.Errorf("%s: no limit configured: use `%s <quota> <period>`, e.g. %s 10 1h", DirectiveRateLimit, DirectiveRateLimit, DirectiveRateLimit)
	}
	for _, l := range rl.Limits {
		if l.N < 1 {
			return fmt.Errorf("%s: quota %d must be at least 1 (to stop a trigger, remove its route)", DirectiveRateLimit, l.N)
		}
		if l.Period < time.Second {
			return fmt.Errorf("%s: period %s is too short: use at least 1s, e.g. 1m or 1h", DirectiveRateLimit, l.Period)
		}
	}
	if rl.Store == nil {
		return fmt.Errorf("%s: no store to keep the counters in", DirectiveRateLimit)
	}
	slices.SortStableFunc(rl.Limits, func(a, b Limit) int { return cmp.Compare(a.Period, b.Period) })
	return nil
}

// Take consumes one unit of every limit of the quota named by scope (see
// ConfigScope) and key (the expanded `key` option, "" for none). It returns
// nil when every limit had room, a *QuotaExceeded when one did not, and a
// plain error when the store failed (the caller fails closed).
//
// Limits are taken in order, shortest period first, stopping at the first
// exhausted one: a burst denied by `10 1h` does not also eat into `100 24h`.
// Units taken from earlier limits before a later one denies are not given
// back (the store offers no refund); each limit stays an exact upper bound.
func (rl *RateLimit) Take(ctx context.Context, scope, key string, now time.Time) error {
	if len(rl.Limits) == 0 || rl.Store == nil {
		return Reject(DirectiveRateLimit, reasonMisconfigured)
	}
	return rl.TakeKeys(ctx, rl.QuotaKeys(scope, key), now)
}

// QuotaKeys are the store keys of every limit (QuotaKey, in the order of
// Limits) of the quota named by scope and key. A caller whose scope and
// key do not change between requests computes them once and calls
// TakeKeys.
func (rl *RateLimit) QuotaKeys(scope, key string) []string {
	keys := make([]string, len(rl.Limits))
	for i, l := range rl.Limits {
		keys[i] = QuotaKey(scope, l, key)
	}
	return keys
}

// TakeKeys is Take with the quota's keys from QuotaKeys.
func (rl *RateLimit) TakeKeys(ctx context.Context, keys []string, now time.Time) error {
	if len(rl.Limits) == 0 || rl.Store == nil || len(keys) != len(rl.Limits) {
		return Reject(DirectiveRateLimit, reasonMisconfigured)
	}
	for i, l := range rl.Limits {
		allowed, retryAfter, err := rl.Store.TakeQuota(ctx, keys[i], l.N, l.Period, now)
		if err != nil {
			return fmt.Errorf("%s: quota store: %w", DirectiveRateLimit, err)
		}
		if !allowed {
			return &QuotaExceeded{
				RetryAfter: retryAfter,
				Limit:      l,
				rejection:  Reject(DirectiveRateLimit, reasonQuotaExceeded),
			}
		}
	}
	return nil
}

// Exceeded is the rejection of a request that found limit i (of Limits,
// in their validated order) exhausted, with retryAfter until its window
// resets: the answer when a store denies a quota claimed with a run.
func (rl *RateLimit) Exceeded(i int, retryAfter time.Duration) *QuotaExceeded {
	var l Limit
	if i >= 0 && i < len(rl.Limits) {
		l = rl.Limits[i]
	}
	return &QuotaExceeded{RetryAfter: retryAfter, Limit: l, rejection: Reject(DirectiveRateLimit, reasonQuotaExceeded)}
}

// AsQuotaExceeded returns the QuotaExceeded inside err, if any.
func AsQuotaExceeded(err error) (*QuotaExceeded, bool) {
	var q *QuotaExceeded
	ok := errors.As(err, &q)
	return q, ok
}

// ConfigScope names the place in the configuration that a quota or a set
// of dedupe keys belongs to, from parts the configuration decides (the
// matchers of the routes around the handler, see README.md "Scope of
// quotas and delivery keys"), never from the request: a sender cannot get
// a fresh quota or a fresh dedupe window by writing another Host port, case
// or path variant. Equal parts give equal scopes on every instance; the
// scope is a hash, so it never contains the '#' that QuotaKey and DedupeKey
// rely on.
func ConfigScope(parts ...string) string {
	h := sha256.New()
	var n [8]byte
	for _, p := range parts {
		// Length-prefixed: ("ab","c") and ("a","bc") differ.
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	return "cfg-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// QuotaKey is the store key of one limit of one quota. Everything the
// configuration decides (scope, limit) comes before the sender-controlled
// key value, separated by '#', which the scope never contains: two
// different (scope, limit, key) triples never share a counter. The limit is
// part of the key so that two limits of the same period (or the same limit
// repeated in two directives) each keep their own counter.
func QuotaKey(scope string, l Limit, key string) string {
	return scope + "#" + strconv.Itoa(l.N) + "/" + l.Period.String() + "#" + key
}
