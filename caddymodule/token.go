package caddymodule

import (
	"fmt"
	"net/http"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/hooklaunch/caddy-valohai/validators"
)

func init() {
	registerHandler[TokenHandler]()
}

// TokenHandler is the `webhook_token` condition: a static shared secret in a
// header, query parameter or body field (Label Studio, V7, GitLab classic).
type TokenHandler struct {
	Common
	// Secrets are the accepted tokens ({env.*}/{file.*} expanded at
	// provision); any one may match.
	Secrets []string `json:"secrets,omitempty"`
	// Header carrying the token (default Authorization).
	Header string `json:"header,omitempty"`
	// Query parameter carrying the token.
	Query string `json:"query,omitempty"`
	// Field of a JSON or form body carrying the token.
	Field string `json:"field,omitempty"`
	// Prefix stripped before comparing ("Bearer ", "secret="). When unset
	// and the token is in the Authorization header, an optional "Bearer "
	// is stripped.
	Prefix *string `json:"prefix,omitempty"`

	condition
	token validators.Token
}

// CaddyModule returns the Caddy module information.
func (*TokenHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.webhook_token", New: func() caddy.Module { return new(TokenHandler) }}
}

// Provision expands the secrets and checks the configuration.
func (h *TokenHandler) Provision(ctx caddy.Context) error {
	if err := h.provision(ctx); err != nil {
		return err
	}
	secrets, err := expandSecrets(validators.DirectiveToken, h.Secrets)
	if err != nil {
		return err
	}
	for _, s := range secrets {
		h.token.Secrets = append(h.token.Secrets, []byte(s))
	}
	src, err := oneSource(validators.DirectiveToken, h.Header, h.Query, h.Field, "Authorization")
	if err != nil {
		return err
	}
	h.token.Source = src
	switch {
	case h.Prefix != nil:
		h.token.Prefix = *h.Prefix
	case src.Kind == validators.SourceHeader && src.Name == "Authorization":
		h.token.Prefix, h.token.OptionalPrefix = "Bearer ", true
	}
	return h.token.Validate()
}

// ServeHTTP passes requests that present a configured token.
func (h *TokenHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return h.serve(&h.Common, validators.DirectiveToken, w, r, next, h.token.Verify)
}

// oneSource builds the Source of a credential from the header / query /
// field options, of which at most one may be set.
func oneSource(directive, header, query, field, defaultHeader string) (validators.Source, error) {
	kind, name, n := "header", defaultHeader, 0
	for _, c := range []struct{ kind, name string }{{"header", header}, {"query", query}, {"field", field}} {
		if c.name != "" {
			kind, name = c.kind, c.name
			n++
		}
	}
	if n > 1 {
		return validators.Source{}, fmt.Errorf("%s: use only one of header, query and field", directive)
	}
	src, err := validators.ParseSource(kind, name)
	if err != nil {
		return src, fmt.Errorf("%s: %v", directive, err)
	}
	return src, nil
}

// UnmarshalCaddyfile parses
//
//	webhook_token <secret>...
//	webhook_token {
//		secret {env.TOKEN}
//		header Authorization | query <name> | field <name>
//		prefix "secret="
//		status 401
//		methods POST
//		max_body 1MiB
//	}
func (h *TokenHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	h.Secrets = append(h.Secrets, d.RemainingArgs()...)
	err := parseBlock(d, 0, h.conditionSubdirectives(), subTable{
		"secret": appendOne(&h.Secrets),
		"header": setOne(&h.Header),
		"query":  setOne(&h.Query),
		"field":  setOne(&h.Field),
		"prefix": setOptional(&h.Prefix),
	})
	if err != nil {
		return err
	}
	if len(h.Secrets) == 0 {
		return d.Err("a secret is required: `webhook_token {env.TOKEN}` or a `secret` line in the block")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*TokenHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*TokenHandler)(nil)
	_ caddyfile.Unmarshaler       = (*TokenHandler)(nil)
)
