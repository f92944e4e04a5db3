package validators

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SignOptions are the per-request inputs of HMAC.Sign besides the body.
type SignOptions struct {
	// Now is the signing time written into the timestamp; the zero value
	// means time.Now. Set it to reproduce a published example or to test
	// the receiver's tolerance.
	Now time.Time
	// ID is the value of {id}; when empty and the message signs {id}, a
	// random Standard Webhooks style id ("msg_...") is generated.
	ID string
	// URL is the trigger URL the request is sent to. It is needed when the
	// message signs {url} or when the signature, timestamp or id travels in
	// a query parameter.
	URL string
	// Header holds extra headers the sender sends too (Content-Type, or
	// the headers a {header.NAME} placeholder signs). Sign copies it and
	// never modifies it.
	Header http.Header
}

// Signed is what a sender sends for one body: the headers (extras, then
// timestamp, id and signature where the configuration puts them) and the
// URL with any query parameters the configuration puts there.
type Signed struct {
	// Header holds every header to send, canonical names.
	Header http.Header
	// URL is SignOptions.URL with the query parameters of Query appended
	// ("" when no URL was given).
	URL string
	// Query holds the parameters Sign added to the URL (timestamp, id or
	// signature configured as `query <name>`).
	Query url.Values
	// Timestamp is the signed timestamp as written ("" when none is
	// signed, or when it lives in the body).
	Timestamp string
	// ID is the signed id ("" when {id} is not signed).
	ID string
	// Notes are warnings for the person sending the request: what the
	// receiver will do with it that they may not expect (a timestamp that
	// must be inside the body, a signed header that is not sent, a time
	// outside the tolerance). They never contain the secret.
	Notes []string
}

