package validators

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// presetHMAC builds a preset the way the Caddy glue does: the preset's
// fields, its secrets decoded by AddSecret, then Validate.
func presetHMAC(t testing.TB, name string, secrets ...string) *HMAC {
	t.Helper()
	h, err := Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if err := h.AddSecret(s); err != nil {
			t.Fatal(err)
		}
	}
	return prepared(t, h)
}

// withHeaders returns a copy of base with the given changes; "-" deletes.
func withHeaders(base http.Header, changes map[string]string) http.Header {
	h := base.Clone()
	for k, v := range changes {
		if v == "-" {
			h.Del(k)
		} else {
			h.Set(k, v)
		}
	}
	return h
}

// The presets are README.md's table under "webhook_hmac".
func TestPresetsMatchTheSpec(t *testing.T) {
	if got, want := PresetNames(), []string{"github", "linear", "shopify", "slack", "standard", "stripe", "valohai"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("PresetNames() = %v, want %v", got, want)
	}
	type row struct {
		header, prefix, message, encoding string
		timestamp                         string // "header X-... unix"
		id                                string
		tolerance                         time.Duration
		scheme                            Scheme
		secretEncoding                    string
	}
	want := map[string]row{
		"github":   {header: "header X-Hub-Signature-256", prefix: "sha256=", message: "{body}", encoding: "hex", scheme: SchemePlain},
		"slack":    {header: "header X-Slack-Signature", prefix: "v0=", message: "v0:{timestamp}:{body}", encoding: "hex", timestamp: "header X-Slack-Request-Timestamp unix", tolerance: 5 * time.Minute, scheme: SchemePlain},
		"stripe":   {header: "header Stripe-Signature", message: "{timestamp}.{body}", encoding: "hex", tolerance: 5 * time.Minute, scheme: SchemeStripe, secretEncoding: "raw"},
		"standard": {header: "header Webhook-Signature", message: "{id}.{timestamp}.{body}", encoding: "base64", timestamp: "header Webhook-Timestamp unix", id: "header Webhook-Id", tolerance: 5 * time.Minute, scheme: SchemeStandard, secretEncoding: "whsec"},
		"shopify":  {header: "header X-Shopify-Hmac-Sha256", message: "{body}", encoding: "base64", scheme: SchemePlain},
		"linear":   {header: "header Linear-Signature", message: "{body}", encoding: "hex", timestamp: "field webhookTimestamp unix_ms", tolerance: time.Minute, scheme: SchemePlain},
		"valohai":  {header: "header Authorization", message: "{body}", encoding: "hex", scheme: SchemePlain},
	}
	for name, w := range want {
		h, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		got := row{
			header: h.Signature.String(), prefix: h.Prefix, message: h.Message, encoding: h.Encoding,
			tolerance: h.Tolerance, scheme: h.Scheme, secretEncoding: h.SecretEncoding,
		}
		if h.Timestamp != nil {
			got.timestamp = h.Timestamp.Source.String() + " " + string(h.Timestamp.Format)
		}
		if h.ID != nil {
			got.id = h.ID.String()
		}
		if got != w {
			t.Errorf("preset %s = %+v, want %+v", name, got, w)
		}
		if h.Algorithm != "sha256" || h.Secrets != nil {
			t.Errorf("preset %s: algorithm %q, secrets %v", name, h.Algorithm, h.Secrets)
		}
	}
}

// Preset returns copies: editing one (even through its pointers) leaves
// the next caller's untouched.
func TestPresetIsACopy(t *testing.T) {
	a, _ := Preset("standard")
	a.Timestamp.Source.Name = "X-Other"
	a.Timestamp.Format = TimestampRFC3339
	a.ID.Name = "X-Other-Id"
	b, _ := Preset("standard")
	if b.Timestamp.Source.Name != "Webhook-Timestamp" || b.Timestamp.Format != TimestampUnix || b.ID.Name != "Webhook-Id" {
		t.Fatalf("Preset shares state: %v %v", b.Timestamp, b.ID)
	}
}

// Slack's example from "Verifying requests from Slack".
const (
	slackSecret = "8f742231b10e8888abcd99yyyzzz85a5"
	slackTS     = "1531420618"
	slackBody   = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	slackSig    = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
)

