package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/launch"
	"github.com/hooklaunch/caddy-valohai/validators"
)

func init() {
	registerHandler[DedupeHandler]()
}

// duplicateHeader marks the answer to a repeated delivery.
const duplicateHeader = "Webhook-Duplicate"

// DedupeHandler is the `webhook_dedupe` condition: one launch per delivery.
// The first request carrying a delivery key launches; a repeat within the
// window launches nothing and gets the first run's current response (same
// run_id) with `Webhook-Duplicate: true`. Keys live in the valohai app's
// store, so they hold across restarts and across instances sharing a redis
// store.
type DedupeHandler struct {
	// Common: methods and max_body. Status is not used: dedupe rejects no
	// request (a repeat gets the first run's answer, a key store failure
	// 503, as in webhook_rate_limit), so a status is a config error.
	Common
	// Key is the delivery id, a placeholder expanded per request, e.g.
	// {http.request.header.X-GitHub-Delivery}. A request whose key has an
	// empty placeholder is not deduplicated (and is logged).
	Key string `json:"key"`
	// Window is how long a key is remembered (default 24h).
	Window caddy.Duration `json:"window,omitempty"`

	condition
	dedupe validators.Dedupe
	scope  configScope
	ahead  launchAhead
}

// CaddyModule returns the Caddy module information.
func (*DedupeHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.webhook_dedupe", New: func() caddy.Module { return new(DedupeHandler) }}
}

// Provision wires the app's store in and checks the key and window.
func (h *DedupeHandler) Provision(ctx caddy.Context) error {
	if err := h.provision(ctx); err != nil {
		return err
	}
	if h.Status != 0 && (h.Status < 200 || h.Status > 599) {
		return fmt.Errorf("%s: status %d is the status of the answer to a repeated delivery: an HTTP status 200-599, e.g. 200 or 409", validators.DirectiveDedupe, h.Status)
	}
	if !strings.Contains(h.Key, "{") {
		return fmt.Errorf("%s: key %q is the same for every request: use a placeholder naming the delivery id, e.g. {http.request.header.X-GitHub-Delivery}", validators.DirectiveDedupe, h.Key)
	}
	h.dedupe = validators.Dedupe{Window: time.Duration(h.Window), Store: h.app.store}
	return h.dedupe.Validate()
}

// ServeHTTP lets the first delivery of a key through with its run id fixed,
// and answers a repeat with that run's current response.
func (h *DedupeHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	const dir = validators.DirectiveDedupe
	vr, r, bodyHeld, err := h.holdWebhookRequest(w, r, h.app, dir)
	if err != nil {
		return err
	}
	if bodyHeld > 0 {
		// This handler read the body: the route ends when it returns.
		defer h.app.bodies.release(bodyHeld)
	}
	key := ""
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		// Any empty or unknown placeholder empties the key: a prefix such
		// as "gh-{...}" must not fold every keyless request into one.
		if k, err := repl.ReplaceOrErr(h.Key, true, true); err == nil {
			key = k
		}
	}
	if rej := vr.ReadJSONRejection(dir); rej != nil {
		return h.rejectStatus(h.app, h.logger, r, rej, http.StatusBadRequest)
	}
	l := h.ahead.find(r, h)
	if l != nil && l.isDryRun(r) {
		// A dry run stores nothing: its delivery id is not remembered.
		return next.ServeHTTP(w, r)
	}
	if key == "" {
		h.logger.Info("delivery key is empty: not deduplicated",
			zap.String("host", r.Host), zap.String("path", r.URL.Path),
			zap.String("key", h.Key), zap.String("remote_addr", r.RemoteAddr))
		return next.ServeHTTP(w, r)
	}
	scope := h.scope.of(r, h)
	if l != nil {
		// The launch ahead claims the key with the run, in one commit:
		// the key is held exactly when the run is stored, and a repeat
		// that arrives meanwhile is answered from the run holding it.
		r = withClaims(r, func(w http.ResponseWriter, r *http.Request, d *launch.ClaimDenied) error {
			return h.duplicate(w, r, d.Held)
		}, launch.KeyClaim(validators.DedupeKey(scope, key), h.dedupe.Window, vr.Clock()))
		return next.ServeHTTP(w, r)
	}

	// No launch known ahead (another handler comes first): remember the
	// key now, and release it if no run was stored after all.
	runID := runIDFor(r)
	held, first, err := h.dedupe.Claim(r.Context(), scope, key, runID, vr.Clock())
	if err != nil {
		// The claim may be written though it failed (not acknowledged by
		// enough replicas, docs/redis.md): free it for the retry.
		if rerr := h.dedupe.Release(context.WithoutCancel(r.Context()), scope, key, runID); rerr != nil {
			h.logger.Warn("releasing a failed delivery claim failed", zap.String("path", r.URL.Path), zap.Error(rerr))
		}
		return h.storeFailed(r, err)
	}
	if first {
		r = withRunID(r, runID)
		nextErr := next.ServeHTTP(w, r)
		// The claim stays only if the run exists: a request rejected
		// after the claim (rate limit, store failure), or one that
		// launched nothing, must not turn its redelivery into a duplicate.
		// The request may be gone by now; the release must still happen.
		ctx := context.WithoutCancel(r.Context())
		if !h.runStored(ctx, runID, nextErr) {
			if err := h.dedupe.Release(ctx, scope, key, runID); err != nil {
				h.logger.Error("releasing a delivery key failed: its redelivery will be answered as a duplicate until the window ends",
					zap.String("path", r.URL.Path), zap.Error(err))
			}
		}
		return nextErr
	}
	return h.duplicate(w, r, held)
}

