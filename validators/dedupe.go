package validators

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DirectiveDedupe is the directive name webhook_dedupe errors carry.
const DirectiveDedupe = "webhook_dedupe"

// DefaultDedupeWindow is how long a delivery key is remembered when no
// window is configured: a day covers the retry schedules of GitHub, Stripe,
// Shopify and the Standard Webhooks senders' first attempts.
const DefaultDedupeWindow = 24 * time.Hour

// ErrNoDedupeKey is returned for an empty delivery key: a request without
// one cannot be deduplicated (the caller lets it through and logs it).
var ErrNoDedupeKey = errors.New(DirectiveDedupe + ": empty delivery key")

// KeyRememberer is the shared state deduplication needs when no
// valohai_launch is known to follow: remember a key for a window unless it
// is already held, and release it again. launch.Admission (the embedded and
// redis stores) implements it, so that keys survive restarts and hold
// across every instance sharing the store; validators does not import
// launch, it only names these methods. In front of valohai_launch the key
// is claimed with the run instead (DedupeKey names it; README.md, "The
// durable write path").
type KeyRememberer interface {
	// RememberKey records value under key for window unless the key is
	// already held; it returns the held value and first=false then.
	RememberKey(ctx context.Context, key, value string, window time.Duration, now time.Time) (held string, first bool, err error)
	// ForgetKey releases key if it still holds value.
	ForgetKey(ctx context.Context, key, value string) error
}

// Dedupe is the webhook_dedupe condition: the first request carrying a
// delivery key claims it for its run; a repeat within the window learns
// that run's id instead of launching again.
//
// Set the fields, call Validate once, then call Claim and Release from any
// number of goroutines. Fields must not change after Validate.
type Dedupe struct {
	// Window is how long a claimed key holds (default DefaultDedupeWindow).
	Window time.Duration
	// Store keeps the keys (the valohai app's store).
	Store KeyRememberer
}

// Validate checks the window (filling in the default) and the store.
func (d *Dedupe) Validate() error {
	if d.Window == 0 {
		d.Window = DefaultDedupeWindow
	}
	if d.Window < time.Second {
		return fmt.Errorf("%s: window %s is too short: use a duration such as 24h (senders retry for hours)", DirectiveDedupe, d.Window)
	}
	if d.Store == nil {
		return fmt.Errorf("%s: no store to keep the delivery keys in", DirectiveDedupe)
	}
	return nil
}

// Claim records runID as the run of the delivery named by scope (see
// ConfigScope) and key, unless another run holds it within the window.
// first reports whether this call claimed it; otherwise runOf is the run id
// of the first delivery. An empty key is ErrNoDedupeKey; a store failure is
// returned as is (the caller fails closed).
func (d *Dedupe) Claim(ctx context.Context, scope, key, runID string, now time.Time) (runOf string, first bool, err error) {
	if key == "" {
		return "", false, ErrNoDedupeKey
	}
	if d.Store == nil {
		return "", false, Reject(DirectiveDedupe, reasonMisconfigured)
	}
	window := d.Window
	if window <= 0 {
		window = DefaultDedupeWindow
	}
	held, first, err := d.Store.RememberKey(ctx, DedupeKey(scope, key), runID, window, now)
	if err != nil {
		return "", false, fmt.Errorf("%s: key store: %w", DirectiveDedupe, err)
	}
	return held, first, nil
}

// Release gives up a claim made by Claim with the same runID, so that a
// redelivery of a request that was not launched (rejected or failed after
// the claim) can launch. A claim that already expired, or that another run
// holds, is left alone.
func (d *Dedupe) Release(ctx context.Context, scope, key, runID string) error {
	if key == "" || d.Store == nil {
		return nil
	}
	if err := d.Store.ForgetKey(ctx, DedupeKey(scope, key), runID); err != nil {
		return fmt.Errorf("%s: key store: %w", DirectiveDedupe, err)
	}
	return nil
}

// DedupeKey is the store key of a delivery key of a trigger. The scope never
// contains '#', so the trigger and the sender-controlled key cannot be
// confused: the same delivery id sent to two triggers is two deliveries.
func DedupeKey(scope, key string) string {
	return scope + "#" + key
}
