package caddymodule

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/hooklaunch/caddy-valohai/validators"
)

func init() {
	registerHandler[TimestampHandler]()
}

// TimestampHandler is the `webhook_timestamp` condition: it rejects
// requests whose timestamp is missing, malformed, stale or from the
// future.
//
// It stops replays only when the timestamp is signed (a webhook_hmac
// message with {header.NAME}, a JWT, a body field under an HMAC over the
// body); an unsigned one is replaced by a replayer at will. The hmac
// presets slack, stripe, standard and linear already check their signed
// timestamps.
type TimestampHandler struct {
	Common
	// Header carrying the timestamp.
	Header string `json:"header,omitempty"`
	// Query parameter carrying the timestamp.
	Query string `json:"query,omitempty"`
	// Field of a JSON or form body carrying the timestamp.
	Field string `json:"field,omitempty"`
	// Format is unix, unix_ms, rfc3339, http_date or auto (the default):
	// auto reads up to 11 digits as unix seconds, 13 digits as unix
	// milliseconds, then RFC 3339, then an HTTP date.
	Format string `json:"format,omitempty"`
	// Tolerance is the largest allowed distance between the timestamp and
	// the server's clock, past or future (default 60s).
	Tolerance caddy.Duration `json:"tolerance,omitempty"`

	condition
	check validators.Timestamp
}

// CaddyModule returns the Caddy module information.
func (*TimestampHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.webhook_timestamp", New: func() caddy.Module { return new(TimestampHandler) }}
}

// Provision checks the configuration.
func (h *TimestampHandler) Provision(ctx caddy.Context) error {
	if err := h.provision(ctx); err != nil {
		return err
	}
	const dir = validators.DirectiveTimestamp
	if h.Header == "" && h.Query == "" && h.Field == "" {
		return fmt.Errorf("%s: where is the timestamp? use `webhook_timestamp header X-Timestamp`, or `query <name>` / `field <name>` in the block", dir)
	}
	src, err := oneSource(dir, h.Header, h.Query, h.Field, "")
	if err != nil {
		return err
	}
	format, err := validators.ParseFreshnessFormat(h.Format)
	if err != nil {
		return fmt.Errorf("%s: format: %v", dir, err)
	}
	if h.Tolerance < 0 {
		return fmt.Errorf("%s: tolerance %s is negative: use a positive duration such as 60s", dir, time.Duration(h.Tolerance))
	}
	h.check = validators.Timestamp{Source: src, Format: format, Tolerance: time.Duration(h.Tolerance)}
	return h.check.Validate()
}

// ServeHTTP passes requests whose timestamp is within the tolerance.
func (h *TimestampHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return h.serve(&h.Common, validators.DirectiveTimestamp, w, r, next, h.check.Verify)
}

// UnmarshalCaddyfile parses
//
//	webhook_timestamp header|query|field <name>
//	webhook_timestamp {
//		header    X-Timestamp | query <name> | field <name>
//		format    unix|unix_ms|rfc3339|http_date|auto
//		tolerance 60s
//		status 401
//		methods POST
//		max_body 1MiB
//	}
func (h *TimestampHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	switch args := d.RemainingArgs(); len(args) {
	case 0:
	case 2:
		if err := h.setSource(d, args[0], args[1]); err != nil {
			return err
		}
	default:
		return d.Err("the short form is `webhook_timestamp header|query|field <name>`, e.g. webhook_timestamp header X-Timestamp")
	}
	source := func(l subLine) error {
		v, err := l.one()
		if err != nil {
			return err
		}
		return h.setSource(l.d, l.name, v)
	}
	return parseBlock(d, 0, h.conditionSubdirectives(), subTable{
		"header": source,
		"query":  source,
		"field":  source,
		"format": func(l subLine) error {
			v, err := l.one()
			if err != nil {
				return err
			}
			if _, err := validators.ParseFreshnessFormat(v); err != nil {
				return l.errf("format: %v", err)
			}
			h.Format = v
			return nil
		},
		"tolerance": setDuration(&h.Tolerance),
	})
}

// setSource records where the timestamp is; a second source is an error,
// as only one timestamp can be checked.
func (h *TimestampHandler) setSource(d *caddyfile.Dispenser, kind, name string) error {
	if h.Header != "" || h.Query != "" || h.Field != "" {
		return d.Err("the timestamp has one source: use only one of header, query and field")
	}
	switch strings.ToLower(kind) {
	case "header":
		h.Header = name
	case "query":
		h.Query = name
	case "field":
		h.Field = name
	default:
		return d.Errf("unknown source %q: use header <name>, query <name> or field <name>", kind)
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*TimestampHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*TimestampHandler)(nil)
	_ caddyfile.Unmarshaler       = (*TimestampHandler)(nil)
)
