package validators

import (
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Sign produces what a sender configured like e sends for body, signed
// with priv: the signed string built by the template code Verify uses,
// the timestamp (opts.Now) and id placed where the configuration says,
// and the signature in the configured encoding and header layout
// ("v1a,<base64>" for SchemeStandardV1a). Whatever Sign returns, Verify
// accepts under priv's public key while the timestamp is within tolerance.
// PublicKeys is not consulted: the signer holds the private half.
func (e *Ed25519) Sign(priv ed25519.PrivateKey, body []byte, opts SignOptions) (*Signed, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%s: the private key is %d bytes, want %d", DirectiveEd25519, len(priv), ed25519.PrivateKeySize)
	}
	cfg := *e
	cfg.PublicKeys = []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)}
	p, err := cfg.build()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", DirectiveEd25519, err)
	}
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	out := newSigned(opts)
	place := func(src Source, value string) error { return out.place(DirectiveEd25519, src, value, opts.URL) }
	bodyReq := &Request{Header: out.Header, Body: body}

	var ts string
	if p.timestamp != nil {
		if p.timestamp.Source.Kind == SourceField {
			v, ok := bodyReq.Field(p.timestamp.Source.Name)
			if !ok || v == "" {
				out.Notes = append(out.Notes, fmt.Sprintf("the timestamp is body field %q, which the body does not have: the receiver will reject the request as \"missing timestamp\"", p.timestamp.Source.Name))
			}
			ts = v
		} else {
			ts = formatTimestamp(now, p.timestamp.Format)
			if err := place(p.timestamp.Source, ts); err != nil {
				return nil, err
			}
			out.Timestamp = ts
			if !opts.Now.IsZero() {
				if d := time.Since(now); d > p.tolerance || d < -p.tolerance {
					out.Notes = append(out.Notes, fmt.Sprintf("the timestamp is %s away from now, outside the receiver's tolerance of %s: it will be rejected as \"timestamp outside tolerance\"", roundDuration(d), p.tolerance))
				}
			}
		}
	}
	if p.id != nil {
		id := opts.ID
		if p.id.Kind == SourceField {
			v, ok := bodyReq.Field(p.id.Name)
			if !ok || v == "" {
				out.Notes = append(out.Notes, fmt.Sprintf("the id is body field %q, which the body does not have: the receiver will reject the request as \"missing id\"; add it to the body", p.id.Name))
			}
			id = v
		} else {
			if id == "" {
				if id, err = newMessageID(); err != nil {
					return nil, fmt.Errorf("%s: generating an id: %w", DirectiveEd25519, err)
				}
			}
			if err := place(*p.id, id); err != nil {
				return nil, err
			}
		}
		out.ID = id
	}

	uses := messageUses(p.parts)
	if p.signature.Kind == SourceQuery && uses.url {
		return nil, fmt.Errorf("%s: the message signs {url} but the signature goes in query parameter %s: send the signature in a header", DirectiveEd25519, p.signature.Name)
	}
	if (p.signature.Kind == SourceQuery || uses.url) && opts.URL == "" {
		return nil, fmt.Errorf("%s: give the trigger URL: the configuration puts the signature in the query or signs {url}", DirectiveEd25519)
	}
	for _, name := range uses.headers {
		if len(out.Header[name]) == 0 {
			out.Notes = append(out.Notes, fmt.Sprintf("the message signs {header.%s}, but no %s header is sent: it is signed as empty; add the header if the receiver expects it", name, name))
		}
	}
	reqURL := ""
	if opts.URL != "" {
		if reqURL, err = withQuery(opts.URL, out.Query); err != nil {
			return nil, err
		}
	}
	req := &Request{Method: http.MethodPost, URL: reqURL, Header: out.Header, Body: body}
	sig := p.encoding.encode(ed25519.Sign(priv, appendMessage(nil, p.parts, req, ts, out.ID)))
	if p.scheme == SchemeStandardV1a {
		sig = "v1a," + sig
	}
	switch p.signature.Kind {
	case SourceHeader:
		out.Header.Set(p.signature.Name, sig)
		out.URL = reqURL
	case SourceQuery:
		out.Query.Set(p.signature.Name, sig)
		if out.URL, err = withQuery(reqURL, url.Values{p.signature.Name: {sig}}); err != nil {
			return nil, err
		}
	}
	return out, nil
}
