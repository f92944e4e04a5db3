package caddymodule

import (
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/launch"
	"github.com/hooklaunch/caddy-valohai/validators"
)

func init() {
	registerHandler[RateLimitHandler]()
}

// RateLimitHandler is the `webhook_rate_limit` condition: a quota of
// launches per period for a trigger URL (host + path), optionally split by
// a per-request key. The counters live in the valohai app's store, so they
// survive restarts and are exact across instances sharing a redis store.
// Place it after the authentication conditions (the registered directive
// order does): unauthenticated requests must not consume a quota.
type RateLimitHandler struct {
	Common
	// Limits are the quotas; a request passes only when every one has
	// room, and takes one unit of each.
	Limits []LimitConfig `json:"limits,omitempty"`
	// Key splits the quota: a placeholder expanded per request, such as
	// {http.request.header.X-Slack-Team-Id}. Requests whose key expands to
	// empty share one quota.
	Key string `json:"key,omitempty"`

	condition
	limit validators.RateLimit
	scope configScope
	ahead launchAhead
	// keys are the quota's store keys when Key is unset: the same for
	// every request, so found once (the scope is known on the first).
	keysOnce sync.Once
	keys     []string
}

// quotaKeys returns the store keys of the quota of r, whose expanded key
// is key.
func (h *RateLimitHandler) quotaKeys(r *http.Request, key string) []string {
	if h.Key != "" {
		return h.limit.QuotaKeys(h.scope.of(r, h), key)
	}
	h.keysOnce.Do(func() { h.keys = h.limit.QuotaKeys(h.scope.of(r, h), "") })
	return h.keys
}

// LimitConfig is one quota: at most Quota requests per Period.
type LimitConfig struct {
	// Quota is the number of requests allowed per period (at least 1).
	Quota int `json:"quota"`
	// Period is the length of the fixed window (at least 1s). Windows are
	// aligned to multiples of the period since the Unix epoch, so every
	// instance agrees on them.
	Period caddy.Duration `json:"period"`
}

// CaddyModule returns the Caddy module information.
func (*RateLimitHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.webhook_rate_limit", New: func() caddy.Module { return new(RateLimitHandler) }}
}

// Provision wires the app's store in and checks the limits.
func (h *RateLimitHandler) Provision(ctx caddy.Context) error {
	if err := h.provision(ctx); err != nil {
		return err
	}
	h.limit = validators.RateLimit{Store: h.app.store}
	for _, l := range h.Limits {
		h.limit.Limits = append(h.limit.Limits, validators.Limit{N: l.Quota, Period: time.Duration(l.Period)})
	}
	return h.limit.Validate()
}

// ServeHTTP takes one unit of the trigger's quota, or rejects the request
// with Retry-After when the quota is exhausted.
func (h *RateLimitHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	const dir = validators.DirectiveRateLimit
	vr, r, held, err := h.holdWebhookRequest(w, r, h.app, dir)
	if err != nil {
		return err
	}
	if held > 0 {
		// This handler read the body: the route ends when it returns.
		defer h.app.bodies.release(held)
	}
	key := ""
	if h.Key != "" {
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			key = repl.ReplaceAll(h.Key, "")
		}
	}
	if rej := vr.ReadJSONRejection(dir); rej != nil {
		return h.rejectStatus(h.app, h.logger, r, rej, http.StatusBadRequest)
	}
	if l := h.ahead.find(r, h); l != nil {
		// A dry run takes no quota, but only when the launch it goes to
		// is known from the configuration: the header alone must never
		// get a request past the limit of a route without one (README.md,
		// "dry_run").
		if l.isDryRun(r) {
			return next.ServeHTTP(w, r)
		}
		// The launch takes the units with the run, in one commit, and
		// answers for this condition if the quota is spent by then: a
		// request rejected or filtered later takes nothing.
		return next.ServeHTTP(w, h.claim(r, key, vr.Clock()))
	}
	if err := h.takeQuota(w, r, key, vr.Clock()); err != nil {
		return err
	}
	return next.ServeHTTP(w, r)
}

