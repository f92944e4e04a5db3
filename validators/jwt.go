package validators

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DirectiveJWT is the directive name webhook_jwt rejections carry.
const DirectiveJWT = "webhook_jwt"

// Reasons a webhook_jwt condition rejects a request: a fixed set, so that
// metrics labels stay bounded. None of them contains the token or a claim.
const (
	reasonJWTMissing     = "missing token"
	reasonJWTMalformed   = "malformed token"
	reasonJWTSignature   = "invalid signature"
	reasonJWTAlgorithm   = "algorithm not allowed"
	reasonJWTExpired     = "token expired"
	reasonJWTNotYetValid = "token not yet valid"
	reasonJWTIssuer      = "wrong issuer"
	reasonJWTAudience    = "wrong audience"
	reasonJWTTooOld      = "token too old"
	reasonJWTClaim       = "claim mismatch"
	reasonJWTUnknownKey  = "unknown key"
)

const (
	// minHMACSecretBytes is RFC 7518 §3.2's floor for HS256 keys (the hash
	// size): a shorter secret is guessable offline from one token.
	minHMACSecretBytes = 32
	// jwtBearerScheme and the spaces after it are stripped from header
	// values (RFC 6750).
	jwtBearerScheme = "Bearer"
	// jwtDefaultHeaderName is where the token is when no source is set.
	jwtDefaultHeaderName = "Authorization"
	// jwtAlgorithmNone is the unsigned "algorithm", refused in any case.
	jwtAlgorithmNone = "none"
	// jwtAlgorithmsExamples lists the algorithms for config errors.
	jwtAlgorithmsExamples = "HS256 HS384 HS512 RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 EdDSA"
)

// MaxJWTSize is the longest token accepted (64 KiB). Real tokens are well
// under 8 KiB; the bound keeps the work on a forged one small.
const MaxJWTSize = 64 << 10

// jwtAlgorithms are the signature algorithms webhook_jwt knows, in their
// JOSE spelling. "none" is deliberately absent.
var jwtAlgorithms = []string{
	"HS256", "HS384", "HS512",
	"RS256", "RS384", "RS512",
	"PS256", "PS384", "PS512",
	"ES256", "ES384", "ES512",
	"EdDSA",
}

// jwksAlgorithms are the algorithms a key set may serve: every asymmetric
// one, because the issuer may rotate to another key type. Each key still
// verifies only its own family (see keyfunc), so this cannot let one kind
// of key stand in for another.
var jwksAlgorithms = jwtAlgorithms[3:]

// errCritHeader is returned by the keyfunc for a token with a "crit"
// header: it names extensions the verifier must understand (RFC 7515
// §4.1.11), and webhook_jwt understands none.
var errCritHeader = errors.New("crit header present")

// errUnknownKey is returned by the keyfunc when no configured key can check
// the token: an unknown kid, or an algorithm whose keys are all absent.
var errUnknownKey = errors.New("no key for this token")

// ClaimMatch requires a claim to equal one of Values exactly. A string
// claim is compared as it is; any other claim (number, boolean, array,
// object, null) by its compact JSON text, e.g. 42, true, ["a","b"].
type ClaimMatch struct {
	Name   string
	Values []string
}

