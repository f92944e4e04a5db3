package caddymodule

import (
	"net/http"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// launchAhead finds, once, the valohai_launch a condition hands its
// requests to: the first one after it in the same route, reached through
// nothing but other conditions of this plugin and routes without matchers.
// Only then can a condition be sure that a dry-run request will reach that
// launch, and skip what a dry run must not do (take quota, remember a
// delivery id). Anything else in between (another handler, a matcher)
// leaves it unknown, and the condition does its work as for any request.
type launchAhead struct {
	once   sync.Once
	launch *Launch
}

// dryRun reports whether r will be a dry run of the launch ahead of self.
func (a *launchAhead) dryRun(r *http.Request, self caddyhttp.MiddlewareHandler) bool {
	l := a.find(r, self)
	return l != nil && l.isDryRun(r)
}

// find returns the launch ahead of self, nil when it is not known from the
// configuration. A condition with state hands that launch its claims, to
// be committed with the run (README.md, "The durable write path").
func (a *launchAhead) find(r *http.Request, self caddyhttp.MiddlewareHandler) *Launch {
	a.once.Do(func() {
		if place, ok := findHandler(r, self); ok {
			a.launch = launchAfter(place.after, place.rest)
		}
	})
	return a.launch
}

// isDryRun reports whether the launch answers r with a dry run.
func (l *Launch) isDryRun(r *http.Request) bool {
	return l.DryRun == "always" || (l.DryRun == "header" && r.Header.Get(DryRunHeader) == "1")
}

// launchAfter is the launch that handlers, then routes without matchers,
// lead to through conditions only; nil when anything else comes first.
func launchAfter(handlers []caddyhttp.MiddlewareHandler, routes caddyhttp.RouteList) *Launch {
	for {
		for _, h := range handlers {
			if l, ok := h.(*Launch); ok {
				return l
			}
			if !isCondition(h) {
				return nil
			}
		}
		if len(routes) == 0 || len(routes[0].MatcherSets) > 0 {
			return nil
		}
		handlers, routes = routes[0].Handlers, routes[1:]
	}
}

func isCondition(h caddyhttp.MiddlewareHandler) bool {
	switch h.(type) {
	case *TokenHandler, *HMACHandler, *Ed25519Handler, *JWTHandler, *TimestampHandler,
		*FilterHandler, *DedupeHandler, *RateLimitHandler:
		return true
	}
	return false
}
