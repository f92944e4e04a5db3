package caddymodule

import (
	"bytes"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/validators"
)

func init() {
	caddy.RegisterModule(new(HMACHandler))
	httpcaddyfile.RegisterHandlerDirective("webhook_hmac", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		m := new(HMACHandler)
		return m, m.UnmarshalCaddyfile(h.Dispenser)
	})
}

// HMACHandler is the `webhook_hmac` condition: an HMAC signature over the
// raw body (and optionally a timestamp, id, headers or the URL).
type HMACHandler struct {
	Common
	// Preset fills the fields below for a known sender: github, slack,
	// stripe, standard (Standard Webhooks, Svix, GitLab signing token),
	// shopify, linear or valohai. Fields set here still override it.
	Preset string `json:"preset,omitempty"`
	// Secrets are the MAC keys ({env.*}/{file.*} expanded at provision);
	// a signature made with any one passes.
	Secrets []string `json:"secrets,omitempty"`
	// SecretEncoding is how a secret string becomes key bytes: raw (the
	// default, and the stripe preset's: the whsec_ string as-is), base64,
	// hex, or whsec (base64 after an optional "whsec_": the standard
	// preset's default).
	SecretEncoding string `json:"secret_encoding,omitempty"`
	// Header carrying the signature.
	Header string `json:"header,omitempty"`
	// Query parameter carrying the signature.
	Query string `json:"query,omitempty"`
	// Algorithm is sha1, sha256 or sha512.
	Algorithm string `json:"algorithm,omitempty"`
	// Encoding of the signature: hex, base64 or base64url.
	Encoding string `json:"encoding,omitempty"`
	// Prefix before each signature ("sha256=").
	Prefix *string `json:"prefix,omitempty"`
	// Message is the signed-string template: {body} {timestamp} {id}
	// {header.NAME} {url}.
	Message string `json:"message,omitempty"`
	// Timestamp is the source of {timestamp}.
	Timestamp *SourceConfig `json:"timestamp,omitempty"`
	// ID is the source of {id}.
	ID *SourceConfig `json:"id,omitempty"`
	// Tolerance is the max |now - timestamp| whenever a timestamp is
	// signed (default 5m, or the preset's: linear 60s).
	Tolerance caddy.Duration `json:"tolerance,omitempty"`

	condition
	hmac   validators.HMAC
	answer answerFunc
}

