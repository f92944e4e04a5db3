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
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// GitHub's published example, from "Validating webhook deliveries".
const (
	githubSecret = "It's a Secret to Everybody"
	githubBody   = "Hello, World!"
	githubHex    = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	githubHeader = "sha256=" + githubHex
)

// testNow is the receiver's clock in tests with timestamps.
var testNow = time.Unix(1_700_000_000, 0)

func clockAt(t time.Time) func() time.Time { return func() time.Time { return t } }

// macOf computes the MAC a sender would send, independently of the code
// under test: plain crypto/hmac over the concatenated message.
func macOf(newHash func() hash.Hash, key string, message ...string) []byte {
	m := hmac.New(newHash, []byte(key))
	for _, part := range message {
		m.Write([]byte(part))
	}
	return m.Sum(nil)
}

func hexSHA256(key string, message ...string) string {
	return hex.EncodeToString(macOf(sha256.New, key, message...))
}

// secretsOf turns strings into key bytes.
func secretsOf(ss ...string) [][]byte {
	out := make([][]byte, len(ss))
	for i, s := range ss {
		out[i] = []byte(s)
	}
	return out
}

// prepared validates h, failing the test on a config error.
func prepared(t testing.TB, h HMAC) *HMAC {
	t.Helper()
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	return &h
}

func githubHMAC(t testing.TB, secrets ...string) *HMAC {
	t.Helper()
	h, err := Preset("github")
	if err != nil {
		t.Fatal(err)
	}
	h.Secrets = secretsOf(secrets...)
	return prepared(t, h)
}

func TestHMACGitHub(t *testing.T) {
	hub := func(v string) http.Header { return http.Header{"X-Hub-Signature-256": {v}} }
	tests := []struct {
		name    string
		secrets []string
		header  http.Header
		body    string
		wantErr string
	}{
		{name: "published example", header: hub(githubHeader)},
		{name: "upper-case hex", header: hub("sha256=" + strings.ToUpper(githubHex))},
		{name: "upper-case prefix", header: hub("SHA256=" + githubHex)},
		{name: "list with a stale entry first", header: hub("sha256=" + strings.Repeat("0", 64) + ", " + githubHeader)},
		{name: "wrong secret", secrets: []string{githubSecret + "!"}, header: hub(githubHeader), wantErr: "webhook_hmac: signature mismatch"},
		{name: "missing header", header: http.Header{}, wantErr: "webhook_hmac: missing signature"},
		{name: "empty header", header: hub(""), wantErr: "webhook_hmac: missing signature"},
		{name: "blank header", header: hub("   "), wantErr: "webhook_hmac: missing signature"},
		{name: "legacy sha1 header only", header: http.Header{"X-Hub-Signature": {"sha1=" + hex.EncodeToString(macOf(sha1.New, githubSecret, githubBody))}}, wantErr: "webhook_hmac: missing signature"},
		{name: "wrong prefix", header: hub("sha1=" + githubHex), wantErr: "webhook_hmac: malformed signature"},
		{name: "no prefix", header: hub(githubHex), wantErr: "webhook_hmac: malformed signature"},
		{name: "prefix only", header: hub("sha256="), wantErr: "webhook_hmac: malformed signature"},
		{name: "truncated by one", header: hub(githubHeader[:len(githubHeader)-1]), wantErr: "webhook_hmac: malformed signature"},
		{name: "truncated by one byte", header: hub(githubHeader[:len(githubHeader)-2]), wantErr: "webhook_hmac: malformed signature"},
		{name: "extended", header: hub(githubHeader + "00"), wantErr: "webhook_hmac: malformed signature"},
		{name: "not hex", header: hub("sha256=" + strings.Repeat("zz", 32)), wantErr: "webhook_hmac: malformed signature"},
		{name: "body changed", body: "Hello, World?", header: hub(githubHeader), wantErr: "webhook_hmac: signature mismatch"},
		{name: "empty body", body: "-", header: hub(githubHeader), wantErr: "webhook_hmac: signature mismatch"},
		{
			// The signature covers the bytes sent, not any JSON equivalent:
			// signed with a space, sent without it.
			name:    "re-serialized JSON",
			body:    `{"a":1}`,
			header:  hub("sha256=" + hexSHA256(githubSecret, `{"a": 1}`)),
			wantErr: "webhook_hmac: signature mismatch",
		},
		{name: "raw JSON bytes", body: `{"a": 1}`, header: hub("sha256=" + hexSHA256(githubSecret, `{"a": 1}`))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := tt.secrets
			if secrets == nil {
				secrets = []string{githubSecret}
			}
			body := tt.body
			switch body {
			case "":
				body = githubBody
			case "-":
				body = ""
			}
			h := githubHMAC(t, secrets...)
			err := h.Verify(&Request{Header: tt.header, Body: []byte(body)})
			checkVerdict(t, err, tt.wantErr, DirectiveHMAC)
			assertNoSecret(t, err, githubSecret, githubHex, hexSHA256(githubSecret, body))
		})
	}
}