func TestPresetSlack(t *testing.T) {
	// The published signature is what crypto/hmac makes of the documented
	// base string, so the example is read as Slack meant it.
	if got := "v0=" + hexSHA256(slackSecret, "v0:", slackTS, ":", slackBody); got != slackSig {
		t.Fatalf("Slack's base string gives %s, Slack publishes %s", got, slackSig)
	}
	sent := time.Unix(1531420618, 0)
	reencoded := func() string {
		v, err := url.ParseQuery(slackBody)
		if err != nil {
			t.Fatal(err)
		}
		return v.Encode() // same fields, keys sorted
	}()
	if reencoded == slackBody {
		t.Fatal("re-encoding did not change the body")
	}
	base := http.Header{
		"X-Slack-Signature":         {slackSig},
		"X-Slack-Request-Timestamp": {slackTS},
		"Content-Type":              {"application/x-www-form-urlencoded"},
	}
	tests := []struct {
		name    string
		secrets []string
		headers map[string]string
		body    string
		now     time.Time
		wantErr string
	}{
		{name: "published example"},
		{name: "5 minutes late is the edge", now: sent.Add(5 * time.Minute)},
		{name: "rotation: second secret", secrets: []string{"retired-secret", slackSecret}},
		{name: "stale", now: sent.Add(5*time.Minute + time.Second), wantErr: "webhook_hmac: timestamp outside tolerance"},
		{name: "from the future", now: sent.Add(-5*time.Minute - time.Second), wantErr: "webhook_hmac: timestamp outside tolerance"},
		{name: "wrong secret", secrets: []string{slackSecret + "x"}, wantErr: "webhook_hmac: signature mismatch"},
		{name: "timestamp changed after signing", headers: map[string]string{"X-Slack-Request-Timestamp": "1531420619"}, wantErr: "webhook_hmac: signature mismatch"},
		{name: "re-encoded form body", body: reencoded, wantErr: "webhook_hmac: signature mismatch"},
		{name: "missing signature", headers: map[string]string{"X-Slack-Signature": "-"}, wantErr: "webhook_hmac: missing signature"},
		{name: "missing timestamp", headers: map[string]string{"X-Slack-Request-Timestamp": "-"}, wantErr: "webhook_hmac: missing timestamp"},
		{name: "timestamp in ms", headers: map[string]string{"X-Slack-Request-Timestamp": slackTS + "000"}, wantErr: "webhook_hmac: timestamp outside tolerance"},
		{name: "malformed timestamp", headers: map[string]string{"X-Slack-Request-Timestamp": "1531420618.0"}, wantErr: "webhook_hmac: malformed timestamp"},
		{name: "no v0= prefix", headers: map[string]string{"X-Slack-Signature": slackSig[3:]}, wantErr: "webhook_hmac: malformed signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := tt.secrets
			if secrets == nil {
				secrets = []string{slackSecret}
			}
			body := tt.body
			if body == "" {
				body = slackBody
			}
			now := tt.now
			if now.IsZero() {
				now = sent.Add(3 * time.Second)
			}
			h := presetHMAC(t, "slack", secrets...)
			err := h.Verify(&Request{Header: withHeaders(base, tt.headers), Body: []byte(body), Now: clockAt(now)})
			checkVerdict(t, err, tt.wantErr, DirectiveHMAC)
			assertNoSecret(t, err, slackSecret, slackSig[3:])
		})
	}
}

