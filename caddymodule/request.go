package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/google/uuid"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/launch"
	"github.com/hooklaunch/caddy-valohai/validators"
)

// Common holds what every handler that reads the webhook accepts: the
// allowed methods and the body cap, and for the conditions the status of
// a rejection.
type Common struct {
	// Status is the status of the answer to a request that does not meet
	// the condition (README.md, "Options every condition takes"): a
	// rejection, default 400 (Valohai's; webhook_ed25519's discord preset
	// 401); for webhook_filter the "ignored" answer, default 202; for
	// webhook_dedupe the answer to a repeated delivery, default the first
	// run's own (200 or 202). valohai_launch and valohai_run_info check
	// nothing of their own and refuse it.
	Status int `json:"status,omitempty"`
	// Methods lists the accepted request methods (default POST).
	Methods []string `json:"methods,omitempty"`
	// MaxBody caps the body this handler reads when it is the first in the
	// route to read it (default: the valohai app's max_body, 25 MiB).
	MaxBody int64 `json:"max_body,omitempty"`
}

// sharedRequestVar is the key of the request's validators.Request in
// Caddy's per-request variables, which every handler of the request (and
// its error routes) sees: keeping it there spares a new context and a copy
// of the *http.Request per request.
const sharedRequestVar = "valohai.request"

// requestKey carries the shared request in the context when Caddy's
// variables are not there (a handler called outside Caddy's server).
type requestKey struct{}

// sharedRequest is a request's validators.Request together with the
// reader that gives later handlers (respond, reverse_proxy) the body
// again: one allocation for both.
type sharedRequest struct {
	vr   validators.Request
	body bodyAgain
	// framed is the body's buffer from its start, with payloadRoom bytes
	// free before the body (launch.Payload's Framed).
	framed []byte
}

// bodyAgain reads the buffered body again. It points back to its shared
// request: the next of our handlers in the route, which gets the same
// *http.Request, finds it there without walking the context's chain of
// values.
type bodyAgain struct {
	bytes.Reader
	shared *sharedRequest
}

func (*bodyAgain) Close() error { return nil }

// String keeps the request out of anything that prints Caddy's variables
// ({http.vars.*}, debug output).
func (*sharedRequest) String() string { return "[webhook request]" }

type runIDKey struct{}

// withRunID fixes the id valohai_launch gives the run of this request (a
// condition such as webhook_dedupe must know it before the run exists).
func withRunID(r *http.Request, id string) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), runIDKey{}, id))
}

// runIDFor returns the run id fixed for this request, or a new one: a
// UUIDv7, time-ordered, so that the embedded store appends a new run's keys
// instead of inserting them at random places (README.md, "The durable write
// path"; no id is a secret: README.md, "Security").
func runIDFor(r *http.Request) string {
	if id, ok := r.Context().Value(runIDKey{}).(string); ok && id != "" {
		return id
	}
	return uuid.Must(uuid.NewV7()).String()
}

// holdWebhookRequest returns the request's shared validators.Request,
// reading the body (once per request, capped) when this is the first of
// our handlers in the route. The returned *http.Request carries it onward.
// A non-nil error is already an HTTP error for Caddy. When this handler
// read the body, held is the body's share of the app's body budget, which
// the handler gives back (app.bodies.release) once it returns: every one
// of our handlers either ends the route or runs the rest of it itself
// (next.ServeHTTP), so the route has ended then. That spares every request
// a context.AfterFunc (a registration, and a goroutine when the request
// ends, possibly after the client has its answer and sent the next request).
func (c *Common) holdWebhookRequest(w http.ResponseWriter, r *http.Request, app *App, directive string) (vr *validators.Request, _ *http.Request, held int64, _ error) {
	if !c.methodAllowed(r.Method) {
		allowed := c.Methods
		if len(allowed) == 0 {
			allowed = []string{http.MethodPost}
		}
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		return nil, r, 0, caddyhttp.Error(http.StatusMethodNotAllowed,
			fmt.Errorf("%s: method %s not allowed", directive, r.Method))
	}
	if again, ok := r.Body.(*bodyAgain); ok && again.shared != nil {
		// Only holdWebhookRequest sets a bodyAgain, on its own request.
		return &again.shared.vr, r, 0, nil
	}
	// Caddy's variables, looked up once (each lookup walks the context's
	// chain of values).
	vars, haveVars := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	if haveVars {
		if sr, ok := vars[sharedRequestVar].(*sharedRequest); ok {
			return &sr.vr, r, 0, nil
		}
	} else if vr, ok := r.Context().Value(requestKey{}).(*validators.Request); ok {
		return vr, r, 0, nil
	}
	limit := c.MaxBody
	if limit <= 0 {
		limit = app.MaxBody
	}
	body, framed, held, err := app.bodies.read(w, r, limit, payloadRoom(r))
	if err != nil {
		return nil, r, 0, bodyError(w, r, directive, limit, err)
	}
	sr := &sharedRequest{framed: framed, vr: validators.Request{
		Method:     r.Method,
		Host:       r.Host,
		Path:       r.URL.Path,
		URL:        requestURL(r),
		Header:     r.Header,
		RawQuery:   r.URL.RawQuery, // parsed on first use
		Body:       body,
		RemoteAddr: r.RemoteAddr,
	}}
	// Later handlers (respond, reverse_proxy) can still read the body.
	sr.body.Reset(body)
	sr.body.shared = sr
	r.Body = &sr.body
	if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
		repl.Map(func(key string) (any, bool) { return webhookPlaceholder(&sr.vr, key) })
	}
	if haveVars {
		vars[sharedRequestVar] = sr
		return &sr.vr, r, held, nil
	}
	return &sr.vr, r.WithContext(context.WithValue(r.Context(), requestKey{}, &sr.vr)), held, nil
}