func TestHMACRotation(t *testing.T) {
	const oldSecret, newSecret = "old-secret-7a1", "new-secret-c93"
	h := githubHMAC(t, oldSecret, newSecret)
	body := `{"ref":"refs/heads/main"}`
	for _, s := range []string{oldSecret, newSecret} {
		r := &Request{Header: http.Header{"X-Hub-Signature-256": {"sha256=" + hexSHA256(s, body)}}, Body: []byte(body)}
		if err := h.Verify(r); err != nil {
			t.Errorf("signature by %s rejected: %v", s, err)
		}
	}
	r := &Request{Header: http.Header{"X-Hub-Signature-256": {"sha256=" + hexSHA256("retired", body)}}, Body: []byte(body)}
	checkVerdict(t, h.Verify(r), "webhook_hmac: signature mismatch", DirectiveHMAC)
}

// The Valohai client (valohai-utils valohai/webhooks.py) sends
// auth_secret_prefix + hex(HMAC(secret, hmac_format % {body, timestamp})),
// by default in Authorization. Its own test: sha256 / "foobar" over
// {"foo": "bar"} gives 15b944e3…2510.
func TestHMACValohaiClient(t *testing.T) {
	body := `{"foo": "bar"}`
	sig := hexSHA256("foobar", body)
	if !strings.HasPrefix(sig, "15b944e3") || !strings.HasSuffix(sig, "2510") {
		t.Fatalf("valohai-utils example digest = %s, want 15b944e3…2510", sig)
	}
	h := prepared(t, HMAC{
		Secrets:   secretsOf("foobar"),
		Signature: mustSource(t, "header", "Authorization"),
		Algorithm: "sha256",
		Encoding:  "hex",
	})
	ok := &Request{Header: http.Header{"Authorization": {sig}}, Body: []byte(body)}
	checkVerdict(t, h.Verify(ok), "", DirectiveHMAC)
	bad := &Request{Header: http.Header{"Authorization": {sig}}, Body: []byte(`{"foo":"bar"}`)}
	checkVerdict(t, h.Verify(bad), "webhook_hmac: signature mismatch", DirectiveHMAC)

	// With a timestamp: hmac_format b"v123:%(body)s:%(timestamp)d", unix_ms
	// in X-Timestamp, and a prefix.
	ts := strconv.FormatInt(testNow.UnixMilli(), 10)
	timed := prepared(t, HMAC{
		Secrets:   secretsOf("foobar"),
		Signature: mustSource(t, "header", "Authorization"),
		Prefix:    "sha256=",
		Message:   "v123:{body}:{timestamp}",
		Timestamp: &TimestampSource{Source: mustSource(t, "header", "X-Timestamp"), Format: TimestampUnixMilli},
	})
	sig = "sha256=" + hexSHA256("foobar", "v123:", body, ":", ts)
	r := func(ts string, now time.Time) *Request {
		return &Request{Header: http.Header{"Authorization": {sig}, "X-Timestamp": {ts}}, Body: []byte(body), Now: clockAt(now)}
	}
	checkVerdict(t, timed.Verify(r(ts, testNow)), "", DirectiveHMAC)
	checkVerdict(t, timed.Verify(r(ts, testNow.Add(6*time.Minute))), "webhook_hmac: timestamp outside tolerance", DirectiveHMAC)
	checkVerdict(t, timed.Verify(r(ts+"1", testNow)), "webhook_hmac: timestamp outside tolerance", DirectiveHMAC)
	checkVerdict(t, timed.Verify(r(strconv.FormatInt(testNow.UnixMilli()+1, 10), testNow)), "webhook_hmac: signature mismatch", DirectiveHMAC)
	checkVerdict(t, timed.Verify(r("", testNow)), "webhook_hmac: missing timestamp", DirectiveHMAC)
	checkVerdict(t, timed.Verify(r("1.7e12", testNow)), "webhook_hmac: malformed timestamp", DirectiveHMAC)
}

// stripeHMAC is what the stripe preset will configure: the whsec_ secret
// used as-is (stripe-go computeSignature uses []byte(secret)).
func stripeHMAC(t testing.TB, secrets ...string) *HMAC {
	return prepared(t, HMAC{
		Secrets:   secretsOf(secrets...),
		Signature: mustSource(t, "header", "Stripe-Signature"),
		Algorithm: "sha256",
		Encoding:  "hex",
		Message:   "{timestamp}.{body}",
		Scheme:    SchemeStripe,
	})
}