func TestPresetStripe(t *testing.T) {
	// stripe-go's own example secret and test payload.
	const secret = "whsec_DaLRHCRs35vEXqOE8uTEAXGLGUOnyaFf"
	const body = `{"id":"evt_test_webhook","object":"event"}`
	ts := strconv.FormatInt(testNow.Unix(), 10)
	sign := func(key, ts, body string) string { return hexSHA256(key, ts, ".", body) }
	good := sign(secret, ts, body)
	rolled := sign("whsec_previousSecretKeptForADay", ts, body)
	// As stripe-go's generateHeader writes it: t, then each scheme.
	header := func(ts string, sigs ...string) string { return "t=" + ts + "," + strings.Join(sigs, ",") }
	at := func(d time.Duration) string { return strconv.FormatInt(testNow.Add(d).Unix(), 10) }
	decodedKey, _ := base64.RawStdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))

	tests := []struct {
		name    string
		header  string // "-": no header
		body    string
		wantErr string
	}{
		{name: "two v1 (rotation), the second matches, plus v0", header: header(ts, "v1="+rolled, "v1="+good, "v0="+rolled)},
		{name: "two v1, the first matches", header: header(ts, "v1="+good, "v1="+rolled)},
		{name: "v0 ignored even when it would match", header: header(ts, "v1="+rolled, "v1="+rolled, "v0="+good), wantErr: "webhook_hmac: signature mismatch"},
		{name: "only v0", header: header(ts, "v0="+good), wantErr: "webhook_hmac: missing signature"},
		{name: "unknown scheme ignored", header: header(ts, "v2="+good, "v1="+good)},
		{name: "key is the secret as-is, not its base64 decoding", header: header(ts, "v1="+hex.EncodeToString(macOf(sha256.New, string(decodedKey), ts, ".", body))), wantErr: "webhook_hmac: signature mismatch"},
		{name: "wrong secret", header: header(ts, "v1="+sign("whsec_wrong", ts, body)), wantErr: "webhook_hmac: signature mismatch"},
		{name: "stale", header: header(at(-5*time.Minute-time.Second), "v1="+sign(secret, at(-5*time.Minute-time.Second), body)), wantErr: "webhook_hmac: timestamp outside tolerance"},
		{name: "future", header: header(at(5*time.Minute+time.Second), "v1="+sign(secret, at(5*time.Minute+time.Second), body)), wantErr: "webhook_hmac: timestamp outside tolerance"},
		{name: "stale signature with a fresh t", header: header(ts, "v1="+sign(secret, at(-time.Hour), body)), wantErr: "webhook_hmac: signature mismatch"},
		{name: "re-serialized JSON", body: `{"id": "evt_test_webhook", "object": "event"}`, header: header(ts, "v1="+good), wantErr: "webhook_hmac: signature mismatch"},
		{name: "missing header", header: "-", wantErr: "webhook_hmac: missing signature"},
		{name: "no t", header: "v1=" + good, wantErr: "webhook_hmac: missing timestamp"},
	}
	h := presetHMAC(t, "stripe", secret)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.header != "-" {
				hdr.Set("Stripe-Signature", tt.header)
			}
			b := tt.body
			if b == "" {
				b = body
			}
			err := h.Verify(&Request{Header: hdr, Body: []byte(b), Now: clockAt(testNow)})
			checkVerdict(t, err, tt.wantErr, DirectiveHMAC)
			assertNoSecret(t, err, secret, good)
		})
	}
}