// JWT is the webhook_jwt condition: a JSON Web Token (RFC 7519) signed
// with an HMAC secret, a PEM public key or a key of a JWKS, checked for
// algorithm, signature, time claims, issuer, audience and configured
// claims. Verified claims are stored in Request.JWTClaims.
//
// Set the fields (Load the JWKS first), call Validate once, then call
// Verify for each request from any number of goroutines. Fields must not
// change after Validate.
type JWT struct {
	// Source is where the token is; the zero value means the Authorization
	// header. A header value may start with "Bearer " (any case), which is
	// stripped.
	Source Source
	// Secrets are HMAC keys (HS256/384/512), at least 32 bytes each; a
	// token signed with any one passes (rotation).
	Secrets [][]byte
	// PublicKeys are RSA (>= 2048 bits), ECDSA (P-256/384/521) or Ed25519
	// public keys, e.g. from ParsePublicKeysPEM.
	PublicKeys []crypto.PublicKey
	// JWKS is a key set fetched from a configured URL, already loaded.
	JWKS *JWKS
	// Algorithms is the allow-list of "alg" values. Empty means what the
	// configured keys can verify. "none" is never accepted.
	Algorithms []string
	// Issuer, when set, must equal the token's iss exactly.
	Issuer string
	// Audience, when set, must share one value with the token's aud.
	Audience []string
	// Leeway is the clock skew allowed on exp, nbf, iat and MaxAge.
	Leeway time.Duration
	// MaxAge, when set, requires an iat no older than this.
	MaxAge time.Duration
	// Claims must all match (each ClaimMatch against one of its values).
	Claims []ClaimMatch
	// ExpOptional accepts tokens without exp (`require_exp off`). By
	// default a token without exp is refused as expired: a token that
	// never expires is a password that can never be changed.
	ExpOptional bool

	plan *jwtPlan
}

// jwtPlan is a JWT prepared for verification: copies of the keys sorted
// by family, so that a token of one algorithm family can only ever be
// checked with keys of that family (no key confusion).
type jwtPlan struct {
	source      Source
	stripBearer bool
	algorithms  []string
	allowed     map[string]bool
	secrets     [][]byte
	rsaKeys     []*rsa.PublicKey
	ecdsaKeys   []*ecdsa.PublicKey
	edKeys      []ed25519.PublicKey
	jwks        *JWKS
	issuer      string
	audience    []string
	leeway      time.Duration
	maxAge      time.Duration
	claims      []ClaimMatch
	requireExp  bool
}

// Validate checks the configuration and prepares it for Verify. Errors name
// the setting at fault and how to fix it; they never contain a secret.
func (j *JWT) Validate() error {
	p, err := j.build()
	if err != nil {
		return fmt.Errorf("%s: %w", DirectiveJWT, err)
	}
	j.plan = p
	return nil
}

