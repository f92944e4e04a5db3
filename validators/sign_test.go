package validators

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// receivedAs is the request a receiver sees for what Sign produced: the
// headers, the query of the URL, the URL itself and the body, at clock now.
func receivedAs(t testing.TB, s *Signed, body []byte, now time.Time) *Request {
	t.Helper()
	r := &Request{Method: http.MethodPost, Header: s.Header.Clone(), Body: body, URL: s.URL, Now: clockAt(now), Query: url.Values{}}
	if s.URL != "" {
		u, err := url.Parse(s.URL)
		if err != nil {
			t.Fatalf("Sign returned an unparsable URL %q: %v", s.URL, err)
		}
		r.Query, r.Host, r.Path = u.Query(), u.Host, u.Path
	}
	return r
}

// signTestSecret is a secret every secret encoding can read: valid base64,
// used raw by the raw presets and decoded by the whsec one.
const signTestSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// The key property, for every preset: Verify accepts what Sign produced,
// and rejects it once the body or the secret differ.
func TestSignVerifyEveryPreset(t *testing.T) {
	now := testNow
	for _, name := range PresetNames() {
		t.Run(name, func(t *testing.T) {
			body := []byte(`{"action":"opened","n":1}`)
			if name == "linear" {
				body = []byte(`{"action":"create","webhookTimestamp":` + strconv.FormatInt(now.UnixMilli(), 10) + `}`)
			}
			signer := presetHMAC(t, name, signTestSecret)
			s, err := signer.Sign(body, SignOptions{Now: now, URL: "https://hooks.example.com/" + name})
			if err != nil {
				t.Fatal(err)
			}
			// A fresh receiver: the same preset, built independently.
			receiver := presetHMAC(t, name, signTestSecret)
			if err := receiver.Verify(receivedAs(t, s, body, now.Add(2*time.Second))); err != nil {
				t.Fatalf("Verify rejected what Sign produced (%v): %v", s.Header, err)
			}

			tampered := append([]byte(nil), body...)
			tampered[len(tampered)-2] ^= 1
			checkVerdict(t, receiver.Verify(receivedAs(t, s, tampered, now)), "webhook_hmac: signature mismatch", DirectiveHMAC)

			other := presetHMAC(t, name, "whsec_"+base64.StdEncoding.EncodeToString([]byte("another key entirely")))
			checkVerdict(t, other.Verify(receivedAs(t, s, body, now)), "webhook_hmac: signature mismatch", DirectiveHMAC)

			preset, _ := Preset(name)
			if got := s.Header.Get(preset.Signature.Name); got == "" {
				t.Fatalf("no %s header in %v", preset.Signature.Name, s.Header)
			}
			if preset.Timestamp != nil && preset.Timestamp.Source.Kind == SourceHeader {
				if got, want := s.Header.Get(preset.Timestamp.Source.Name), strconv.FormatInt(now.Unix(), 10); got != want {
					t.Fatalf("%s = %q, want the signing time %s", preset.Timestamp.Source.Name, got, want)
				}
			}
		})
	}
}

// The header layouts are the senders' own, byte for byte.
func TestSignHeaderLayouts(t *testing.T) {
	body := []byte("payload")
	ts := strconv.FormatInt(testNow.Unix(), 10)
	hexMAC := hexSHA256(signTestSecret, ts, ".", string(body))
	key := mustB64(t, strings.TrimPrefix(signTestSecret, "whsec_"))
	std := base64.StdEncoding.EncodeToString(macOf(sha256.New, string(key), "msg_fixed.", ts, ".", "payload"))
	tests := []struct {
		preset, header, want string
	}{
		{"github", "X-Hub-Signature-256", "sha256=" + hexSHA256(signTestSecret, "payload")},
		{"slack", "X-Slack-Signature", "v0=" + hexSHA256(signTestSecret, "v0:", ts, ":payload")},
		{"stripe", "Stripe-Signature", "t=" + ts + ",v1=" + hexMAC},
		{"standard", "Webhook-Signature", "v1," + std},
		{"shopify", "X-Shopify-Hmac-Sha256", base64.StdEncoding.EncodeToString(macOf(sha256.New, signTestSecret, "payload"))},
		{"valohai", "Authorization", hexSHA256(signTestSecret, "payload")},
	}
	for _, tt := range tests {
		t.Run(tt.preset, func(t *testing.T) {
			s, err := presetHMAC(t, tt.preset, signTestSecret).Sign(body, SignOptions{Now: testNow, ID: "msg_fixed"})
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Header.Get(tt.header); got != tt.want {
				t.Fatalf("%s = %q, want %q", tt.header, got, tt.want)
			}
		})
	}
}

