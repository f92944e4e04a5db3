package validators

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// jwtTestKeys are real keys generated once per test binary: RSA 2048,
// ECDSA P-256 and P-384, Ed25519, and an HS256 secret.
type jwtTestKeys struct {
	rsa    *rsa.PrivateKey
	rsaPEM []byte // PKIX public key PEM, what an operator configures
	p256   *ecdsa.PrivateKey
	p384   *ecdsa.PrivateKey
	ed     ed25519.PrivateKey
	secret []byte
	// other keys of each type, which the condition does not know.
	otherRSA *rsa.PrivateKey
	otherEd  ed25519.PrivateKey
}

var testJWTKeys = sync.OnceValue(func() *jwtTestKeys {
	k := &jwtTestKeys{secret: []byte("hs256-test-secret-0123456789abcdef-rotate-me")}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.otherRSA, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.p256, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if k.p384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	if _, k.otherEd, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	k.rsaPEM = publicPEM(&k.rsa.PublicKey)
	return k
})

func publicPEM(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// jwtClaims are a valid token's claims at testNow.
func jwtClaims() jwt.MapClaims {
	return jwt.MapClaims{
		"iss":        "https://issuer.example",
		"aud":        "my-trigger",
		"sub":        "user-42",
		"repository": "org/repo",
		"run":        7,
		"admin":      true,
		"iat":        testNow.Add(-time.Minute).Unix(),
		"exp":        testNow.Add(10 * time.Minute).Unix(),
	}
}

// longClaims are jwtClaims valid for two days, for tests that move the
// clock by hours.
func longClaims() jwt.MapClaims {
	c := jwtClaims()
	c["exp"] = testNow.Add(48 * time.Hour).Unix()
	return c
}

// mint signs claims with key, adding header fields (kid, jku, ...).
func mint(t testing.TB, method jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing %s: %v", method.Alg(), err)
	}
	return s
}

// unsigned hand-crafts a token with the given header alg and no signature,
// the "alg: none" attack.
func unsigned(alg string, claims jwt.MapClaims) string {
	h, _ := json.Marshal(map[string]string{"alg": alg, "typ": "JWT"})
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

func bearer(tok string) *Request {
	return &Request{Header: http.Header{"Authorization": {"Bearer " + tok}}, Now: clockAt(testNow)}
}

// preparedJWT validates j, failing the test on a config error.
func preparedJWT(t testing.TB, j JWT) *JWT {
	t.Helper()
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	return &j
}

// allKeysJWT knows every key type of testJWTKeys.
func allKeysJWT(t testing.TB) *JWT {
	k := testJWTKeys()
	return preparedJWT(t, JWT{
		Secrets:    [][]byte{[]byte("an-older-secret-still-valid-during-rotation"), k.secret},
		PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey, &k.p256.PublicKey, &k.p384.PublicKey, k.ed.Public()},
	})
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Fatalf("rejected: %v", err)
		}
		return
	}
	rej, ok := AsRejection(err)
	if !ok {
		t.Fatalf("error %v, want rejection %q", err, reason)
	}
	if rej.Directive != DirectiveJWT || rej.Reason != reason {
		t.Fatalf("rejection %q, want %s: %s", rej, DirectiveJWT, reason)
	}
}

func TestJWTAcceptsEveryKeyType(t *testing.T) {
	k := testJWTKeys()
	j := allKeysJWT(t)
	tests := []struct {
		method jwt.SigningMethod
		key    any
	}{
		{jwt.SigningMethodHS256, k.secret},
		{jwt.SigningMethodHS384, k.secret},
		{jwt.SigningMethodHS512, k.secret},
		{jwt.SigningMethodHS256, []byte("an-older-secret-still-valid-during-rotation")},
		{jwt.SigningMethodRS256, k.rsa},
		{jwt.SigningMethodRS512, k.rsa},
		{jwt.SigningMethodPS256, k.rsa},
		{jwt.SigningMethodES256, k.p256},
		{jwt.SigningMethodES384, k.p384},
		{jwt.SigningMethodEdDSA, k.ed},
	}
	for _, tt := range tests {
		t.Run(tt.method.Alg(), func(t *testing.T) {
			r := bearer(mint(t, tt.method, tt.key, jwtClaims(), nil))
			wantReason(t, j.Verify(r), "")
			if r.JWTClaims["sub"] != "user-42" || r.JWTClaims["admin"] != true {
				t.Fatalf("claims %v", r.JWTClaims)
			}
			if n, ok := r.JWTClaims["run"].(json.Number); !ok || n.String() != "7" {
				t.Fatalf("run claim %#v, want the JSON number 7", r.JWTClaims["run"])
			}
		})
	}
}

