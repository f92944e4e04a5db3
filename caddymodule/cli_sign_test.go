package caddymodule

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hooklaunch/caddy-valohai/validators"
)

// runSignCLI runs `caddy valohai sign` in-process through its cobra
// command, as the caddy binary does, and returns stdout and stderr.
func runSignCLI(t *testing.T, stdin string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := signCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(args)
	cmd.SilenceUsage = true
	err = cmd.Execute()
	return out.String(), errOut.String(), err
}

// mustSign is runSignCLI for a run that must succeed.
func mustSign(t *testing.T, args ...string) string {
	t.Helper()
	out, stderr, err := runSignCLI(t, "", args...)
	if err != nil {
		t.Fatalf("sign %q: %v (stderr %q)", args, err, stderr)
	}
	return out
}

// parseSignOutput splits the command's output into its header lines and
// its curl command (from the line starting with "curl " to the end).
func parseSignOutput(t *testing.T, out string) (http.Header, string) {
	t.Helper()
	head, curl := out, ""
	if i := strings.Index(out, "curl "); i >= 0 && (i == 0 || out[i-1] == '\n') {
		head, curl = out[:i], out[i:]
		if i > 0 && !strings.HasSuffix(head, "\n\n") {
			t.Fatalf("no empty line between the headers and the curl command in %q", out)
		}
	}
	h := http.Header{}
	for _, line := range strings.Split(strings.TrimRight(head, "\n"), "\n") {
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("output line %q is not \"Name: value\" in %q", line, out)
		}
		h.Add(name, value)
	}
	return h, strings.TrimSpace(curl)
}

func flatHeaders(h http.Header) map[string]string {
	m := map[string]string{}
	for k, v := range h {
		m[k] = v[0]
	}
	return m
}