func TestHMACStripe(t *testing.T) {
	const secret = "whsec_test_5f2c9d1e"
	const body = `{"id":"evt_1","type":"checkout.session.completed"}`
	ts := strconv.FormatInt(testNow.Unix(), 10)
	tsAt := func(d time.Duration) string { return strconv.FormatInt(testNow.Add(d).Unix(), 10) }
	good := hexSHA256(secret, ts, ".", body)
	other := hexSHA256("whsec_rolled_away", ts, ".", body)
	tests := []struct {
		name    string
		header  string
		wantErr string
	}{
		{name: "second v1 matches, v0 ignored", header: "t=" + ts + ",v1=" + other + ",v1=" + good + ",v0=" + other},
		{name: "spaces between items", header: "t=" + ts + ", v1=" + good},
		{name: "t after signatures", header: "v1=" + good + ",t=" + ts},
		{name: "only v0, even a valid one", header: "t=" + ts + ",v0=" + good, wantErr: "webhook_hmac: missing signature"},
		{name: "no matching v1", header: "t=" + ts + ",v1=" + other, wantErr: "webhook_hmac: signature mismatch"},
		{name: "no t", header: "v1=" + good, wantErr: "webhook_hmac: missing timestamp"},
		{name: "empty t", header: "t=,v1=" + good, wantErr: "webhook_hmac: missing timestamp"},
		{name: "t not a number", header: "t=yesterday,v1=" + good, wantErr: "webhook_hmac: malformed timestamp"},
		{name: "two t", header: "t=" + ts + ",t=" + ts + ",v1=" + good, wantErr: "webhook_hmac: malformed signature"},
		{name: "item without =", header: "t=" + ts + ",v1" + good, wantErr: "webhook_hmac: malformed signature"},
		{name: "t changed after signing", header: "t=" + tsAt(time.Second) + ",v1=" + good, wantErr: "webhook_hmac: signature mismatch"},
		{name: "stale", header: "t=" + tsAt(-301*time.Second) + ",v1=" + hexSHA256(secret, tsAt(-301*time.Second), ".", body), wantErr: "webhook_hmac: timestamp outside tolerance"},
		{name: "future", header: "t=" + tsAt(301*time.Second) + ",v1=" + hexSHA256(secret, tsAt(301*time.Second), ".", body), wantErr: "webhook_hmac: timestamp outside tolerance"},
		{name: "just within tolerance", header: "t=" + tsAt(-299*time.Second) + ",v1=" + hexSHA256(secret, tsAt(-299*time.Second), ".", body)},
		{name: "v1 not hex", header: "t=" + ts + ",v1=" + strings.Repeat("x", 64), wantErr: "webhook_hmac: malformed signature"},
		{name: "too many signatures", header: "t=" + ts + strings.Repeat(",v1="+other, maxCandidates) + ",v1=" + good, wantErr: "webhook_hmac: malformed signature"},
	}
	h := stripeHMAC(t, secret)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := &Request{Header: http.Header{"Stripe-Signature": {tt.header}}, Body: []byte(body), Now: clockAt(testNow)}
			err := h.Verify(r)
			checkVerdict(t, err, tt.wantErr, DirectiveHMAC)
			assertNoSecret(t, err, secret, good)
		})
	}
}

// standardHMAC is what the standard preset will configure.
func standardHMAC(t testing.TB, secret string) *HMAC {
	key, err := DecodeSecret(TrimWhsecPrefix(secret), "base64")
	if err != nil {
		t.Fatal(err)
	}
	id := mustSource(t, "header", "webhook-id")
	return prepared(t, HMAC{
		Secrets:   [][]byte{key},
		Signature: mustSource(t, "header", "webhook-signature"),
		Algorithm: "sha256",
		Encoding:  "base64",
		Message:   "{id}.{timestamp}.{body}",
		Timestamp: &TimestampSource{Source: mustSource(t, "header", "webhook-timestamp"), Format: TimestampUnix},
		ID:        &id,
		Scheme:    SchemeStandard,
	})
}