func TestJWTRejections(t *testing.T) {
	k := testJWTKeys()
	rsaOnly := preparedJWT(t, JWT{PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey}})
	secretAndRSA := preparedJWT(t, JWT{Secrets: [][]byte{k.secret}, PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey}})
	hs := preparedJWT(t, JWT{Secrets: [][]byte{k.secret}})
	strict := preparedJWT(t, JWT{
		Secrets:  [][]byte{k.secret},
		Issuer:   "https://issuer.example",
		Audience: []string{"my-trigger", "other-trigger"},
		MaxAge:   10 * time.Minute,
		Claims: []ClaimMatch{
			{Name: "repository", Values: []string{"org/repo", "org/fork"}},
			{Name: "run", Values: []string{"7"}},
			{Name: "admin", Values: []string{"true"}},
		},
	})
	onlyRS256 := preparedJWT(t, JWT{PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey}, Algorithms: []string{"rs256"}})
	lenient := preparedJWT(t, JWT{Secrets: [][]byte{k.secret}, Leeway: 30 * time.Second, ExpOptional: true})

	with := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwtClaims()
		mod(c)
		return c
	}
	hsToken := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodHS256, k.secret, c, nil) }
	valid := hsToken(jwtClaims())
	parts := strings.Split(valid, ".")

	tests := []struct {
		name  string
		j     *JWT
		token string
		want  string
	}{
		{"valid with every check", strict, valid, ""},
		{"alg none", hs, unsigned("none", jwtClaims()), reasonJWTAlgorithm},
		{"alg NONE", hs, unsigned("NONE", jwtClaims()), reasonJWTAlgorithm},
		{"alg none on an RSA condition", rsaOnly, unsigned("none", jwtClaims()), reasonJWTAlgorithm},
		{"alg none with a signature", hs, unsigned("none", jwtClaims()) + parts[2], reasonJWTAlgorithm},
		{"unknown alg", hs, unsigned("HS1", jwtClaims()) + parts[2], reasonJWTAlgorithm},
		{"alg missing", hs, base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT"}`)) + "." + parts[1] + "." + parts[2], reasonJWTMalformed},
		{"key confusion: HS256 keyed with the RSA public key PEM", rsaOnly, mint(t, jwt.SigningMethodHS256, k.rsaPEM, jwtClaims(), nil), reasonJWTAlgorithm},
		{"key confusion with HS allowed too", secretAndRSA, mint(t, jwt.SigningMethodHS256, k.rsaPEM, jwtClaims(), nil), reasonJWTSignature},
		{"key confusion with the DER key bytes", secretAndRSA, mint(t, jwt.SigningMethodHS256, x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey), jwtClaims(), nil), reasonJWTSignature},
		{"other secret", hs, mint(t, jwt.SigningMethodHS256, []byte("not-the-secret-but-just-as-long-as-it"), jwtClaims(), nil), reasonJWTSignature},
		{"other RSA key", rsaOnly, mint(t, jwt.SigningMethodRS256, k.otherRSA, jwtClaims(), nil), reasonJWTSignature},
		{"tampered claims", hs, parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin","exp":9999999999}`)) + "." + parts[2], reasonJWTSignature},
		{"algorithm outside the allow-list", onlyRS256, mint(t, jwt.SigningMethodPS256, k.rsa, jwtClaims(), nil), reasonJWTAlgorithm},
		{"allow-list match", onlyRS256, mint(t, jwt.SigningMethodRS256, k.rsa, jwtClaims(), nil), ""},
		{"ES384 without a P-384 key", preparedJWT(t, JWT{PublicKeys: []crypto.PublicKey{&k.p256.PublicKey}}), mint(t, jwt.SigningMethodES384, k.p384, jwtClaims(), nil), reasonJWTAlgorithm},
		{"EdDSA by another key", preparedJWT(t, JWT{PublicKeys: []crypto.PublicKey{k.ed.Public()}}), mint(t, jwt.SigningMethodEdDSA, k.otherEd, jwtClaims(), nil), reasonJWTSignature},
		{"expired", hs, hsToken(with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-time.Second).Unix() })), reasonJWTExpired},
		{"expired within leeway", lenient, hsToken(with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-20 * time.Second).Unix() })), ""},
		{"expired beyond leeway", lenient, hsToken(with(func(c jwt.MapClaims) { c["exp"] = testNow.Add(-40 * time.Second).Unix() })), reasonJWTExpired},
		{"no exp", hs, hsToken(with(func(c jwt.MapClaims) { delete(c, "exp") })), reasonJWTExpired},
		{"no exp with require_exp off", lenient, hsToken(with(func(c jwt.MapClaims) { delete(c, "exp") })), ""},
		{"exp not a number", hs, hsToken(with(func(c jwt.MapClaims) { c["exp"] = "tomorrow" })), reasonJWTMalformed},
		{"not yet valid (nbf)", hs, hsToken(with(func(c jwt.MapClaims) { c["nbf"] = testNow.Add(time.Minute).Unix() })), reasonJWTNotYetValid},
		{"issued in the future", hs, hsToken(with(func(c jwt.MapClaims) { c["iat"] = testNow.Add(time.Minute).Unix() })), reasonJWTNotYetValid},
		{"nbf within leeway", lenient, hsToken(with(func(c jwt.MapClaims) { c["nbf"] = testNow.Add(20 * time.Second).Unix() })), ""},
		{"wrong issuer", strict, hsToken(with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), reasonJWTIssuer},
		{"issuer differing in a trailing slash", strict, hsToken(with(func(c jwt.MapClaims) { c["iss"] = "https://issuer.example/" })), reasonJWTIssuer},
		{"no issuer", strict, hsToken(with(func(c jwt.MapClaims) { delete(c, "iss") })), reasonJWTIssuer},
		{"wrong audience", strict, hsToken(with(func(c jwt.MapClaims) { c["aud"] = "another-service" })), reasonJWTAudience},
		{"no audience", strict, hsToken(with(func(c jwt.MapClaims) { delete(c, "aud") })), reasonJWTAudience},
		{"audience list containing ours", strict, hsToken(with(func(c jwt.MapClaims) { c["aud"] = []string{"x", "other-trigger"} })), ""},
		{"audience list without ours", strict, hsToken(with(func(c jwt.MapClaims) { c["aud"] = []string{"x", "y"} })), reasonJWTAudience},
		{"no iat with max_age", strict, hsToken(with(func(c jwt.MapClaims) { delete(c, "iat") })), reasonJWTTooOld},
		{"stale iat", strict, hsToken(with(func(c jwt.MapClaims) { c["iat"] = testNow.Add(-11 * time.Minute).Unix() })), reasonJWTTooOld},
		{"claim mismatch", strict, hsToken(with(func(c jwt.MapClaims) { c["repository"] = "org/other" })), reasonJWTClaim},
		{"claim absent", strict, hsToken(with(func(c jwt.MapClaims) { delete(c, "repository") })), reasonJWTClaim},
		{"second allowed claim value", strict, hsToken(with(func(c jwt.MapClaims) { c["repository"] = "org/fork" })), ""},
		{"string claim spelling the configured number matches", strict, hsToken(with(func(c jwt.MapClaims) { c["run"] = "7" })), ""},
		{"numeric claim other value", strict, hsToken(with(func(c jwt.MapClaims) { c["run"] = 8 })), reasonJWTClaim},
		{"boolean claim as JSON text", strict, hsToken(with(func(c jwt.MapClaims) { c["admin"] = false })), reasonJWTClaim},
		{"crit header", hs, mint(t, jwt.SigningMethodHS256, k.secret, jwtClaims(), map[string]any{"crit": []string{"exp"}, "exp": 1}), reasonJWTMalformed},
		{"garbage", hs, "not a token", reasonJWTMalformed},
		{"two segments", hs, parts[0] + "." + parts[1], reasonJWTMalformed},
		{"bad base64 payload", hs, parts[0] + ".!!!." + parts[2], reasonJWTMalformed},
		{"padded signature", hs, valid + "=", reasonJWTMalformed},
		{"too long", hs, valid + strings.Repeat("A", MaxJWTSize), reasonJWTMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bearer(tt.token)
			err := tt.j.Verify(r)
			wantReason(t, err, tt.want)
			if err != nil {
				if r.JWTClaims != nil {
					t.Fatalf("a rejected token left claims %v", r.JWTClaims)
				}
				for _, p := range strings.Split(tt.token, ".") {
					if len(p) > 8 && strings.Contains(err.Error(), p) {
						t.Fatalf("the rejection %q reveals the token", err)
					}
				}
			}
		})
	}
}