// The published examples come out exactly, whatever the secret's source.
func TestSignCLIPublishedExamples(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "github.secret")
	if err := os.WriteFile(secretFile, []byte(githubSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	bodyFile := filepath.Join(dir, "body")
	if err := os.WriteFile(bodyFile, []byte(githubBody), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SIGN_TEST_GITHUB", githubSecret)
	want := "Content-Type: application/octet-stream\nX-Hub-Signature-256: " + githubSignature + "\n"
	for name, args := range map[string][]string{
		"env and inline body":    {"--preset", "github", "--secret-env", "SIGN_TEST_GITHUB", "--body", githubBody},
		"file and body file":     {"--preset", "GitHub", "--secret-file", secretFile, "--body-file", bodyFile},
		"custom flags as github": {"--header", "x-hub-signature-256", "--prefix", "sha256=", "--secret-env", "SIGN_TEST_GITHUB", "--body", githubBody},
	} {
		t.Run(name, func(t *testing.T) {
			if got := mustSign(t, args...); got != want {
				t.Fatalf("output %q, want %q", got, want)
			}
		})
	}
	t.Run("body from stdin", func(t *testing.T) {
		out, _, err := runSignCLI(t, githubBody, "--preset", "github", "--secret-env", "SIGN_TEST_GITHUB", "--body-file", "-")
		if err != nil || out != want {
			t.Fatalf("output %q, %v; want %q", out, err, want)
		}
	})

	t.Run("slack", func(t *testing.T) {
		// Slack's example, "Verifying requests from Slack".
		t.Setenv("SIGN_TEST_SLACK", "8f742231b10e8888abcd99yyyzzz85a5")
		body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
		out, stderr, err := runSignCLI(t, "", "--preset", "slack", "--secret-env", "SIGN_TEST_SLACK", "--body", body, "--time", "1531420618")
		if err != nil {
			t.Fatal(err)
		}
		want := "Content-Type: application/x-www-form-urlencoded\n" +
			"X-Slack-Request-Timestamp: 1531420618\n" +
			"X-Slack-Signature: v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503\n"
		if out != want {
			t.Fatalf("output %q, want %q", out, want)
		}
		// A 2018 timestamp is far outside Slack's 5 minutes: the user is told.
		mustContain(t, stderr, "outside the receiver's tolerance of 5m0s")
	})

	t.Run("standard", func(t *testing.T) {
		// The Standard Webhooks reference libraries' test vector.
		t.Setenv("SIGN_TEST_STANDARD", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
		out := mustSign(t, "--preset", "standard", "--secret-env", "SIGN_TEST_STANDARD", "--body", `{"test": 2432232314}`,
			"--time", "2021-02-25T15:02:10Z", "--id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
		want := "Content-Type: application/json\n" +
			"Webhook-Id: msg_p5jXN8AQM9LWM0D4loKWxJek\n" +
			"Webhook-Signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=\n" +
			"Webhook-Timestamp: 1614265330\n"
		if out != want {
			t.Fatalf("output %q, want %q", out, want)
		}
	})
}

// A custom configuration: what the command prints, the receiver configured
// with the same fields accepts.
func TestSignCLICustomHMAC(t *testing.T) {
	t.Setenv("SIGN_TEST_CUSTOM", "00112233445566778899aabbccddeeff")
	body := `{"event":"build","ok":true}`
	out := mustSign(t, "--header", "X-Signature", "--algorithm", "sha512", "--encoding", "base64url",
		"--prefix", "v2=", "--message", "{timestamp}:{header.X-Event}:{body}",
		"--timestamp-header", "X-Timestamp", "--timestamp-format", "unix_ms",
		"--secret-env", "SIGN_TEST_CUSTOM", "--secret-encoding", "hex",
		"-H", "X-Event: build", "--body", body)
	h, curl := parseSignOutput(t, out)
	if curl != "" {
		t.Fatalf("a curl command without --url: %q", curl)
	}
	if h.Get("X-Event") != "build" || h.Get("Content-Type") != "application/json" || !strings.HasPrefix(h.Get("X-Signature"), "v2=") {
		t.Fatalf("headers %v", h)
	}
	ms, err := strconv.ParseInt(h.Get("X-Timestamp"), 10, 64)
	if err != nil || time.Since(time.UnixMilli(ms)).Abs() > time.Minute {
		t.Fatalf("X-Timestamp %q is not now in milliseconds", h.Get("X-Timestamp"))
	}

	recv := validators.HMAC{
		Signature: validators.Source{Kind: validators.SourceHeader, Name: "X-Signature"},
		Algorithm: "sha512", Encoding: "base64url", Prefix: "v2=", Message: "{timestamp}:{header.X-Event}:{body}",
		Timestamp:      &validators.TimestampSource{Source: validators.Source{Kind: validators.SourceHeader, Name: "X-Timestamp"}, Format: validators.TimestampUnixMilli},
		SecretEncoding: validators.SecretHex,
	}
	if err := recv.AddSecret("00112233445566778899aabbccddeeff"); err != nil {
		t.Fatal(err)
	}
	if err := recv.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := recv.Verify(&validators.Request{Header: h, Body: []byte(body)}); err != nil {
		t.Fatalf("the receiver rejects the printed headers: %v", err)
	}
	h.Set("X-Event", "deploy")
	if err := recv.Verify(&validators.Request{Header: h, Body: []byte(body)}); err == nil {
		t.Fatal("the signed X-Event header is not covered")
	}
}

func TestSignCLIToken(t *testing.T) {
	t.Setenv("SIGN_TEST_TOKEN", "tok-3f9a")
	verify := func(t *testing.T, tok validators.Token, r *validators.Request) {
		t.Helper()
		tok.Secrets = [][]byte{[]byte("tok-3f9a")}
		if err := tok.Validate(); err != nil {
			t.Fatal(err)
		}
		if err := tok.Verify(r); err != nil {
			t.Fatalf("webhook_token rejects it: %v", err)
		}
	}
	t.Run("default Authorization Bearer", func(t *testing.T) {
		out := mustSign(t, "--token", "--secret-env", "SIGN_TEST_TOKEN")
		if out != "Authorization: Bearer tok-3f9a\n" {
			t.Fatalf("output %q", out)
		}
		h, _ := parseSignOutput(t, out)
		verify(t, validators.Token{Source: validators.Source{Kind: validators.SourceHeader, Name: "Authorization"}, Prefix: "Bearer "}, &validators.Request{Header: h})
	})
	t.Run("custom header and prefix, with a body", func(t *testing.T) {
		out := mustSign(t, "--token", "--secret-env", "SIGN_TEST_TOKEN", "--token-header", "x-label-token", "--token-prefix", "secret=", "--body", `{"a":1}`)
		if out != "Content-Type: application/json\nX-Label-Token: secret=tok-3f9a\n" {
			t.Fatalf("output %q", out)
		}
		h, _ := parseSignOutput(t, out)
		verify(t, validators.Token{Source: validators.Source{Kind: validators.SourceHeader, Name: "X-Label-Token"}, Prefix: "secret="}, &validators.Request{Header: h})
	})
	t.Run("query parameter", func(t *testing.T) {
		out := mustSign(t, "--token", "--secret-env", "SIGN_TEST_TOKEN", "--token-query", "token", "--url", "https://hooks.example.com/v7?x=1")
		want := "curl -sS -i -X POST 'https://hooks.example.com/v7?token=tok-3f9a&x=1'\n"
		if out != want {
			t.Fatalf("output %q, want %q", out, want)
		}
		u, _ := url.Parse("https://hooks.example.com/v7?token=tok-3f9a&x=1")
		verify(t, validators.Token{Source: validators.Source{Kind: validators.SourceQuery, Name: "token"}}, &validators.Request{Query: u.Query()})
	})
}

// writePEM writes a private key as PEM of the given block type.
func writePEM(t *testing.T, blockType string, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The printed JWT parses back with the public key, with the claims asked
// for, and the webhook_jwt condition accepts it.
func TestSignCLIJWT(t *testing.T) {
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edDER, _ := x509.MarshalPKCS8PrivateKey(edKey)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalECPrivateKey(ecKey)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)

	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	tests := []struct {
		name, alg string
		public    crypto.PublicKey
		args      []string
	}{
		{"EdDSA, PKCS#8", "EdDSA", edKey.Public(), []string{"--jwt-key-file", writePEM(t, "PRIVATE KEY", edDER)}},
		{"ES256, SEC 1", "ES256", ecKey.Public(), []string{"--jwt-key-file", writePEM(t, "EC PRIVATE KEY", ecDER)}},
		{"RS256, PKCS#1", "RS256", rsaKey.Public(), []string{"--jwt-key-file", writePEM(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), "--jwt-alg", "rs256", "--jwt-kid", "k1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--jwt", "--issuer", "https://ci.example", "--audience", "my-trigger", "--subject", "deploy-bot",
				"--claim", "repository=org/repo", "--claim", "ref=refs/heads/main", "--ttl", "10m", "--time", at.Format(time.RFC3339)}, tt.args...)
			out := mustSign(t, args...)
			h, _ := parseSignOutput(t, out)
			if len(h) != 1 || !strings.HasPrefix(h.Get("Authorization"), "Bearer ") {
				t.Fatalf("output %q, want one Authorization: Bearer line", out)
			}
			raw := strings.TrimPrefix(h.Get("Authorization"), "Bearer ")

			claims := jwt.MapClaims{}
			tok, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return tt.public, nil },
				jwt.WithValidMethods([]string{tt.alg}), jwt.WithIssuer("https://ci.example"), jwt.WithAudience("my-trigger"), jwt.WithExpirationRequired())
			if err != nil {
				t.Fatalf("the token does not verify with the public key: %v", err)
			}
			if tok.Header["alg"] != tt.alg {
				t.Fatalf("alg %v", tok.Header["alg"])
			}
			if tt.alg == "RS256" && tok.Header["kid"] != "k1" {
				t.Fatalf("kid %v", tok.Header["kid"])
			}
			want := map[string]any{"iss": "https://ci.example", "aud": "my-trigger", "sub": "deploy-bot", "repository": "org/repo", "ref": "refs/heads/main",
				"iat": float64(at.Unix()), "exp": float64(at.Add(10 * time.Minute).Unix())}
			if !reflect.DeepEqual(map[string]any(claims), want) {
				t.Fatalf("claims %v, want %v", claims, want)
			}

			recv := validators.JWT{PublicKeys: []crypto.PublicKey{tt.public}, Issuer: "https://ci.example", Audience: []string{"my-trigger"},
				MaxAge: 5 * time.Minute, Claims: []validators.ClaimMatch{{Name: "repository", Values: []string{"org/repo"}}}}
			if err := recv.Validate(); err != nil {
				t.Fatal(err)
			}
			r := &validators.Request{Header: h}
			if err := recv.Verify(r); err != nil {
				t.Fatalf("webhook_jwt rejects the token: %v", err)
			}
		})
	}

	t.Run("HS256 with a secret", func(t *testing.T) {
		secret := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 48))
		t.Setenv("SIGN_TEST_JWT", secret)
		out := mustSign(t, "--jwt", "--secret-env", "SIGN_TEST_JWT", "--audience", "a", "--audience", "b")
		h, _ := parseSignOutput(t, out)
		recv := validators.JWT{Secrets: [][]byte{[]byte(secret)}, Audience: []string{"b"}}
		if err := recv.Validate(); err != nil {
			t.Fatal(err)
		}
		r := &validators.Request{Header: h}
		if err := recv.Verify(r); err != nil {
			t.Fatalf("webhook_jwt rejects the token: %v", err)
		}
		if aud, ok := r.JWTClaims["aud"].([]any); !ok || len(aud) != 2 {
			t.Fatalf("aud = %#v, want both audiences", r.JWTClaims["aud"])
		}
		exp, _ := r.JWTClaims["exp"].(interface{ Int64() (int64, error) })
		if exp == nil {
			t.Fatalf("exp = %#v", r.JWTClaims["exp"])
		}
		if e, _ := exp.Int64(); time.Until(time.Unix(e, 0)) > 5*time.Minute || time.Until(time.Unix(e, 0)) < 4*time.Minute {
			t.Fatalf("exp %d is not now + the default 5m ttl", e)
		}
	})
}