// duplicate answers a repeated delivery with the current response of the
// run that holds its key.
func (h *DedupeHandler) duplicate(w http.ResponseWriter, r *http.Request, held string) error {
	run, err := h.heldRun(r.Context(), held)
	switch {
	case errors.Is(err, launch.ErrNotFound):
		// The first delivery is not stored: still on its way, or failed
		// (a 5xx its sender will retry). Never a 2xx for a run that may
		// not exist (docs/redis.md, "min_replicas_ack").
		w.Header().Set("Retry-After", "1")
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("%s: the first delivery of this key is not stored yet; retry later", validators.DirectiveDedupe))
	case err != nil:
		return h.storeFailed(r, err)
	}
	if s, ok := h.app.store.(interface{ Sync(context.Context) error }); ok {
		// The first run may have been written without enough replicas
		// acknowledging it: this 2xx rests on it too.
		if err := s.Sync(r.Context()); err != nil {
			return h.storeFailed(r, err)
		}
	}
	// Counted under the first run's trigger, as valohai_launch counts its
	// outcomes; a first run still on its way to the store has none yet.
	trigger := run.Trigger
	if trigger == "" {
		trigger = "unknown"
	}
	h.app.metrics.request(trigger, "duplicate")
	h.logger.Info("duplicate delivery: answered with the first run",
		zap.String("host", r.Host), zap.String("path", r.URL.Path),
		zap.String("run_id", held), zap.String("remote_addr", r.RemoteAddr))
	w.Header().Set(duplicateHeader, "true")
	return writeRunResponse(w, run, h.Status)
}

// heldWait is how long a duplicate waits for the first delivery's run to
// be stored before it is answered 503 (retry later).
const heldWait = 3 * time.Second

// heldRun reads the run a delivery key holds, waiting up to heldWait while
// the first delivery is still storing it.
func (h *DedupeHandler) heldRun(ctx context.Context, id string) (*launch.Run, error) {
	deadline := time.Now().Add(heldWait)
	for {
		run, err := h.app.store.GetRun(ctx, id)
		if !errors.Is(err, launch.ErrNotFound) || time.Now().After(deadline) {
			return run, err
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runStored reports whether the first delivery's run was stored. When the
// store cannot tell, the handler chain's outcome decides.
func (h *DedupeHandler) runStored(ctx context.Context, runID string, nextErr error) bool {
	_, err := h.app.store.GetRun(ctx, runID)
	switch {
	case err == nil:
		return true
	case errors.Is(err, launch.ErrNotFound):
		return false
	default:
		return nextErr == nil
	}
}

// storeFailed fails closed: without the key store a duplicate cannot be
// told apart, and the launch would need the same store anyway.
func (h *DedupeHandler) storeFailed(r *http.Request, err error) error {
	h.logger.Error("dedupe key store failed", zap.String("path", r.URL.Path), zap.Error(err))
	return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("%s: delivery key store unavailable", validators.DirectiveDedupe))
}

// UnmarshalCaddyfile parses
//
//	webhook_dedupe <key> [<window>]
//	webhook_dedupe [<key> [<window>]] {
//		key    {http.request.header.X-GitHub-Delivery}
//		window 24h
//		methods POST
//		max_body 1MiB
//	}
func (h *DedupeHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	const dir = validators.DirectiveDedupe
	d.Next()
	args := d.RemainingArgs()
	if len(args) > 2 {
		return d.Errf("takes <key> [<window>], e.g. `%s {http.request.header.X-GitHub-Delivery} 24h`", dir)
	}
	if len(args) > 0 {
		h.Key = args[0]
	}
	if len(args) == 2 {
		if err := h.setWindow(d, args[1]); err != nil {
			return err
		}
	}
	err := parseBlock(d, 0, h.handlerSubdirectives(), subTable{
		"key": setOne(&h.Key),
		"status": func(l subLine) error {
			v, err := l.one()
			if err != nil {
				return err
			}
			code, err := strconv.Atoi(v)
			if err != nil || code < 200 || code > 599 {
				return l.errf("status is the status of the answer to a repeated delivery: an HTTP status 200-599 (e.g. 200 or 409), got %q", v)
			}
			h.Status = code
			return nil
		},
		"window": func(l subLine) error {
			v, err := l.one()
			if err != nil {
				return err
			}
			return h.setWindow(l.d, v)
		},
	})
	if err != nil {
		return err
	}
	if h.Key == "" {
		return d.Errf("a key is required, e.g. `%s {http.request.header.X-GitHub-Delivery}`", dir)
	}
	return nil
}

func (h *DedupeHandler) setWindow(d *caddyfile.Dispenser, v string) error {
	w, err := caddy.ParseDuration(v)
	if err != nil || w < time.Second {
		return d.Errf("window %q must be a duration of at least 1s, e.g. 24h", v)
	}
	h.Window = caddy.Duration(w)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*DedupeHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*DedupeHandler)(nil)
	_ caddyfile.Unmarshaler       = (*DedupeHandler)(nil)
)
