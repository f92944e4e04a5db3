package caddymodule

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/validators"
)

func init() {
	registerHandler[JWTHandler]()
}

// JWTHandler is the `webhook_jwt` condition: a JSON Web Token signed with
// an HMAC secret, a PEM public key or a key of a JWKS fetched from a fixed
// URL. Its verified claims become {webhook.jwt.<claim>} placeholders.
type JWTHandler struct {
	Common
	// From is where the token is: header (default Authorization, "Bearer "
	// stripped), query or field.
	From *SourceConfig `json:"from,omitempty"`
	// Secrets are HMAC keys for HS256/384/512 ({env.*}/{file.*} expanded
	// at provision, at least 32 bytes); any one may have signed the token.
	Secrets []string `json:"secrets,omitempty"`
	// SecretEncoding is how a secret string becomes key bytes: raw
	// (default), base64 or hex.
	SecretEncoding string `json:"secret_encoding,omitempty"`
	// PublicKeys are PEM files of RSA, ECDSA or Ed25519 public keys (or
	// certificates); each file may hold several.
	PublicKeys []string `json:"public_keys,omitempty"`
	// JWKSURL is a JSON Web Key Set fetched at provision (a failure is a
	// config error), cached, and refreshed on an unknown kid at most once
	// per 5 minutes and in the background when older than an hour.
	JWKSURL string `json:"jwks_url,omitempty"`
	// Algorithms is the allow-list of "alg" values (default: what the
	// configured keys can verify). "none" is a config error.
	Algorithms []string `json:"algorithms,omitempty"`
	// Issuer must equal the token's iss.
	Issuer string `json:"issuer,omitempty"`
	// Audience: the token's aud must contain one of these.
	Audience []string `json:"audience,omitempty"`
	// Leeway is the clock skew allowed on exp, nbf, iat and max_age.
	Leeway caddy.Duration `json:"leeway,omitempty"`
	// MaxAge requires an iat no older than this.
	MaxAge caddy.Duration `json:"max_age,omitempty"`
	// Claims must each equal one of their values.
	Claims []JWTClaimConfig `json:"claims,omitempty"`
	// RequireExp refuses tokens without exp; true when unset.
	RequireExp *bool `json:"require_exp,omitempty"`

	condition
	jwt validators.JWT
}

// JWTClaimConfig is one `claim <name> <value>...` line: the claim must
// equal one of the values.
type JWTClaimConfig struct {
	// Name is the claim's name, e.g. repository.
	Name string `json:"name"`
	// Values are the accepted values: a string claim is compared as it
	// is, any other JSON value by its compact JSON text (42, true,
	// ["a","b"]).
	Values []string `json:"values"`
}

// CaddyModule returns the Caddy module information.
func (*JWTHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.webhook_jwt", New: func() caddy.Module { return new(JWTHandler) }}
}

// Provision loads the keys (reading PEM files and fetching the JWKS now,
// so that a bad key source stops Caddy from starting rather than failing
// every webhook) and checks the configuration.
func (h *JWTHandler) Provision(ctx caddy.Context) error {
	if err := h.provision(ctx); err != nil {
		return err
	}
	const dir = validators.DirectiveJWT
	if len(h.Secrets) > 0 {
		secrets, err := expandSecrets(dir, h.Secrets)
		if err != nil {
			return err
		}
		for i, s := range secrets {
			key, err := validators.DecodeSecret(s, h.SecretEncoding)
			if err != nil {
				return fmt.Errorf("%s: secret #%d: %v", dir, i+1, err)
			}
			h.jwt.Secrets = append(h.jwt.Secrets, key)
		}
	}

	repl := caddy.NewReplacer()
	for _, p := range h.PublicKeys {
		path, err := repl.ReplaceOrErr(p, true, true)
		if err != nil || path == "" {
			return fmt.Errorf("%s: public_key %s: the path is empty after expanding placeholders: set the environment variable it names", dir, p)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("%s: public_key %s: %v: give the path of a PEM public key file readable by Caddy", dir, path, err)
		}
		keys, err := validators.ParsePublicKeysPEM(data)
		if err != nil {
			return fmt.Errorf("%s: public_key %s: %v", dir, path, err)
		}
		h.jwt.PublicKeys = append(h.jwt.PublicKeys, keys...)
	}

	if h.JWKSURL != "" {
		u, err := repl.ReplaceOrErr(h.JWKSURL, true, true)
		if err != nil || u == "" {
			return fmt.Errorf("%s: jwks_url %s is empty after expanding placeholders: set the environment variable it names", dir, h.JWKSURL)
		}
		warn, err := validators.JWKSURLWarning(u)
		if err != nil {
			return fmt.Errorf("%s: %v", dir, err)
		}
		if warn {
			h.logger.Warn("webhook_jwt: jwks_url is plain http to a non-loopback host: anyone on the path can swap the keys; use https", zap.String("jwks_url", validators.StripURLCredentialsAndQuery(u)))
		}
		jwks := &validators.JWKS{
			URL:     u,
			Context: ctx,
			Warn: func(msg string, err error) {
				h.logger.Warn(msg, zap.String("jwks_url", validators.StripURLCredentialsAndQuery(u)), zap.Error(err))
			},
		}
		if err := jwks.Load(ctx); err != nil {
			return fmt.Errorf("%s: %v: check that the key set URL is right and reachable from this server", dir, err)
		}
		h.jwt.JWKS = jwks
	}

	if h.From != nil {
		src, err := validators.ParseSource(h.From.From, h.From.Name)
		if err != nil {
			return fmt.Errorf("%s: from: %v", dir, err)
		}
		h.jwt.Source = src
	}
	h.jwt.Algorithms = h.Algorithms
	h.jwt.Issuer = h.Issuer
	h.jwt.Audience = h.Audience
	h.jwt.Leeway = time.Duration(h.Leeway)
	h.jwt.MaxAge = time.Duration(h.MaxAge)
	for _, c := range h.Claims {
		h.jwt.Claims = append(h.jwt.Claims, validators.ClaimMatch{Name: c.Name, Values: c.Values})
	}
	h.jwt.ExpOptional = h.RequireExp != nil && !*h.RequireExp
	return h.jwt.Validate()
}