// A signature whose base64url has non-zero trailing bits decodes to the
// same bytes in a lenient decoder: two spellings of one token. Strict
// decoding refuses the second spelling.
func TestJWTNonCanonicalSignature(t *testing.T) {
	k := testJWTKeys()
	j := preparedJWT(t, JWT{PublicKeys: []crypto.PublicKey{k.ed.Public()}})
	tok := mint(t, jwt.SigningMethodEdDSA, k.ed, jwtClaims(), nil)
	wantReason(t, j.Verify(bearer(tok)), "")
	// An Ed25519 signature is 64 bytes: 86 base64url characters, the last
	// of which carries 2 bits of signature and 4 unused bits.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	idx := strings.IndexByte(alphabet, tok[len(tok)-1])
	alt := tok[:len(tok)-1] + string(alphabet[idx^1])
	wantReason(t, j.Verify(bearer(alt)), reasonJWTMalformed)
}

func TestJWTSources(t *testing.T) {
	k := testJWTKeys()
	tok := mint(t, jwt.SigningMethodHS256, k.secret, jwtClaims(), nil)
	tests := []struct {
		name string
		src  Source
		r    *Request
		want string
	}{
		{"Bearer", Source{}, &Request{Header: http.Header{"Authorization": {"Bearer " + tok}}}, ""},
		{"bearer, extra spaces", Source{}, &Request{Header: http.Header{"Authorization": {"  bearer   " + tok + " "}}}, ""},
		{"bare token in Authorization", Source{}, &Request{Header: http.Header{"Authorization": {tok}}}, ""},
		{"other scheme", Source{}, &Request{Header: http.Header{"Authorization": {"Basic " + tok}}}, reasonJWTMalformed},
		{"Bearer only", Source{}, &Request{Header: http.Header{"Authorization": {"Bearer "}}}, reasonJWTMissing},
		{"no header", Source{}, &Request{Header: http.Header{}}, reasonJWTMissing},
		{"custom header", mustSource(t, "header", "x-webhook-token"), &Request{Header: http.Header{"X-Webhook-Token": {tok}}}, ""},
		{"query", mustSource(t, "query", "jwt"), &Request{Query: url.Values{"jwt": {tok}}}, ""},
		{"query absent", mustSource(t, "query", "jwt"), &Request{Query: url.Values{"token": {tok}}}, reasonJWTMissing},
		{"query keeps Bearer", mustSource(t, "query", "jwt"), &Request{Query: url.Values{"jwt": {"Bearer " + tok}}}, reasonJWTMalformed},
		{"JSON field", mustSource(t, "field", "token"), &Request{Body: []byte(`{"token":"` + tok + `","x":1}`)}, ""},
		{"JSON field not a string", mustSource(t, "field", "token"), &Request{Body: []byte(`{"token":12}`)}, reasonJWTMalformed},
		{"form field", mustSource(t, "field", "token"), &Request{Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, Body: []byte("token=" + tok)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := preparedJWT(t, JWT{Secrets: [][]byte{k.secret}, Source: tt.src})
			tt.r.Now = clockAt(testNow)
			wantReason(t, j.Verify(tt.r), tt.want)
		})
	}
}