func TestHMACStandardWebhooks(t *testing.T) {
	// The Standard Webhooks reference libraries' test vector.
	const (
		secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
		id     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
		ts     = "1614265330"
		body   = `{"test": 2432232314}`
		good   = "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
	)
	signedAt := time.Unix(1614265330, 0)
	bad := base64.StdEncoding.EncodeToString(macOf(sha256.New, "other", id, ".", ts, ".", body))
	tests := []struct {
		name    string
		headers map[string]string
		now     time.Time
		wantErr string
	}{
		{name: "published vector", headers: map[string]string{"webhook-signature": "v1," + good}},
		{name: "second v1 matches", headers: map[string]string{"webhook-signature": "v1," + bad + " v1," + good}},
		{name: "unpadded", headers: map[string]string{"webhook-signature": "v1," + strings.TrimRight(good, "=")}},
		{name: "unknown versions ignored", headers: map[string]string{"webhook-signature": "v1a," + good + " v2," + good + " v1," + bad}, wantErr: "webhook_hmac: signature mismatch"},
		{name: "only v1a", headers: map[string]string{"webhook-signature": "v1a," + good}, wantErr: "webhook_hmac: missing signature"},
		{name: "hex instead of base64", headers: map[string]string{"webhook-signature": "v1," + hex.EncodeToString(mustB64(t, good))}, wantErr: "webhook_hmac: malformed signature"},
		{name: "missing id", headers: map[string]string{"webhook-signature": "v1," + good, "webhook-id": "-"}, wantErr: "webhook_hmac: missing id"},
		{name: "other id", headers: map[string]string{"webhook-signature": "v1," + good, "webhook-id": "msg_other"}, wantErr: "webhook_hmac: signature mismatch"},
		{name: "missing timestamp", headers: map[string]string{"webhook-signature": "v1," + good, "webhook-timestamp": "-"}, wantErr: "webhook_hmac: missing timestamp"},
		{name: "stale", now: signedAt.Add(5*time.Minute + time.Second), headers: map[string]string{"webhook-signature": "v1," + good}, wantErr: "webhook_hmac: timestamp outside tolerance"},
		{name: "from the future", now: signedAt.Add(-5*time.Minute - time.Second), headers: map[string]string{"webhook-signature": "v1," + good}, wantErr: "webhook_hmac: timestamp outside tolerance"},
	}
	h := standardHMAC(t, secret)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{"Webhook-Id": {id}, "Webhook-Timestamp": {ts}}
			for k, v := range tt.headers {
				if v == "-" {
					hdr.Del(k)
				} else {
					hdr.Set(k, v)
				}
			}
			now := tt.now
			if now.IsZero() {
				now = signedAt.Add(10 * time.Second)
			}
			err := h.Verify(&Request{Header: hdr, Body: []byte(body), Now: clockAt(now)})
			checkVerdict(t, err, tt.wantErr, DirectiveHMAC)
			assertNoSecret(t, err, secret, TrimWhsecPrefix(secret), good)
		})
	}
}