// The Standard Webhooks reference libraries' test vector.
const (
	standardSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	standardID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	standardTS     = "1614265330"
	standardBody   = `{"test": 2432232314}`
	standardSig    = "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestPresetStandardWebhooks(t *testing.T) {
	key := mustB64(t, strings.TrimPrefix(standardSecret, "whsec_"))
	if got := base64.StdEncoding.EncodeToString(macOf(sha256.New, string(key), standardID, ".", standardTS, ".", standardBody)); got != standardSig {
		t.Fatalf("the documented signed string gives %s, the vector says %s", got, standardSig)
	}
	signedAt := time.Unix(1614265330, 0)
	base := http.Header{
		"Webhook-Id":        {standardID},
		"Webhook-Timestamp": {standardTS},
		"Webhook-Signature": {"v1," + standardSig},
	}
	otherSig := base64.StdEncoding.EncodeToString(macOf(sha256.New, "another key", standardID, ".", standardTS, ".", standardBody))
	rawKeySig := base64.StdEncoding.EncodeToString(macOf(sha256.New, standardSecret, standardID, ".", standardTS, ".", standardBody))
	tests := []struct {
		name    string
		secrets []string
		headers map[string]string
		body    string
		now     time.Time
		wantErr string
	}{
		{name: "published vector"},
		{name: "secret without whsec_", secrets: []string{strings.TrimPrefix(standardSecret, "whsec_")}},
		{name: "rotation: second secret", secrets: []string{"whsec_" + base64.StdEncoding.EncodeToString([]byte("an older key")), standardSecret}},
		{name: "several signatures, one matches", headers: map[string]string{"Webhook-Signature": "v1," + otherSig + " v1," + standardSig}},
		{name: "v1a (asymmetric) ignored", headers: map[string]string{"Webhook-Signature": "v1a," + standardSig}, wantErr: "webhook_hmac: missing signature"},
		{name: "key used raw instead of decoded", headers: map[string]string{"Webhook-Signature": "v1," + rawKeySig}, wantErr: "webhook_hmac: signature mismatch"},
		{name: "wrong secret", secrets: []string{"whsec_" + base64.StdEncoding.EncodeToString([]byte("wrong key"))}, wantErr: "webhook_hmac: signature mismatch"},
		{name: "stale", now: signedAt.Add(5*time.Minute + time.Second), wantErr: "webhook_hmac: timestamp outside tolerance"},
		{name: "future", now: signedAt.Add(-5*time.Minute - time.Second), wantErr: "webhook_hmac: timestamp outside tolerance"},
		{name: "re-serialized JSON", body: `{"test":2432232314}`, wantErr: "webhook_hmac: signature mismatch"},
		{name: "other id", headers: map[string]string{"Webhook-Id": "msg_replayed"}, wantErr: "webhook_hmac: signature mismatch"},
		{name: "missing signature", headers: map[string]string{"Webhook-Signature": "-"}, wantErr: "webhook_hmac: missing signature"},
		{name: "missing id", headers: map[string]string{"Webhook-Id": "-"}, wantErr: "webhook_hmac: missing id"},
		{name: "missing timestamp", headers: map[string]string{"Webhook-Timestamp": "-"}, wantErr: "webhook_hmac: missing timestamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := tt.secrets
			if secrets == nil {
				secrets = []string{standardSecret}
			}
			body := tt.body
			if body == "" {
				body = standardBody
			}
			now := tt.now
			if now.IsZero() {
				now = signedAt.Add(2 * time.Second)
			}
			h := presetHMAC(t, "standard", secrets...)
			err := h.Verify(&Request{Header: withHeaders(base, tt.headers), Body: []byte(body), Now: clockAt(now)})
			checkVerdict(t, err, tt.wantErr, DirectiveHMAC)
			assertNoSecret(t, err, standardSecret, strings.TrimPrefix(standardSecret, "whsec_"), standardSig)
		})
	}
}

// A standard secret that is not whsec_/base64 is refused when it is
// added, without echoing it.
func TestPresetStandardBadSecret(t *testing.T) {
	h, _ := Preset("standard")
	for _, bad := range []string{"my-plain-password!", "whsec_not*base64", "whsec_"} {
		err := h.AddSecret(bad)
		if err == nil {
			t.Fatalf("AddSecret(%q) accepted", bad)
		}
		if !strings.Contains(err.Error(), "whsec_") && !strings.Contains(err.Error(), "empty") {
			t.Errorf("AddSecret(%q) error %q does not say what a secret looks like", bad, err)
		}
		assertNoSecret(t, err, strings.TrimPrefix(bad, "whsec_"))
	}
	if len(h.Secrets) != 0 {
		t.Fatalf("a refused secret was added: %d secrets", len(h.Secrets))
	}
	// Overriding the encoding makes the string itself the key.
	h.SecretEncoding = SecretRaw
	if err := h.AddSecret("my-plain-password!"); err != nil || string(h.Secrets[0]) != "my-plain-password!" {
		t.Fatalf("secret_encoding raw: %q, %v", h.Secrets, err)
	}
}

