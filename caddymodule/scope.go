package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/hooklaunch/caddy-valohai/validators"
)

// configScope is the scope of a handler's quota or delivery keys: the
// matchers of every route around the handler in the configuration (the
// site's host matcher, the route's path matcher, ...), never the request's
// Host header or path, which a sender controls (README.md, "Scope of
// quotas and delivery keys"). It is found once, on the first request, by
// looking the handler up in its server's provisioned routes; instances
// loading the same configuration find the same scope, so quotas and
// delivery keys stay shared through a redis store.
type configScope struct {
	once  sync.Once
	scope string
}

// of returns the scope of handler self, which serves r.
func (s *configScope) of(r *http.Request, self caddyhttp.MiddlewareHandler) string {
	s.once.Do(func() {
		var chain []string
		if srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server); ok {
			chain, ok = routeChain(srv.Routes, self, nil)
			if !ok && srv.Errors != nil {
				chain, ok = routeChain(srv.Errors.Routes, self, []string{"errors"})
			}
			if !ok {
				for name, route := range srv.NamedRoutes {
					if route == nil {
						continue
					}
					if chain, ok = routeChain(caddyhttp.RouteList{*route}, self, []string{"named", name}); ok {
						break
					}
				}
			}
			if !ok {
				chain = nil
			}
		}
		if chain == nil {
			// Not in any route this server knows (a handler invoked by
			// another module): its own configuration is the scope.
			cfg, _ := json.Marshal(self)
			chain = []string{"handler", string(cfg)}
		}
		s.scope = validators.ConfigScope(chain...)
	})
	return s.scope
}

// routeChain finds target among the handlers of routes, descending into
// subroutes, and returns the matcher sets of the routes on the way, each
// as its JSON, prefixed by prefix.
func routeChain(routes caddyhttp.RouteList, target caddyhttp.MiddlewareHandler, prefix []string) ([]string, bool) {
	for _, route := range routes {
		chain := append(prefix[:len(prefix):len(prefix)], matcherText(route.MatcherSets))
		for _, h := range route.Handlers {
			if h == target {
				return chain, true
			}
			sub, ok := h.(*caddyhttp.Subroute)
			if !ok {
				continue
			}
			if found, ok := routeChain(sub.Routes, target, chain); ok {
				return found, true
			}
			if sub.Errors != nil {
				if found, ok := routeChain(sub.Errors.Routes, target, append(chain[:len(chain):len(chain)], "errors")); ok {
					return found, true
				}
			}
		}
	}
	return nil, false
}

// matcherText writes a route's provisioned matchers (their raw JSON is
// freed once loaded) as text that two loads of the same configuration
// agree on: each matcher's type and its configuration as JSON.
func matcherText(sets caddyhttp.MatcherSets) string {
	var b strings.Builder
	for _, set := range sets {
		b.WriteString("[")
		for _, m := range set {
			cfg, err := json.Marshal(m)
			if err != nil {
				cfg = []byte(fmt.Sprintf("%+v", m))
			}
			fmt.Fprintf(&b, "%T=%s;", m, cfg)
		}
		b.WriteString("]")
	}
	return b.String()
}
