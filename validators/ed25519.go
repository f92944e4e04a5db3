package validators

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"filippo.io/edwards25519"
)

// DirectiveEd25519 is the directive name webhook_ed25519 rejections carry.
const DirectiveEd25519 = "webhook_ed25519"

// SchemeStandardV1a is Standard Webhooks' asymmetric layout: space-separated
// "v1a,<base64>" entries in webhook-signature; other versions (the HMAC v1)
// are ignored.
const SchemeStandardV1a Scheme = "standard_v1a"

// maxEd25519Candidates bounds how many signatures one request may offer.
// Every (signature, public key) pair costs one SHA-512 over the whole
// signed string (body included), so the bound, times the configured keys,
// is the work an attacker can ask for per request. Senders send one, or
// two while rotating keys.
const maxEd25519Candidates = 4

// Ed25519 is the webhook_ed25519 condition: an Ed25519 signature, made
// with the sender's private key, over a signed string built from the raw
// body (and optionally a timestamp, id, headers or URL, in the template
// language of HMAC.Message), checked with the sender's public keys.
//
// Set the fields (or start from Ed25519Preset), call Validate once, then
// call Verify from any number of goroutines. Fields must not change after
// Validate.
type Ed25519 struct {
	// PublicKeys are the sender's public keys (see ParseEd25519PublicKey);
	// a signature by any one passes (rotation).
	PublicKeys []ed25519.PublicKey
	// Signature is the header (or query parameter) carrying the signature.
	Signature Source
	// Encoding is how a signature is written: hex (the default when empty,
	// any letter case), base64 or base64url (padded or not).
	Encoding string
	// Scheme is the signature header's layout: SchemePlain (one bare
	// signature, the default when empty) or SchemeStandardV1a.
	Scheme Scheme
	// Message is the signed-string template, DefaultMessage when empty,
	// with the placeholders of HMAC.Message.
	Message string
	// Timestamp is the source of {timestamp}.
	Timestamp *TimestampSource
	// ID is the source of {id}.
	ID *Source
	// Tolerance is the largest allowed distance between the signed
	// timestamp and the receiver's clock; DefaultTolerance when zero.
	Tolerance time.Duration

	plan *ed25519Plan
}

// ed25519Plan is an Ed25519 prepared for verification.
type ed25519Plan struct {
	signature Source
	scheme    Scheme
	encoding  sigEncoding
	parts     []messagePart
	bodyOnly  bool // the signed string is the body itself: no copy needed
	timestamp *TimestampSource
	id        *Source
	tolerance time.Duration
	keys      []ed25519.PublicKey
}

// ed25519Presets are the senders that sign with Ed25519, without keys.
var ed25519Presets = map[string]Ed25519{
	// Discord interactions:
	// https://discord.com/developers/docs/interactions/receiving-and-responding#security-and-authorization
	// X-Signature-Ed25519 is the hex signature of the X-Signature-Timestamp
	// value followed by the raw body, checked with the application's hex
	// public key. Discord names no window; five minutes stops replays.
	"discord": {
		Signature: Source{Kind: SourceHeader, Name: "X-Signature-Ed25519"},
		Encoding:  "hex",
		Scheme:    SchemePlain,
		Message:   "{timestamp}{body}",
		Timestamp: &TimestampSource{Source: Source{Kind: SourceHeader, Name: "X-Signature-Timestamp"}, Format: TimestampUnix},
		Tolerance: 5 * time.Minute,
	},
	// Standard Webhooks' asymmetric signatures (v1a):
	// https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
	// The same signed string and headers as the HMAC v1 scheme; the public
	// key is "whpk_" and the base64 of its 32 bytes.
	"standard": {
		Signature: Source{Kind: SourceHeader, Name: "Webhook-Signature"},
		Encoding:  "base64",
		Scheme:    SchemeStandardV1a,
		Message:   "{id}.{timestamp}.{body}",
		Timestamp: &TimestampSource{Source: Source{Kind: SourceHeader, Name: "Webhook-Timestamp"}, Format: TimestampUnix},
		ID:        &Source{Kind: SourceHeader, Name: "Webhook-Id"},
		Tolerance: 5 * time.Minute,
	},
}

