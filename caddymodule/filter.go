package caddymodule

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/validators"
)

func init() {
	registerHandler[FilterHandler]()
}

// filteredBody is the answer to a request the filter does not select.
const filteredBody = `{"status":"ignored","reason":"filtered"}` + "\n"

// FilterHandler is the `webhook_filter` condition: a CEL expression over
// the request (body, raw, headers, query, method, path, jwt) that selects
// the events that launch. A request it does not select is answered, not
// rejected: 202 {"status":"ignored","reason":"filtered"} by default, since
// senders such as Stripe and Slack retry anything but a 2xx.
type FilterHandler struct {
	// Common's Status is the status of the "ignored" answer here (default
	// 202; 200-299 or 400-599), written directly, not through
	// handle_errors.
	Common
	// Expression is the CEL expression; it must give a bool. Compiled and
	// type-checked at provision.
	Expression string `json:"expression"`

	condition
	filter validators.Filter
}

// CaddyModule returns the Caddy module information.
func (*FilterHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.webhook_filter", New: func() caddy.Module { return new(FilterHandler) }}
}

// Provision compiles the expression; a bad one is a config error with CEL's
// message.
func (h *FilterHandler) Provision(ctx caddy.Context) error {
	if err := h.provision(ctx); err != nil {
		return err
	}
	if h.Status != 0 && !filterStatusOK(h.Status) {
		return fmt.Errorf("%s: status %d: use a 2xx (e.g. 202, 204) or an error code 400-599", validators.DirectiveFilter, h.Status)
	}
	h.filter = validators.Filter{Expression: h.Expression}
	return h.filter.Validate()
}

func filterStatusOK(code int) bool {
	return (code >= 200 && code <= 299) || (code >= 400 && code <= 599)
}

// ServeHTTP passes a request the expression selects and answers the others
// with the "ignored" body, launching nothing.
func (h *FilterHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	vr, r, held, err := h.holdWebhookRequest(w, r, h.app, validators.DirectiveFilter)
	if err != nil {
		return err
	}
	if held > 0 {
		// This handler read the body: the route ends when it returns.
		defer h.app.bodies.release(held)
	}
	matched, evalErr := h.filter.Match(r.Context(), vr)
	if rej := vr.ReadJSONRejection(validators.DirectiveFilter); rej != nil {
		return h.rejectStatus(h.app, h.logger, r, rej, http.StatusBadRequest)
	}
	if matched {
		return next.ServeHTTP(w, r)
	}
	if ce := h.logger.Check(zap.DebugLevel, "webhook filtered out"); ce != nil {
		fields := []zap.Field{zap.String("host", r.Host), zap.String("path", r.URL.Path)}
		if evalErr != nil {
			// CEL's evaluation errors name fields and types, not values.
			fields = append(fields, zap.String("evaluation_error", evalErr.Error()))
		}
		ce.Write(fields...)
	}
	status := h.Status
	if status == 0 {
		status = http.StatusAccepted
	}
	if status == http.StatusNoContent {
		w.WriteHeader(status)
		return nil
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write([]byte(filteredBody))
	return err
}

// UnmarshalCaddyfile parses
//
//	webhook_filter <expression>
//	webhook_filter [<expression>] {
//		expression <expression>
//		status 204
//		methods POST
//		max_body 1MiB
//	}
//
// Write the expression in backquotes so that its double-quoted strings
// survive: webhook_filter `body.ref == "refs/heads/main"`.
func (h *FilterHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	const dir = validators.DirectiveFilter
	d.Next()
	switch args := d.RemainingArgs(); len(args) {
	case 0:
	case 1:
		h.Expression = args[0]
	default:
		return d.Errf("takes one expression: quote it with backquotes, e.g. %s `body.action == \"opened\"`", dir)
	}
	err := parseBlock(d, 0, h.handlerSubdirectives(), subTable{
		// Not the conditions' status: the answer of a filter is not an
		// error, and 2xx codes are the usual choice.
		"status": func(l subLine) error {
			v, err := l.one()
			if err != nil {
				return err
			}
			code, err := strconv.Atoi(v)
			if err != nil || !filterStatusOK(code) {
				return l.errf("status %q: use a 2xx (e.g. 202, 204) or an error code 400-599", v)
			}
			h.Status = code
			return nil
		},
		"expression": func(l subLine) error {
			if len(l.args) != 1 {
				return l.errf("expression takes one value: quote it with backquotes")
			}
			if h.Expression != "" {
				return l.errf("one expression per directive: combine conditions with && or ||")
			}
			h.Expression = l.args[0]
			return nil
		},
	})
	if err != nil {
		return err
	}
	if h.Expression == "" {
		return d.Errf("an expression is required, e.g. %s `body.action == \"opened\"`", dir)
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*FilterHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*FilterHandler)(nil)
	_ caddyfile.Unmarshaler       = (*FilterHandler)(nil)
)