// claim adds one unit of each limit to the request's admission, for the
// launch ahead to commit with the run.
func (h *RateLimitHandler) claim(r *http.Request, key string, clock time.Time) *http.Request {
	keys := h.quotaKeys(r, key)
	for i, l := range h.limit.Limits {
		r = withClaims(r, func(w http.ResponseWriter, r *http.Request, d *launch.ClaimDenied) error {
			return h.exceeded(w, r, h.limit.Exceeded(i, d.RetryAfter))
		}, launch.QuotaClaim(keys[i], l.N, l.Period, clock))
	}
	return r
}

// DryRunHeader is the request header that asks a `dry_run header` trigger
// for a dry run ("1").
const DryRunHeader = "Webhook-Dry-Run"

// takeQuota takes one unit of the quota, answering as the condition does
// when it is exhausted or the store fails.
func (h *RateLimitHandler) takeQuota(w http.ResponseWriter, r *http.Request, key string, clock time.Time) error {
	const dir = validators.DirectiveRateLimit
	err := h.limit.TakeKeys(r.Context(), h.quotaKeys(r, key), clock)
	if err == nil {
		return nil
	}
	if q, ok := validators.AsQuotaExceeded(err); ok {
		return h.exceeded(w, r, q)
	}
	// The store failed: fail closed (an unchecked quota is no quota), and
	// let the sender retry later.
	h.logger.Error("rate limit store failed", zap.String("path", r.URL.Path), zap.Error(err))
	return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("%s: quota store unavailable", dir))
}

// exceeded rejects a request over its quota.
func (h *RateLimitHandler) exceeded(w http.ResponseWriter, r *http.Request, q *validators.QuotaExceeded) error {
	// Set before returning the error: Caddy keeps the headers of w
	// through handle_errors, so the sender always learns when to retry.
	w.Header().Set("Retry-After", strconv.FormatInt(q.RetryAfterSeconds(), 10))
	return h.reject(h.app, h.logger, r, q)
}

// UnmarshalCaddyfile parses
//
//	webhook_rate_limit <quota> <period>
//	webhook_rate_limit [<quota> <period>] {
//		limit <quota> <period>   # repeatable
//		key   {http.request.header.X-Slack-Team-Id}
//		status 429
//		methods POST
//		max_body 1MiB
//	}
func (h *RateLimitHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	const dir = validators.DirectiveRateLimit
	d.Next()
	switch args := d.RemainingArgs(); len(args) {
	case 0:
	case 2:
		if err := h.addLimit(d, args[0], args[1]); err != nil {
			return err
		}
	default:
		return d.Errf("takes <quota> <period>, e.g. `%s 10 1h`; repeat the directive or use limit lines in a block for more limits", dir)
	}
	err := parseBlock(d, 0, h.conditionSubdirectives(), subTable{
		"limit": func(l subLine) error {
			if len(l.args) != 2 {
				return l.errf("limit takes <quota> <period>, e.g. limit 10 1h")
			}
			return h.addLimit(l.d, l.args[0], l.args[1])
		},
		"key": setOne(&h.Key),
	})
	if err != nil {
		return err
	}
	if len(h.Limits) == 0 {
		return d.Errf("no limit: write `%s 10 1h` or a `limit 10 1h` line in the block", dir)
	}
	return nil
}

// addLimit appends the quota of a `<quota> <period>` pair.
func (h *RateLimitHandler) addLimit(d *caddyfile.Dispenser, quota, period string) error {
	n, err := strconv.Atoi(quota)
	if err != nil || n < 1 {
		return d.Errf("quota %q must be a whole number of at least 1, e.g. 10", quota)
	}
	p, err := caddy.ParseDuration(period)
	if err != nil || p < time.Second {
		return d.Errf("period %q must be a duration of at least 1s, e.g. 1h or 24h", period)
	}
	h.Limits = append(h.Limits, LimitConfig{Quota: n, Period: caddy.Duration(p)})
	return nil
}

// Interface guards. The store assertions keep validators' small state
// interfaces in step with launch.Store and its implementations, without
// validators and launch importing each other.
var (
	_ caddy.Provisioner           = (*RateLimitHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*RateLimitHandler)(nil)
	_ caddyfile.Unmarshaler       = (*RateLimitHandler)(nil)

	_ validators.QuotaTaker    = launch.Admission(nil)
	_ validators.KeyRememberer = launch.Admission(nil)
)
