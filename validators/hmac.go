package validators

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"sync"
	"time"
)

// DirectiveHMAC is the directive name webhook_hmac rejections carry.
const DirectiveHMAC = "webhook_hmac"

// Reasons a webhook_hmac condition rejects a request: a fixed set, so that
// metrics labels stay bounded, and none reveals a secret or the expected
// signature.
const (
	reasonMissingSignature   = "missing signature"
	reasonMalformedSignature = "malformed signature"
	reasonSignatureMismatch  = "signature mismatch"
	reasonMissingTimestamp   = "missing timestamp"
	reasonMalformedTimestamp = "malformed timestamp"
	reasonTimestampTolerance = "timestamp outside tolerance"
	reasonMissingID          = "missing id"
)

// DefaultTolerance is how far a signed timestamp may be from the receiver's
// clock when Tolerance is zero: Slack's and Stripe's five minutes.
const DefaultTolerance = 5 * time.Minute

// DefaultMessage is the signed-string template when Message is empty: the
// raw body, as GitHub, Shopify, Linear and the Valohai client sign it.
const DefaultMessage = "{body}"

// maxCandidates bounds how many signatures one header may offer. Senders
// send one to three (Stripe during a secret roll); the bound keeps the work
// per request fixed whatever an attacker puts in the header.
const maxCandidates = 16

// maxMACSize is the largest MAC (SHA-512) and maxEncodedSize its longest
// encoding (hex), which size the stack buffers signatures decode into.
const (
	maxMACSize     = sha512.Size
	maxEncodedSize = 2 * maxMACSize
)

// Scheme says how one header value carries signatures.
type Scheme string

// The header layouts of the senders' signature headers.
const (
	// SchemePlain is a bare signature, or a comma-separated list of them,
	// each starting with Prefix when one is set ("sha256=<hex>").
	SchemePlain Scheme = "plain"
	// SchemeStripe is Stripe's "t=<unix>,v1=<sig>,v1=<sig>,v0=<sig>": t is
	// the signed timestamp and only v1 signatures count; other schemes
	// (the test-mode v0) are ignored to prevent downgrade attacks.
	SchemeStripe Scheme = "stripe"
	// SchemeStandard is Standard Webhooks' space-separated "v1,<base64>"
	// entries; other versions (such as the asymmetric v1a) are ignored.
	SchemeStandard Scheme = "standard"
)

// TimestampSource is where the signed timestamp comes from and how it is
// written. Its value fills {timestamp} exactly as the sender sent it.
type TimestampSource struct {
	Source Source
	// Format is unix (the default when empty), unix_ms or rfc3339.
	Format TimestampFormat
}

// HMAC is the webhook_hmac condition: a MAC over a signed string built
// from the raw body (and optionally a timestamp, id, headers, URL), sent in
// a header or query parameter.
//
// Set the fields (or start from Preset), call Validate once, then call
// Verify for each request from any number of goroutines. Validate prepares
// the configuration for Verify, so fields must not change after it.
type HMAC struct {
	// Secrets are the MAC keys as bytes (see DecodeSecret); a signature
	// made with any one of them passes (rotation).
	Secrets [][]byte
	// Signature is where the signature is sent: a header or query parameter.
	Signature Source
	// Algorithm is sha1, sha256 (the default when empty) or sha512.
	Algorithm string
	// Encoding is how the MAC is written: hex (the default when empty, any
	// letter case), base64 or base64url (padded or not, for both base64s).
	Encoding string
	// Prefix starts every signature of a plain-scheme header ("sha256=",
	// "v0=") and is stripped before decoding; matched ignoring ASCII case.
	Prefix string
	// Message is the signed-string template, DefaultMessage when empty.
	// Placeholders: {body} (the raw body bytes), {timestamp}, {id},
	// {header.NAME} (first value, empty when absent) and {url}; \{ and \}
	// write literal braces.
	Message string
	// Timestamp is the source of {timestamp}. Not used with SchemeStripe,
	// whose t= field is the timestamp.
	Timestamp *TimestampSource
	// ID is the source of {id} (Standard Webhooks' webhook-id).
	ID *Source
	// Tolerance is the largest allowed distance between a signed timestamp
	// and the receiver's clock, past or future; DefaultTolerance when zero.
	Tolerance time.Duration
	// Scheme is the signature header's layout, SchemePlain when empty.
	Scheme Scheme
	// SecretEncoding is how AddSecret turns a configured secret string
	// into key bytes (see DecodeSecret): raw when empty. Presets set their
	// sender's (standard: whsec), so that a secret pasted from the sender's
	// dashboard works as it is. Validate does not read it: Secrets already
	// hold bytes.
	SecretEncoding string

	plan *hmacPlan
}