// Mistakes are explained, and no error ever repeats the secret.
func TestSignCLIErrors(t *testing.T) {
	const secret = "s3cr3t-never-printed"
	t.Setenv("SIGN_TEST_ERR", secret)
	t.Setenv("SIGN_TEST_EMPTY", "")
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsaFile := writePEM(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))
	// Keys webhook_jwt refuses: the command refuses them too, with the
	// receiver's own rules (validators' key-size floor and curve list).
	smallRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	smallRSAFile := writePEM(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(smallRSA))
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	p224DER, _ := x509.MarshalECPrivateKey(p224)
	p224File := writePEM(t, "EC PRIVATE KEY", p224DER)
	notPEM := filepath.Join(t.TempDir(), "x.pem")
	if err := os.WriteFile(notPEM, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no secret", []string{"--preset", "github", "--body", "x"}, "no secret: give --secret-env"},
		{"unset env", []string{"--preset", "github", "--secret-env", "SIGN_TEST_EMPTY", "--body", "x"}, "--secret-env SIGN_TEST_EMPTY: the environment variable is not set or empty"},
		{"two secrets", []string{"--preset", "github", "--secret-env", "SIGN_TEST_ERR", "--secret", secret, "--body", "x"}, "give the secret once"},
		{"no body", []string{"--preset", "github", "--secret-env", "SIGN_TEST_ERR"}, "HMAC mode signs a body"},
		{"no signature place", []string{"--secret-env", "SIGN_TEST_ERR", "--body", "x"}, "where does the signature go?"},
		{"unknown preset", []string{"--preset", "gitbub", "--secret-env", "SIGN_TEST_ERR", "--body", "x"}, "unknown preset \"gitbub\": use one of github, linear"},
		{"bad whsec", []string{"--preset", "standard", "--secret-env", "SIGN_TEST_ERR", "--body", "x"}, "secret_encoding whsec: the secret is not a Standard Webhooks secret"},
		{"two modes", []string{"--token", "--jwt", "--secret-env", "SIGN_TEST_ERR"}, "--token and --jwt are different modes"},
		{"HMAC flag in token mode", []string{"--token", "--preset", "github", "--secret-env", "SIGN_TEST_ERR"}, "--preset does not apply in --token mode: it is an HMAC flag"},
		{"JWT flag in HMAC mode", []string{"--preset", "github", "--issuer", "x", "--secret-env", "SIGN_TEST_ERR", "--body", "x"}, "--issuer does not apply in HMAC mode: it is a --jwt flag"},
		{"format without timestamp", []string{"--header", "X-Sig", "--timestamp-format", "unix_ms", "--secret-env", "SIGN_TEST_ERR", "--body", "x"}, "--timestamp-format needs a timestamp"},
		{"curl without url", []string{"--preset", "github", "--secret-env", "SIGN_TEST_ERR", "--body", "x", "--curl"}, "--curl needs --url"},
		{"bad add-header", []string{"--preset", "github", "--secret-env", "SIGN_TEST_ERR", "--body", "x", "-H", "NoColon"}, `--add-header "NoColon": use "Name: value"`},
		{"NUL body inline", []string{"--preset", "github", "--secret-env", "SIGN_TEST_ERR", "--body", "a\x00b", "--url", "http://h/"}, "give it with --body-file"},
		{"bad time", []string{"--preset", "slack", "--secret-env", "SIGN_TEST_ERR", "--body", "x", "--time", "yesterday"}, `--time "yesterday": use unix seconds`},
		{"short HS secret", []string{"--jwt", "--secret-env", "SIGN_TEST_ERR"}, "the secret is 20 bytes: webhook_jwt refuses HMAC secrets under 32 bytes"},
		{"jwt without key", []string{"--jwt"}, "--jwt needs a key"},
		{"jwt alg vs key", []string{"--jwt", "--jwt-key-file", rsaFile, "--jwt-alg", "ES256"}, `--jwt-alg ES256: alg "ES256" does not fit the RSA key: use RS256 or RS384 or RS512 or PS256 or PS384 or PS512`},
		{"jwt HS alg with a key file", []string{"--jwt", "--jwt-key-file", rsaFile, "--jwt-alg", "hs256"}, `--jwt-alg HS256: alg "HS256" does not fit the RSA key`},
		{"jwt RS alg with a secret", []string{"--jwt", "--secret-env", "SIGN_TEST_ERR", "--jwt-alg", "RS256"}, "--jwt-alg RS256 signs with a private key: give --jwt-key-file <PEM>, or use HS256, HS384, HS512 with the secret"},
		{"jwt RSA under 2048 bits", []string{"--jwt", "--jwt-key-file", smallRSAFile}, "--jwt-key-file: webhook_jwt would refuse this key: RSA key of 1024 bits is too small: use at least 2048 bits"},
		{"jwt curve P-224", []string{"--jwt", "--jwt-key-file", p224File}, "--jwt-key-file: webhook_jwt would refuse this key: ECDSA curve P-224 is not supported: use P-256, P-384 or P-521"},
		{"jwt none", []string{"--jwt", "--jwt-key-file", rsaFile, "--jwt-alg", "none"}, `--jwt-alg "none" is not supported`},
		{"jwt key not PEM", []string{"--jwt", "--jwt-key-file", notPEM}, "no PEM private key found"},
		{"jwt reserved claim", []string{"--jwt", "--jwt-key-file", rsaFile, "--claim", "exp=1"}, "iat and exp are set from --time and --ttl"},
		{"relative url", []string{"--token", "--secret-env", "SIGN_TEST_ERR", "--url", "/hook"}, "--url: give the trigger's absolute http:// or https:// URL"},
		{"token query without url", []string{"--token", "--token-query", "t", "--secret-env", "SIGN_TEST_ERR"}, "--token-query t puts the token in the URL: give --url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr, err := runSignCLI(t, "", tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			if out != "" {
				t.Fatalf("a failed run printed %q", out)
			}
			for _, s := range []string{err.Error(), stderr} {
				if strings.Contains(s, secret) {
					t.Fatalf("%q leaks the secret", s)
				}
			}
		})
	}
}