func mustB64(t testing.TB, s string) []byte {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Slack's example from "Verifying requests from Slack", configured by hand.
func TestHMACSlackExample(t *testing.T) {
	const (
		secret = "8f742231b10e8888abcd99yyyzzz85a5"
		ts     = "1531420618"
		body   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
		sig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
	)
	h := prepared(t, HMAC{
		Secrets:   secretsOf(secret),
		Signature: mustSource(t, "header", "X-Slack-Signature"),
		Prefix:    "v0=",
		Message:   "v0:{timestamp}:{body}",
		Timestamp: &TimestampSource{Source: mustSource(t, "header", "X-Slack-Request-Timestamp")},
	})
	r := func(now time.Time) *Request {
		return &Request{
			Header: http.Header{"X-Slack-Signature": {sig}, "X-Slack-Request-Timestamp": {ts}, "Content-Type": {"application/x-www-form-urlencoded"}},
			Body:   []byte(body),
			Now:    clockAt(now),
		}
	}
	sent := time.Unix(1531420618, 0)
	checkVerdict(t, h.Verify(r(sent.Add(3*time.Second))), "", DirectiveHMAC)
	err := h.Verify(r(sent.Add(6 * time.Minute)))
	checkVerdict(t, err, "webhook_hmac: timestamp outside tolerance", DirectiveHMAC)
	assertNoSecret(t, err, secret, sig[3:])
}

// Linear signs its webhookTimestamp (ms) inside the body; the timestamp
// is signed through {body}, so its age is enforced though the message has
// no {timestamp}.
func TestHMACTimestampInBody(t *testing.T) {
	const secret = "lin_wh_2b7c"
	h := prepared(t, HMAC{
		Secrets:   secretsOf(secret),
		Signature: mustSource(t, "header", "Linear-Signature"),
		Timestamp: &TimestampSource{Source: mustSource(t, "field", "webhookTimestamp"), Format: TimestampUnixMilli},
		Tolerance: time.Minute,
	})
	req := func(body string) *Request {
		return &Request{
			Header: http.Header{"Linear-Signature": {hexSHA256(secret, body)}, "Content-Type": {"application/json"}},
			Body:   []byte(body),
			Now:    clockAt(testNow),
		}
	}
	at := func(d time.Duration) string {
		return fmt.Sprintf(`{"action":"create","webhookTimestamp":%d}`, testNow.Add(d).UnixMilli())
	}
	checkVerdict(t, h.Verify(req(at(-59*time.Second))), "", DirectiveHMAC)
	checkVerdict(t, h.Verify(req(at(-61*time.Second))), "webhook_hmac: timestamp outside tolerance", DirectiveHMAC)
	checkVerdict(t, h.Verify(req(at(61*time.Second))), "webhook_hmac: timestamp outside tolerance", DirectiveHMAC)
	checkVerdict(t, h.Verify(req(`{"action":"create"}`)), "webhook_hmac: missing timestamp", DirectiveHMAC)
}

func TestHMACEncodingsAndAlgorithms(t *testing.T) {
	const secret = "enc-secret-11"
	// A body whose MAC's standard base64 has '+' or '/', so the base64url
	// spelling really differs.
	var body string
	var mac []byte
	for i := 0; ; i++ {
		body = fmt.Sprintf(`{"n":%d}`, i)
		mac = macOf(sha256.New, secret, body)
		if strings.ContainsAny(base64.StdEncoding.EncodeToString(mac), "+/") {
			break
		}
	}
	tests := []struct {
		name      string
		algorithm string
		encoding  string
		sig       string
		wantErr   string
	}{
		{"hex lower", "sha256", "hex", hex.EncodeToString(mac), ""},
		{"hex upper", "SHA256", "HEX", strings.ToUpper(hex.EncodeToString(mac)), ""},
		{"default algorithm and encoding", "", "", hex.EncodeToString(mac), ""},
		{"base64", "sha256", "base64", base64.StdEncoding.EncodeToString(mac), ""},
		{"base64 unpadded", "sha256", "base64", base64.RawStdEncoding.EncodeToString(mac), ""},
		{"base64 given url alphabet", "sha256", "base64", base64.URLEncoding.EncodeToString(mac), "webhook_hmac: malformed signature"},
		{"base64url padded", "sha256", "base64url", base64.URLEncoding.EncodeToString(mac), ""},
		{"base64url unpadded", "sha256", "base64url", base64.RawURLEncoding.EncodeToString(mac), ""},
		{"base64url given std alphabet", "sha256", "base64url", base64.StdEncoding.EncodeToString(mac), "webhook_hmac: malformed signature"},
		{"base64 non-zero padding bits", "sha256", "base64", flipLastB64Bit(base64.StdEncoding.EncodeToString(mac)), "webhook_hmac: malformed signature"},
		{"sha1", "sha1", "hex", hex.EncodeToString(macOf(sha1.New, secret, body)), ""},
		{"sha512", "sha512", "hex", hex.EncodeToString(macOf(sha512.New, secret, body)), ""},
		{"sha512 base64url", "sha512", "base64url", base64.RawURLEncoding.EncodeToString(macOf(sha512.New, secret, body)), ""},
		{"sha256 MAC offered to sha512", "sha512", "hex", hex.EncodeToString(mac), "webhook_hmac: malformed signature"},
		{"sha1 MAC offered to sha256", "sha256", "hex", hex.EncodeToString(macOf(sha1.New, secret, body)), "webhook_hmac: malformed signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := prepared(t, HMAC{
				Secrets:   secretsOf(secret),
				Signature: mustSource(t, "query", "sig"),
				Algorithm: tt.algorithm,
				Encoding:  tt.encoding,
			})
			err := h.Verify(&Request{Query: url.Values{"sig": {tt.sig}}, Body: []byte(body)})
			checkVerdict(t, err, tt.wantErr, DirectiveHMAC)
			assertNoSecret(t, err, secret, hex.EncodeToString(mac), base64.StdEncoding.EncodeToString(mac))
		})
	}
}

// flipLastB64Bit changes the last character of a padded base64 string so
// that it decodes to the same bytes with a non-zero padding bit.
func flipLastB64Bit(s string) string {
	trimmed := strings.TrimRight(s, "=")
	last := trimmed[len(trimmed)-1]
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(alphabet, last)
	return trimmed[:len(trimmed)-1] + string(alphabet[i^1]) + s[len(trimmed):]
}

func TestHMACPlaceholders(t *testing.T) {
	const secret = "tmpl-secret"
	h := prepared(t, HMAC{
		Secrets:   secretsOf(secret),
		Signature: mustSource(t, "header", "X-Sig"),
		Message:   "{url}\n{header.x-request-id}\\{{body}\\}",
	})
	const u = "https://hooks.example.com/train?x=1"
	const body = `{"k":"v"}`
	sig := hexSHA256(secret, u, "\n", "req-42", "{", body, "}")
	req := func(reqID, url string) *Request {
		hdr := http.Header{"X-Sig": {sig}}
		if reqID != "" {
			hdr.Set("X-Request-Id", reqID)
		}
		return &Request{Header: hdr, URL: url, Body: []byte(body)}
	}
	checkVerdict(t, h.Verify(req("req-42", u)), "", DirectiveHMAC)
	checkVerdict(t, h.Verify(req("req-43", u)), "webhook_hmac: signature mismatch", DirectiveHMAC)
	checkVerdict(t, h.Verify(req("req-42", u+"&y=2")), "webhook_hmac: signature mismatch", DirectiveHMAC)

	// An absent header is signed as empty.
	sig = hexSHA256(secret, u, "\n", "{", body, "}")
	r := req("", u)
	r.Header.Set("X-Sig", sig)
	checkVerdict(t, h.Verify(r), "", DirectiveHMAC)
}