// AddSecret decodes a configured secret as SecretEncoding says and adds
// it to Secrets (a signature by any one passes). Call it before Validate.
// The error never contains the secret.
func (h *HMAC) AddSecret(secret string) error {
	key, err := DecodeSecret(secret, h.SecretEncoding)
	if err != nil {
		return err
	}
	h.Secrets = append(h.Secrets, key)
	return nil
}

// hmacPlan is an HMAC prepared for verification: the template parsed into
// parts and one pool of MACs per secret, so that a request allocates
// nothing of its own and the body is written straight into the MAC.
type hmacPlan struct {
	signature      Source
	scheme         Scheme
	prefix         string
	encoding       sigEncoding
	size           int
	parts          []messagePart
	timestamp      *TimestampSource // nil when no timestamp is signed, or with SchemeStripe
	checkTimestamp bool             // a signed timestamp exists and its age is enforced
	id             *Source          // nil when {id} is not signed
	tolerance      time.Duration
	keys           []*macPool
}

// macPool reuses keyed MACs of one secret: hmac.New derives the padded key
// state, and Reset afterwards restores it cheaply.
type macPool struct{ pool sync.Pool }

// macState is one pooled MAC with the buffers that spare Verify allocations.
type macState struct {
	mac     hash.Hash
	sum     []byte // expected MAC, reused between requests
	scratch []byte // string placeholders copied here to be written as bytes
}

// maxPooledScratch keeps a huge {url} or {header.NAME} value from pinning
// its buffer in the pool.
const maxPooledScratch = 64 << 10

func (p *macPool) get() *macState { return p.pool.Get().(*macState) }
func (p *macPool) put(s *macState) {
	if cap(s.scratch) > maxPooledScratch {
		s.scratch = nil
	}
	p.pool.Put(s)
}

// writeString feeds s to the MAC through the reusable scratch buffer:
// hash.Hash has no WriteString, and a []byte(s) conversion would allocate.
func (s *macState) writeString(v string) {
	s.scratch = append(s.scratch[:0], v...)
	s.mac.Write(s.scratch)
}

// Validate checks the configuration and prepares it for Verify. Errors name
// the setting at fault and how to fix it; they never contain a secret.
func (h *HMAC) Validate() error {
	p, err := h.build()
	if err != nil {
		return fmt.Errorf("%s: %w", DirectiveHMAC, err)
	}
	h.plan = p
	return nil
}

func (h *HMAC) build() (*hmacPlan, error) {
	if len(h.Secrets) == 0 {
		return nil, fmt.Errorf("no secret configured: add `secret <value>` (several secret lines for rotation)")
	}
	for i, s := range h.Secrets {
		if len(s) == 0 {
			return nil, fmt.Errorf("secret #%d is empty: an empty secret would disable authentication; check the environment variable or file it comes from", i+1)
		}
	}
	if err := h.Signature.check(); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	if h.Signature.Kind == SourceField {
		return nil, fmt.Errorf("signature source field %s: a signature cannot be inside the body it signs; use header <name> or query <name>", h.Signature.Name)
	}

	newHash, size, err := hashFor(h.Algorithm)
	if err != nil {
		return nil, err
	}
	enc, err := parseSigEncoding(h.Encoding)
	if err != nil {
		return nil, err
	}

	scheme := h.Scheme
	switch scheme {
	case "":
		scheme = SchemePlain
	case SchemePlain, SchemeStripe, SchemeStandard:
	default:
		return nil, fmt.Errorf("unknown scheme %q: use plain, stripe or standard", string(h.Scheme))
	}
	if h.Prefix != "" && scheme != SchemePlain {
		return nil, fmt.Errorf("prefix %q cannot be used with scheme %s, whose header layout fixes how signatures are marked; remove prefix", h.Prefix, scheme)
	}

	msg, err := planMessage(h.Message, h.Timestamp, h.ID, scheme == SchemeStripe)
	if err != nil {
		return nil, err
	}
	tmpl, uses := msg.template, msg.uses

	if h.Tolerance < 0 {
		return nil, fmt.Errorf("tolerance %s is negative: use a positive duration such as 5m", h.Tolerance)
	}
	tolerance := h.Tolerance
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}

	p := &hmacPlan{
		signature: h.Signature,
		scheme:    scheme,
		prefix:    h.Prefix,
		encoding:  enc,
		size:      size,
		parts:     msg.parts,
		tolerance: tolerance,
		timestamp: msg.timestamp,
		id:        msg.id,
	}

	if scheme == SchemeStripe {
		if h.Timestamp != nil {
			return nil, fmt.Errorf("timestamp %s cannot be used with scheme stripe, whose signature header carries the timestamp (t=); remove timestamp", h.Timestamp.Source)
		}
		if !uses.timestamp {
			return nil, fmt.Errorf("message %q does not contain {timestamp}: scheme stripe signs its t= timestamp; use \"{timestamp}.{body}\"", tmpl)
		}
	}
	p.checkTimestamp = scheme == SchemeStripe || msg.timestamp != nil

	p.keys = make([]*macPool, len(h.Secrets))
	for i, s := range h.Secrets {
		key := append([]byte(nil), s...) // later changes to Secrets must not reach the pool
		p.keys[i] = &macPool{pool: sync.Pool{New: func() any {
			return &macState{mac: hmac.New(newHash, key), sum: make([]byte, 0, size)}
		}}}
	}
	return p, nil
}