func (j *JWT) build() (*jwtPlan, error) {
	p := &jwtPlan{
		issuer:     j.Issuer,
		leeway:     j.Leeway,
		maxAge:     j.MaxAge,
		requireExp: !j.ExpOptional,
		jwks:       j.JWKS,
		allowed:    map[string]bool{},
	}
	if len(j.Secrets) == 0 && len(j.PublicKeys) == 0 && j.JWKS == nil {
		return nil, errors.New("no key configured: add `secret <value>` (HS256/384/512), `public_key <file.pem>` or `jwks_url <https://...>`")
	}
	for i, s := range j.Secrets {
		if len(s) == 0 {
			return nil, fmt.Errorf("secret #%d is empty: an empty secret would disable authentication; check the environment variable or file it comes from", i+1)
		}
		if len(s) < minHMACSecretBytes {
			return nil, fmt.Errorf("secret #%d is %d bytes: HMAC secrets must be at least %d bytes (RFC 7518 §3.2); generate one with `openssl rand -base64 48`", i+1, len(s), minHMACSecretBytes)
		}
		p.secrets = append(p.secrets, bytes.Clone(s))
	}
	for i, k := range j.PublicKeys {
		if err := checkPublicKey(k); err != nil {
			return nil, fmt.Errorf("public key #%d: %v", i+1, err)
		}
		switch k := k.(type) {
		case *rsa.PublicKey:
			p.rsaKeys = append(p.rsaKeys, k)
		case *ecdsa.PublicKey:
			p.ecdsaKeys = append(p.ecdsaKeys, k)
		case ed25519.PublicKey:
			p.edKeys = append(p.edKeys, k)
		}
	}
	if j.JWKS != nil && !j.JWKS.Loaded() {
		return nil, errors.New("jwks_url: the key set has not been fetched (call Load before Validate)")
	}

	switch {
	case j.Source == Source{}:
		p.source = Source{Kind: SourceHeader, Name: jwtDefaultHeaderName}
	default:
		if err := j.Source.check(); err != nil {
			return nil, fmt.Errorf("from: %w", err)
		}
		p.source = j.Source
	}
	p.stripBearer = p.source.Kind == SourceHeader

	verifiable := p.verifiableAlgorithms()
	if len(j.Algorithms) == 0 {
		p.algorithms = verifiable
	} else {
		for _, a := range j.Algorithms {
			alg, err := canonicalAlgorithm(a)
			if err != nil {
				return nil, err
			}
			if !slices.Contains(verifiable, alg) {
				return nil, fmt.Errorf("algorithms %s: no configured key can verify it (%s); add a matching key or remove %s", alg, needsKey(alg), alg)
			}
			if !slices.Contains(p.algorithms, alg) {
				p.algorithms = append(p.algorithms, alg)
			}
		}
	}
	if len(p.algorithms) == 0 {
		return nil, errors.New("the configured keys verify no algorithm: add a secret, public_key or jwks_url")
	}
	for _, a := range p.algorithms {
		p.allowed[a] = true
	}

	if j.Leeway < 0 {
		return nil, fmt.Errorf("leeway %s is negative: use a duration such as 30s", j.Leeway)
	}
	if j.MaxAge < 0 {
		return nil, fmt.Errorf("max_age %s is negative: use a duration such as 10m", j.MaxAge)
	}
	for _, a := range j.Audience {
		if a == "" {
			return nil, errors.New("audience: an empty value matches no token; remove it")
		}
	}
	p.audience = slices.Clone(j.Audience)
	for _, c := range j.Claims {
		if c.Name == "" {
			return nil, errors.New("claim: a claim name is required: `claim <name> <value>...`")
		}
		if len(c.Values) == 0 {
			return nil, fmt.Errorf("claim %s: a value is required: `claim %s <value>...`", c.Name, c.Name)
		}
		p.claims = append(p.claims, ClaimMatch{Name: c.Name, Values: slices.Clone(c.Values)})
	}
	return p, nil
}

// canonicalAlgorithm spells a configured algorithm the JOSE way (RS256,
// EdDSA), accepting any letter case. "none" is an error, always.
func canonicalAlgorithm(a string) (string, error) {
	if strings.EqualFold(a, jwtAlgorithmNone) {
		return "", errors.New("algorithms none: unsigned tokens are never accepted, since anyone can make one; remove none and list signed algorithms such as HS256 or RS256")
	}
	for _, known := range jwtAlgorithms {
		if strings.EqualFold(a, known) {
			return known, nil
		}
	}
	return "", fmt.Errorf("algorithms: unknown algorithm %q: use some of %s", a, jwtAlgorithmsExamples)
}

// needsKey says which configuration verifies alg, for a config error.
func needsKey(alg string) string {
	switch alg[:2] {
	case "HS":
		return "HS algorithms need a `secret`"
	case "RS", "PS":
		return "RS/PS algorithms need an RSA `public_key` or a `jwks_url`"
	case "ES":
		return alg + " needs an ECDSA `public_key` on " + curveFor(alg) + " or a `jwks_url`"
	default:
		return "EdDSA needs an Ed25519 `public_key` or a `jwks_url`"
	}
}

func curveFor(alg string) string {
	switch alg {
	case "ES256":
		return "P-256"
	case "ES384":
		return "P-384"
	default:
		return "P-521"
	}
}