func TestSignShellQuote(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	for _, s := range []string{"", "plain", "it's", `"$HOME" $(id) ` + "`id`", "a\nb\tc\\", "'''", "@file", "ünïcode"} {
		got, err := exec.Command(bash, "-c", "printf %s "+signShellQuote(s)).Output()
		if err != nil || string(got) != s {
			t.Errorf("bash read %s as %q (%v), want %q", signShellQuote(s), got, err, s)
		}
	}
}

const signRoutes = `
	handle /github {
		webhook_hmac github {env.SIGN_E2E_GITHUB}
		valohai_launch sign-github {
			project ` + testProject + `
			execution train {
				commit main
			}
		}
	}
	handle /slack {
		webhook_hmac slack {env.SIGN_E2E_SLACK}
		valohai_launch sign-slack {
			project ` + testProject + `
			execution train {
				commit main
			}
		}
	}
	handle /stripe {
		webhook_hmac stripe {env.SIGN_E2E_STRIPE}
		valohai_launch sign-stripe {
			project ` + testProject + `
			execution train {
				commit main
			}
		}
	}
	handle /standard {
		webhook_hmac standard {env.SIGN_E2E_STANDARD}
		valohai_launch sign-standard {
			project ` + testProject + `
			execution train {
				commit main
			}
		}
	}
	handle /token {
		webhook_token {env.SIGN_E2E_TOKEN}
		valohai_launch sign-token {
			project ` + testProject + `
			execution train {
				commit main
			}
		}
	}
`