func TestParseMessage(t *testing.T) {
	tests := []struct {
		tmpl    string
		want    string // parts rendered as kind:value
		wantErr string
	}{
		{tmpl: "{body}", want: "body"},
		{tmpl: "v0:{timestamp}:{body}", want: "lit:v0: timestamp lit:: body"},
		{tmpl: "{id}.{timestamp}.{body}", want: "id lit:. timestamp lit:. body"},
		{tmpl: "{header.x-custom-thing}{url}{body}", want: "header:X-Custom-Thing url body"},
		{tmpl: `\{x\}{body}}`, want: "lit:{x} body lit:}"},
		{tmpl: `a\b{body}`, want: `lit:a\b body`},
		{tmpl: "{body", wantErr: "unclosed { at byte 0"},
		{tmpl: "{body}{nope}", wantErr: "unknown placeholder {nope}"},
		{tmpl: "{header.}", wantErr: "unknown placeholder {header.}"},
		{tmpl: "{}", wantErr: "unknown placeholder {}"},
		{tmpl: "{Body}", wantErr: "unknown placeholder {Body}"},
	}
	for _, tt := range tests {
		parts, err := parseMessage(tt.tmpl)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseMessage(%q) error = %v, want %q", tt.tmpl, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseMessage(%q): %v", tt.tmpl, err)
			continue
		}
		var got []string
		for _, p := range parts {
			switch p.kind {
			case partLiteral:
				got = append(got, "lit:"+string(p.literal))
			case partBody:
				got = append(got, "body")
			case partTimestamp:
				got = append(got, "timestamp")
			case partID:
				got = append(got, "id")
			case partURL:
				got = append(got, "url")
			case partHeader:
				got = append(got, "header:"+p.name)
			}
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("parseMessage(%q) = %s, want %s", tt.tmpl, g, tt.want)
		}
	}
}

func TestHMACValidate(t *testing.T) {
	const secret = "validate-secret-5e"
	base := func() HMAC {
		return HMAC{Secrets: secretsOf(secret), Signature: Source{Kind: SourceHeader, Name: "X-Sig"}}
	}
	ts := &TimestampSource{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}}
	id := &Source{Kind: SourceHeader, Name: "Webhook-Id"}
	tests := []struct {
		name    string
		edit    func(*HMAC)
		wantErr string // "" = valid
	}{
		{"minimal", func(h *HMAC) {}, ""},
		{"no secret", func(h *HMAC) { h.Secrets = nil }, "webhook_hmac: no secret configured"},
		{"empty secret", func(h *HMAC) { h.Secrets = [][]byte{[]byte(secret), nil} }, "webhook_hmac: secret #2 is empty"},
		{"no signature source", func(h *HMAC) { h.Signature = Source{} }, "webhook_hmac: signature: no source configured"},
		{"signature source without name", func(h *HMAC) { h.Signature = Source{Kind: SourceHeader} }, "webhook_hmac: signature: source header needs a name"},
		{"signature in body field", func(h *HMAC) { h.Signature = Source{Kind: SourceField, Name: "sig"} }, "webhook_hmac: signature source field sig"},
		{"unknown algorithm", func(h *HMAC) { h.Algorithm = "md5" }, `webhook_hmac: algorithm "md5" is not supported`},
		{"unknown encoding", func(h *HMAC) { h.Encoding = "base32" }, `webhook_hmac: encoding "base32" is not supported`},
		{"unknown scheme", func(h *HMAC) { h.Scheme = "svix" }, `webhook_hmac: unknown scheme "svix"`},
		{"prefix with stripe", func(h *HMAC) { h.Scheme = SchemeStripe; h.Message = "{timestamp}.{body}"; h.Prefix = "v1=" }, `webhook_hmac: prefix "v1=" cannot be used with scheme stripe`},
		{"bad template", func(h *HMAC) { h.Message = "{body}.{ts}" }, `webhook_hmac: message "{body}.{ts}": unknown placeholder {ts}`},
		{"unclosed template", func(h *HMAC) { h.Message = "{body" }, `webhook_hmac: message "{body": unclosed {`},
		{"no body", func(h *HMAC) { h.Message = "{timestamp}"; h.Timestamp = ts }, `webhook_hmac: message "{timestamp}" does not contain {body}`},
		{"timestamp without source", func(h *HMAC) { h.Message = "{timestamp}.{body}" }, "webhook_hmac: message \"{timestamp}.{body}\" uses {timestamp} but no timestamp source is configured: add `timestamp header"},
		{"timestamp with source", func(h *HMAC) { h.Message = "{timestamp}.{body}"; h.Timestamp = ts }, ""},
		{"unsigned timestamp", func(h *HMAC) { h.Timestamp = ts }, "webhook_hmac: timestamp header X-Timestamp is not signed"},
		{"timestamp signed as header", func(h *HMAC) { h.Timestamp = ts; h.Message = "{header.X-Timestamp}{body}" }, ""},
		{"timestamp signed in url", func(h *HMAC) {
			h.Timestamp = &TimestampSource{Source: Source{Kind: SourceQuery, Name: "ts"}}
			h.Message = "{url}{body}"
		}, ""},
		{"bad timestamp format", func(h *HMAC) {
			h.Message = "{timestamp}.{body}"
			h.Timestamp = &TimestampSource{Source: Source{Kind: SourceHeader, Name: "X-Timestamp"}, Format: "http_date"}
		}, `webhook_hmac: timestamp: unknown timestamp format "http_date"`},
		{"timestamp source without name", func(h *HMAC) {
			h.Message = "{timestamp}.{body}"
			h.Timestamp = &TimestampSource{Source: Source{Kind: SourceHeader}}
		}, "webhook_hmac: timestamp: source header needs a name"},
		{"stripe with timestamp source", func(h *HMAC) { h.Scheme = SchemeStripe; h.Message = "{timestamp}.{body}"; h.Timestamp = ts }, "webhook_hmac: timestamp header X-Timestamp cannot be used with scheme stripe"},
		{"stripe without timestamp in message", func(h *HMAC) { h.Scheme = SchemeStripe }, `webhook_hmac: message "{body}" does not contain {timestamp}: scheme stripe`},
		{"stripe", func(h *HMAC) { h.Scheme = SchemeStripe; h.Message = "{timestamp}.{body}" }, ""},
		{"id without source", func(h *HMAC) { h.Message = "{id}.{body}" }, "webhook_hmac: message \"{id}.{body}\" uses {id} but no id source is configured: add `id header <name>`"},
		{"id not in message", func(h *HMAC) { h.ID = id }, `webhook_hmac: id header Webhook-Id is set but message "{body}" has no {id}`},
		{"id source without name", func(h *HMAC) { h.Message = "{id}.{body}"; h.ID = &Source{Kind: SourceHeader} }, "webhook_hmac: id: source header needs a name"},
		{"negative tolerance", func(h *HMAC) { h.Tolerance = -time.Second }, "webhook_hmac: tolerance -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := base()
			tt.edit(&h)
			err := h.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want prefix %q", err, tt.wantErr)
			}
			assertNoSecret(t, err, secret)
		})
	}
}

