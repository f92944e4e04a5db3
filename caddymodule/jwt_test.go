package caddymodule

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
)

// jwtTestSecret is the HS256 secret of the /jwt trigger (>= 32 bytes).
const jwtTestSecret = "ci-jwt-secret-for-tests-0123456789abcdef"

// jwtIssuer is a JWKS endpoint on loopback, as an identity provider would
// serve it, counting its fetches.
type jwtIssuer struct {
	*httptest.Server
	fetches atomic.Int64
}

func newJWTIssuer(t *testing.T, keys ...jose.JSONWebKey) *jwtIssuer {
	t.Helper()
	body, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	iss := &jwtIssuer{}
	iss.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss.fetches.Add(1)
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(iss.Close)
	return iss
}

func signJWT(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ciClaims(sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss":        "https://ci.example",
		"aud":        "valohai-trigger",
		"sub":        sub,
		"repository": "org/repo",
		"iat":        now.Add(-10 * time.Second).Unix(),
		"exp":        now.Add(5 * time.Minute).Unix(),
	}
}

func TestJWTThroughCaddy(t *testing.T) {
	t.Setenv("VALOHAI_TEST_JWT_SECRET", jwtTestSecret)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(edPub)
	if err != nil {
		t.Fatal(err)
	}
	pemFile := filepath.Join(t.TempDir(), "sender.pem")
	if err := os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	issuer := newJWTIssuer(t, jose.JSONWebKey{Key: &ecKey.PublicKey, KeyID: "ci-1", Algorithm: "ES256", Use: "sig"})

	routes := `
	handle /jwt {
		webhook_jwt {
			secret   {env.VALOHAI_TEST_JWT_SECRET}
			issuer   https://ci.example
			audience valohai-trigger
		}
		valohai_launch jwt-train {
			project ` + testProject + `
			execution train {
				commit main
				title  "JWT {webhook.jwt.sub}"
			}
		}
	}
	handle /jwks {
		webhook_jwt {
			jwks_url ` + issuer.URL + `/.well-known/jwks.json
			claim    repository org/repo
			max_age  10m
		}
		valohai_launch jwks-train {
			project ` + testProject + `
			execution train {
				commit main
				title  "JWKS {webhook.jwt.repository} by {webhook.jwt.sub}"
			}
		}
	}
	handle /pem {
		webhook_jwt {
			from       query token
			public_key ` + pemFile + `
			status     401
		}
		valohai_launch pem-train {
			project ` + testProject + `
			execution train {
				commit main
				title  "PEM {webhook.jwt.sub}"
			}
		}
	}
`
	env := startEnv(t, routes, "")

	lastTitle := func() any {
		calls := env.executionCalls()
		if len(calls) == 0 {
			t.Fatal("no execution launched")
		}
		return calls[len(calls)-1]["title"]
	}

	t.Run("a valid HS256 token launches, its sub in the title", func(t *testing.T) {
		before := len(env.executionCalls())
		tok := signJWT(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), ciClaims("alice"), nil)
		r := env.post("/jwt", []byte(`{}`), map[string]string{"Authorization": "Bearer " + tok, "Content-Type": "application/json"})
		if r.status != http.StatusOK {
			t.Fatalf("status %d %q", r.status, r.body)
		}
		if n := len(env.executionCalls()); n != before+1 {
			t.Fatalf("%d executions launched, want 1", n-before)
		}
		if title := lastTitle(); title != "JWT alice" {
			t.Fatalf("title %v, want %q", title, "JWT alice")
		}
	})

	t.Run("rejected tokens answer 400 and launch nothing", func(t *testing.T) {
		expired := ciClaims("mallory")
		expired["exp"] = time.Now().Add(-time.Minute).Unix()
		noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
		claims, _ := json.Marshal(ciClaims("mallory"))
		algNone := noneHeader + "." + base64.RawURLEncoding.EncodeToString(claims) + "."
		wrongIss := ciClaims("mallory")
		wrongIss["iss"] = "https://evil.example"
		cases := []struct {
			name, token, reason string
		}{
			{"alg none", algNone, "webhook_jwt: algorithm not allowed"},
			{"expired", signJWT(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), expired, nil), "webhook_jwt: token expired"},
			{"wrong issuer", signJWT(t, jwt.SigningMethodHS256, []byte(jwtTestSecret), wrongIss, nil), "webhook_jwt: wrong issuer"},
			{"other secret", signJWT(t, jwt.SigningMethodHS256, []byte("another-secret-of-the-same-length-0123456"), ciClaims("mallory"), nil), "webhook_jwt: invalid signature"},
			{"no token", "", "webhook_jwt: missing token"},
		}
		for _, c := range cases {
			before := len(env.executionCalls())
			headers := map[string]string{"Content-Type": "application/json"}
			if c.token != "" {
				headers["Authorization"] = "Bearer " + c.token
			}
			r := env.post("/jwt", []byte(`{}`), headers)
			if r.status != http.StatusBadRequest {
				t.Fatalf("%s: status %d %q, want 400", c.name, r.status, r.body)
			}
			mustContain(t, r.body, c.reason)
			if c.token != "" && strings.Contains(r.body, strings.Split(c.token, ".")[1]) {
				t.Fatalf("%s: the response reveals the token: %q", c.name, r.body)
			}
			if n := len(env.executionCalls()); n != before {
				t.Fatalf("%s: a rejected token launched %d executions", c.name, n-before)
			}
		}
	})

	t.Run("jwks_url on loopback: the issuer's ES256 key verifies", func(t *testing.T) {
		fetchesAtStart := issuer.fetches.Load()
		if fetchesAtStart < 1 {
			t.Fatal("the key set was not fetched at provision")
		}
		before := len(env.executionCalls())
		tok := signJWT(t, jwt.SigningMethodES256, ecKey, ciClaims("bob"), map[string]any{"kid": "ci-1"})
		r := env.post("/jwks", nil, map[string]string{"Authorization": "Bearer " + tok})
		if r.status != http.StatusOK {
			t.Fatalf("status %d %q", r.status, r.body)
		}
		if n := len(env.executionCalls()); n != before+1 {
			t.Fatalf("%d executions launched, want 1", n-before)
		}
		if title := lastTitle(); title != "JWKS org/repo by bob" {
			t.Fatalf("title %v", title)
		}

		// A token from an unknown kid, a claim mismatch and a stale iat.
		other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		fork := ciClaims("bob")
		fork["repository"] = "someone/fork"
		stale := ciClaims("bob")
		stale["iat"] = time.Now().Add(-time.Hour).Unix()
		for _, c := range []struct{ token, reason string }{
			{signJWT(t, jwt.SigningMethodES256, other, ciClaims("eve"), map[string]any{"kid": "eve-1", "jku": issuer.URL + "/evil.json"}), "webhook_jwt: unknown key"},
			{signJWT(t, jwt.SigningMethodES256, ecKey, fork, map[string]any{"kid": "ci-1"}), "webhook_jwt: claim mismatch"},
			{signJWT(t, jwt.SigningMethodES256, ecKey, stale, map[string]any{"kid": "ci-1"}), "webhook_jwt: token too old"},
		} {
			before := len(env.executionCalls())
			r := env.post("/jwks", nil, map[string]string{"Authorization": "Bearer " + c.token})
			if r.status != http.StatusBadRequest {
				t.Fatalf("%s: status %d %q", c.reason, r.status, r.body)
			}
			mustContain(t, r.body, c.reason)
			if n := len(env.executionCalls()); n != before {
				t.Fatalf("%s: launched", c.reason)
			}
		}
		// Within the refresh interval after provision, the unknown kid did
		// not make Caddy fetch the set again.
		if n := issuer.fetches.Load(); n != fetchesAtStart {
			t.Fatalf("the key set was fetched %d more times", n-fetchesAtStart)
		}
	})

	t.Run("public_key file, token in the query, status 401", func(t *testing.T) {
		tok := signJWT(t, jwt.SigningMethodEdDSA, edKey, ciClaims("carol"), nil)
		r := env.post("/pem?token="+tok, []byte(`{}`), nil)
		if r.status != http.StatusOK {
			t.Fatalf("status %d %q", r.status, r.body)
		}
		if title := lastTitle(); title != "PEM carol" {
			t.Fatalf("title %v", title)
		}
		// Key confusion: HS256 keyed with the public key's PEM bytes.
		pemBytes, _ := os.ReadFile(pemFile)
		forged := signJWT(t, jwt.SigningMethodHS256, pemBytes, ciClaims("mallory"), nil)
		r = env.post("/pem?token="+forged, []byte(`{}`), nil)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("key confusion: status %d %q, want 401", r.status, r.body)
		}
		mustContain(t, r.body, "webhook_jwt: algorithm not allowed")
		// The Authorization header is not where this trigger looks.
		r = env.post("/pem", []byte(`{}`), map[string]string{"Authorization": "Bearer " + tok})
		if r.status != http.StatusUnauthorized {
			t.Fatalf("token in the wrong place: %d", r.status)
		}
		mustContain(t, r.body, "webhook_jwt: missing token")
	})
}