// SourceConfig names where a value is read: header, query or field, plus an
// optional format for timestamps.
type SourceConfig struct {
	From   string `json:"from"`
	Name   string `json:"name"`
	Format string `json:"format,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*HMACHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.webhook_hmac", New: func() caddy.Module { return new(HMACHandler) }}
}

// Provision builds the HMAC condition from the preset and the fields.
func (h *HMACHandler) Provision(ctx caddy.Context) error {
	if err := h.provision(ctx); err != nil {
		return err
	}
	const dir = validators.DirectiveHMAC
	if h.Preset != "" {
		p, err := validators.Preset(h.Preset)
		if err != nil {
			return err
		}
		h.hmac = p
	}
	secrets, err := expandSecrets(dir, h.Secrets)
	if err != nil {
		return err
	}
	if h.SecretEncoding != "" {
		h.hmac.SecretEncoding = h.SecretEncoding
	}
	for i, s := range secrets {
		if err := h.hmac.AddSecret(s); err != nil {
			return errorf("%s: secret #%d (%s): %v", dir, i+1, placeholderHint(h.Secrets[i]), err)
		}
	}
	switch {
	case h.Header != "" && h.Query != "":
		return errorf("%s: use only one of header and query", dir)
	case h.Header != "":
		if h.hmac.Signature, err = validators.ParseSource("header", h.Header); err != nil {
			return errorf("%s: header: %v", dir, err)
		}
	case h.Query != "":
		if h.hmac.Signature, err = validators.ParseSource("query", h.Query); err != nil {
			return errorf("%s: query: %v", dir, err)
		}
	case h.Preset == "":
		return errorf("%s: where is the signature? add `header <name>` (or `query <name>`), or use a preset such as `webhook_hmac github {env.SECRET}`", dir)
	}
	if h.Algorithm != "" {
		h.hmac.Algorithm = h.Algorithm
	}
	if h.Encoding != "" {
		h.hmac.Encoding = h.Encoding
	}
	if h.Prefix != nil {
		h.hmac.Prefix = *h.Prefix
	}
	if h.Message != "" {
		h.hmac.Message = h.Message
	}
	ts, id, err := signedStringSources(dir, h.Timestamp, h.ID)
	if err != nil {
		return err
	}
	if ts != nil {
		h.hmac.Timestamp = ts
	}
	if id != nil {
		h.hmac.ID = id
	}
	if h.Tolerance > 0 {
		h.hmac.Tolerance = time.Duration(h.Tolerance)
	}
	if strings.EqualFold(h.Preset, "slack") {
		h.answer = h.answerSlackURLVerification
	}
	return h.hmac.Validate()
}

// ServeHTTP passes requests whose signature matches.
func (h *HMACHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return h.serveAnswering(&h.Common, validators.DirectiveHMAC, w, r, next, h.hmac.Verify, h.answer)
}

// answerSlackURLVerification answers the challenge Slack's Events API
// sends (signed like every event) when a Request URL is saved:
// {"type":"url_verification","challenge":"..."} gets {"challenge":"..."}
// and launches nothing.
//
// It runs on every verified Slack request, so it looks at the body only
// when it can be a challenge: a JSON object whose bytes contain
// url_verification, or a \u escape (the only way to spell that string
// otherwise). Any other body is passed on without being read as JSON, and
// a possible challenge is read with two path lookups, never decoded whole.
func (h *HMACHandler) answerSlackURLVerification(w http.ResponseWriter, vr *validators.Request) (bool, error) {
	if !mayBeURLVerification(vr.Body) || vr.IsForm() {
		return false, nil // slash commands and interactivity are forms
	}
	if t := vr.JSONPath("type"); t.Type != gjson.String || t.Str != "url_verification" {
		return false, nil
	}
	challenge := vr.JSONPath("challenge")
	if challenge.Type != gjson.String {
		return false, nil
	}
	h.logger.Debug("slack url_verification answered", zap.String("path", vr.Path))
	return true, answerJSON(w, map[string]string{"challenge": challenge.Str})
}

// mayBeURLVerification reports whether body can be a JSON object whose
// type is "url_verification".
func mayBeURLVerification(body []byte) bool {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return false
	}
	return bytes.Contains(body, urlVerification) || bytes.Contains(body, jsonUnicodeEscape)
}

var (
	urlVerification   = []byte("url_verification")
	jsonUnicodeEscape = []byte(`\u`)
)

// UnmarshalCaddyfile parses
//
//	webhook_hmac <preset> <secret>...
//	webhook_hmac {
//		preset    github
//		secret    {env.SECRET}
//		header    X-Signature | query <name>
//		algorithm sha256
//		encoding  hex
//		prefix    "sha256="
//		message   "{timestamp}.{body}"
//		timestamp header X-Timestamp [unix|unix_ms|rfc3339]
//		id        header webhook-id
//		tolerance 5m
//		secret_encoding raw|base64|hex|whsec
//		status 401
//		methods POST
//		max_body 1MiB
//	}
func (h *HMACHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if args := d.RemainingArgs(); len(args) > 0 {
		if len(args) < 2 {
			return d.Err("webhook_hmac: the short form is `webhook_hmac <preset> <secret>...`, e.g. webhook_hmac github {env.GITHUB_WEBHOOK_SECRET}")
		}
		h.Preset, h.Secrets = args[0], append(h.Secrets, args[1:]...)
	}
	for d.NextBlock(0) {
		if ok, err := h.parseCommon(d); ok {
			if err != nil {
				return err
			}
			continue
		}
		sub := d.Val()
		args := d.RemainingArgs()
		one := func() (string, error) {
			if len(args) != 1 {
				return "", d.Errf("webhook_hmac: %s takes one value", sub)
			}
			return args[0], nil
		}
		if ok, err := parseSignedStringOption(d, "webhook_hmac", sub, args, &h.Message, &h.Tolerance, &h.Timestamp, &h.ID); ok {
			if err != nil {
				return err
			}
			continue
		}
		var err error
		switch sub {
		case "preset":
			h.Preset, err = one()
		case "secret":
			var s string
			if s, err = one(); err == nil {
				h.Secrets = append(h.Secrets, s)
			}
		case "secret_encoding":
			h.SecretEncoding, err = one()
		case "header":
			h.Header, err = one()
		case "query":
			h.Query, err = one()
		case "algorithm":
			h.Algorithm, err = one()
		case "encoding":
			h.Encoding, err = one()
		case "prefix":
			var p string
			if p, err = one(); err == nil {
				h.Prefix = &p
			}
		default:
			return d.Errf("webhook_hmac: unknown sub-directive %q", sub)
		}
		if err != nil {
			return err
		}
	}
	if len(h.Secrets) == 0 {
		return d.Err("webhook_hmac: a secret is required: `webhook_hmac github {env.GITHUB_WEBHOOK_SECRET}` or a `secret` line in the block")
	}
	return nil
}

// signedStringSources turns the timestamp and id options that
// webhook_hmac and webhook_ed25519 share into validator sources (nil when
// not configured).
func signedStringSources(dir string, timestamp, id *SourceConfig) (*validators.TimestampSource, *validators.Source, error) {
	var ts *validators.TimestampSource
	if timestamp != nil {
		src, err := validators.ParseSource(timestamp.From, timestamp.Name)
		if err != nil {
			return nil, nil, errorf("%s: timestamp: %v", dir, err)
		}
		ts = &validators.TimestampSource{Source: src}
		if timestamp.Format != "" {
			if ts.Format, err = validators.ParseTimestampFormat(timestamp.Format); err != nil {
				return nil, nil, errorf("%s: timestamp: %v", dir, err)
			}
		}
	}
	var idSrc *validators.Source
	if id != nil {
		src, err := validators.ParseSource(id.From, id.Name)
		if err != nil {
			return nil, nil, errorf("%s: id: %v", dir, err)
		}
		idSrc = &src
	}
	return ts, idSrc, nil
}

// parseSignedStringOption parses the sub-directives of the signed string
// that webhook_hmac and webhook_ed25519 share (message, tolerance,
// timestamp, id) and reports whether sub was one of them.
func parseSignedStringOption(d *caddyfile.Dispenser, dir, sub string, args []string, message *string, tolerance *caddy.Duration, timestamp, id **SourceConfig) (bool, error) {
	switch sub {
	case "message", "tolerance":
		if len(args) != 1 {
			return true, d.Errf("%s: %s takes one value", dir, sub)
		}
		if sub == "message" {
			*message = undoHeaderShorthand(args[0])
			return true, nil
		}
		v, err := parseDuration(d, dir+": tolerance", args[0])
		*tolerance = v
		return true, err
	case "timestamp":
		if len(args) < 2 || len(args) > 3 {
			return true, d.Errf("%s: timestamp takes header|query|field <name> [unix|unix_ms|rfc3339]", dir)
		}
		*timestamp = &SourceConfig{From: args[0], Name: args[1]}
		if len(args) == 3 {
			(*timestamp).Format = args[2]
		}
		return true, nil
	case "id":
		if len(args) != 2 {
			return true, d.Errf("%s: id takes header|query|field <name>", dir)
		}
		*id = &SourceConfig{From: args[0], Name: args[1]}
		return true, nil
	}
	return false, nil
}

// caddyHeaderPlaceholder is what the Caddyfile adapter makes of the
// {header.NAME} shorthand in every token before a directive sees it.
var caddyHeaderPlaceholder = regexp.MustCompile(`\{http\.request\.header\.([\w-]*)\}`)

// undoHeaderShorthand gives a message template back the {header.NAME}
// that the Caddyfile adapter rewrote to {http.request.header.NAME}: the
// template is signed-string syntax, not a Caddy placeholder.
func undoHeaderShorthand(message string) string {
	return caddyHeaderPlaceholder.ReplaceAllString(message, "{header.$1}")
}

// Interface guards
var (
	_ caddy.Provisioner           = (*HMACHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*HMACHandler)(nil)
	_ caddyfile.Unmarshaler       = (*HMACHandler)(nil)
)