// verifiableAlgorithms lists, in a fixed order, what the configured keys
// can verify: the default allow-list, and the bound of an explicit one.
func (p *jwtPlan) verifiableAlgorithms() []string {
	can := map[string]bool{}
	if len(p.secrets) > 0 {
		for _, a := range keyAlgorithms([]byte(nil)) {
			can[a] = true
		}
	}
	for _, k := range p.rsaKeys {
		for _, a := range keyAlgorithms(k) {
			can[a] = true
		}
	}
	for _, k := range p.ecdsaKeys {
		for _, a := range keyAlgorithms(k) {
			can[a] = true
		}
	}
	for _, k := range p.edKeys {
		for _, a := range keyAlgorithms(k) {
			can[a] = true
		}
	}
	if p.jwks != nil {
		for _, a := range jwksAlgorithms {
			can[a] = true
		}
	}
	var out []string
	for _, a := range jwtAlgorithms {
		if can[a] {
			out = append(out, a)
		}
	}
	return out
}

// keyAlgorithms lists the algorithms a key of this type verifies. This is
// the binding that defeats key confusion: an RSA key never verifies an HS
// token, even when its PEM bytes are what the attacker used as a secret.
func keyAlgorithms(key any) []string {
	switch k := key.(type) {
	case []byte:
		return []string{"HS256", "HS384", "HS512"}
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
	case *ecdsa.PublicKey:
		if alg, ok := ecdsaAlgorithm(k); ok {
			return []string{alg}
		}
	case ed25519.PublicKey:
		return []string{"EdDSA"}
	}
	return nil
}

// ecdsaAlgorithm is the one ES algorithm of the key's curve (RFC 7518
// §3.4 pairs them: ES256 with P-256, and so on).
func ecdsaAlgorithm(k *ecdsa.PublicKey) (string, bool) {
	switch k.Curve {
	case elliptic.P256():
		return "ES256", true
	case elliptic.P384():
		return "ES384", true
	case elliptic.P521():
		return "ES512", true
	}
	return "", false
}

// keyKind names a key's type for messages.
func keyKind(key any) string {
	switch k := key.(type) {
	case []byte:
		return "HMAC secret"
	case *rsa.PublicKey:
		return "RSA"
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name
	case ed25519.PublicKey:
		return "Ed25519"
	}
	return fmt.Sprintf("%T", key)
}

// ParsePublicKeysPEM reads the public keys of PEM data: "PUBLIC KEY"
// (PKIX), "RSA PUBLIC KEY" (PKCS #1) and "CERTIFICATE" blocks (the
// certificate's key; the certificate itself is not validated). A file may
// hold several keys. Private keys are refused: the gateway only verifies,
// and a private key on it is one more copy to leak.
func ParsePublicKeysPEM(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	rest := data
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		default:
			if strings.Contains(block.Type, "PRIVATE KEY") {
				return nil, fmt.Errorf("PEM block %q is a private key: configure the public key only (openssl pkey -in private.pem -pubout -out public.pem)", block.Type)
			}
			return nil, fmt.Errorf("PEM block %q is not a public key: want PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %q: %v", block.Type, err)
		}
		if err := checkPublicKey(key); err != nil {
			return nil, err
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM public key found: want a -----BEGIN PUBLIC KEY----- block")
	}
	return keys, nil
}

// Verify returns nil when r carries a valid token, and stores its claims in
// r.JWTClaims (numbers as json.Number, so they keep their exact text).
// Otherwise it returns a *Rejection for webhook_jwt.
func (j *JWT) Verify(r *Request) error {
	p := j.plan
	if p == nil {
		return Reject(DirectiveJWT, reasonMisconfigured)
	}
	raw, ok, again := extractJWT(r, p.source)
	if again {
		return Reject(DirectiveJWT, reasonRepeatedToken)
	}
	if !ok {
		return Reject(DirectiveJWT, reasonJWTMissing)
	}
	if len(raw) > MaxJWTSize {
		return Reject(DirectiveJWT, reasonJWTMalformed)
	}
	claims, reason := p.verify(raw, r.Clock())
	if reason != "" {
		return Reject(DirectiveJWT, reason)
	}
	r.JWTClaims = claims
	return nil
}