func TestJWTConfigErrors(t *testing.T) {
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	notJWKS := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"issuer":"https://ci.example"}`))
	}))
	defer notJWKS.Close()
	privDir := t.TempDir()
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	privDER, _ := x509.MarshalPKCS8PrivateKey(edKey)
	privFile := filepath.Join(privDir, "private.pem")
	if err := os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), 0o600); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, site string
		want       []string
	}{
		{
			name: "algorithms none",
			site: "webhook_jwt {\n\t\tsecret " + jwtTestSecret + "\n\t\talgorithms HS256 none\n\t}",
			want: []string{"webhook_jwt", "algorithms none", "never accepted"},
		},
		{
			name: "unreachable jwks_url",
			site: "webhook_jwt {\n\t\tjwks_url " + closedURL + "/.well-known/jwks.json\n\t}",
			want: []string{"webhook_jwt", "jwks_url", "fetching the key set", "reachable"},
		},
		{
			name: "jwks_url answering something else",
			site: "webhook_jwt {\n\t\tjwks_url " + notJWKS.URL + "\n\t}",
			want: []string{"webhook_jwt", "jwks_url", `no "keys" member`, "jwks_uri"},
		},
		{
			name: "jwks_url not http(s)",
			site: "webhook_jwt {\n\t\tjwks_url file:///etc/jwks.json\n\t}",
			want: []string{"webhook_jwt", "use an https:// URL"},
		},
		{
			name: "empty secret",
			site: "webhook_jwt {\n\t\tsecret {env.VALOHAI_TEST_UNSET_SECRET}\n\t}",
			want: []string{"webhook_jwt", "secret #1 ({env.VALOHAI_TEST_UNSET_SECRET}) is empty"},
		},
		{
			name: "short secret",
			site: "webhook_jwt {\n\t\tsecret too-short\n\t}",
			want: []string{"webhook_jwt", "at least 32 bytes"},
		},
		{
			name: "no key at all",
			site: "webhook_jwt {\n\t\tissuer https://ci.example\n\t}",
			want: []string{"webhook_jwt", "a key is required"},
		},
		{
			name: "RS256 without an RSA key",
			site: "webhook_jwt {\n\t\tsecret " + jwtTestSecret + "\n\t\talgorithms RS256\n\t}",
			want: []string{"webhook_jwt", "algorithms RS256", "RSA `public_key`"},
		},
		{
			name: "missing public key file",
			site: "webhook_jwt {\n\t\tpublic_key " + filepath.Join(privDir, "nope.pem") + "\n\t}",
			want: []string{"webhook_jwt", "public_key", "PEM public key file"},
		},
		{
			name: "private key as public_key",
			site: "webhook_jwt {\n\t\tpublic_key " + privFile + "\n\t}",
			want: []string{"webhook_jwt", "is a private key", "-pubout"},
		},
		{
			name: "require_exp typo",
			site: "webhook_jwt {\n\t\tsecret " + jwtTestSecret + "\n\t\trequire_exp maybe\n\t}",
			want: []string{"webhook_jwt", "require_exp takes on or off"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cf := "{\n\tadmin off\n\tvalohai {\n\t\tstore file " + dir + "\n\t}\n}\nhttp://127.0.0.1:0 {\n\t" + c.site + "\n\trespond ok\n}\n"
			err := loadCaddyfile(cf)
			if err == nil {
				_ = caddy.Stop()
				t.Fatalf("config loaded, want an error")
			}
			for _, w := range c.want {
				mustContain(t, err.Error(), w)
			}
			if strings.Contains(err.Error(), jwtTestSecret) {
				t.Fatalf("the config error reveals the secret: %v", err)
			}
		})
	}
}