func TestPresetShopify(t *testing.T) {
	// As Shopify's docs compute it: base64 of HMAC-SHA256 of the raw body
	// with the app's client secret.
	const secret = "shpss_5c3e0f1a9b7d42e8a6c1"
	const body = `{"id":820982911946154508,"email":"jon@example.com","total_price":"403.00"}`
	sig := base64.StdEncoding.EncodeToString(macOf(sha256.New, secret, body))
	tests := []struct {
		name    string
		secrets []string
		header  string // "-": none
		body    string
		wantErr string
	}{
		{name: "signed body", header: sig},
		{name: "unpadded", header: strings.TrimRight(sig, "=")},
		{name: "rotation: second secret", secrets: []string{"shpss_old", secret}, header: sig},
		{name: "hex instead of base64", header: hex.EncodeToString(macOf(sha256.New, secret, body)), wantErr: "webhook_hmac: malformed signature"},
		{name: "wrong secret", secrets: []string{"shpss_other"}, header: sig, wantErr: "webhook_hmac: signature mismatch"},
		{name: "re-serialized JSON", header: sig, body: `{"id": 820982911946154508, "email": "jon@example.com", "total_price": "403.00"}`, wantErr: "webhook_hmac: signature mismatch"},
		{name: "missing header", header: "-", wantErr: "webhook_hmac: missing signature"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			secrets := tt.secrets
			if secrets == nil {
				secrets = []string{secret}
			}
			b := tt.body
			if b == "" {
				b = body
			}
			hdr := http.Header{}
			if tt.header != "-" {
				hdr.Set("X-Shopify-Hmac-SHA256", tt.header) // Shopify's spelling
			}
			err := presetHMAC(t, "shopify", secrets...).Verify(&Request{Header: hdr, Body: []byte(b)})
			checkVerdict(t, err, tt.wantErr, DirectiveHMAC)
			assertNoSecret(t, err, secret, sig)
		})
	}
}

// Linear, as its SDK verifies (packages/sdk/src/webhooks/client.ts): hex
// HMAC-SHA256 of the raw body, and |now - webhookTimestamp| <= 60 s with
// webhookTimestamp in ms inside the signed body.
func TestPresetLinear(t *testing.T) {
	const secret = "lin_wh_8c1f0e2d7b"
	body := func(at time.Time) string {
		return fmt.Sprintf(`{"action":"create","type":"Issue","data":{"id":"9c2b"},"webhookTimestamp":%d}`, at.UnixMilli())
	}
	fresh := body(testNow.Add(-10 * time.Second))
	stale := body(testNow.Add(-61 * time.Second))
	tests := []struct {
		name    string
		body    string
		sig     string // "": the MAC of body; "-": no header
		wantErr string
	}{
		{name: "fresh", body: fresh},
		{name: "60s is the edge", body: body(testNow.Add(-60 * time.Second))},
		{name: "upper-case hex", body: fresh, sig: strings.ToUpper(hexSHA256(secret, fresh))},
		{name: "stale", body: stale, wantErr: "webhook_hmac: timestamp outside tolerance"},
		{name: "future", body: body(testNow.Add(61 * time.Second)), wantErr: "webhook_hmac: timestamp outside tolerance"},
		// The replay Linear PR #1268 closed: an old signed body with its
		// timestamp made fresh no longer matches its signature.
		{name: "stale body with a refreshed timestamp", body: strings.Replace(stale, strconv.FormatInt(testNow.Add(-61*time.Second).UnixMilli(), 10), strconv.FormatInt(testNow.UnixMilli(), 10), 1), sig: hexSHA256(secret, stale), wantErr: "webhook_hmac: signature mismatch"},
		{name: "seconds instead of ms", body: fmt.Sprintf(`{"action":"create","webhookTimestamp":%d}`, testNow.Unix()), wantErr: "webhook_hmac: timestamp outside tolerance"},
		{name: "no webhookTimestamp", body: `{"action":"create"}`, wantErr: "webhook_hmac: missing timestamp"},
		{name: "wrong secret", body: fresh, sig: hexSHA256("lin_wh_other", fresh), wantErr: "webhook_hmac: signature mismatch"},
		{name: "re-serialized JSON", body: strings.ReplaceAll(fresh, `":`, `": `), sig: hexSHA256(secret, fresh), wantErr: "webhook_hmac: signature mismatch"},
		{name: "missing header", body: fresh, sig: "-", wantErr: "webhook_hmac: missing signature"},
	}
	h := presetHMAC(t, "linear", secret)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{"Content-Type": {"application/json; charset=utf-8"}}
			switch tt.sig {
			case "":
				hdr.Set("Linear-Signature", hexSHA256(secret, tt.body))
			case "-":
			default:
				hdr.Set("Linear-Signature", tt.sig)
			}
			err := h.Verify(&Request{Header: hdr, Body: []byte(tt.body), Now: clockAt(testNow)})
			checkVerdict(t, err, tt.wantErr, DirectiveHMAC)
			assertNoSecret(t, err, secret, hexSHA256(secret, tt.body))
		})
	}
}

