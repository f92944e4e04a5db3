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
		chain := []string{"handler"}
		if place, ok := findHandler(r, self); ok {
			chain = place.chain
		} else {
			// Not in any route this server knows (a handler invoked by
			// another module): its own configuration is the scope.
			cfg, _ := json.Marshal(self)
			chain = append(chain, string(cfg))
		}
		s.scope = validators.ConfigScope(chain...)
	})
	return s.scope
}

// findHandler finds self in the routes of the server serving r: its
// routes, then its error routes, then its named routes.
func findHandler(r *http.Request, self caddyhttp.MiddlewareHandler) (handlerPlace, bool) {
	srv, ok := r.Context().Value(caddyhttp.ServerCtxKey).(*caddyhttp.Server)
	if !ok {
		return handlerPlace{}, false
	}
	if place, ok := locateHandler(srv.Routes, self, nil); ok {
		return place, true
	}
	if srv.Errors != nil {
		if place, ok := locateHandler(srv.Errors.Routes, self, []string{"errors"}); ok {
			return place, true
		}
	}
	for name, route := range srv.NamedRoutes {
		if route != nil {
			if place, ok := locateHandler(caddyhttp.RouteList{*route}, self, []string{"named", name}); ok {
				return place, true
			}
		}
	}
	return handlerPlace{}, false
}

// handlerPlace is where a handler sits in its server's provisioned routes.
type handlerPlace struct {
	// chain is the matchers of every route around the handler, each as
	// matcherText, after the prefix the search started with.
	chain []string
	// after are the handlers after it in its route, and rest the routes
	// after that route in the same list: where a request goes next.
	after []caddyhttp.MiddlewareHandler
	rest  caddyhttp.RouteList
}

// locateHandler finds target among the handlers of routes, descending into
// subroutes (and their error routes).
func locateHandler(routes caddyhttp.RouteList, target caddyhttp.MiddlewareHandler, prefix []string) (handlerPlace, bool) {
	for i, route := range routes {
		chain := append(prefix[:len(prefix):len(prefix)], matcherText(route.MatcherSets))
		for j, h := range route.Handlers {
			if h == target {
				return handlerPlace{chain: chain, after: route.Handlers[j+1:], rest: routes[i+1:]}, true
			}
			sub, ok := h.(*caddyhttp.Subroute)
			if !ok {
				continue
			}
			if place, ok := locateHandler(sub.Routes, target, chain); ok {
				return place, true
			}
			if sub.Errors != nil {
				if place, ok := locateHandler(sub.Errors.Routes, target, append(chain[:len(chain):len(chain)], "errors")); ok {
					return place, true
				}
			}
		}
	}
	return handlerPlace{}, false
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