// End to end: the headers the command prints, sent with the body to a real
// Caddy whose trigger uses the same preset and secret, launch an execution;
// and the printed curl command, run by bash, does too.
func TestSignCLIThroughCaddy(t *testing.T) {
	secrets := map[string]string{
		"github":   `gh "secret" with spaces & $dollars`,
		"slack":    "8f742231b10e8888abcd99yyyzzz85a5",
		"stripe":   "whsec_DaLRHCRs35vEXqOE8uTEAXGLGUOnyaFf",
		"standard": "whsec_" + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("k3y"), 11)),
	}
	for name, s := range secrets {
		t.Setenv("SIGN_E2E_"+strings.ToUpper(name), s)
	}
	t.Setenv("SIGN_E2E_TOKEN", "e2e-token")
	env := startEnv(t, signRoutes, "")

	launches := func(t *testing.T, path string, before int) {
		t.Helper()
		waitFor(t, "an execution launched by "+path, 10*time.Second, func() bool { return len(env.executionCalls()) > before })
	}
	bodies := map[string]string{
		"github":   `{"ref":"refs/heads/main","commits":[]}`,
		"slack":    "command=%2Ftrain&text=epochs%3D3",
		"stripe":   `{"id":"evt_1","type":"checkout.session.completed"}`,
		"standard": `{"type":"invoice.paid"}`,
	}
	for _, name := range []string{"github", "slack", "stripe", "standard"} {
		t.Run(name+" headers", func(t *testing.T) {
			out := mustSign(t, "--preset", name, "--secret-env", "SIGN_E2E_"+strings.ToUpper(name), "--body", bodies[name], "--url", env.hook+"/"+name)
			h, curl := parseSignOutput(t, out)
			if !strings.HasPrefix(curl, "curl ") {
				t.Fatalf("no curl command in %q", out)
			}
			before := len(env.executionCalls())
			r := env.post("/"+name, []byte(bodies[name]), flatHeaders(h))
			if r.status != http.StatusOK {
				t.Fatalf("status %d %q for headers %v", r.status, r.body, h)
			}
			launches(t, "/"+name, before)

			// The same headers with a changed body are turned away.
			r = env.post("/"+name, []byte(bodies[name]+" "), flatHeaders(h))
			if r.status != http.StatusBadRequest || !strings.Contains(r.body, "webhook_hmac: signature mismatch") {
				t.Fatalf("changed body: status %d %q", r.status, r.body)
			}
		})
	}

	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	runCurl := func(t *testing.T, line string) string {
		t.Helper()
		got, err := exec.Command(bash, "-c", line).CombinedOutput()
		if err != nil {
			t.Fatalf("running %s: %v\n%s", line, err, got)
		}
		return string(got)
	}
	t.Run("curl, inline body that needs quoting", func(t *testing.T) {
		body := "{\"note\":\"it's $HOME `id` \\\"q\\\"\",\n\"n\":1}"
		out := mustSign(t, "--preset", "stripe", "--secret-env", "SIGN_E2E_STRIPE", "--body", body, "--url", env.hook+"/stripe")
		_, curl := parseSignOutput(t, out)
		mustContain(t, curl, "--data-raw '")
		before := len(env.executionCalls())
		got := runCurl(t, curl)
		if !strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Fatalf("curl got %q", got)
		}
		launches(t, "/stripe", before)
	})
	t.Run("curl, body file, piped to sh", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "push's body.json")
		body := []byte("{\"ref\":\"refs/heads/main\"}\r\n\n")
		if err := os.WriteFile(file, body, 0o600); err != nil {
			t.Fatal(err)
		}
		out := mustSign(t, "--preset", "github", "--secret-env", "SIGN_E2E_GITHUB", "--body-file", file, "--url", env.hook+"/github")
		_, curl := parseSignOutput(t, out)
		mustContain(t, curl, "--data-binary @")
		before := len(env.executionCalls())
		// The whole output through the recipe of docs/sign.md.
		got := runCurl(t, "printf '%s' "+signShellQuote(out)+" | sed -n '/^curl /,$p' | sh")
		if !strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Fatalf("curl got %q", got)
		}
		launches(t, "/github", before)
	})
	t.Run("curl, token without a body", func(t *testing.T) {
		out := mustSign(t, "--token", "--secret-env", "SIGN_E2E_TOKEN", "--url", env.hook+"/token")
		_, curl := parseSignOutput(t, out)
		before := len(env.executionCalls())
		got := runCurl(t, curl)
		if !strings.HasPrefix(got, "HTTP/1.1 200") {
			t.Fatalf("curl got %q", got)
		}
		launches(t, "/token", before)
	})
}