// The Valohai client (valohai-utils valohai/webhooks.py):
// auth_secret_prefix + hex(HMAC(secret, hmac_format % {body, timestamp})).
func TestPresetValohai(t *testing.T) {
	// valohai-utils tests/test_webhook.py: sha256 / "foobar" over
	// {"foo": "bar"} gives 15b944e3…2510.
	const secret, body = "foobar", `{"foo": "bar"}`
	sig := hexSHA256(secret, body)
	if !strings.HasPrefix(sig, "15b944e3") || !strings.HasSuffix(sig, "2510") {
		t.Fatalf("valohai-utils example digest = %s", sig)
	}
	h := presetHMAC(t, "valohai", secret)
	req := func(auth, body string) *Request {
		hdr := http.Header{}
		if auth != "-" {
			hdr.Set("Authorization", auth)
		}
		return &Request{Header: hdr, Body: []byte(body), Now: clockAt(testNow)}
	}
	checkVerdict(t, h.Verify(req(sig, body)), "", DirectiveHMAC)
	checkVerdict(t, h.Verify(req(sig, `{"foo":"bar"}`)), "webhook_hmac: signature mismatch", DirectiveHMAC)
	checkVerdict(t, h.Verify(req(hexSHA256("barfoo", body), body)), "webhook_hmac: signature mismatch", DirectiveHMAC)
	checkVerdict(t, h.Verify(req("-", body)), "webhook_hmac: missing signature", DirectiveHMAC)
	checkVerdict(t, h.Verify(req("sha256="+sig, body)), "webhook_hmac: malformed signature", DirectiveHMAC)

	// auth_secret_prefix "sha256=", timestamp unix_ms in X-Timestamp and
	// hmac_format b"v123:%(body)s:%(timestamp)d".
	timed, _ := Preset("valohai")
	timed.Secrets = secretsOf(secret)
	timed.Prefix = "sha256="
	timed.Message = "v123:{body}:{timestamp}"
	timed.Timestamp = &TimestampSource{Source: mustSource(t, "header", "X-Timestamp"), Format: TimestampUnixMilli}
	prepared(t, timed)
	signed := func(at time.Time) *Request {
		ts := strconv.FormatInt(at.UnixMilli(), 10)
		return &Request{
			Header: http.Header{"Authorization": {"sha256=" + hexSHA256(secret, "v123:", body, ":", ts)}, "X-Timestamp": {ts}},
			Body:   []byte(body), Now: clockAt(testNow),
		}
	}
	checkVerdict(t, timed.Verify(signed(testNow.Add(-time.Minute))), "", DirectiveHMAC)
	checkVerdict(t, timed.Verify(signed(testNow.Add(-5*time.Minute-time.Millisecond))), "webhook_hmac: timestamp outside tolerance", DirectiveHMAC)
	checkVerdict(t, timed.Verify(signed(testNow.Add(5*time.Minute+time.Millisecond))), "webhook_hmac: timestamp outside tolerance", DirectiveHMAC)
	r := signed(testNow)
	r.Header.Set("X-Timestamp", strconv.FormatInt(testNow.UnixMilli()+1, 10))
	checkVerdict(t, timed.Verify(r), "webhook_hmac: signature mismatch", DirectiveHMAC)

	// A timestamp the message does not sign is a config error, not a
	// freshness check a replayer could pass with a new header.
	unsigned, _ := Preset("valohai")
	unsigned.Secrets = secretsOf(secret)
	unsigned.Timestamp = &TimestampSource{Source: mustSource(t, "header", "X-Timestamp"), Format: TimestampUnixMilli}
	if err := unsigned.Validate(); err == nil || !strings.Contains(err.Error(), "is not signed") {
		t.Fatalf("unsigned timestamp: %v", err)
	}
}

func TestPresetGitHub(t *testing.T) {
	h := presetHMAC(t, "github", githubSecret)
	checkVerdict(t, h.Verify(&Request{Header: http.Header{"X-Hub-Signature-256": {githubHeader}}, Body: []byte(githubBody)}), "", DirectiveHMAC)
	checkVerdict(t, h.Verify(&Request{Header: http.Header{"X-Hub-Signature-256": {githubHeader}}, Body: []byte(githubBody + "\n")}), "webhook_hmac: signature mismatch", DirectiveHMAC)
}