func TestJWTValidate(t *testing.T) {
	k := testJWTKeys()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		j    JWT
		want string // "" = valid
		algs []string
	}{
		{"secret defaults to HS", JWT{Secrets: [][]byte{k.secret}}, "", []string{"HS256", "HS384", "HS512"}},
		{"RSA defaults to RS and PS", JWT{PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey}}, "", []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}},
		{"P-256 defaults to ES256 only", JWT{PublicKeys: []crypto.PublicKey{&k.p256.PublicKey}}, "", []string{"ES256"}},
		{"Ed25519 defaults to EdDSA", JWT{PublicKeys: []crypto.PublicKey{k.ed.Public()}}, "", []string{"EdDSA"}},
		{"explicit list, any case, deduplicated", JWT{Secrets: [][]byte{k.secret}, Algorithms: []string{"hs256", "HS256", "HS512"}}, "", []string{"HS256", "HS512"}},
		{"no key", JWT{}, "no key configured", nil},
		{"algorithms none", JWT{Secrets: [][]byte{k.secret}, Algorithms: []string{"HS256", "none"}}, "algorithms none: unsigned tokens are never accepted", nil},
		{"algorithms None", JWT{Secrets: [][]byte{k.secret}, Algorithms: []string{"None"}}, "never accepted", nil},
		{"unknown algorithm", JWT{Secrets: [][]byte{k.secret}, Algorithms: []string{"HS1"}}, `unknown algorithm "HS1"`, nil},
		{"HS without a secret", JWT{PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey}, Algorithms: []string{"HS256"}}, "HS algorithms need a `secret`", nil},
		{"ES384 with a P-256 key", JWT{PublicKeys: []crypto.PublicKey{&k.p256.PublicKey}, Algorithms: []string{"ES384"}}, "ES384 needs an ECDSA `public_key` on P-384", nil},
		{"empty secret", JWT{Secrets: [][]byte{k.secret, {}}}, "secret #2 is empty", nil},
		{"short secret", JWT{Secrets: [][]byte{[]byte("short")}}, "at least 32 bytes", nil},
		{"small RSA key", JWT{PublicKeys: []crypto.PublicKey{&small.PublicKey}}, "1024 bits is too small", nil},
		{"private key given as public", JWT{PublicKeys: []crypto.PublicKey{k.rsa}}, "unsupported key type", nil},
		{"negative leeway", JWT{Secrets: [][]byte{k.secret}, Leeway: -time.Second}, "leeway", nil},
		{"negative max_age", JWT{Secrets: [][]byte{k.secret}, MaxAge: -time.Second}, "max_age", nil},
		{"claim without value", JWT{Secrets: [][]byte{k.secret}, Claims: []ClaimMatch{{Name: "sub"}}}, "claim sub: a value is required", nil},
		{"empty audience", JWT{Secrets: [][]byte{k.secret}, Audience: []string{""}}, "audience", nil},
		{"bad source", JWT{Secrets: [][]byte{k.secret}, Source: Source{Kind: "cookie", Name: "x"}}, "unknown source", nil},
		{"JWKS not loaded", JWT{JWKS: &JWKS{URL: "https://issuer.example/jwks.json"}}, "has not been fetched", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.j.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if strings.Join(tt.j.plan.algorithms, " ") != strings.Join(tt.algs, " ") {
					t.Fatalf("algorithms %v, want %v", tt.j.plan.algorithms, tt.algs)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), DirectiveJWT+": ") {
				t.Fatalf("error %v, want %q naming %s", err, tt.want, DirectiveJWT)
			}
			if strings.Contains(err.Error(), string(k.secret)) {
				t.Fatalf("the error reveals the secret: %v", err)
			}
		})
	}
}

func TestJWTVerifyWithoutValidate(t *testing.T) {
	k := testJWTKeys()
	j := &JWT{Secrets: [][]byte{k.secret}}
	wantReason(t, j.Verify(bearer(mint(t, jwt.SigningMethodHS256, k.secret, jwtClaims(), nil))), reasonMisconfigured)
}

