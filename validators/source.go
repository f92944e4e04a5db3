package validators

import (
	"fmt"
	"net/textproto"
	"strings"
)

// SourceKind says where in a request a credential (token, signature,
// timestamp, id, JWT) is found.
type SourceKind string

// The places a credential can come from. The names are the Caddyfile
// keywords (`header <name>`, `query <name>`, `field <name>`).
const (
	// SourceHeader reads the first value of a request header.
	SourceHeader SourceKind = "header"
	// SourceQuery reads the first value of a URL query parameter.
	SourceQuery SourceKind = "query"
	// SourceField reads a top-level field of a JSON or form body.
	SourceField SourceKind = "field"
)

// Source names one place in a request that carries a value, such as
// `header Authorization` or `field token`.
type Source struct {
	Kind SourceKind
	Name string
	// JSONOnly makes a field source read the body as JSON whatever its
	// Content-Type says: the Content-Type header is not signed, so a
	// sender's signed JSON field (Linear's webhookTimestamp) must not turn
	// into a form field an attacker chooses by changing it.
	JSONOnly bool
}

// ParseSource builds a Source from its Caddyfile words. Kind is matched
// case-insensitively; header names are canonicalized once here so that
// every request looks the header up without canonicalizing it again.
func ParseSource(kind, name string) (Source, error) {
	k := SourceKind(strings.ToLower(kind))
	switch k {
	case SourceHeader, SourceQuery, SourceField:
	default:
		return Source{}, fmt.Errorf("unknown source %q: use header <name>, query <name> or field <name>", kind)
	}
	if name == "" {
		return Source{}, fmt.Errorf("source %s needs a name (e.g. %s %s)", k, k, exampleSourceName(k))
	}
	if k == SourceHeader {
		name = canonicalHeader(name)
	}
	return Source{Kind: k, Name: name}, nil
}

// exampleSourceName makes config errors show a concrete fix.
func exampleSourceName(k SourceKind) string {
	if k == SourceHeader {
		return "Authorization"
	}
	return "token"
}

// check reports a configuration error for a Source that ParseSource would
// not have produced (zero value, unknown kind, empty name). Conditions call
// it from Validate, so a struct built by hand is held to the same rules.
func (s Source) check() error {
	switch s.Kind {
	case SourceHeader, SourceQuery, SourceField:
	case "":
		return fmt.Errorf("no source configured: use header <name>, query <name> or field <name>")
	default:
		return fmt.Errorf("unknown source %q: use header <name>, query <name> or field <name>", string(s.Kind))
	}
	if s.Name == "" {
		return fmt.Errorf("source %s needs a name (e.g. %s %s)", s.Kind, s.Kind, exampleSourceName(s.Kind))
	}
	return nil
}

// String is the Caddyfile form of the source, e.g. "header Authorization".
func (s Source) String() string {
	return string(s.Kind) + " " + s.Name
}

// The reasonRepeated* are the rejections of a request that sends a value a
// condition checks (a signature, timestamp, id, token, or a header the
// signed message includes) more than once. The conditions would check one
// copy while Caddy's {http.request.header.*} placeholder joins them all
// ("a,b"), so a dedupe key or a launch field could differ from what was
// signed: a replay with a second webhook-id would pass the signature and
// miss the dedupe window. No sender sends these twice; such a request is
// refused (README.md, "Hostile input").
const (
	reasonRepeatedSignature = "signature sent more than once"
	reasonRepeatedTimestamp = "timestamp sent more than once"
	reasonRepeatedID        = "id sent more than once"
	reasonRepeatedToken     = "token sent more than once"
)

// repeatedSignedHeader is the rejection of a header the signed message
// includes ({header.NAME}, a name from the configuration) sent twice.
func repeatedSignedHeader(name string) string {
	return "signed header " + name + " sent more than once"
}

// Get returns the value the source names in r and whether it is present. A
// present value may still be empty; conditions treat empty as missing. For
// a header, query parameter or form field sent several times, the first
// value counts: conditions use GetOnce, which refuses such a request.
func (s Source) Get(r *Request) (string, bool) {
	v, ok, _ := s.GetOnce(r)
	return v, ok
}

// GetOnce is Get, and whether the header, query parameter or form field
// came more than once (a JSON body cannot repeat a member: the body scan
// refuses duplicate keys).
func (s Source) GetOnce(r *Request) (v string, ok, repeated bool) {
	switch s.Kind {
	case SourceHeader:
		// Direct map access when the name is already canonical (ParseSource
		// and the presets make it so) avoids canonicalizing per request.
		vals, ok := r.Header[s.Name]
		if !ok {
			vals = r.Header.Values(s.Name)
		}
		if len(vals) == 0 {
			return "", false, false
		}
		return vals[0], true, len(vals) > 1
	case SourceQuery:
		vals := r.QueryValues()[s.Name]
		if len(vals) == 0 {
			return "", false, false
		}
		return vals[0], true, len(vals) > 1
	case SourceField:
		if s.JSONOnly {
			v, ok := r.JSONField(s.Name)
			return v, ok, false
		}
		v, ok := r.Field(s.Name)
		return v, ok, ok && r.IsForm() && len(r.Form()[s.Name]) > 1
	default:
		return "", false, false
	}
}

// cutPrefixFold strips prefix from s when s starts with it, ignoring ASCII
// case. Prefixes are scheme markers ("Bearer ", "sha256=", "v0="), never
// secret material, and HTTP auth schemes are case-insensitive (RFC 9110
// §11.1), so a sender writing "bearer " or "SHA256=" is not turned away.
func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) {
		return s, false
	}
	for i := 0; i < len(prefix); i++ {
		if lowerASCII(s[i]) != lowerASCII(prefix[i]) {
			return s, false
		}
	}
	return s[len(prefix):], true
}

// lowerASCII folds only A-Z: Unicode folding (strings.EqualFold) would let
// multi-byte runes such as the Kelvin sign stand in for ASCII letters.
func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// canonicalHeader is the form net/http stores header names in, so that a
// configured name written in any case finds the header.
func canonicalHeader(name string) string {
	return textproto.CanonicalMIMEHeaderKey(name)
}