func TestDecodeSecretWhsec(t *testing.T) {
	want := mustB64(t, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	for _, s := range []string{standardSecret, "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", " " + standardSecret + "\n", "whsec_" + base64.StdEncoding.EncodeToString(want)} {
		got, err := DecodeSecret(s, "WHSEC")
		if err != nil || string(got) != string(want) {
			t.Errorf("DecodeSecret(%q, whsec) = %x, %v; want %x", s, got, err, want)
		}
	}
	for _, s := range []string{"whsec_", "", "whsec_!!!!", "whsec_abc_def"} {
		if _, err := DecodeSecret(s, "whsec"); err == nil {
			t.Errorf("DecodeSecret(%q, whsec) accepted", s)
		}
	}
}

func TestAddSecretEncodings(t *testing.T) {
	h := HMAC{SecretEncoding: SecretHex}
	if err := h.AddSecret("736563726574"); err != nil || string(h.Secrets[0]) != "secret" {
		t.Fatalf("hex: %q %v", h.Secrets, err)
	}
	h.SecretEncoding = "rot13"
	err := h.AddSecret("zzz-secret")
	if err == nil || !strings.Contains(err.Error(), `secret_encoding "rot13" is not supported: use raw, base64, hex or whsec`) {
		t.Fatalf("unknown encoding: %v", err)
	}
	assertNoSecret(t, err, "zzz-secret")
	if s := fmt.Sprintf("%v %#v", h, h); strings.Contains(s, "secret\"") || strings.Contains(s, fmt.Sprint([]byte("secret"))) {
		t.Fatalf("String leaks a secret: %s", s)
	}
}

// FuzzPresetSignatureHeader feeds arbitrary signature (and timestamp)
// values to every preset. None may panic or leak a secret, and a request
// passes only when it holds the MAC the secret really makes of the signed
// string, with a timestamp within the preset's tolerance.
func FuzzPresetSignatureHeader(f *testing.F) {
	const secret = "fuzz-preset-secret-81"
	standardKey := "whsec_" + base64.StdEncoding.EncodeToString([]byte(secret))
	const body = `{"event":"push","n":1}`
	ts := strconv.FormatInt(testNow.Unix(), 10)
	ms := strconv.FormatInt(testNow.UnixMilli(), 10)
	linearBody := func(ts string) string {
		if ts != "" && allDigits(ts) {
			return `{"action":"create","webhookTimestamp":` + ts + `}`
		}
		q, _ := json.Marshal(ts)
		return `{"action":"create","webhookTimestamp":` + string(q) + `}`
	}
	b64 := func(message ...string) string {
		return base64.StdEncoding.EncodeToString(macOf(sha256.New, secret, message...))
	}
	names := []string{"github", "slack", "stripe", "standard", "shopify", "linear", "valohai"}
	seeds := []struct {
		preset  uint8
		sig, ts string
	}{
		{0, "sha256=" + hexSHA256(secret, body), ""},
		{1, "v0=" + hexSHA256(secret, "v0:", ts, ":", body), ts},
		{1, "v0=" + hexSHA256(secret, "v0:", ts, ":", body), ts + "0"},
		{1, "v0=,v0=" + strings.Repeat("f", 64), "-1"},
		{2, "t=" + ts + ",v1=" + hexSHA256(secret, ts, ".", body) + ",v0=00", ""},
		{2, "t=1,v1=" + hexSHA256(secret, "1.", body), ""},
		{3, "v1," + b64(fuzzID, ".", ts, ".", body) + " v1a,xx", ts},
		{3, "v1," + b64(fuzzID, ".", ts, ".", body), "99999999999999999999"},
		{4, b64(body), ""},
		{4, strings.TrimRight(b64(body), "=") + ",", ""},
		{5, hexSHA256(secret, linearBody(ms)), ms},
		{5, hexSHA256(secret, linearBody("1e12")), "1e12"},
		{6, hexSHA256(secret, body), ""},
		{6, "Bearer " + hexSHA256(secret, body), ""},
	}
	for _, s := range seeds {
		f.Add(s.preset, s.sig, s.ts)
	}
	conds := make([]*HMAC, len(names))
	for i, n := range names {
		s := secret
		if n == "standard" {
			s = standardKey
		}
		conds[i] = presetHMAC(f, n, s)
	}
	// fresh reports whether v is a plain decimal within tol of testNow,
	// counted in unit.
	fresh := func(v string, unit, tol time.Duration) bool {
		if v == "" || !allDigits(v) {
			return false
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(1<<62)/int64(unit) {
			return false
		}
		d := testNow.Sub(time.Unix(0, n*int64(unit)))
		return d >= -tol && d <= tol
	}

	f.Fuzz(func(t *testing.T, preset uint8, sig, ts string) {
		i := int(preset) % len(names)
		r := &Request{Header: http.Header{"Content-Type": {"application/json"}}, Body: []byte(body), Now: clockAt(testNow)}
		var legit func() bool
		switch names[i] {
		case "github":
			r.Header.Set("X-Hub-Signature-256", sig)
			legit = func() bool { return strings.Contains(strings.ToLower(sig), hexSHA256(secret, body)) }
		case "slack":
			r.Header.Set("X-Slack-Signature", sig)
			r.Header.Set("X-Slack-Request-Timestamp", ts)
			legit = func() bool {
				return fresh(ts, time.Second, 5*time.Minute) &&
					strings.Contains(strings.ToLower(sig), hexSHA256(secret, "v0:", ts, ":", body))
			}
		case "stripe":
			r.Header.Set("Stripe-Signature", sig)
			legit = func() bool {
				for _, item := range strings.Split(sig, ",") {
					if v, ok := strings.CutPrefix(strings.TrimSpace(item), "t="); ok {
						return fresh(v, time.Second, 5*time.Minute) &&
							strings.Contains(strings.ToLower(sig), hexSHA256(secret, v, ".", body))
					}
				}
				return false
			}
		case "standard":
			r.Header.Set("Webhook-Signature", sig)
			r.Header.Set("Webhook-Timestamp", ts)
			r.Header.Set("Webhook-Id", fuzzID)
			legit = func() bool {
				return fresh(ts, time.Second, 5*time.Minute) &&
					strings.Contains(sig, strings.TrimRight(b64(fuzzID, ".", ts, ".", body), "="))
			}
		case "shopify":
			r.Header.Set("X-Shopify-Hmac-Sha256", sig)
			legit = func() bool { return strings.Contains(sig, strings.TrimRight(b64(body), "=")) }
		case "linear":
			r.Body = []byte(linearBody(ts))
			r.Header.Set("Linear-Signature", sig)
			legit = func() bool {
				return fresh(ts, time.Millisecond, time.Minute) &&
					strings.Contains(strings.ToLower(sig), hexSHA256(secret, string(r.Body)))
			}
		case "valohai":
			r.Header.Set("Authorization", sig)
			legit = func() bool { return strings.Contains(strings.ToLower(sig), hexSHA256(secret, body)) }
		}
		err := conds[i].Verify(r)
		if err == nil {
			if !legit() {
				t.Fatalf("preset %s accepted signature %q with timestamp %q", names[i], sig, ts)
			}
			return
		}
		if _, ok := AsRejection(err); !ok {
			t.Fatalf("error %v is not a *Rejection", err)
		}
		assertNoSecret(t, err, secret, standardKey, hexSHA256(secret, body), b64(body))
	})
}

// TestPresetLinearTimestampIgnoresContentType: the Content-Type header is
// not signed, so it must not decide where webhookTimestamp is read. A stale
// signed body that carries a fresh "&webhookTimestamp=…&" inside a string
// (an issue title, say) stays stale when sent as a form.
func TestPresetLinearTimestampIgnoresContentType(t *testing.T) {
	const secret = "lin_wh_8c1f0e2d7b"
	fresh := testNow.UnixMilli()
	stale := testNow.Add(-time.Hour).UnixMilli()
	body := fmt.Sprintf(`{"data":{"title":"a&webhookTimestamp=%d&b="},"webhookTimestamp":%d}`, fresh, stale)
	h := presetHMAC(t, "linear", secret)
	for _, ct := range []string{"application/json", "application/x-www-form-urlencoded", "text/plain", ""} {
		hdr := http.Header{"Linear-Signature": {hexSHA256(secret, body)}}
		if ct != "" {
			hdr.Set("Content-Type", ct)
		}
		err := h.Verify(&Request{Header: hdr, Body: []byte(body), Now: clockAt(testNow)})
		checkVerdict(t, err, "webhook_hmac: timestamp outside tolerance", DirectiveHMAC)
	}
}