// GitHub's, Slack's and Standard Webhooks' published examples come out of
// Sign exactly, with the clock (and id) of the example.
func TestSignReproducesPublishedExamples(t *testing.T) {
	t.Run("github", func(t *testing.T) {
		s, err := presetHMAC(t, "github", githubSecret).Sign([]byte("Hello, World!"), SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := http.Header{"X-Hub-Signature-256": {githubHeader}}
		if !reflect.DeepEqual(s.Header, want) {
			t.Fatalf("headers = %v, want %v", s.Header, want)
		}
	})
	t.Run("slack", func(t *testing.T) {
		sec, _ := strconv.ParseInt(slackTS, 10, 64)
		s, err := presetHMAC(t, "slack", slackSecret).Sign([]byte(slackBody), SignOptions{Now: time.Unix(sec, 0)})
		if err != nil {
			t.Fatal(err)
		}
		want := http.Header{"X-Slack-Signature": {slackSig}, "X-Slack-Request-Timestamp": {slackTS}}
		if !reflect.DeepEqual(s.Header, want) {
			t.Fatalf("headers = %v, want %v", s.Header, want)
		}
		if s.Timestamp != slackTS {
			t.Fatalf("Timestamp = %q", s.Timestamp)
		}
	})
	t.Run("standard", func(t *testing.T) {
		sec, _ := strconv.ParseInt(standardTS, 10, 64)
		s, err := presetHMAC(t, "standard", standardSecret).Sign([]byte(standardBody), SignOptions{Now: time.Unix(sec, 0), ID: standardID})
		if err != nil {
			t.Fatal(err)
		}
		want := http.Header{"Webhook-Id": {standardID}, "Webhook-Timestamp": {standardTS}, "Webhook-Signature": {"v1," + standardSig}}
		if !reflect.DeepEqual(s.Header, want) {
			t.Fatalf("headers = %v, want %v", s.Header, want)
		}
	})
}

// Custom configurations, each through the same round trip, and each
// checked against an independent computation of the signed string.
func TestSignVerifyCustom(t *testing.T) {
	delivery := "72d3162e-cc78-11e3-81ab-4c9367dc0958"
	tests := []struct {
		name   string
		h      HMAC
		secret string // as configured, decoded by SecretEncoding
		opts   SignOptions
		body   string
		// check inspects the result against the expected wire format.
		check func(t *testing.T, s *Signed)
	}{
		{
			name:   "sha512 base64url in a query parameter",
			h:      HMAC{Signature: Source{Kind: SourceQuery, Name: "sig"}, Algorithm: "sha512", Encoding: "base64url"},
			secret: "query-secret", body: "a=1&b=2",
			opts: SignOptions{URL: "https://hooks.example.com/q?trigger=train"},
			check: func(t *testing.T, s *Signed) {
				want := base64.RawURLEncoding.EncodeToString(macOf(sha512.New, "query-secret", "a=1&b=2"))
				if got := s.Query.Get("sig"); got != want {
					t.Fatalf("sig = %q, want %q", got, want)
				}
				if s.URL != "https://hooks.example.com/q?trigger=train&sig="+want {
					t.Fatalf("URL = %q", s.URL)
				}
				if len(s.Header) != 0 {
					t.Fatalf("headers %v, want none", s.Header)
				}
			},
		},
		{
			name: "sha1 base64 over a signed header, hex secret",
			h: HMAC{Signature: Source{Kind: SourceHeader, Name: "X-Sig"}, Algorithm: "sha1", Encoding: "base64",
				Prefix: "sha1=", Message: "{header.X-Delivery}:{body}", SecretEncoding: SecretHex},
			secret: "00ff10", body: "payload",
			opts: SignOptions{Header: http.Header{"X-Delivery": {delivery}}},
			check: func(t *testing.T, s *Signed) {
				want := "sha1=" + base64.StdEncoding.EncodeToString(macOf(sha1.New, "\x00\xff\x10", delivery, ":payload"))
				if got := s.Header.Get("X-Sig"); got != want {
					t.Fatalf("X-Sig = %q, want %q", got, want)
				}
				if s.Header.Get("X-Delivery") != delivery {
					t.Fatal("the signed header is not among those to send")
				}
			},
		},
		{
			name: "rfc3339 timestamp in the query, signed through {url}",
			h: HMAC{Signature: Source{Kind: SourceHeader, Name: "X-Signature"}, Message: "{url}|{body}",
				Timestamp: &TimestampSource{Source: Source{Kind: SourceQuery, Name: "ts"}, Format: TimestampRFC3339}},
			secret: "url-secret", body: `{"x":1}`,
			opts: SignOptions{URL: "http://127.0.0.1:8080"},
			check: func(t *testing.T, s *Signed) {
				wantURL := "http://127.0.0.1:8080/?ts=" + url.QueryEscape(testNow.UTC().Format(time.RFC3339))
				if s.URL != wantURL {
					t.Fatalf("URL = %q, want %q", s.URL, wantURL)
				}
				if got, want := s.Header.Get("X-Signature"), hexSHA256("url-secret", wantURL, `|{"x":1}`); got != want {
					t.Fatalf("X-Signature = %q, want %q", got, want)
				}
			},
		},
		{
			name: "valohai client with unix_ms timestamp and literal braces",
			h: HMAC{Signature: Source{Kind: SourceHeader, Name: "Authorization"}, Prefix: "Signature ",
				Message:   `\{{timestamp}\}{body}`,
				Timestamp: &TimestampSource{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}, Format: TimestampUnixMilli}},
			secret: "valohai-secret", body: "{}",
			check: func(t *testing.T, s *Signed) {
				ms := strconv.FormatInt(testNow.UnixMilli(), 10)
				if s.Header.Get("X-Timestamp") != ms {
					t.Fatalf("X-Timestamp = %q, want %s", s.Header.Get("X-Timestamp"), ms)
				}
				if got, want := s.Header.Get("Authorization"), "Signature "+hexSHA256("valohai-secret", "{", ms, "}{}"); got != want {
					t.Fatalf("Authorization = %q, want %q", got, want)
				}
			},
		},
		{
			name: "id in a query parameter, generated",
			h: HMAC{Signature: Source{Kind: SourceHeader, Name: "X-Sig"}, Message: "{id}.{body}",
				ID: &Source{Kind: SourceQuery, Name: "delivery"}, SecretEncoding: SecretBase64},
			secret: base64.StdEncoding.EncodeToString([]byte("base64 key")), body: "b",
			opts: SignOptions{URL: "https://hooks.example.com/x"},
			check: func(t *testing.T, s *Signed) {
				if !strings.HasPrefix(s.ID, "msg_") || len(s.ID) != len("msg_")+26 {
					t.Fatalf("generated id %q", s.ID)
				}
				if s.Query.Get("delivery") != s.ID {
					t.Fatalf("query %v does not carry the id %q", s.Query, s.ID)
				}
				if got, want := s.Header.Get("X-Sig"), hexSHA256("base64 key", s.ID, ".b"); got != want {
					t.Fatalf("X-Sig = %q, want %q", got, want)
				}
			},
		},
		{
			name: "stripe scheme with a custom header and sha512",
			h: HMAC{Signature: Source{Kind: SourceHeader, Name: "X-Pay-Signature"}, Scheme: SchemeStripe, Algorithm: "sha512",
				Message: "{timestamp}.{body}"},
			secret: "pay", body: "{}",
			check: func(t *testing.T, s *Signed) {
				ts := strconv.FormatInt(testNow.Unix(), 10)
				want := "t=" + ts + ",v1=" + hex.EncodeToString(macOf(sha512.New, "pay", ts, ".{}"))
				if got := s.Header.Get("X-Pay-Signature"); got != want {
					t.Fatalf("header = %q, want %q", got, want)
				}
			},
		},
		{
			name: "timestamp in a form body field",
			h: HMAC{Signature: Source{Kind: SourceHeader, Name: "X-Sig"},
				Timestamp: &TimestampSource{Source: Source{Kind: SourceField, Name: "ts"}}},
			secret: "form", body: "ts=" + strconv.FormatInt(testNow.Unix(), 10) + "&text=hi",
			opts: SignOptions{Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}},
			check: func(t *testing.T, s *Signed) {
				if len(s.Notes) != 1 || !strings.Contains(s.Notes[0], `body field "ts", signed as part of the body`) {
					t.Fatalf("notes = %q", s.Notes)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			signer := tt.h
			if err := signer.AddSecret(tt.secret); err != nil {
				t.Fatal(err)
			}
			tt.opts.Now = testNow
			var before http.Header
			if tt.opts.Header != nil {
				before = tt.opts.Header.Clone()
			}
			s, err := prepared(t, signer).Sign([]byte(tt.body), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if before != nil && !reflect.DeepEqual(before, tt.opts.Header) {
				t.Fatalf("Sign changed the caller's headers: %v", tt.opts.Header)
			}
			tt.check(t, s)
			receiver := tt.h
			if err := receiver.AddSecret(tt.secret); err != nil {
				t.Fatal(err)
			}
			r := prepared(t, receiver)
			if err := r.Verify(receivedAs(t, s, []byte(tt.body), testNow.Add(time.Second))); err != nil {
				t.Fatalf("Verify rejected what Sign produced: %v (headers %v, URL %q)", err, s.Header, s.URL)
			}
			checkVerdict(t, r.Verify(receivedAs(t, s, []byte(tt.body+" "), testNow)), "webhook_hmac: signature mismatch", DirectiveHMAC)
		})
	}
}

// Sign uses the first secret: during a rotation the sender has moved to
// the new one, and a receiver that knows only the old one turns it away.
func TestSignUsesTheFirstSecret(t *testing.T) {
	s, err := presetHMAC(t, "github", "new-secret", "old-secret").Sign([]byte("x"), SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := receivedAs(t, s, []byte("x"), testNow)
	checkVerdict(t, presetHMAC(t, "github", "new-secret").Verify(r), "", DirectiveHMAC)
	checkVerdict(t, presetHMAC(t, "github", "old-secret").Verify(r), "webhook_hmac: signature mismatch", DirectiveHMAC)
}

// Linear: the timestamp is inside the body. Sign signs the body as it is
// and says what the receiver will make of it.
func TestSignLinearBodyTimestamp(t *testing.T) {
	h := presetHMAC(t, "linear", "lin-secret")
	t.Run("missing", func(t *testing.T) {
		body := []byte(`{"action":"create"}`)
		s, err := h.Sign(body, SignOptions{Now: testNow})
		if err != nil {
			t.Fatal(err)
		}
		ms := strconv.FormatInt(testNow.UnixMilli(), 10)
		if len(s.Notes) != 1 || !strings.Contains(s.Notes[0], `"missing timestamp"`) || !strings.Contains(s.Notes[0], `"webhookTimestamp": `+ms) {
			t.Fatalf("notes = %q", s.Notes)
		}
		if got, want := s.Header.Get("Linear-Signature"), hexSHA256("lin-secret", string(body)); got != want {
			t.Fatalf("Linear-Signature = %q, want the MAC of the body as it is %q", got, want)
		}
		checkVerdict(t, h.Verify(receivedAs(t, s, body, testNow)), "webhook_hmac: missing timestamp", DirectiveHMAC)
	})
	t.Run("stale", func(t *testing.T) {
		body := []byte(`{"webhookTimestamp":` + strconv.FormatInt(testNow.Add(-time.Hour).UnixMilli(), 10) + `}`)
		s, err := h.Sign(body, SignOptions{Now: testNow})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Notes) != 1 || !strings.Contains(s.Notes[0], "1h0m0s away") {
			t.Fatalf("notes = %q", s.Notes)
		}
		checkVerdict(t, h.Verify(receivedAs(t, s, body, testNow)), "webhook_hmac: timestamp outside tolerance", DirectiveHMAC)
	})
}

func TestSignNotes(t *testing.T) {
	t.Run("signed header not sent", func(t *testing.T) {
		h := prepared(t, HMAC{Secrets: secretsOf("s"), Signature: Source{Kind: SourceHeader, Name: "X-Sig"}, Message: "{header.X-Event}{body}"})
		s, err := h.Sign([]byte("b"), SignOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Notes) != 1 || !strings.Contains(s.Notes[0], "no X-Event header is sent") {
			t.Fatalf("notes = %q", s.Notes)
		}
	})
	t.Run("time outside tolerance", func(t *testing.T) {
		s, err := presetHMAC(t, "slack", "s").Sign([]byte("b"), SignOptions{Now: time.Now().Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Notes) != 1 || !strings.Contains(s.Notes[0], "outside the receiver's tolerance of 5m0s") {
			t.Fatalf("notes = %q", s.Notes)
		}
	})
	t.Run("fresh time, no note", func(t *testing.T) {
		s, err := presetHMAC(t, "standard", signTestSecret).Sign([]byte("b"), SignOptions{Now: time.Now().Add(-time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Notes) != 0 {
			t.Fatalf("notes = %q", s.Notes)
		}
	})
}

func TestSignErrors(t *testing.T) {
	const secret = "do-not-print-me"
	tests := []struct {
		name    string
		h       HMAC
		opts    SignOptions
		wantErr string
	}{
		{"no secret", HMAC{Signature: Source{Kind: SourceHeader, Name: "X-Sig"}}, SignOptions{}, "webhook_hmac: no secret configured"},
		{"bad template", HMAC{Secrets: secretsOf(secret), Signature: Source{Kind: SourceHeader, Name: "X-Sig"}, Message: "{nope}{body}"}, SignOptions{}, "unknown placeholder {nope}"},
		{"query signature without URL", HMAC{Secrets: secretsOf(secret), Signature: Source{Kind: SourceQuery, Name: "sig"}}, SignOptions{}, "goes in query parameter sig: give the trigger URL"},
		{"query signature over {url}", HMAC{Secrets: secretsOf(secret), Signature: Source{Kind: SourceQuery, Name: "sig"}, Message: "{url}{body}"}, SignOptions{URL: "https://h/"}, "the URL would have to contain its own signature"},
		{"{url} without URL", HMAC{Secrets: secretsOf(secret), Signature: Source{Kind: SourceHeader, Name: "X-Sig"}, Message: "{url}{body}"}, SignOptions{}, "the message signs {url}: give the trigger URL"},
		{"query timestamp without URL", HMAC{Secrets: secretsOf(secret), Signature: Source{Kind: SourceHeader, Name: "X-Sig"}, Message: "{timestamp}{body}",
			Timestamp: &TimestampSource{Source: Source{Kind: SourceQuery, Name: "ts"}}}, SignOptions{}, "query ts: the value goes in the URL's query: give the trigger URL"},
		{"relative URL", HMAC{Secrets: secretsOf(secret), Signature: Source{Kind: SourceQuery, Name: "sig"}}, SignOptions{URL: "/hook"}, `the URL "/hook" is not an absolute http:// or https:// URL`},
		{"URL password redacted", HMAC{Secrets: secretsOf(secret), Signature: Source{Kind: SourceQuery, Name: "sig"}}, SignOptions{URL: "ftp://u:" + secret + "@h/"}, "ftp://u:xxxxx@h/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.h.Sign([]byte("body"), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
			assertNoSecret(t, err, secret)
		})
	}
}

func TestWithQuery(t *testing.T) {
	p := url.Values{"ts": {"1"}}
	tests := []struct{ in, want string }{
		{"http://h", "http://h/?ts=1"},
		{"http://h/", "http://h/?ts=1"},
		{"http://h?a=b", "http://h/?a=b&ts=1"},
		{"http://h/p?a=b#frag", "http://h/p?a=b&ts=1"},
		{"https://h:8443/p?", "https://h:8443/p?ts=1"},
		{"https://h/p?z=%2F&a=1", "https://h/p?z=%2F&a=1&ts=1"},
	}
	for _, tt := range tests {
		got, err := withQuery(tt.in, p)
		if err != nil || got != tt.want {
			t.Errorf("withQuery(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if got, _ := withQuery("http://h", nil); got != "http://h/" {
		t.Errorf("withQuery without params = %q", got)
	}
}

// FuzzSignVerify: for any template that parses, any body, id and extra
// header, Verify accepts what Sign produced and nothing else.
func FuzzSignVerify(f *testing.F) {
	f.Add("{body}", []byte("Hello, World!"), "msg_1", "v", uint8(0))
	f.Add("{id}.{timestamp}.{body}", []byte(`{"a":1}`), "", "x", uint8(1))
	f.Add(`\{{header.X-E}\}{url}{body}`, []byte{0, 1, 2}, "id", "", uint8(2))
	f.Add("v0:{timestamp}:{body}", []byte{}, "a b", "\t", uint8(5))
	f.Fuzz(func(t *testing.T, tmpl string, body []byte, id, extra string, knobs uint8) {
		parts, err := parseMessage(tmpl)
		if err != nil {
			return
		}
		uses := messageUses(parts)
		h := HMAC{
			Secrets:   secretsOf("fuzz-secret"),
			Signature: Source{Kind: SourceHeader, Name: "X-Sig"},
			Algorithm: []string{"sha1", "sha256", "sha512"}[knobs%3],
			Encoding:  []string{"hex", "base64", "base64url"}[(knobs/3)%3],
			Message:   tmpl,
		}
		switch {
		case knobs&0x80 != 0:
			h.Scheme = SchemeStripe
		case uses.timestamp:
			h.Timestamp = &TimestampSource{Source: Source{Kind: SourceHeader, Name: "X-Ts"}, Format: []TimestampFormat{TimestampUnix, TimestampUnixMilli, TimestampRFC3339}[(knobs/9)%3]}
		}
		if uses.id {
			h.ID = &Source{Kind: SourceHeader, Name: "X-Id"}
		}
		if h.Validate() != nil {
			return // e.g. no {body}, or stripe without {timestamp}
		}
		opts := SignOptions{Now: testNow, ID: id, URL: "https://hooks.example.com/f"}
		if extra != "" && !strings.ContainsAny(extra, "\r\n\x00") {
			opts.Header = http.Header{"X-E": {extra}}
		}
		s, err := h.Sign(body, opts)
		if err != nil {
			t.Fatalf("Sign: %v", err)
		}
		if err := h.Verify(receivedAs(t, s, body, testNow)); err != nil {
			t.Fatalf("Verify(Sign(%q)) = %v; headers %v", tmpl, err, s.Header)
		}
		if err := h.Verify(receivedAs(t, s, append(body, '!'), testNow)); err == nil {
			t.Fatalf("Verify accepted a changed body for template %q", tmpl)
		}
	})
}
