package validators

import (
	"crypto"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// jwtReasons are every reason webhook_jwt may give.
var jwtReasons = []string{
	reasonJWTMissing, reasonJWTMalformed, reasonJWTSignature, reasonJWTAlgorithm,
	reasonJWTExpired, reasonJWTNotYetValid, reasonJWTIssuer, reasonJWTAudience,
	reasonJWTTooOld, reasonJWTClaim, reasonJWTUnknownKey,
}

// fuzzJWTTokens are the only tokens the fuzzed conditions may accept: one
// valid token per key type.
func fuzzJWTTokens(f *testing.F) []string {
	k := testJWTKeys()
	return []string{
		mint(f, jwt.SigningMethodHS256, k.secret, jwtClaims(), nil),
		mint(f, jwt.SigningMethodRS256, k.rsa, jwtClaims(), map[string]any{"kid": "rsa"}),
		mint(f, jwt.SigningMethodES256, k.p256, jwtClaims(), nil),
		mint(f, jwt.SigningMethodEdDSA, k.ed, jwtClaims(), nil),
	}
}

// checkJWTOutcome fails unless err is nil for one of the valid tokens, or a
// webhook_jwt rejection with a known reason that does not echo the token.
func checkJWTOutcome(t *testing.T, r *Request, presented string, valid []string, err error) {
	t.Helper()
	if err == nil {
		if !slices.Contains(valid, presented) {
			t.Fatalf("accepted %q, which is none of the valid tokens", presented)
		}
		if r.JWTClaims["sub"] != "user-42" {
			t.Fatalf("accepted without claims: %v", r.JWTClaims)
		}
		return
	}
	rej, ok := AsRejection(err)
	if !ok || rej.Directive != DirectiveJWT || !slices.Contains(jwtReasons, rej.Reason) {
		t.Fatalf("error %v is not a known webhook_jwt rejection", err)
	}
	if r.JWTClaims != nil {
		t.Fatalf("a rejected token left claims")
	}
}

// FuzzJWTVerify feeds arbitrary strings to the parse and verify path of a
// condition that knows every key type. None may panic, and only the
// genuinely signed tokens pass: no forged, altered or re-encoded variant.
func FuzzJWTVerify(f *testing.F) {
	k := testJWTKeys()
	valid := fuzzJWTTokens(f)
	for _, tok := range valid {
		f.Add(tok)
		f.Add(tok[:len(tok)-2])
		f.Add(strings.Replace(tok, ".", "..", 1))
	}
	f.Add(unsigned("none", jwtClaims()))
	f.Add(unsigned("HS256", jwtClaims()))
	f.Add(mint(f, jwt.SigningMethodHS256, k.rsaPEM, jwtClaims(), nil))
	f.Add(mint(f, jwt.SigningMethodHS256, k.secret, jwt.MapClaims{"exp": "x", "iat": []int{1}, "aud": 5, "iss": true}, nil))
	f.Add(mint(f, jwt.SigningMethodHS256, k.secret, jwt.MapClaims{"exp": 1e300, "nbf": -1e300, "iat": 1.5}, nil))
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")
	f.Add("e30.e30.e30")
	f.Add("...")
	f.Add("")

	j := preparedJWT(f, JWT{
		Secrets:    [][]byte{k.secret},
		PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey, &k.p256.PublicKey, k.ed.Public()},
		Issuer:     "https://issuer.example",
		Audience:   []string{"my-trigger"},
		MaxAge:     5 * time.Minute,
		Claims:     []ClaimMatch{{Name: "repository", Values: []string{"org/repo"}}},
	})
	f.Fuzz(func(t *testing.T, token string) {
		r := &Request{Header: http.Header{"Authorization": {token}}, Now: clockAt(testNow)}
		err := j.Verify(r)
		presented, _ := ExtractJWT(r, Source{Kind: SourceHeader, Name: "Authorization"})
		checkJWTOutcome(t, r, presented, valid, err)
		if err != nil && len(presented) > 16 && strings.Contains(err.Error(), presented) {
			t.Fatalf("the rejection echoes the token")
		}
	})
}