func TestJWTStringRedacts(t *testing.T) {
	k := testJWTKeys()
	j := JWT{Secrets: [][]byte{k.secret}, JWKS: &JWKS{URL: "https://issuer.example/jwks?api_key=hunter2"}}
	for _, s := range []string{fmt.Sprint(j), fmt.Sprintf("%v %+v %#v %s", j, j, j, &j)} {
		if strings.Contains(s, string(k.secret)) || strings.Contains(s, "hunter2") {
			t.Fatalf("printing a JWT reveals a secret: %s", s)
		}
	}
}

func TestClaimText(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{"org/repo", "org/repo"},
		{json.Number("42"), "42"},
		{json.Number("1e3"), "1e3"},
		{true, "true"},
		{nil, "null"},
		{[]any{"a", "b<c>"}, `["a","b<c>"]`},
		{map[string]any{"k": "v"}, `{"k":"v"}`},
	}
	for _, tt := range tests {
		if got := ClaimText(tt.v); got != tt.want {
			t.Errorf("ClaimText(%#v) = %q, want %q", tt.v, got, tt.want)
		}
	}
}

func TestParsePublicKeysPEM(t *testing.T) {
	k := testJWTKeys()
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sender"}, NotBefore: testNow, NotAfter: testNow.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.p256.PublicKey, k.p256)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	privDER, _ := x509.MarshalPKCS8PrivateKey(k.ed)
	priv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})

	bundle := append(append([]byte("comment line\n"), k.rsaPEM...), publicPEM(k.ed.Public())...)
	tests := []struct {
		name  string
		data  []byte
		kinds []string
		err   string
	}{
		{"PKIX RSA", k.rsaPEM, []string{"RSA"}, ""},
		{"PKCS1 RSA", pkcs1, []string{"RSA"}, ""},
		{"certificate", cert, []string{"ECDSA P-256"}, ""},
		{"bundle of two", bundle, []string{"RSA", "Ed25519"}, ""},
		{"private key", priv, nil, "is a private key"},
		{"not PEM", []byte("ssh-ed25519 AAAA"), nil, "no PEM public key"},
		{"broken PEM body", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("junk")}), nil, "PEM block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParsePublicKeysPEM(tt.data)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var kinds []string
			for _, key := range keys {
				kinds = append(kinds, keyKind(key))
			}
			if strings.Join(kinds, ",") != strings.Join(tt.kinds, ",") {
				t.Fatalf("keys %v, want %v", kinds, tt.kinds)
			}
		})
	}
}

func TestJWTConcurrentVerify(t *testing.T) {
	k := testJWTKeys()
	j := allKeysJWT(t)
	good := mint(t, jwt.SigningMethodES256, k.p256, jwtClaims(), nil)
	bad := mint(t, jwt.SigningMethodRS256, k.otherRSA, jwtClaims(), nil)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			for n := range 20 {
				tok, want := good, ""
				if (i+n)%2 == 1 {
					tok, want = bad, reasonJWTSignature
				}
				err := j.Verify(bearer(tok))
				if rej, _ := AsRejection(err); (want == "" && err != nil) || (want != "" && (rej == nil || rej.Reason != want)) {
					t.Errorf("Verify = %v, want %q", err, want)
				}
			}
		})
	}
	wg.Wait()
}

// jwksServer is an issuer's key endpoint whose keys a test can change, and
// which counts the fetches it answers.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	body    []byte
	fetches atomic.Int64
}