// ExtractJWT returns the token src names in r, trimmed of surrounding
// spaces and, for a header, of a leading "Bearer " (any case, then any
// further spaces). It reports false when there is no token left. A JWT
// never starts with "Bearer", so the prefix is optional.
func ExtractJWT(r *Request, src Source) (string, bool) {
	v, ok, _ := extractJWT(r, src)
	return v, ok
}

// extractJWT is ExtractJWT, and whether the source came more than once.
func extractJWT(r *Request, src Source) (token string, ok, repeated bool) {
	v, ok, repeated := src.GetOnce(r)
	if !ok {
		return "", false, repeated
	}
	v = strings.TrimSpace(v)
	if src.Kind == SourceHeader {
		if rest, found := cutPrefixFold(v, jwtBearerScheme); found && (rest == "" || rest[0] == ' ') {
			v = strings.TrimLeft(rest, " ")
		}
	}
	return v, v != "", repeated
}

// verify checks raw at time now and returns its claims, or the reason it
// fails.
func (p *jwtPlan) verify(raw string, now time.Time) (map[string]any, string) {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(p.algorithms),
		jwt.WithJSONNumber(),
		jwt.WithStrictDecoding(), // one encoding per signature: no malleable tokens
		jwt.WithLeeway(p.leeway),
		jwt.WithTimeFunc(func() time.Time { return now }),
		jwt.WithIssuedAt(), // an iat in the future is not yet valid
	}
	if p.requireExp {
		opts = append(opts, jwt.WithExpirationRequired())
	}
	claims := jwt.MapClaims{}
	tok, err := jwt.NewParser(opts...).ParseWithClaims(raw, claims, p.keyfunc)
	if err != nil {
		return nil, p.reason(tok, err)
	}

	if p.issuer != "" {
		iss, err := claims.GetIssuer()
		if err != nil {
			return nil, reasonJWTMalformed
		}
		if iss != p.issuer {
			return nil, reasonJWTIssuer
		}
	}
	if len(p.audience) > 0 {
		aud, err := claims.GetAudience()
		if err != nil {
			return nil, reasonJWTMalformed
		}
		if !slices.ContainsFunc(aud, func(a string) bool { return a != "" && slices.Contains(p.audience, a) }) {
			return nil, reasonJWTAudience
		}
	}
	if p.maxAge > 0 {
		iat, err := claims.GetIssuedAt()
		if err != nil {
			return nil, reasonJWTMalformed
		}
		if iat == nil || now.Sub(iat.Time) > p.maxAge+p.leeway {
			return nil, reasonJWTTooOld
		}
	}
	for _, c := range p.claims {
		v, ok := claims[c.Name]
		if !ok || !slices.Contains(c.Values, ClaimText(v)) {
			return nil, reasonJWTClaim
		}
	}
	return map[string]any(claims), ""
}

// ClaimText is how a claim value is compared with a configured `claim`
// value: a string as it is, anything else as compact JSON (42, true, null,
// ["a","b"], {"k":"v"}) without HTML escaping.
func ClaimText(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return ""
	}
	return strings.TrimSuffix(buf.String(), "\n")
}

// reason maps a parse error to a rejection reason. The algorithm check
// comes first: golang-jwt reports a refused alg as an invalid signature.
func (p *jwtPlan) reason(tok *jwt.Token, err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return reasonJWTMalformed
	case tok != nil && tok.Method == nil:
		// alg missing, not a string, or unknown to golang-jwt ("HS1").
		if _, isString := tok.Header["alg"].(string); isString {
			return reasonJWTAlgorithm
		}
		return reasonJWTMalformed
	case tok != nil && !p.allowed[tok.Method.Alg()]:
		return reasonJWTAlgorithm
	case errors.Is(err, errCritHeader):
		return reasonJWTMalformed
	case errors.Is(err, errUnknownKey):
		return reasonJWTUnknownKey
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return reasonJWTSignature
	case errors.Is(err, jwt.ErrTokenExpired), errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// The only claim required of the parser is exp: a token without
		// one is refused as expired (see JWT.ExpOptional).
		return reasonJWTExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return reasonJWTNotYetValid
	default:
		// A time claim of the wrong type (exp: "tomorrow") and the like.
		return reasonJWTMalformed
	}
}