// An HMAC used without Validate still verifies, and an invalid one fails
// closed.
func TestHMACVerifyWithoutValidate(t *testing.T) {
	h, err := Preset("github")
	if err != nil {
		t.Fatal(err)
	}
	r := &Request{Header: http.Header{"X-Hub-Signature-256": {githubHeader}}, Body: []byte(githubBody)}
	checkVerdict(t, h.Verify(r), "webhook_hmac: condition misconfigured", DirectiveHMAC)
	h.Secrets = secretsOf(githubSecret)
	checkVerdict(t, h.Verify(r), "", DirectiveHMAC)
}

// Validate copies the key bytes: changing Secrets afterwards must neither
// break nor widen verification.
func TestHMACValidateCopiesSecrets(t *testing.T) {
	secrets := secretsOf(githubSecret)
	h, _ := Preset("github")
	h.Secrets = secrets
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	secrets[0][0] ^= 0xff
	r := &Request{Header: http.Header{"X-Hub-Signature-256": {githubHeader}}, Body: []byte(githubBody)}
	checkVerdict(t, h.Verify(r), "", DirectiveHMAC)
}

// Verify is safe for concurrent use (the MAC pools are shared); run with
// -race.
func TestHMACConcurrentVerify(t *testing.T) {
	h := githubHMAC(t, "other-secret", githubSecret)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				body := fmt.Sprintf("body %d %d", g, i)
				good := &Request{Header: http.Header{"X-Hub-Signature-256": {"sha256=" + hexSHA256(githubSecret, body)}}, Body: []byte(body)}
				if err := h.Verify(good); err != nil {
					errs <- err
					return
				}
				bad := &Request{Header: http.Header{"X-Hub-Signature-256": {"sha256=" + hexSHA256("nope", body)}}, Body: []byte(body)}
				if h.Verify(bad) == nil {
					errs <- fmt.Errorf("forged signature accepted")
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPreset(t *testing.T) {
	h, err := Preset("GitHub")
	if err != nil {
		t.Fatal(err)
	}
	if h.Signature != (Source{Kind: SourceHeader, Name: "X-Hub-Signature-256"}) || h.Algorithm != "sha256" || h.Encoding != "hex" || h.Prefix != "sha256=" || h.Message != "{body}" || h.Secrets != nil {
		t.Fatalf("github preset = %v", h)
	}
	// A preset is a copy: changing it does not change the next one.
	h.Prefix = "x"
	if again, _ := Preset("github"); again.Prefix != "sha256=" {
		t.Fatal("Preset returned shared state")
	}
	if _, err := Preset("gitea"); err == nil || !strings.Contains(err.Error(), `unknown preset "gitea": use one of github`) {
		t.Fatalf("unknown preset error = %v", err)
	}
}

func TestDecodeSecret(t *testing.T) {
	const leak = "c2VjcmV0LXZhbHVl!" // invalid base64 that must not be echoed
	tests := []struct {
		secret, encoding string
		want             string
		wantErr          string
	}{
		{secret: "whsec_abc", encoding: "", want: "whsec_abc"},
		{secret: " spaced ", encoding: "raw", want: " spaced "},
		{secret: "c2VjcmV0", encoding: "base64", want: "secret"},
		{secret: "c2VjcmV0LXZhbHVl\n", encoding: "BASE64", want: "secret-value"},
		{secret: "c2VjcmV0LXZhbA", encoding: "base64", want: "secret-val"}, // unpadded
		{secret: "736563726574", encoding: "hex", want: "secret"},
		{secret: leak, encoding: "base64", wantErr: "secret_encoding base64: the secret is not valid base64"},
		{secret: "73656z", encoding: "hex", wantErr: "secret_encoding hex: the secret is not valid hex"},
		{secret: "zq-secret", encoding: "base32", wantErr: `secret_encoding "base32" is not supported`},
		{secret: "", encoding: "raw", wantErr: "secret is empty"},
		{secret: "  ", encoding: "base64", wantErr: "secret is empty"},
	}
	for _, tt := range tests {
		got, err := DecodeSecret(tt.secret, tt.encoding)
		if tt.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("DecodeSecret(%q, %q) error = %v, want %q", tt.secret, tt.encoding, err, tt.wantErr)
			}
			assertNoSecret(t, err, tt.secret)
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("DecodeSecret(%q, %q) = %q, %v; want %q", tt.secret, tt.encoding, got, err, tt.want)
		}
	}
	if got := TrimWhsecPrefix("whsec_MfKQ9r8G"); got != "MfKQ9r8G" {
		t.Errorf("TrimWhsecPrefix = %q", got)
	}
	if got := TrimWhsecPrefix("MfKQ9r8G"); got != "MfKQ9r8G" {
		t.Errorf("TrimWhsecPrefix without prefix = %q", got)
	}
}