func newJWKSServer(t *testing.T, keys ...jose.JSONWebKey) *jwksServer {
	t.Helper()
	s := &jwksServer{}
	s.set(t, keys...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(t *testing.T, keys ...jose.JSONWebKey) {
	t.Helper()
	body, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

func (s *jwksServer) setRaw(body string) {
	s.mu.Lock()
	s.body = []byte(body)
	s.mu.Unlock()
}

// testClock is a clock tests move by hand.
type testClock struct{ ns atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.ns.Store(testNow.UnixNano())
	return c
}
func (c *testClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *testClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }
func (c *testClock) request(tok string) *Request {
	r := bearer(tok)
	r.Now = c.Now
	return r
}

func jwkOf(key any, kid, alg string) jose.JSONWebKey {
	return jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: "sig"}
}

// loadedJWKS loads the key set of srv with the test clock.
func loadedJWKS(t *testing.T, srv *jwksServer, clock *testClock) *JWKS {
	t.Helper()
	s := &JWKS{URL: srv.URL + "/.well-known/jwks.json", Now: clock.Now, Warn: func(msg string, err error) { t.Logf("warn: %s: %v", msg, err) }}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWKSAcceptsKeysByKid(t *testing.T) {
	k := testJWTKeys()
	srv := newJWKSServer(t,
		jwkOf(&k.rsa.PublicKey, "rsa-1", "RS256"),
		jwkOf(&k.p256.PublicKey, "ec-1", ""),
		jwkOf(k.ed.Public(), "ed-1", "EdDSA"),
	)
	clock := newTestClock()
	j := preparedJWT(t, JWT{JWKS: loadedJWKS(t, srv, clock), Issuer: "https://issuer.example"})
	tests := []struct {
		name   string
		method jwt.SigningMethod
		key    any
		header map[string]any
		want   string
	}{
		{"RS256 by kid", jwt.SigningMethodRS256, k.rsa, map[string]any{"kid": "rsa-1"}, ""},
		{"ES256 by kid", jwt.SigningMethodES256, k.p256, map[string]any{"kid": "ec-1"}, ""},
		{"EdDSA by kid", jwt.SigningMethodEdDSA, k.ed, map[string]any{"kid": "ed-1"}, ""},
		{"no kid: every key of the family is tried", jwt.SigningMethodES256, k.p256, nil, ""},
		{"the JWK's alg binds the key: PS256 under an RS256 key", jwt.SigningMethodPS256, k.rsa, map[string]any{"kid": "rsa-1"}, reasonJWTUnknownKey},
		{"a kid of another family", jwt.SigningMethodRS256, k.rsa, map[string]any{"kid": "ec-1"}, reasonJWTUnknownKey},
		{"HS256 keyed with the RSA PEM is not even allowed", jwt.SigningMethodHS256, k.rsaPEM, map[string]any{"kid": "rsa-1"}, reasonJWTAlgorithm},
		{"right kid, wrong key", jwt.SigningMethodRS256, k.otherRSA, map[string]any{"kid": "rsa-1"}, reasonJWTSignature},
		{"a kid that is not a string counts as none", jwt.SigningMethodEdDSA, k.ed, map[string]any{"kid": 5}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantReason(t, j.Verify(clock.request(mint(t, tt.method, tt.key, jwtClaims(), tt.header))), tt.want)
		})
	}
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches for known kids, want only the one at Load", n)
	}
}

func TestJWKSUnknownKidAndRotation(t *testing.T) {
	k := testJWTKeys()
	srv := newJWKSServer(t, jwkOf(&k.rsa.PublicKey, "key-2024", "RS256"))
	clock := newTestClock()
	jwks := loadedJWKS(t, srv, clock)
	j := preparedJWT(t, JWT{JWKS: jwks})
	rotated := mint(t, jwt.SigningMethodRS256, k.otherRSA, longClaims(), map[string]any{"kid": "key-2025"})

	// The issuer has not published key-2025 yet: unknown, and right after
	// Load no refetch happens (the bound counts from the last fetch).
	wantReason(t, j.Verify(clock.request(rotated)), reasonJWTUnknownKey)
	if n := srv.fetches.Load(); n != 1 {
		t.Fatalf("fetches = %d, want 1 (no refresh within the interval)", n)
	}

	// After the interval, an unknown kid refetches once; still unknown.
	clock.Advance(DefaultJWKSMinRefresh)
	wantReason(t, j.Verify(clock.request(rotated)), reasonJWTUnknownKey)
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2", n)
	}

	// The issuer rotates: key-2025 appears. A flood of tokens with unknown
	// kids within the interval causes no further fetch.
	srv.set(t, jwkOf(&k.rsa.PublicKey, "key-2024", "RS256"), jwkOf(&k.otherRSA.PublicKey, "key-2025", "RS256"))
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			tok := mint(t, jwt.SigningMethodRS256, k.otherRSA, longClaims(), map[string]any{"kid": fmt.Sprintf("forged-%d", i)})
			if err := j.Verify(clock.request(tok)); err == nil {
				t.Errorf("forged kid %d accepted", i)
			}
		})
	}
	wg.Wait()
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("a flood of unknown kids caused %d fetches, want none within the interval", n-2)
	}

	// Past the interval, the flood (concurrent) causes exactly one fetch,
	// which brings key-2025: the rotated token is accepted.
	clock.Advance(DefaultJWKSMinRefresh + time.Second)
	for i := range 50 {
		wg.Go(func() {
			tok := mint(t, jwt.SigningMethodRS256, k.otherRSA, longClaims(), map[string]any{"kid": fmt.Sprintf("forged-again-%d", i)})
			_ = j.Verify(clock.request(tok))
		})
	}
	wg.Go(func() { _ = j.Verify(clock.request(rotated)) })
	wg.Wait()
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("fetches = %d after the interval, want exactly 3", n)
	}
	wantReason(t, j.Verify(clock.request(rotated)), "")
	if n := srv.fetches.Load(); n != 3 {
		t.Fatalf("a known kid caused a fetch")
	}
}

func TestJWKSRotatedKeyAcceptedAfterOneRefresh(t *testing.T) {
	k := testJWTKeys()
	srv := newJWKSServer(t, jwkOf(&k.rsa.PublicKey, "old", ""))
	clock := newTestClock()
	j := preparedJWT(t, JWT{JWKS: loadedJWKS(t, srv, clock)})
	srv.set(t, jwkOf(&k.rsa.PublicKey, "old", ""), jwkOf(&k.p256.PublicKey, "new", ""))
	clock.Advance(DefaultJWKSMinRefresh)
	tok := mint(t, jwt.SigningMethodES256, k.p256, longClaims(), map[string]any{"kid": "new"})
	wantReason(t, j.Verify(clock.request(tok)), "")
	if n := srv.fetches.Load(); n != 2 {
		t.Fatalf("fetches = %d, want 2 (Load, one refresh)", n)
	}
}

