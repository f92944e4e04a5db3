package caddymodule

import (
	"bytes"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/validators"
)

func init() {
	registerHandler[HMACHandler]()
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
	// SignedString: message, timestamp, id and tolerance (default 5m, or
	// the preset's: linear 60s).
	SignedString

	condition
	hmac   validators.HMAC
	answer answerFunc
}

// SourceConfig names where a value of the request is read: the
// `timestamp` and `id` lines of webhook_hmac and webhook_ed25519 and the
// `from` line of webhook_jwt.
type SourceConfig struct {
	// From is header, query (a URL query parameter) or field (a field of a
	// JSON or form body).
	From string `json:"from"`
	// Name is the header's, parameter's or field's name.
	Name string `json:"name"`
	// Format is how a timestamp is written: unix (the default), unix_ms
	// or rfc3339. Only timestamps have one.
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
			return fmt.Errorf("%s: secret #%d (%s): %v", dir, i+1, placeholderHint(h.Secrets[i]), err)
		}
	}
	switch {
	case h.Header != "" && h.Query != "":
		return fmt.Errorf("%s: use only one of header and query", dir)
	case h.Header != "":
		if h.hmac.Signature, err = validators.ParseSource("header", h.Header); err != nil {
			return fmt.Errorf("%s: header: %v", dir, err)
		}
	case h.Query != "":
		if h.hmac.Signature, err = validators.ParseSource("query", h.Query); err != nil {
			return fmt.Errorf("%s: query: %v", dir, err)
		}
	case h.Preset == "":
		return fmt.Errorf("%s: where is the signature? add `header <name>` (or `query <name>`), or use a preset such as `webhook_hmac github {env.SECRET}`", dir)
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
	if err := h.SignedString.override(dir, &h.hmac.Message, &h.hmac.Timestamp, &h.hmac.ID, &h.hmac.Tolerance); err != nil {
		return err
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
			return d.Err("the short form is `webhook_hmac <preset> <secret>...`, e.g. webhook_hmac github {env.GITHUB_WEBHOOK_SECRET}")
		}
		h.Preset, h.Secrets = args[0], append(h.Secrets, args[1:]...)
	}
	err := parseBlock(d, 0, h.conditionSubdirectives(),
		h.SignedString.subdirectives(),
		subTable{
			"preset":          setOne(&h.Preset),
			"secret":          appendOne(&h.Secrets),
			"secret_encoding": setOne(&h.SecretEncoding),
			"header":          setOne(&h.Header),
			"query":           setOne(&h.Query),
			"algorithm":       setOne(&h.Algorithm),
			"encoding":        setOne(&h.Encoding),
			"prefix":          setOptional(&h.Prefix),
		})
	if err != nil {
		return err
	}
	if len(h.Secrets) == 0 {
		return d.Err("a secret is required: `webhook_hmac github {env.GITHUB_WEBHOOK_SECRET}` or a `secret` line in the block")
	}
	return nil
}

// SignedString is the signed string that webhook_hmac and webhook_ed25519
// share: what is signed, and where its {timestamp} and {id} come from.
// What is set here overrides the preset's.
type SignedString struct {
	// Message is the signed-string template: {body} {timestamp} {id}
	// {header.NAME} {url}.
	Message string `json:"message,omitempty"`
	// Timestamp is the source of {timestamp}, with its format.
	Timestamp *SourceConfig `json:"timestamp,omitempty"`
	// ID is the source of {id}.
	ID *SourceConfig `json:"id,omitempty"`
	// Tolerance is the largest |now - timestamp| accepted whenever a
	// timestamp is signed.
	Tolerance caddy.Duration `json:"tolerance,omitempty"`
}

// override sets the validator's signed-string fields that are configured,
// keeping the preset's for the others.
func (s *SignedString) override(dir string, message *string, timestamp **validators.TimestampSource, id **validators.Source, tolerance *time.Duration) error {
	if s.Message != "" {
		*message = s.Message
	}
	if s.Timestamp != nil {
		src, err := validators.ParseSource(s.Timestamp.From, s.Timestamp.Name)
		if err != nil {
			return fmt.Errorf("%s: timestamp: %v", dir, err)
		}
		ts := &validators.TimestampSource{Source: src}
		if s.Timestamp.Format != "" {
			if ts.Format, err = validators.ParseTimestampFormat(s.Timestamp.Format); err != nil {
				return fmt.Errorf("%s: timestamp: %v", dir, err)
			}
		}
		*timestamp = ts
	}
	if s.ID != nil {
		src, err := validators.ParseSource(s.ID.From, s.ID.Name)
		if err != nil {
			return fmt.Errorf("%s: id: %v", dir, err)
		}
		*id = &src
	}
	if s.Tolerance > 0 {
		*tolerance = time.Duration(s.Tolerance)
	}
	return nil
}

// subdirectives are the Caddyfile lines of the signed string: message,
// tolerance, timestamp and id.
func (s *SignedString) subdirectives() subTable {
	return subTable{
		"message": func(l subLine) error {
			v, err := l.one()
			s.Message = undoHeaderShorthand(v)
			return err
		},
		"tolerance": setDuration(&s.Tolerance),
		"timestamp": func(l subLine) error {
			if len(l.args) < 2 || len(l.args) > 3 {
				return l.errf("timestamp takes header|query|field <name> [unix|unix_ms|rfc3339]")
			}
			s.Timestamp = &SourceConfig{From: l.args[0], Name: l.args[1]}
			if len(l.args) == 3 {
				s.Timestamp.Format = l.args[2]
			}
			return nil
		},
		"id": setSource(&s.ID),
	}
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
