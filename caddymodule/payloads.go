package caddymodule

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/hooklaunch/caddy-valohai/launch"
)

func init() {
	registerHandler[Payloads]()
}

// Payloads is the `valohai_payloads` handler: it serves stored webhook bodies
// byte-for-byte to Valohai workers at signed, expiring URLs
// <payload_url>/<run_id>?expires=<unix>&signature=<sig>. The run id is the
// last path segment, so it works under any route or handle prefix.
type Payloads struct {
	app *App
}

// CaddyModule returns the Caddy module information.
func (*Payloads) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.valohai_payloads", New: func() caddy.Module { return new(Payloads) }}
}

// Provision binds the handler to the valohai app.
func (p *Payloads) Provision(ctx caddy.Context) error {
	app, err := loadApp(ctx)
	if err != nil {
		return err
	}
	p.app = app
	return nil
}

// ServeHTTP answers 403 for a bad or expired signature and 404 for a payload
// that is gone; otherwise the stored bytes, byte for byte, as a download
// that no browser renders (README.md, "Payload links").
func (p *Payloads) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return caddyhttp.Error(http.StatusMethodNotAllowed, errors.New("valohai_payloads: method not allowed"))
	}
	runID := path.Base(r.URL.Path)
	q := r.URL.Query()
	switch err := p.app.signer.Verify(runID, q.Get("expires"), q.Get("signature"), time.Now().UTC()); {
	case errors.Is(err, launch.ErrExpired):
		return caddyhttp.Error(http.StatusForbidden, errors.New("valohai_payloads: link expired"))
	case err != nil:
		return caddyhttp.Error(http.StatusForbidden, errors.New("valohai_payloads: bad signature"))
	}
	pl, err := p.app.store.GetPayload(r.Context(), runID)
	if errors.Is(err, launch.ErrNotFound) {
		return caddyhttp.Error(http.StatusNotFound, errors.New("valohai_payloads: payload gone"))
	}
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("valohai_payloads: %v", err))
	}
	h := w.Header()
	h.Set("Content-Type", servedPayloadType(pl.ContentType))
	h.Set("Content-Length", strconv.Itoa(len(pl.Body)))
	h.Set("Cache-Control", "private, no-store")
	// The body is the sender's, served on the gateway's origin to whoever
	// opens the link (Valohai users do): never as an active document.
	h.Set("Content-Disposition", `attachment; filename="`+payloadFileName(runID)+`"`)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	_, err = w.Write(pl.Body)
	return err
}

// UnmarshalCaddyfile parses `valohai_payloads` (no arguments).
func (p *Payloads) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() || d.NextBlock(0) {
		return d.Err("takes no arguments; put it under the path of payload_url, e.g. handle_path /_valohai/payloads/* { valohai_payloads }")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Payloads)(nil)
	_ caddyhttp.MiddlewareHandler = (*Payloads)(nil)
	_ caddyfile.Unmarshaler       = (*Payloads)(nil)
)

// servedPayloadType is the Content-Type a stored payload is served with:
// the sender's when it is JSON, a form or plain text (types no browser
// runs), else application/octet-stream. A text/html or image/svg+xml body
// is therefore never served as such.
func servedPayloadType(ct string) string {
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "application/octet-stream"
	}
	switch {
	case mt == "application/json", mt == "application/x-www-form-urlencoded", mt == "text/plain",
		strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json"):
	default:
		return "application/octet-stream"
	}
	if cs, ok := params["charset"]; ok {
		return mime.FormatMediaType(mt, map[string]string{"charset": cs})
	}
	return mt
}

// payloadFileName names the download after the run id, reduced to the
// characters a run id has, so nothing from the URL reaches the header.
func payloadFileName(runID string) string {
	name := strings.Map(func(r rune) rune {
		if r == '-' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') {
			return r
		}
		return -1
	}, runID)
	if name == "" {
		name = "payload"
	}
	return name + ".payload"
}