// Ed25519Preset returns the webhook_ed25519 configuration of a known
// sender (discord, standard), without keys. The name is matched
// case-insensitively.
func Ed25519Preset(name string) (Ed25519, error) {
	p, ok := ed25519Presets[strings.ToLower(name)]
	if !ok {
		return Ed25519{}, fmt.Errorf("%s: unknown preset %q: use one of %s, or configure header, encoding and message yourself", DirectiveEd25519, name, strings.Join(Ed25519PresetNames(), ", "))
	}
	p.Timestamp, p.ID = clonePtr(p.Timestamp), clonePtr(p.ID)
	return p, nil
}

// Ed25519PresetNames lists the known presets in order.
func Ed25519PresetNames() []string { return slices.Sorted(maps.Keys(ed25519Presets)) }

// ParseEd25519PublicKey reads a public key as senders show it: 64 hex
// digits (Discord's developer portal), "whpk_" followed by base64
// (Standard Webhooks), bare base64 of the 32 bytes, or a PEM "PUBLIC KEY"
// block (openssl pkey -pubout). Keys of small order are refused: with one,
// a forged signature verifies for any message.
func ParseEd25519PublicKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	var raw []byte
	switch {
	case s == "":
		return nil, fmt.Errorf("the public key is empty")
	case strings.HasPrefix(s, "-----BEGIN"):
		block, _ := pem.Decode([]byte(s))
		if block == nil || block.Type != "PUBLIC KEY" {
			return nil, fmt.Errorf("not a PEM PUBLIC KEY block: export the public key with `openssl pkey -in key.pem -pubout`")
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("the PEM public key does not parse: %v", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("the PEM public key is a %T, not an Ed25519 key", k)
		}
		raw = pub
	case strings.HasPrefix(s, "whpk_"):
		b, ok := decodeBase64Secret(strings.TrimPrefix(s, "whpk_"))
		if !ok {
			return nil, fmt.Errorf("whpk_ must be followed by the base64 of the 32-byte key")
		}
		raw = b
	case len(s) == hex.EncodedLen(ed25519.PublicKeySize):
		b, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("64 characters but not hex: give the key as 64 hex digits (Discord), whpk_<base64> (Standard Webhooks) or a PEM PUBLIC KEY")
		}
		raw = b
	default:
		b, ok := decodeBase64Secret(s)
		if !ok {
			return nil, fmt.Errorf("not a public key: give it as 64 hex digits (Discord), whpk_<base64> (Standard Webhooks) or a PEM PUBLIC KEY")
		}
		raw = b
	}
	if len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("an Ed25519 public key is %d bytes, this one is %d", ed25519.PublicKeySize, len(raw))
	}
	p, err := new(edwards25519.Point).SetBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("the public key is not a point of the Ed25519 curve")
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil, fmt.Errorf("the public key has small order: signatures under it prove nothing")
	}
	return ed25519.PublicKey(raw), nil
}

// AddPublicKey parses a configured public key (ParseEd25519PublicKey) and
// adds it to PublicKeys. Call it before Validate.
func (e *Ed25519) AddPublicKey(s string) error {
	k, err := ParseEd25519PublicKey(s)
	if err != nil {
		return err
	}
	e.PublicKeys = append(e.PublicKeys, k)
	return nil
}

// Validate checks the configuration and prepares it for Verify. Errors
// name the setting at fault and how to fix it.
func (e *Ed25519) Validate() error {
	p, err := e.build()
	if err != nil {
		return fmt.Errorf("%s: %w", DirectiveEd25519, err)
	}
	e.plan = p
	return nil
}