// payloadContentType is the content type a stored payload is served with:
// the request's, or application/octet-stream.
func payloadContentType(r *http.Request) string {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		return ct
	}
	return "application/octet-stream"
}

// maxPayloadRoom bounds the room kept before every body for the payload
// record's header; a longer content type is copied with the body instead.
const maxPayloadRoom = 256

// payloadRoom is the room a body is read with for its payload record's
// header to be laid out in front of it (the store's encodePayload: 12
// bytes and the content type), so that storing the body does not copy it.
func payloadRoom(r *http.Request) int {
	if n := 12 + len(payloadContentType(r)); n <= maxPayloadRoom {
		return n
	}
	return 0
}

// framedBody is the buffer vr's body was read into, from its start (see
// sharedRequest), or nil when r does not carry it.
func framedBody(r *http.Request, vr *validators.Request) []byte {
	vars, _ := r.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	if sr, ok := vars[sharedRequestVar].(*sharedRequest); ok && &sr.vr == vr {
		return sr.framed
	}
	if again, ok := r.Body.(*bodyAgain); ok && again.shared != nil && &again.shared.vr == vr {
		return again.shared.framed
	}
	return nil
}

func (c *Common) methodAllowed(m string) bool {
	if len(c.Methods) == 0 {
		return m == http.MethodPost
	}
	for _, allowed := range c.Methods {
		if strings.EqualFold(allowed, m) {
			return true
		}
	}
	return false
}

func requestURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + r.URL.RequestURI()
}

// webhookPlaceholder resolves the {webhook.*} placeholders (README.md,
// "valohai_launch"), keeping JSON types (numbers stay numbers).
func webhookPlaceholder(vr *validators.Request, key string) (any, bool) {
	rest, ok := strings.CutPrefix(key, "webhook.")
	if !ok {
		return nil, false
	}
	switch {
	case strings.HasPrefix(rest, "json."):
		return jsonValue(vr.JSONPath(rest[len("json."):]))
	case strings.HasPrefix(rest, "form."):
		vals, ok := vr.Form()[rest[len("form."):]]
		if !ok || len(vals) == 0 {
			return nil, false
		}
		return vals[0], true
	case strings.HasPrefix(rest, "header."):
		name := rest[len("header."):]
		if _, ok := vr.Header[http.CanonicalHeaderKey(name)]; !ok {
			return nil, false
		}
		return vr.Header.Get(name), true
	case strings.HasPrefix(rest, "jwt."):
		v, ok := vr.JWTClaims[rest[len("jwt."):]]
		return v, ok
	}
	return nil, false
}

// jsonValue converts a gjson result to a Go value that marshals back to the
// same JSON type; numbers keep their exact text.
func jsonValue(res gjson.Result) (any, bool) {
	if !res.Exists() {
		return nil, false
	}
	switch res.Type {
	case gjson.Number:
		return json.Number(res.Raw), true
	case gjson.String:
		return res.Str, true
	case gjson.True:
		return true, true
	case gjson.False:
		return false, true
	case gjson.Null:
		return nil, true
	default:
		// Objects and arrays stay their JSON text: turning them into Go
		// values only to print them again costs time quadratic in depth.
		return json.RawMessage(res.Raw), true
	}
}

// reject answers a failed condition: logged (without secrets), recorded in
// the trigger log, and returned as a Caddy HTTP error so handle_errors can
// shape the body.
func (c *Common) reject(app *App, logger *zap.Logger, r *http.Request, err error) error {
	status := c.Status
	if status == 0 {
		status = http.StatusBadRequest
	}
	return c.rejectStatus(app, logger, r, err, status)
}

// rejectStatus is reject with a fixed status: a hostile body is a 400
// whatever status the directive sets for its own failures.
func (c *Common) rejectStatus(app *App, logger *zap.Logger, r *http.Request, err error, status int) error {
	directive, reason := "unknown", err.Error()
	if rej, ok := validators.AsRejection(err); ok {
		directive, reason = rej.Directive, rej.Reason
	}
	if ce := logger.Check(zap.InfoLevel, "webhook rejected"); ce != nil {
		// Fields are built only when the line is written.
		ce.Write(zap.String("host", r.Host),
			zap.String("path", r.URL.Path),
			zap.String("directive", directive),
			zap.String("reason", reason),
			zap.String("remote_addr", r.RemoteAddr))
	}
	app.metrics.rejected(directive, reason)
	app.recordRejection(launch.Rejected{
		At: time.Now().UTC(), Host: r.Host, Path: r.URL.Path,
		Directive: directive, Reason: reason, RemoteAddr: r.RemoteAddr,
	})
	return caddyhttp.Error(status, err)
}

// loadApp returns the valohai app of this config.
func loadApp(ctx caddy.Context) (*App, error) {
	v, err := ctx.App("valohai")
	if err != nil {
		return nil, err
	}
	return v.(*App), nil
}
