package caddymodule

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/validators"
)

func init() {
	registerHandler[Ed25519Handler]()
}

// Ed25519Handler is the `webhook_ed25519` condition: an Ed25519 signature
// made with the sender's private key, checked with its public keys
// (Discord interactions, Standard Webhooks v1a).
type Ed25519Handler struct {
	Common
	// Preset fills the fields below for a known sender: discord or
	// standard (Standard Webhooks v1a). Fields set here still override it.
	// With discord, a rejection is a 401 unless status says otherwise,
	// and a verified PING interaction is answered {"type":1}.
	Preset string `json:"preset,omitempty"`
	// PublicKeys are the sender's public keys ({env.*}/{file.*} expanded
	// at provision): 64 hex digits, whpk_<base64> or a PEM PUBLIC KEY. A
	// signature by any one passes.
	PublicKeys []string `json:"public_keys,omitempty"`
	// Header carrying the signature.
	Header string `json:"header,omitempty"`
	// Encoding of the signature: hex, base64 or base64url.
	Encoding string `json:"encoding,omitempty"`
	// SignedString: message, timestamp, id and tolerance (default 5m).
	SignedString

	condition
	ed     validators.Ed25519
	answer answerFunc
}

// CaddyModule returns the Caddy module information.
func (*Ed25519Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.webhook_ed25519", New: func() caddy.Module { return new(Ed25519Handler) }}
}

// Provision builds the Ed25519 condition from the preset and the fields.
func (h *Ed25519Handler) Provision(ctx caddy.Context) error {
	if err := h.provision(ctx); err != nil {
		return err
	}
	const dir = validators.DirectiveEd25519
	if h.Preset != "" {
		p, err := validators.Ed25519Preset(h.Preset)
		if err != nil {
			return err
		}
		h.ed = p
	}
	if len(h.PublicKeys) == 0 {
		return fmt.Errorf("%s: no public key configured: add `public_key {env.YOUR_PUBLIC_KEY}` (several lines for rotation)", dir)
	}
	repl := caddy.NewReplacer()
	for i, k := range h.PublicKeys {
		v, err := repl.ReplaceOrErr(k, true, true)
		if err != nil || strings.TrimSpace(v) == "" {
			return fmt.Errorf("%s: public_key #%d (%s) is empty after expanding placeholders: set the environment variable or file it names", dir, i+1, placeholderHint(k))
		}
		if err := h.ed.AddPublicKey(v); err != nil {
			return fmt.Errorf("%s: public_key #%d (%s): %v", dir, i+1, placeholderHint(k), err)
		}
	}
	switch {
	case h.Header != "":
		src, err := validators.ParseSource("header", h.Header)
		if err != nil {
			return fmt.Errorf("%s: header: %v", dir, err)
		}
		h.ed.Signature = src
	case h.Preset == "":
		return fmt.Errorf("%s: where is the signature? add `header <name>`, or use a preset such as `webhook_ed25519 discord {env.DISCORD_PUBLIC_KEY}`", dir)
	}
	if h.Encoding != "" {
		h.ed.Encoding = h.Encoding
	}
	if err := h.SignedString.override(dir, &h.ed.Message, &h.ed.Timestamp, &h.ed.ID, &h.ed.Tolerance); err != nil {
		return err
	}
	if strings.EqualFold(h.Preset, "discord") {
		// Discord removes an endpoint that does not answer a bad
		// signature with 401.
		if h.Status == 0 {
			h.Status = http.StatusUnauthorized
		}
		h.answer = h.answerDiscordPing
	}
	return h.ed.Validate()
}

// ServeHTTP passes requests whose signature verifies.
func (h *Ed25519Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return h.serveAnswering(&h.Common, validators.DirectiveEd25519, w, r, next, h.ed.Verify, h.answer)
}

// answerDiscordPing answers Discord's PING (interaction type 1), which
// Discord sends when the endpoint is saved and from time to time after,
// with the PONG it requires; it launches nothing.
func (h *Ed25519Handler) answerDiscordPing(w http.ResponseWriter, vr *validators.Request) (bool, error) {
	v, ok := vr.JSON()
	if !ok {
		return false, nil
	}
	obj, ok := v.(map[string]any)
	if !ok || obj["type"] != float64(1) {
		return false, nil
	}
	h.logger.Debug("discord ping answered", zap.String("path", vr.Path))
	return true, answerJSON(w, map[string]int{"type": 1})
}

// UnmarshalCaddyfile parses
//
//	webhook_ed25519 <preset> <public key>...
//	webhook_ed25519 {
//		preset     discord | standard
//		public_key {env.KEY}
//		header     X-Signature-Ed25519
//		encoding   hex | base64 | base64url
//		message    "{timestamp}{body}"
//		timestamp  header X-Signature-Timestamp [unix|unix_ms|rfc3339]
//		id         header webhook-id
//		tolerance  5m
//		status 401
//		methods POST
//		max_body 1MiB
//	}
func (h *Ed25519Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if args := d.RemainingArgs(); len(args) > 0 {
		if len(args) < 2 {
			return d.Err("the short form is `webhook_ed25519 <preset> <public key>...`, e.g. webhook_ed25519 discord {env.DISCORD_PUBLIC_KEY}")
		}
		h.Preset, h.PublicKeys = args[0], append(h.PublicKeys, args[1:]...)
	}
	err := parseBlock(d, 0, h.conditionSubdirectives(),
		h.SignedString.subdirectives(),
		subTable{
			"preset":     setOne(&h.Preset),
			"public_key": appendOne(&h.PublicKeys),
			"header":     setOne(&h.Header),
			"encoding":   setOne(&h.Encoding),
		})
	if err != nil {
		return err
	}
	if len(h.PublicKeys) == 0 {
		return d.Err("a public key is required: `webhook_ed25519 discord {env.DISCORD_PUBLIC_KEY}` or a `public_key` line in the block")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Ed25519Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Ed25519Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Ed25519Handler)(nil)
)