func (e *Ed25519) build() (*ed25519Plan, error) {
	if len(e.PublicKeys) == 0 {
		return nil, fmt.Errorf("no public key configured: add `public_key <key>` (the sender's public key; several lines for rotation)")
	}
	for i, k := range e.PublicKeys {
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("public key #%d is %d bytes, an Ed25519 public key is %d", i+1, len(k), ed25519.PublicKeySize)
		}
	}
	if err := e.Signature.check(); err != nil {
		return nil, fmt.Errorf("signature: %w", err)
	}
	if e.Signature.Kind == SourceField {
		return nil, fmt.Errorf("signature source field %s: a signature cannot be inside the body it signs; use header <name>", e.Signature.Name)
	}
	enc, err := parseSigEncoding(e.Encoding)
	if err != nil {
		return nil, err
	}
	scheme := e.Scheme
	switch scheme {
	case "":
		scheme = SchemePlain
	case SchemePlain, SchemeStandardV1a:
	default:
		return nil, fmt.Errorf("unknown scheme %q: use plain or %s", string(e.Scheme), SchemeStandardV1a)
	}
	msg, err := planMessage(e.Message, e.Timestamp, e.ID, false)
	if err != nil {
		return nil, err
	}
	if e.Tolerance < 0 {
		return nil, fmt.Errorf("tolerance %s is negative: use a positive duration such as 5m", e.Tolerance)
	}
	tolerance := e.Tolerance
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	p := &ed25519Plan{
		signature: e.Signature,
		scheme:    scheme,
		encoding:  enc,
		parts:     msg.parts,
		bodyOnly:  len(msg.parts) == 1 && msg.parts[0].kind == partBody,
		timestamp: msg.timestamp,
		id:        msg.id,
		tolerance: tolerance,
	}
	p.keys = make([]ed25519.PublicKey, len(e.PublicKeys))
	for i, k := range e.PublicKeys {
		p.keys[i] = append(ed25519.PublicKey(nil), k...)
	}
	return p, nil
}

// Verify returns nil when r carries a signature that one of the public
// keys' private halves made over the signed string, else a *Rejection for
// webhook_ed25519.
func (e *Ed25519) Verify(r *Request) error {
	p := e.plan
	if p == nil {
		var err error
		if p, err = e.build(); err != nil {
			return Reject(DirectiveEd25519, reasonMisconfigured)
		}
	}
	return p.verify(r)
}

func (p *ed25519Plan) verify(r *Request) error {
	raw, ok, again := p.signature.GetOnce(r)
	if again {
		return Reject(DirectiveEd25519, reasonRepeatedSignature)
	}
	raw = strings.TrimSpace(raw)
	if !ok || raw == "" {
		return Reject(DirectiveEd25519, reasonMissingSignature)
	}
	if reason := repeatedHeaderPart(p.parts, r); reason != "" {
		return Reject(DirectiveEd25519, reason)
	}
	var cands candidates
	switch p.scheme {
	case SchemeStandardV1a:
		if reason := parseStandardVersion(raw, "v1a", &cands); reason != "" {
			return Reject(DirectiveEd25519, reason)
		}
		if cands.n > maxEd25519Candidates {
			return Reject(DirectiveEd25519, reasonMalformedSignature)
		}
	default:
		// One bare signature: a list would multiply the verification work.
		cands.add(raw)
	}
	var decoded [maxEd25519Candidates][ed25519.SignatureSize]byte
	var sigs [maxEd25519Candidates][]byte
	n := 0
	for i := 0; i < cands.n; i++ {
		if sig, ok := p.encoding.decode(decoded[n][:], cands.v[i], ed25519.SignatureSize); ok {
			sigs[n] = sig
			n++
		}
	}
	if n == 0 {
		return Reject(DirectiveEd25519, reasonMalformedSignature)
	}

	// Freshness before any hashing: a stale replay costs nothing.
	var ts string
	if p.timestamp != nil {
		v, ok, again := p.timestamp.Source.GetOnce(r)
		if again {
			return Reject(DirectiveEd25519, reasonRepeatedTimestamp)
		}
		if !ok || v == "" {
			return Reject(DirectiveEd25519, reasonMissingTimestamp)
		}
		t, err := p.timestamp.Format.Parse(v)
		if err != nil {
			return Reject(DirectiveEd25519, reasonMalformedTimestamp)
		}
		if !withinTolerance(r.Clock(), t, p.tolerance) {
			return Reject(DirectiveEd25519, reasonTimestampTolerance)
		}
		ts = v
	}
	var id string
	if p.id != nil {
		v, ok, again := p.id.GetOnce(r)
		if again {
			return Reject(DirectiveEd25519, reasonRepeatedID)
		}
		if !ok || v == "" {
			return Reject(DirectiveEd25519, reasonMissingID)
		}
		id = v
	}

	msg := r.Body
	if !p.bodyOnly {
		msg = appendMessage(nil, p.parts, r, ts, id)
	}
	// Public keys and signatures are not secret, so stopping at the first
	// match reveals nothing; it halves the work of a good request.
	for _, k := range p.keys {
		for i := 0; i < n; i++ {
			if ed25519.Verify(k, msg, sigs[i]) {
				return nil
			}
		}
	}
	return Reject(DirectiveEd25519, reasonSignatureMismatch)
}