func TestHMACStringRedacts(t *testing.T) {
	h := *githubHMAC(t, githubSecret)
	for _, s := range []string{h.String(), sprintAll(h), sprintAll(&h)} {
		if strings.Contains(s, githubSecret) || strings.Contains(s, fmt.Sprint([]byte(githubSecret))) {
			t.Fatalf("%q leaks the secret", s)
		}
	}
}

// sprintAll formats v every way a log line might.
func sprintAll(v any) string {
	return fmt.Sprintf("%v %+v %#v %s", v, v, v, v)
}

func TestTimestampFormatParse(t *testing.T) {
	tests := []struct {
		format TimestampFormat
		value  string
		want   time.Time
		ok     bool
	}{
		{TimestampUnix, "1700000000", time.Unix(1700000000, 0), true},
		{"", "1700000000", time.Unix(1700000000, 0), true},
		{TimestampUnixMilli, "1700000000123", time.UnixMilli(1700000000123), true},
		{TimestampRFC3339, "2023-11-14T22:13:20Z", time.Unix(1700000000, 0), true},
		{TimestampRFC3339, "2023-11-14T23:13:20.5+01:00", time.Unix(1700000000, 5e8), true},
		{TimestampUnix, "", time.Time{}, false},
		{TimestampUnix, "+1700000000", time.Time{}, false},
		{TimestampUnix, "-1", time.Time{}, false},
		{TimestampUnix, " 1700000000", time.Time{}, false},
		{TimestampUnix, "1700000000.5", time.Time{}, false},
		{TimestampUnix, "1234567890123456789", time.Time{}, false},
		{TimestampRFC3339, "1700000000", time.Time{}, false},
		{"http_date", "1700000000", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := tt.format.Parse(tt.value)
		if (err == nil) != tt.ok || (tt.ok && !got.Equal(tt.want)) {
			t.Errorf("%q.Parse(%q) = %v, %v; want %v, ok=%t", tt.format, tt.value, got, err, tt.want, tt.ok)
		}
	}
	if !withinTolerance(testNow, testNow.Add(time.Minute), time.Minute) || withinTolerance(testNow, testNow.Add(-time.Minute-1), time.Minute) {
		t.Error("withinTolerance bounds")
	}
	// Extreme timestamps must not wrap around into the window.
	if withinTolerance(testNow, time.Unix(999_999_999_999_999_999, 0), time.Hour) || withinTolerance(testNow, time.Unix(0, 0).AddDate(-300, 0, 0), time.Hour) {
		t.Error("extreme timestamp accepted")
	}
}