// hashFor maps an algorithm name to its hash; "" is sha256.
func hashFor(alg string) (func() hash.Hash, int, error) {
	switch strings.ToLower(alg) {
	case "sha1":
		return sha1.New, sha1.Size, nil
	case "sha256", "":
		return sha256.New, sha256.Size, nil
	case "sha512":
		return sha512.New, sha512.Size, nil
	default:
		return nil, 0, fmt.Errorf("algorithm %q is not supported: use sha1, sha256 or sha512", alg)
	}
}

// Verify returns nil when r carries a signature that one of the secrets
// made over the signed string, else a *Rejection for webhook_hmac. Every
// candidate signature in the header is checked against every secret.
func (h *HMAC) Verify(r *Request) error {
	p := h.plan
	if p == nil {
		// Not validated: prepare now (without caching, which would race
		// with concurrent Verify calls) and fail closed on a bad config.
		var err error
		if p, err = h.build(); err != nil {
			return Reject(DirectiveHMAC, reasonMisconfigured)
		}
	}
	return p.verify(r)
}

func (p *hmacPlan) verify(r *Request) error {
	raw, ok, again := p.signature.GetOnce(r)
	if again {
		return Reject(DirectiveHMAC, reasonRepeatedSignature)
	}
	raw = strings.TrimSpace(raw)
	if !ok || raw == "" {
		return Reject(DirectiveHMAC, reasonMissingSignature)
	}
	if reason := repeatedHeaderPart(p.parts, r); reason != "" {
		return Reject(DirectiveHMAC, reason)
	}

	var cands candidates
	var ts string
	var reason string
	switch p.scheme {
	case SchemeStripe:
		ts, reason = parseStripe(raw, &cands)
	case SchemeStandard:
		reason = parseStandard(raw, &cands)
	default:
		reason = parsePlain(raw, p.prefix, &cands)
	}
	if reason != "" {
		return Reject(DirectiveHMAC, reason)
	}

	// Decode before hashing, so garbage is turned away without reading a
	// body of up to 25 MiB. The buffers live on the stack.
	var decoded [maxCandidates][maxMACSize]byte
	var sigs [maxCandidates][]byte
	n := 0
	for i := 0; i < cands.n; i++ {
		if sig, ok := p.encoding.decode(decoded[n][:], cands.v[i], p.size); ok {
			sigs[n] = sig
			n++
		}
	}
	if n == 0 {
		return Reject(DirectiveHMAC, reasonMalformedSignature)
	}

	// The timestamp is checked before the MAC too: a stale replay costs no
	// hashing. Its value is not trusted until the MAC covering it matches.
	if p.checkTimestamp {
		if p.timestamp != nil {
			v, ok, again := p.timestamp.Source.GetOnce(r)
			if again {
				return Reject(DirectiveHMAC, reasonRepeatedTimestamp)
			}
			if !ok || v == "" {
				return Reject(DirectiveHMAC, reasonMissingTimestamp)
			}
			ts = v
		}
		format := TimestampUnix
		if p.timestamp != nil {
			format = p.timestamp.Format
		}
		t, err := format.Parse(ts)
		if err != nil {
			return Reject(DirectiveHMAC, reasonMalformedTimestamp)
		}
		if !withinTolerance(r.Clock(), t, p.tolerance) {
			return Reject(DirectiveHMAC, reasonTimestampTolerance)
		}
	}

	var id string
	if p.id != nil {
		v, ok, again := p.id.GetOnce(r)
		if again {
			return Reject(DirectiveHMAC, reasonRepeatedID)
		}
		if !ok || v == "" {
			return Reject(DirectiveHMAC, reasonMissingID)
		}
		id = v
	}

	matched := false
	for _, k := range p.keys {
		st := k.get()
		st.mac.Reset()
		p.writeMessage(st, r, ts, id)
		st.sum = st.mac.Sum(st.sum[:0])
		for i := 0; i < n; i++ {
			// No early exit: every candidate meets every secret, so the
			// time taken does not depend on which one matched.
			if hmac.Equal(st.sum, sigs[i]) {
				matched = true
			}
		}
		k.put(st)
	}
	if !matched {
		return Reject(DirectiveHMAC, reasonSignatureMismatch)
	}
	return nil
}