// Sign produces what a sender configured like h sends for body: the
// signature made with the FIRST secret over the signed string, built by the
// very template code Verify uses, with the timestamp (Now, in the
// configured format), the id and the signature placed where the
// configuration says. Whatever Sign returns, Verify accepts while the
// timestamp is within tolerance.
//
// A timestamp read from a body field (the linear preset's webhookTimestamp)
// is not written by Sign: the body is signed as it is, and a note says so.
// Errors never contain a secret or the signature.
func (h *HMAC) Sign(body []byte, opts SignOptions) (*Signed, error) {
	p := h.plan
	if p == nil {
		var err error
		if p, err = h.build(); err != nil {
			return nil, fmt.Errorf("%s: %w", DirectiveHMAC, err)
		}
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	uses := messageUses(p.parts)

	out := newSigned(opts)
	place := func(src Source, value string) error { return out.place(DirectiveHMAC, src, value, opts.URL) }

	// The timestamp: Stripe's is inside its signature header, the others
	// go where their source says, except a body field, which the caller
	// writes into the body.
	var ts string
	switch {
	case p.scheme == SchemeStripe:
		ts = strconv.FormatInt(now.Unix(), 10)
	case p.timestamp != nil && p.timestamp.Source.Kind == SourceField:
		out.Notes = append(out.Notes, bodyTimestampNote(p, out.Header, body, now))
		// Verify reads {timestamp} from the body too; the signer fills the
		// placeholder with the same value so the signed string matches.
		if v, ok := p.timestamp.Source.Get(&Request{Header: out.Header, Body: body}); ok {
			ts = v
		}
	case p.timestamp != nil:
		ts = formatTimestamp(now, p.timestamp.Format)
		if err := place(p.timestamp.Source, ts); err != nil {
			return nil, err
		}
	}
	if p.scheme == SchemeStripe || (p.timestamp != nil && p.timestamp.Source.Kind != SourceField) {
		out.Timestamp = ts
		if !opts.Now.IsZero() {
			if d := time.Since(now); d > p.tolerance || d < -p.tolerance {
				out.Notes = append(out.Notes, fmt.Sprintf("the timestamp is %s away from now, outside the receiver's tolerance of %s: it will be rejected as \"timestamp outside tolerance\"", roundDuration(d), p.tolerance))
			}
		}
	}

	if p.id != nil {
		id := opts.ID
		switch {
		case p.id.Kind == SourceField:
			// Like a body timestamp, a body id is signed as the body has it.
			v, ok := (&Request{Header: out.Header, Body: body}).Field(p.id.Name)
			if !ok || v == "" {
				out.Notes = append(out.Notes, fmt.Sprintf("the id is body field %q, which the body does not have: the receiver will reject the request as \"missing id\"; add it to the body", p.id.Name))
			}
			id = v
		default:
			if id == "" {
				var err error
				if id, err = newMessageID(); err != nil {
					return nil, fmt.Errorf("%s: generating an id: %w", DirectiveHMAC, err)
				}
			}
			if err := place(*p.id, id); err != nil {
				return nil, err
			}
		}
		out.ID = id
	}

	if p.signature.Kind == SourceQuery && uses.url {
		return nil, fmt.Errorf("%s: the message signs {url} but the signature goes in query parameter %s, so the URL would have to contain its own signature: send the signature in a header", DirectiveHMAC, p.signature.Name)
	}
	if p.signature.Kind == SourceQuery && opts.URL == "" {
		return nil, fmt.Errorf("%s: the signature goes in query parameter %s: give the trigger URL", DirectiveHMAC, p.signature.Name)
	}
	if uses.url && opts.URL == "" {
		return nil, fmt.Errorf("%s: the message signs {url}: give the trigger URL exactly as the receiver sees it (scheme://host/path?query)", DirectiveHMAC)
	}
	for _, name := range uses.headers {
		if len(out.Header[name]) == 0 {
			out.Notes = append(out.Notes, fmt.Sprintf("the message signs {header.%s}, but no %s header is sent: it is signed as empty; add the header if the receiver expects it", name, name))
		}
	}

	// The URL as sent, with the timestamp and id parameters, is what {url}
	// covers; the signature parameter comes last and is never signed.
	reqURL := ""
	if opts.URL != "" {
		var err error
		if reqURL, err = withQuery(opts.URL, out.Query); err != nil {
			return nil, err
		}
	}
	req := &Request{Method: http.MethodPost, URL: reqURL, Header: out.Header, Body: body, Now: func() time.Time { return now }}
	if reqURL != "" {
		u, _ := url.Parse(reqURL)
		req.Query, req.Host, req.Path = u.Query(), u.Host, u.Path
	}

	k := p.keys[0]
	st := k.get()
	st.mac.Reset()
	p.writeMessage(st, req, ts, out.ID)
	sig := p.encoding.encode(st.mac.Sum(nil))
	k.put(st)

	var value string
	switch p.scheme {
	case SchemeStripe:
		value = "t=" + ts + ",v1=" + sig
	case SchemeStandard:
		value = "v1," + sig
	default:
		value = p.prefix + sig
	}
	switch p.signature.Kind {
	case SourceHeader:
		out.Header.Set(p.signature.Name, value)
		out.URL = reqURL
	case SourceQuery:
		out.Query.Set(p.signature.Name, value)
		var err error
		if out.URL, err = withQuery(reqURL, url.Values{p.signature.Name: {value}}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// newSigned starts what Sign returns, with a copy of the extra headers.
func newSigned(opts SignOptions) *Signed {
	out := &Signed{Header: http.Header{}, Query: url.Values{}}
	for name, vals := range opts.Header {
		for _, v := range vals {
			out.Header.Add(name, v)
		}
	}
	return out
}

// place puts a signed value (timestamp, id) where its source says: a
// header, or the query of the trigger URL. A body field is the caller's
// to write: the signer never changes the body.
func (out *Signed) place(directive string, src Source, value, triggerURL string) error {
	switch src.Kind {
	case SourceHeader:
		out.Header.Set(src.Name, value)
	case SourceQuery:
		if triggerURL == "" {
			return fmt.Errorf("%s: %s: the value goes in the URL's query: give the trigger URL", directive, src)
		}
		out.Query.Set(src.Name, value)
	default:
		return fmt.Errorf("%s: %s: a value inside the body cannot be added by the signer: put it in the body yourself", directive, src)
	}
	return nil
}

// bodyTimestampNote tells the caller that the timestamp must be inside the
// signed body, and whether the body's is there and fresh.
func bodyTimestampNote(p *hmacPlan, header http.Header, body []byte, now time.Time) string {
	name := p.timestamp.Source.Name
	example := formatTimestamp(now, p.timestamp.Format)
	v, ok := (&Request{Header: header, Body: body}).Field(name)
	if !ok || v == "" {
		return fmt.Sprintf("the timestamp is body field %q, which the body does not have: the receiver will reject the request as \"missing timestamp\"; add \"%s\": %s (now) to the body and sign again", name, name, example)
	}
	t, err := p.timestamp.Format.Parse(v)
	if err != nil {
		return fmt.Sprintf("the timestamp is body field %q, whose value is not in %s format: the receiver will reject the request as \"malformed timestamp\"; use e.g. %s (now)", name, p.timestamp.Format, example)
	}
	if d := now.Sub(t); d > p.tolerance || d < -p.tolerance {
		return fmt.Sprintf("the timestamp is body field %q, %s away from the signing time, outside the receiver's tolerance of %s: set it to %s (now) and sign again", name, roundDuration(d), p.tolerance, example)
	}
	return fmt.Sprintf("the timestamp is body field %q, signed as part of the body: send within %s of it", name, p.tolerance)
}

// formatTimestamp writes t the way a sender using format f does.
func formatTimestamp(t time.Time, f TimestampFormat) string {
	switch f {
	case TimestampUnixMilli:
		return strconv.FormatInt(t.UnixMilli(), 10)
	case TimestampRFC3339:
		return t.UTC().Format(time.RFC3339)
	default:
		return strconv.FormatInt(t.Unix(), 10)
	}
}

// encode writes a MAC as the sender does: hex in lower case, base64
// padded, base64url unpadded (as URL-safe tokens usually are; Verify
// accepts either form).
func (e sigEncoding) encode(mac []byte) string {
	switch e {
	case encBase64:
		return base64.StdEncoding.EncodeToString(mac)
	case encBase64URL:
		return base64.RawURLEncoding.EncodeToString(mac)
	default:
		return hex.EncodeToString(mac)
	}
}

// withQuery appends params to rawURL's query, keeping the query already
// there byte for byte (a signed {url} must be the URL exactly as sent). A
// URL without a path gets "/", as an HTTP client sends it.
func withQuery(rawURL string, params url.Values) (string, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("%s: the URL %q is not an absolute http:// or https:// URL", DirectiveHMAC, redactUserinfo(rawURL))
	}
	base, _, _ := strings.Cut(rawURL, "#") // a fragment is never sent
	if u.Path == "" && u.RawQuery == "" && !strings.HasSuffix(base, "?") {
		base += "/"
	} else if u.Path == "" {
		i := strings.IndexByte(base, '?')
		base = base[:i] + "/" + base[i:]
	}
	if len(params) == 0 {
		return base, nil
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
		if strings.HasSuffix(base, "?") || strings.HasSuffix(base, "&") {
			sep = ""
		}
	}
	return base + sep + params.Encode(), nil
}

// redactUserinfo hides a password in a URL shown in an error.
func redactUserinfo(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// newMessageID makes a random id in Standard Webhooks' style: "msg_" and
// 26 characters of base32 (128 bits).
func newMessageID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return "msg_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])), nil
}

// roundDuration keeps notes readable.
func roundDuration(d time.Duration) time.Duration {
	if d < 0 {
		d = -d
	}
	return d.Round(time.Second)
}