func TestJWKSStaleSetRefreshedInBackground(t *testing.T) {
	k := testJWTKeys()
	srv := newJWKSServer(t, jwkOf(&k.rsa.PublicKey, "revoked", ""), jwkOf(k.ed.Public(), "kept", ""))
	clock := newTestClock()
	j := preparedJWT(t, JWT{JWKS: loadedJWKS(t, srv, clock)})
	revoked := mint(t, jwt.SigningMethodRS256, k.rsa, longClaims(), map[string]any{"kid": "revoked"})
	wantReason(t, j.Verify(clock.request(revoked)), "")

	// The issuer removes the key. Once the cache is older than MaxAge the
	// next request starts a refresh (served meanwhile with the old set).
	srv.set(t, jwkOf(k.ed.Public(), "kept", ""))
	clock.Advance(DefaultJWKSMaxAge)
	_ = j.Verify(clock.request(revoked))
	deadline := time.Now().Add(5 * time.Second)
	for srv.fetches.Load() < 2 || j.JWKS.background.Load() {
		if time.Now().After(deadline) {
			t.Fatal("no background refresh of a stale key set")
		}
		time.Sleep(5 * time.Millisecond)
	}
	wantReason(t, j.Verify(clock.request(revoked)), reasonJWTUnknownKey)
	kept := mint(t, jwt.SigningMethodEdDSA, k.ed, longClaims(), map[string]any{"kid": "kept"})
	wantReason(t, j.Verify(clock.request(kept)), "")
}

func TestJWKSFailedRefreshKeepsKeys(t *testing.T) {
	k := testJWTKeys()
	srv := newJWKSServer(t, jwkOf(k.ed.Public(), "ed", ""))
	clock := newTestClock()
	var warned atomic.Int64
	jwks := &JWKS{URL: srv.URL, Now: clock.Now, Warn: func(string, error) { warned.Add(1) }}
	if err := jwks.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	j := preparedJWT(t, JWT{JWKS: jwks})
	srv.setRaw("<html>maintenance</html>")
	clock.Advance(DefaultJWKSMinRefresh)
	wantReason(t, j.Verify(clock.request(mint(t, jwt.SigningMethodEdDSA, k.ed, longClaims(), map[string]any{"kid": "unknown"}))), reasonJWTUnknownKey)
	if warned.Load() == 0 {
		t.Fatal("a failed refresh was not reported")
	}
	wantReason(t, j.Verify(clock.request(mint(t, jwt.SigningMethodEdDSA, k.ed, longClaims(), map[string]any{"kid": "ed"}))), "")
}

// The token does not choose where keys come from: jku, x5u and an embedded
// jwk pointing at the attacker's own key are ignored, and nothing is
// fetched from them.
func TestJWTIgnoresJkuAndX5u(t *testing.T) {
	k := testJWTKeys()
	attacker := newJWKSServer(t, jwkOf(&k.otherRSA.PublicKey, "evil", "RS256"))
	srv := newJWKSServer(t, jwkOf(&k.rsa.PublicKey, "good", "RS256"))
	clock := newTestClock()
	j := preparedJWT(t, JWT{JWKS: loadedJWKS(t, srv, clock)})
	embedded, _ := json.Marshal(jwkOf(&k.otherRSA.PublicKey, "evil", "RS256"))
	headers := []map[string]any{
		{"kid": "evil", "jku": attacker.URL},
		{"kid": "good", "jku": attacker.URL},
		{"kid": "evil", "x5u": attacker.URL},
		{"jwk": json.RawMessage(embedded)},
	}
	for i, h := range headers {
		clock.Advance(DefaultJWKSMinRefresh) // let any refresh happen
		err := j.Verify(clock.request(mint(t, jwt.SigningMethodRS256, k.otherRSA, longClaims(), h)))
		if err == nil {
			t.Fatalf("header %d: a token signed with the attacker's key was accepted", i)
		}
	}
	if n := attacker.fetches.Load(); n != 0 {
		t.Fatalf("the attacker's URL was fetched %d times", n)
	}
}

func TestJWKSLoadErrors(t *testing.T) {
	k := testJWTKeys()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notFound.Close)
	httpsToHTTP := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://127.0.0.1:1/jwks.json", http.StatusFound)
	}))
	t.Cleanup(httpsToHTTP.Close)
	big := newJWKSServer(t, jwkOf(k.ed.Public(), strings.Repeat("k", 4096), ""))

	tests := []struct {
		name string
		s    *JWKS
		body string // served by a fresh server when set
		want string
	}{
		{"unreachable", &JWKS{URL: closedURL + "/jwks.json?key=s3cr3t"}, "", "fetching the key set"},
		{"404", &JWKS{URL: notFound.URL}, "", "HTTP status 404"},
		{"not JSON", nil, "<html>", "not a JSON Web Key Set"},
		{"empty set", nil, `{"keys":[]}`, "no usable public key"},
		{"an OpenID configuration instead", nil, `{"issuer":"https://issuer.example","jwks_uri":"https://issuer.example/keys"}`, `no "keys" member`},
		{"only a symmetric key", nil, `{"keys":[{"kty":"oct","kid":"s","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}`, "symmetric (oct) keys are never taken"},
		{"only an encryption key", nil, mustJSON(t, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.rsa.PublicKey, KeyID: "e", Use: "enc"}}}), `use "enc" is not sig`},
		{"private key material", nil, mustJSON(t, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.ed, KeyID: "leaked"}}}), "private key material"},
		{"alg contradicting the key", nil, mustJSON(t, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.ed.Public(), KeyID: "x", Algorithm: "RS256"}}}), `alg "RS256" does not fit the Ed25519 key`},
		{"too large", &JWKS{URL: big.URL, MaxBytes: 1024}, "", "larger than 1024 bytes"},
		{"https redirected to http", &JWKS{URL: httpsToHTTP.URL, Client: tlsClient(httpsToHTTP)}, "", "redirect from https to a non-https URL refused"},
		{"not a URL", &JWKS{URL: "file:///etc/jwks.json"}, "", "use an https:// URL"},
		{"credentials in the URL", &JWKS{URL: "https://user:pw@issuer.example/jwks"}, "", "carries credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.s
			if s == nil {
				srv := newJWKSServer(t)
				srv.setRaw(tt.body)
				s = &JWKS{URL: srv.URL}
			}
			err := s.Load(context.Background())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Load error %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), ":pw@") {
				t.Fatalf("the error reveals the URL's secret part: %v", err)
			}
			if s.Loaded() {
				t.Fatal("a failed Load left keys")
			}
		})
	}
}