// repeatedHeaderPart is the rejection reason when a header the signed
// message includes ({header.NAME}) came more than once, else "".
func repeatedHeaderPart(parts []messagePart, r *Request) string {
	for i := range parts {
		if parts[i].kind == partHeader && len(r.Header[parts[i].name]) > 1 {
			return repeatedSignedHeader(parts[i].name)
		}
	}
	return ""
}

// writeMessage writes the signed string into the MAC part by part; the
// body goes in straight from the request buffer, never copied.
func (p *hmacPlan) writeMessage(st *macState, r *Request, ts, id string) {
	for i := range p.parts {
		part := &p.parts[i]
		switch part.kind {
		case partLiteral:
			st.mac.Write(part.literal)
		case partBody:
			st.mac.Write(r.Body)
		case partTimestamp:
			st.writeString(ts)
		case partID:
			st.writeString(id)
		case partHeader:
			if vals := r.Header[part.name]; len(vals) > 0 {
				st.writeString(vals[0])
			}
		case partURL:
			st.writeString(r.URL)
		}
	}
}

// String describes the condition without its secrets, so that an HMAC
// printed into a log or an error by mistake does not leak them.
func (h HMAC) String() string {
	return fmt.Sprintf("webhook_hmac{signature: %s, algorithm: %q, encoding: %q, scheme: %q, prefix: %q, message: %q, secret_encoding: %q, secrets: %d redacted}",
		h.Signature, h.Algorithm, h.Encoding, h.Scheme, h.Prefix, h.Message, h.SecretEncoding, len(h.Secrets))
}

// GoString is String, so that %#v does not print the secrets' bytes.
func (h HMAC) GoString() string { return h.String() }

// candidates are the signatures one header offers, as substrings of it.
type candidates struct {
	n int
	v [maxCandidates]string
}

// add records a candidate; false when the header offers too many.
func (c *candidates) add(s string) bool {
	if c.n == maxCandidates {
		return false
	}
	c.v[c.n] = s
	c.n++
	return true
}

// parsePlain reads "<prefix><sig>" or a comma-separated list of them. With
// a prefix, an entry without it is not a candidate; without any candidate
// the header is malformed.
func parsePlain(raw, prefix string, c *candidates) string {
	for rest := raw; rest != ""; {
		var item string
		item, rest, _ = strings.Cut(rest, ",")
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		sig, ok := cutPrefixFold(item, prefix)
		if !ok || sig == "" {
			continue
		}
		if !c.add(sig) {
			return reasonMalformedSignature
		}
	}
	if c.n == 0 {
		return reasonMalformedSignature
	}
	return ""
}

// parseStripe reads "t=<ts>,v1=<sig>,..." as stripe-go does: every item is
// key=value, exactly one t, only v1 signatures count.
func parseStripe(raw string, c *candidates) (ts, reason string) {
	seenT := false
	for rest := raw; rest != ""; {
		var item string
		item, rest, _ = strings.Cut(rest, ",")
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, value, ok := strings.Cut(item, "=")
		if !ok {
			return "", reasonMalformedSignature
		}
		switch key {
		case "t":
			if seenT {
				return "", reasonMalformedSignature
			}
			seenT, ts = true, value
		case "v1":
			if !c.add(value) {
				return "", reasonMalformedSignature
			}
		}
	}
	if c.n == 0 {
		return "", reasonMissingSignature
	}
	if ts == "" {
		return "", reasonMissingTimestamp
	}
	return ts, ""
}

// parseStandard reads Standard Webhooks' "v1,<sig> v1,<sig>" as its
// reference library does: entries without a version are skipped, other
// versions ignored.
func parseStandard(raw string, c *candidates) string {
	return parseStandardVersion(raw, "v1", c)
}