// FuzzJWTSource presents arbitrary headers, query values and bodies to
// webhook_jwt conditions reading the token from each source kind. None may
// panic; extraction returns a trimmed, non-empty value or nothing; and a
// request passes only when the extracted value is a valid token.
func FuzzJWTSource(f *testing.F) {
	valid := fuzzJWTTokens(f)
	hs := valid[0]
	f.Add(uint8(0), "Bearer "+hs, "", []byte(nil), "")
	f.Add(uint8(0), "bEaReR\t "+hs, "", []byte(nil), "")
	f.Add(uint8(0), "Bearer", "", []byte(nil), "")
	f.Add(uint8(0), "BearerBearer "+hs, "", []byte(nil), "")
	f.Add(uint8(1), "", hs, []byte(nil), "")
	f.Add(uint8(1), "", " "+hs+" ", []byte(nil), "")
	f.Add(uint8(2), "", "", []byte(`{"token":"`+hs+`"}`), "application/json")
	f.Add(uint8(2), "", "", []byte("token="+url.QueryEscape(hs)), "application/x-www-form-urlencoded")
	f.Add(uint8(2), "", "", []byte(`{"token":["`+hs+`"]}`), "")
	f.Add(uint8(2), "", "", []byte(`{"token":"\u0065yJ"}`), "application/json")

	k := testJWTKeys()
	sources := []Source{
		{Kind: SourceHeader, Name: "Authorization"},
		{Kind: SourceQuery, Name: "token"},
		{Kind: SourceField, Name: "token"},
	}
	conds := make([]*JWT, len(sources))
	for i, src := range sources {
		conds[i] = preparedJWT(f, JWT{
			Source:     src,
			Secrets:    [][]byte{k.secret},
			PublicKeys: []crypto.PublicKey{&k.rsa.PublicKey, &k.p256.PublicKey, k.ed.Public()},
		})
	}
	f.Fuzz(func(t *testing.T, sel uint8, header, query string, body []byte, contentType string) {
		i := int(sel) % len(sources)
		r := &Request{
			Header: http.Header{"Authorization": {header}, "Content-Type": {contentType}},
			Query:  url.Values{"token": {query}},
			Body:   body,
			Now:    clockAt(testNow),
		}
		presented, ok := ExtractJWT(r, sources[i])
		if ok && (presented == "" || presented != strings.TrimSpace(presented)) {
			t.Fatalf("extracted %q: empty or untrimmed", presented)
		}
		if sources[i].Kind == SourceHeader && ok && len(presented) >= 7 && strings.EqualFold(presented[:7], "bearer ") {
			t.Fatalf("extracted %q still starts with the Bearer scheme", presented)
		}
		err := conds[i].Verify(r)
		if !ok {
			if rej, _ := AsRejection(err); rej == nil || rej.Reason != reasonJWTMissing {
				t.Fatalf("nothing extracted, yet Verify = %v", err)
			}
			return
		}
		checkJWTOutcome(t, r, presented, valid, err)
	})
}

// FuzzJWKSParse feeds arbitrary bytes to the key set decoder (the body a
// jwks_url answers). It may not panic, and every key it keeps is a public
// key this gateway verifies with, consistent with the JWK's alg.
func FuzzJWKSParse(f *testing.F) {
	k := testJWTKeys()
	set, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{
		jwkOf(&k.rsa.PublicKey, "rsa", "RS256"),
		jwkOf(&k.p256.PublicKey, "ec", "ES256"),
		jwkOf(k.ed.Public(), "ed", ""),
		{Key: k.ed, KeyID: "private"},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(set)
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","alg":"none"}]}`))
	f.Add([]byte(`{"keys":[null,1,"x",{}]}`))
	f.Add([]byte(`{"keys":{}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, skipped, err := parseJWKS(data)
		if err == nil && len(keys) == 0 {
			t.Fatal("no error, yet no key")
		}
		if err != nil && len(keys) != 0 {
			t.Fatal("an error, yet keys")
		}
		for _, s := range skipped {
			if s == nil {
				t.Fatal("nil skip reason")
			}
		}
		for _, key := range keys {
			if err := checkPublicKey(key.key); err != nil {
				t.Fatalf("kept an unusable key: %v", err)
			}
			if key.alg != "" && !slices.Contains(keyAlgorithms(key.key), key.alg) {
				t.Fatalf("kept a %s key with alg %q", keyKind(key.key), key.alg)
			}
		}
	})
}