// String describes the condition; public keys are not secret but long, so
// only their count is shown.
func (e Ed25519) String() string {
	return fmt.Sprintf("webhook_ed25519{signature: %s, encoding: %q, scheme: %q, message: %q, public_keys: %d}",
		e.Signature, e.Encoding, e.Scheme, e.Message, len(e.PublicKeys))
}

// appendMessage appends the signed string of parts to dst: the same
// template code HMAC streams into its MAC, built whole for signature
// schemes that need the message in one piece (Ed25519).
func appendMessage(dst []byte, parts []messagePart, r *Request, ts, id string) []byte {
	if dst == nil {
		n := len(ts) + len(id)
		for i := range parts {
			switch parts[i].kind {
			case partLiteral:
				n += len(parts[i].literal)
			case partBody:
				n += len(r.Body)
			case partURL:
				n += len(r.URL)
			}
		}
		dst = make([]byte, 0, n)
	}
	for i := range parts {
		part := &parts[i]
		switch part.kind {
		case partLiteral:
			dst = append(dst, part.literal...)
		case partBody:
			dst = append(dst, r.Body...)
		case partTimestamp:
			dst = append(dst, ts...)
		case partID:
			dst = append(dst, id...)
		case partHeader:
			if vals := r.Header[part.name]; len(vals) > 0 {
				dst = append(dst, vals[0]...)
			}
		case partURL:
			dst = append(dst, r.URL...)
		}
	}
	return dst
}

// ParseEd25519PrivateKey reads a private key for signing test requests:
// a PEM PKCS#8 "PRIVATE KEY" (openssl genpkey -algorithm ed25519), "whsk_"
// and the base64 of the 32-byte seed (Standard Webhooks), or the seed or
// the 64-byte private key in hex or base64. Errors never contain the key.
func ParseEd25519PrivateKey(s string) (ed25519.PrivateKey, error) {
	s = strings.TrimSpace(s)
	var raw []byte
	switch {
	case s == "":
		return nil, fmt.Errorf("the private key is empty")
	case strings.HasPrefix(s, "-----BEGIN"):
		block, _ := pem.Decode([]byte(s))
		if block == nil || block.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("not a PEM PRIVATE KEY block: make one with `openssl genpkey -algorithm ed25519`")
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("the PEM private key does not parse")
		}
		priv, ok := k.(ed25519.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("the PEM private key is a %T, not an Ed25519 key", k)
		}
		return priv, nil
	case strings.HasPrefix(s, "whsk_"):
		b, ok := decodeBase64Secret(strings.TrimPrefix(s, "whsk_"))
		if !ok {
			return nil, fmt.Errorf("whsk_ must be followed by the base64 of the 32-byte seed")
		}
		raw = b
	default:
		if b, err := hex.DecodeString(s); err == nil {
			raw = b
		} else if b, ok := decodeBase64Secret(s); ok {
			raw = b
		} else {
			return nil, fmt.Errorf("not a private key: give a PEM PRIVATE KEY, whsk_<base64 seed>, or the seed in hex or base64")
		}
	}
	switch len(raw) {
	case ed25519.SeedSize:
		return ed25519.NewKeyFromSeed(raw), nil
	case ed25519.PrivateKeySize:
		priv := ed25519.PrivateKey(raw)
		// The second half must be the public key of the seed, or the
		// signatures would not verify under the key the receiver holds.
		if !ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize]).Equal(priv) {
			return nil, fmt.Errorf("the 64-byte private key is inconsistent: its public half does not belong to its seed")
		}
		return priv, nil
	default:
		return nil, fmt.Errorf("an Ed25519 private key is a %d-byte seed (or %d bytes with the public key), this one is %d", ed25519.SeedSize, ed25519.PrivateKeySize, len(raw))
	}
}

// FormatEd25519PublicKey writes a public key the way the preset's sender
// shows it: whpk_<base64> for the standard scheme, hex otherwise.
func (e *Ed25519) FormatEd25519PublicKey(k ed25519.PublicKey) string {
	if e.Scheme == SchemeStandardV1a {
		return "whpk_" + base64.StdEncoding.EncodeToString(k)
	}
	return hex.EncodeToString(k)
}