// parseStandardVersion reads the entries of one version of a Standard
// Webhooks signature header: v1 (HMAC) or v1a (Ed25519).
func parseStandardVersion(raw, want string, c *candidates) string {
	for rest := raw; rest != ""; {
		var entry string
		entry, rest, _ = strings.Cut(rest, " ")
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != want || sig == "" {
			continue
		}
		if !c.add(sig) {
			return reasonMalformedSignature
		}
	}
	if c.n == 0 {
		return reasonMissingSignature
	}
	return ""
}

// sigEncoding is how a signature is written on the wire.
type sigEncoding uint8

const (
	encHex sigEncoding = iota
	encBase64
	encBase64URL
)

// Strict decoders reject non-zero padding bits and embedded newlines (which
// the lenient ones skip), so one signature has exactly one spelling.
var (
	stdPadded = base64.StdEncoding.Strict()
	stdRaw    = base64.RawStdEncoding.Strict()
	urlPadded = base64.URLEncoding.Strict()
	urlRaw    = base64.RawURLEncoding.Strict()
)

func parseSigEncoding(s string) (sigEncoding, error) {
	switch strings.ToLower(s) {
	case "hex", "":
		return encHex, nil
	case "base64":
		return encBase64, nil
	case "base64url":
		return encBase64URL, nil
	default:
		return 0, fmt.Errorf("encoding %q is not supported: use hex, base64 or base64url", s)
	}
}

// decode decodes s into dst and returns the MAC bytes, or false when s is
// not exactly one encoded MAC of size bytes. Length is checked first, so
// nothing longer than a MAC is ever decoded.
func (e sigEncoding) decode(dst []byte, s string, size int) ([]byte, bool) {
	var src [maxEncodedSize]byte
	switch e {
	case encHex:
		if len(s) != hex.EncodedLen(size) {
			return nil, false
		}
		n := copy(src[:], s)
		if _, err := hex.Decode(dst[:size], src[:n]); err != nil {
			return nil, false
		}
		return dst[:size], true
	case encBase64, encBase64URL:
		padded, raw := stdPadded, stdRaw
		if e == encBase64URL {
			padded, raw = urlPadded, urlRaw
		}
		var enc *base64.Encoding
		switch len(s) {
		case padded.EncodedLen(size):
			enc = padded
		case raw.EncodedLen(size):
			enc = raw
		default:
			return nil, false
		}
		// Decode writes up to DecodedLen of its input, which for a padded
		// length holding no "=" is two bytes more than size (88 characters
		// are 66 bytes): into a buffer with that room, never into dst.
		n := copy(src[:], s)
		var out [maxMACSize + 2]byte
		m, err := enc.Decode(out[:], src[:n])
		if err != nil || m != size {
			return nil, false
		}
		return dst[:copy(dst[:size], out[:m])], true
	default:
		return nil, false
	}
}

// partKind is one kind of piece of a signed-string template.
type partKind uint8

const (
	partLiteral partKind = iota
	partBody
	partTimestamp
	partID
	partHeader
	partURL
)

// messagePart is one piece of a parsed template: literal bytes, or a
// placeholder (name is the canonical header name of {header.NAME}).
type messagePart struct {
	kind    partKind
	literal []byte
	name    string
}

// parseMessage splits a template into parts once, at config time, so that
// Verify writes them into the MAC without building the signed string.
func parseMessage(tmpl string) ([]messagePart, error) {
	var parts []messagePart
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			parts = append(parts, messagePart{kind: partLiteral, literal: lit})
			lit = nil
		}
	}
	for i := 0; i < len(tmpl); {
		c := tmpl[i]
		switch {
		case c == '\\' && i+1 < len(tmpl) && (tmpl[i+1] == '{' || tmpl[i+1] == '}'):
			lit = append(lit, tmpl[i+1])
			i += 2
		case c == '{':
			end := strings.IndexByte(tmpl[i+1:], '}')
			if end < 0 {
				return nil, fmt.Errorf("unclosed { at byte %d: close the placeholder, or write \\{ for a literal brace", i)
			}
			name := tmpl[i+1 : i+1+end]
			part := messagePart{}
			switch {
			case name == "body":
				part.kind = partBody
			case name == "timestamp":
				part.kind = partTimestamp
			case name == "id":
				part.kind = partID
			case name == "url":
				part.kind = partURL
			case strings.HasPrefix(name, "header.") && len(name) > len("header."):
				part.kind = partHeader
				part.name = canonicalHeader(name[len("header."):])
			default:
				return nil, fmt.Errorf("unknown placeholder {%s}: use {body}, {timestamp}, {id}, {header.NAME} or {url}, or write \\{ for a literal brace", name)
			}
			flush()
			parts = append(parts, part)
			i += end + 2
		default:
			lit = append(lit, c)
			i++
		}
	}
	flush()
	return parts, nil
}