// keyfunc returns the keys that may verify tok: only keys of the family of
// its algorithm (and, for ECDSA, of its curve; for JWKS keys with an
// "alg", of exactly that algorithm). The jku, x5u, jwk and x5c headers are
// never read: the token does not get to choose where keys come from.
func (p *jwtPlan) keyfunc(tok *jwt.Token) (any, error) {
	if _, crit := tok.Header["crit"]; crit {
		return nil, errCritHeader
	}
	alg := tok.Method.Alg()
	if !p.allowed[alg] {
		return nil, errUnknownKey // WithValidMethods already refused it
	}
	var keys []jwt.VerificationKey
	switch m := tok.Method.(type) {
	case *jwt.SigningMethodHMAC:
		for _, s := range p.secrets {
			keys = append(keys, s)
		}
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		for _, k := range p.rsaKeys {
			keys = append(keys, k)
		}
	case *jwt.SigningMethodECDSA:
		for _, k := range p.ecdsaKeys {
			if a, _ := ecdsaAlgorithm(k); a == m.Alg() {
				keys = append(keys, k)
			}
		}
	case *jwt.SigningMethodEd25519:
		for _, k := range p.edKeys {
			keys = append(keys, k)
		}
	default:
		return nil, errUnknownKey
	}
	if p.jwks != nil && !strings.HasPrefix(alg, "HS") {
		jk, err := p.jwksKeys(tok, alg)
		if err != nil && len(keys) == 0 {
			return nil, err
		}
		keys = append(keys, jk...)
	}
	if len(keys) == 0 {
		return nil, errUnknownKey
	}
	return jwt.VerificationKeySet{Keys: keys}, nil
}

// jwksKeys returns the key set's keys for tok: the keys with its kid, or
// every key when it has none, filtered to those that verify alg. An
// unknown kid makes the set be fetched again (bounded, see JWKS).
func (p *jwtPlan) jwksKeys(tok *jwt.Token, alg string) ([]jwt.VerificationKey, error) {
	set, err := p.jwks.keys()
	if err != nil {
		return nil, err
	}
	kid, _ := tok.Header["kid"].(string)
	if kid != "" && !set.hasKid(kid) {
		set = p.jwks.refreshFor(kid)
		if set == nil || !set.hasKid(kid) {
			return nil, errUnknownKey
		}
	}
	var keys []jwt.VerificationKey
	for _, k := range set.keys {
		if kid != "" && k.kid != kid {
			continue
		}
		if k.alg != "" && k.alg != alg {
			continue
		}
		if slices.Contains(keyAlgorithms(k.key), alg) {
			keys = append(keys, k.key)
		}
	}
	if len(keys) == 0 {
		return nil, errUnknownKey
	}
	return keys, nil
}

// String describes the condition without its secrets, so that a JWT
// printed into a log or an error by mistake does not leak them.
func (j JWT) String() string {
	jwks := "none"
	if j.JWKS != nil {
		jwks = StripURLCredentialsAndQuery(j.JWKS.URL)
	}
	return fmt.Sprintf("webhook_jwt{source: %s, secrets: %d redacted, public_keys: %d, jwks_url: %s, algorithms: %v, issuer: %q, audience: %q, claims: %d, require_exp: %t}",
		j.Source, len(j.Secrets), len(j.PublicKeys), jwks, j.Algorithms, j.Issuer, j.Audience, len(j.Claims), !j.ExpOptional)
}

// GoString is String, so that %#v does not print the secrets' bytes.
func (j JWT) GoString() string { return j.String() }