// ServeHTTP passes requests that carry a valid token, with its claims in
// {webhook.jwt.*} for the handlers after it.
func (h *JWTHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return h.serve(&h.Common, validators.DirectiveJWT, w, r, next, h.jwt.Verify)
}

// UnmarshalCaddyfile parses
//
//	webhook_jwt {
//		from       header Authorization | query <name> | field <name>
//		secret     {env.JWT_SECRET}
//		secret_encoding raw | base64 | hex
//		public_key /etc/caddy/sender.pem
//		jwks_url   https://issuer.example/.well-known/jwks.json
//		algorithms RS256 ES256
//		issuer     https://issuer.example
//		audience   my-trigger
//		leeway     30s
//		max_age    10m
//		claim      repository org/repo
//		require_exp on | off
//		status 401
//		methods POST
//		max_body 1MiB
//	}
func (h *JWTHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.Err("takes a block, e.g. webhook_jwt { secret {env.JWT_SECRET} } or webhook_jwt { jwks_url https://issuer.example/.well-known/jwks.json }")
	}
	err := parseBlock(d, 0, h.conditionSubdirectives(), subTable{
		"from":            setSource(&h.From),
		"secret":          appendOne(&h.Secrets),
		"secret_encoding": setOne(&h.SecretEncoding),
		"public_key":      appendOne(&h.PublicKeys),
		"jwks_url": func(l subLine) error {
			if h.JWKSURL != "" {
				return l.errf("jwks_url given twice: one key set per webhook_jwt (its keys may rotate freely)")
			}
			return setOne(&h.JWKSURL)(l)
		},
		"algorithms": func(l subLine) error {
			if len(l.args) == 0 {
				return l.errf("algorithms takes one or more of %s", strings.Join(validators.JWTAlgorithms(), " "))
			}
			h.Algorithms = append(h.Algorithms, l.args...)
			return nil
		},
		"issuer":   setOne(&h.Issuer),
		"audience": appendSome(&h.Audience),
		"leeway":   setDuration(&h.Leeway),
		"max_age":  setDuration(&h.MaxAge),
		"claim": func(l subLine) error {
			if len(l.args) < 2 {
				return l.errf("claim takes a name and one or more values: claim <name> <value>...")
			}
			h.Claims = append(h.Claims, JWTClaimConfig{Name: l.args[0], Values: l.args[1:]})
			return nil
		},
		"require_exp": func(l subLine) error {
			v, err := l.one()
			if err != nil {
				return err
			}
			switch strings.ToLower(v) {
			case "on", "true", "yes":
				on := true
				h.RequireExp = &on
			case "off", "false", "no":
				off := false
				h.RequireExp = &off
			default:
				return l.errf("require_exp takes on or off, got %q", v)
			}
			return nil
		},
	})
	if err != nil {
		return err
	}
	if len(h.Secrets) == 0 && len(h.PublicKeys) == 0 && h.JWKSURL == "" {
		return d.Err("a key is required: add `secret {env.JWT_SECRET}`, `public_key <file.pem>` or `jwks_url <https://...>`")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*JWTHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*JWTHandler)(nil)
	_ caddyfile.Unmarshaler       = (*JWTHandler)(nil)
)