// messagePlan is a signed-string template checked together with the
// sources of its {timestamp} and {id}: what webhook_hmac and
// webhook_ed25519 share.
type messagePlan struct {
	template  string
	parts     []messagePart
	uses      templateUses
	timestamp *TimestampSource // nil when no timestamp source is configured
	id        *Source          // nil when {id} is not signed
}

// planMessage parses a template (DefaultMessage when empty) and checks it
// against its sources: the body must be signed, {timestamp} and {id} need
// a source, and a timestamp source must be signed, since a freshness check
// on an unsigned timestamp protects against nothing. schemeTimestamp is
// set when the signature header itself carries the timestamp (Stripe's
// t=); the timestamp source is then the caller's to check.
func planMessage(message string, timestamp *TimestampSource, id *Source, schemeTimestamp bool) (*messagePlan, error) {
	tmpl := message
	if tmpl == "" {
		tmpl = DefaultMessage
	}
	parts, err := parseMessage(tmpl)
	if err != nil {
		return nil, fmt.Errorf("message %q: %w", tmpl, err)
	}
	uses := messageUses(parts)
	if !uses.body {
		return nil, fmt.Errorf("message %q does not contain {body}: a signature that does not cover the body lets anyone change the body; add {body}", tmpl)
	}
	m := &messagePlan{template: tmpl, parts: parts, uses: uses}
	switch {
	case schemeTimestamp:
	case timestamp == nil && uses.timestamp:
		return nil, fmt.Errorf("message %q uses {timestamp} but no timestamp source is configured: add `timestamp header <name> [unix|unix_ms|rfc3339]`", tmpl)
	case timestamp != nil:
		if err := timestamp.Source.check(); err != nil {
			return nil, fmt.Errorf("timestamp: %w", err)
		}
		format, err := ParseTimestampFormat(string(timestamp.Format))
		if err != nil {
			return nil, fmt.Errorf("timestamp: %w", err)
		}
		if !uses.timestamp && !uses.covers(timestamp.Source) {
			// A freshness check on an unsigned timestamp is useless:
			// a replayer just sends a new one (Linear PR #1268).
			return nil, fmt.Errorf("timestamp %s is not signed: add {timestamp} to message (e.g. \"{timestamp}.{body}\"), or remove timestamp and use webhook_timestamp for an unsigned freshness check", timestamp.Source)
		}
		m.timestamp = &TimestampSource{Source: timestamp.Source, Format: format}
	}
	switch {
	case id == nil && uses.id:
		return nil, fmt.Errorf("message %q uses {id} but no id source is configured: add `id header <name>` (e.g. id header webhook-id)", tmpl)
	case id != nil && !uses.id:
		return nil, fmt.Errorf("id %s is set but message %q has no {id}: add {id} to message or remove id", *id, tmpl)
	case id != nil:
		if err := id.check(); err != nil {
			return nil, fmt.Errorf("id: %w", err)
		}
		src := *id
		m.id = &src
	}
	return m, nil
}

// templateUses records which placeholders a template contains.
type templateUses struct {
	body, timestamp, id, url bool
	headers                  []string
}

func messageUses(parts []messagePart) templateUses {
	var u templateUses
	for _, p := range parts {
		switch p.kind {
		case partBody:
			u.body = true
		case partTimestamp:
			u.timestamp = true
		case partID:
			u.id = true
		case partURL:
			u.url = true
		case partHeader:
			u.headers = append(u.headers, p.name)
		}
	}
	return u
}

// covers reports whether the template signs the value s names by another
// route than its own placeholder: a body field through {body}, a query
// parameter through {url}, a header through {header.NAME}. Linear, for
// one, signs its webhookTimestamp inside the body.
func (u templateUses) covers(s Source) bool {
	switch s.Kind {
	case SourceField:
		return u.body
	case SourceQuery:
		return u.url
	case SourceHeader:
		name := canonicalHeader(s.Name)
		for _, h := range u.headers {
			if h == name {
				return true
			}
		}
	}
	return false
}