func tlsClient(srv *httptest.Server) *http.Client {
	c := srv.Client()
	c.CheckRedirect = checkJWKSRedirect
	return c
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A set mixing usable keys with keys this gateway cannot use loads the
// usable ones and reports the others.
func TestJWKSSkipsUnusableKeys(t *testing.T) {
	k := testJWTKeys()
	good := mustJSON(t, jwkOf(k.ed.Public(), "ed", ""))
	srv := newJWKSServer(t)
	srv.setRaw(`{"keys":[{"kty":"OKP","crv":"X25519","x":"3p7bfXt9wbTTW2HC7OQ1Nz-DQ8hbeGdNrfx-FG-IK08","kid":"x"},{"kty":"oct","k":"AAAA"},` + good + `]}`)
	var skipped []string
	s := &JWKS{URL: srv.URL, Warn: func(msg string, err error) { skipped = append(skipped, err.Error()) }}
	if err := s.Load(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 2 {
		t.Fatalf("skipped %v, want the X25519 and the oct key", skipped)
	}
	j := preparedJWT(t, JWT{JWKS: s})
	wantReason(t, j.Verify(bearer(mint(t, jwt.SigningMethodEdDSA, k.ed, jwtClaims(), map[string]any{"kid": "ed"}))), "")
}

func TestJWKSURLWarning(t *testing.T) {
	tests := []struct {
		url  string
		warn bool
		err  bool
	}{
		{"https://issuer.example/jwks.json", false, false},
		{"http://127.0.0.1:8080/jwks.json", false, false},
		{"http://[::1]:8080/jwks.json", false, false},
		{"http://localhost/jwks.json", false, false},
		{"http://issuer.example/jwks.json", true, false},
		{"http://127.0.0.1.evil.example/jwks.json", true, false},
		{"ftp://issuer.example/jwks.json", false, true},
		{"/jwks.json", false, true},
	}
	for _, tt := range tests {
		warn, err := JWKSURLWarning(tt.url)
		if warn != tt.warn || (err != nil) != tt.err {
			t.Errorf("JWKSURLWarning(%q) = %v, %v; want warn %v, error %v", tt.url, warn, err, tt.warn, tt.err)
		}
	}
}

// TestJWKSUnknownKidWaitIsBounded: an issuer that takes longer than
// KidWait to answer does not hold a token with an unknown kid for the whole
// fetch; the fetch finishes in the background and serves the next token.
func TestJWKSUnknownKidWaitIsBounded(t *testing.T) {
	k := testJWTKeys()
	srv := newJWKSServer(t, jwkOf(&k.rsa.PublicKey, "key-2024", "RS256"))
	clock := newTestClock()
	jwks := loadedJWKS(t, srv, clock)
	jwks.KidWait = 200 * time.Millisecond
	j := preparedJWT(t, JWT{JWKS: jwks})

	release := make(chan struct{})
	slow := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // the issuer hangs until the test lets it answer
		slow.ServeHTTP(w, r)
	})
	srv.set(t, jwkOf(&k.rsa.PublicKey, "key-2024", "RS256"), jwkOf(&k.otherRSA.PublicKey, "key-2025", "RS256"))
	clock.Advance(DefaultJWKSMinRefresh)
	rotated := mint(t, jwt.SigningMethodRS256, k.otherRSA, longClaims(), map[string]any{"kid": "key-2025"})

	done := make(chan error, 1)
	go func() { done <- j.Verify(clock.request(rotated)) }()
	select {
	case err := <-done:
		wantReason(t, err, reasonJWTUnknownKey)
	case <-time.After(30 * time.Second):
		t.Fatal("a token with an unknown kid waited for the hanging issuer")
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for j.Verify(clock.request(rotated)) != nil {
		if time.Now().After(deadline) {
			t.Fatal("the background fetch never brought the rotated key")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d := DefaultJWKSKidWait; d > 2*time.Second {
		t.Fatalf("the default unknown-kid wait is %s, more than the documented 2s", d)
	}
}
