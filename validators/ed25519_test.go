package validators

import (
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testEdKey derives a fixed key pair, so failures reproduce.
func testEdKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func edPub(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

// edPreset builds a preset the way the Caddy glue does.
func edPreset(t testing.TB, name string, keys ...string) *Ed25519 {
	t.Helper()
	e, err := Ed25519Preset(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := e.AddPublicKey(k); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	return &e
}

func wantEdReason(t *testing.T, name string, err error, reason string) {
	t.Helper()
	if reason == "" {
		if err != nil {
			t.Errorf("%s: rejected: %v", name, err)
		}
		return
	}
	rej, ok := AsRejection(err)
	if !ok {
		t.Errorf("%s: got %v, want rejection %q", name, err, reason)
		return
	}
	if rej.Directive != DirectiveEd25519 || rej.Reason != reason {
		t.Errorf("%s: got %s: %s, want %s: %s", name, rej.Directive, rej.Reason, DirectiveEd25519, reason)
	}
}

// Discord signs timestamp + body with the application's key; the
// signatures here are made with crypto/ed25519 directly, not by Sign.
func TestEd25519Discord(t *testing.T) {
	app, next, stranger := testEdKey(1), testEdKey(2), testEdKey(3)
	e := edPreset(t, "discord", hex.EncodeToString(edPub(app)), strings.ToUpper(hex.EncodeToString(edPub(next))))
	body := `{"type":2,"id":"1","data":{"name":"train"}}`
	ts := strconv.FormatInt(testNow.Unix(), 10)
	sign := func(k ed25519.PrivateKey, ts, body string) string {
		return hex.EncodeToString(ed25519.Sign(k, []byte(ts+body)))
	}
	good := sign(app, ts, body)
	cases := []struct {
		name, sig, ts, body string
		now                 time.Time
		reason              string
	}{
		{"good", good, ts, body, testNow, ""},
		{"upper-case hex", strings.ToUpper(good), ts, body, testNow, ""},
		{"rotated key", sign(next, ts, body), ts, body, testNow, ""},
		{"4m59s old", good, ts, body, testNow.Add(299 * time.Second), ""},
		{"stale", good, ts, body, testNow.Add(301 * time.Second), reasonTimestampTolerance},
		{"future", good, ts, body, testNow.Add(-301 * time.Second), reasonTimestampTolerance},
		{"other key", sign(stranger, ts, body), ts, body, testNow, reasonSignatureMismatch},
		{"body changed", good, ts, body + " ", testNow, reasonSignatureMismatch},
		{"timestamp changed", good, strconv.FormatInt(testNow.Unix()+1, 10), body, testNow, reasonSignatureMismatch},
		{"missing signature", "", ts, body, testNow, reasonMissingSignature},
		{"missing timestamp", good, "", body, testNow, reasonMissingTimestamp},
		{"malformed timestamp", good, "17e8", body, testNow, reasonMalformedTimestamp},
		{"short signature", good[:126], ts, body, testNow, reasonMalformedSignature},
		{"not hex", strings.Repeat("zz", 64), ts, body, testNow, reasonMalformedSignature},
		{"two signatures", good + "," + good, ts, body, testNow, reasonMalformedSignature},
		{"base64 instead of hex", base64.StdEncoding.EncodeToString(ed25519.Sign(app, []byte(ts+body))), ts, body, testNow, reasonMalformedSignature},
	}
	for _, c := range cases {
		h := http.Header{}
		if c.sig != "" {
			h.Set("X-Signature-Ed25519", c.sig)
		}
		if c.ts != "" {
			h.Set("X-Signature-Timestamp", c.ts)
		}
		wantEdReason(t, c.name, e.Verify(&Request{Header: h, Body: []byte(c.body), Now: clockAt(c.now)}), c.reason)
	}
}

// The Standard Webhooks reference library's published v1a vector
// (libraries/go webhook_asymmetric_test.go, TestAsymmetricWebhookSign):
// whsk_ seed, message id, timestamp, payload and the expected header. The
// spec's own example header carries a v1a entry too, but the spec publishes
// no key for it, so it cannot be checked.
const (
	stdV1aSeed      = "VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk="
	stdV1aID        = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	stdV1aTimestamp = 1614265330
	stdV1aPayload   = `{"test": 2432232314}`
	stdV1aSignature = "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag=="
)

func TestEd25519StandardV1aReferenceVector(t *testing.T) {
	priv, err := ParseEd25519PrivateKey("whsk_" + stdV1aSeed)
	if err != nil {
		t.Fatal(err)
	}
	pub := "whpk_" + base64.StdEncoding.EncodeToString(edPub(priv))
	e := edPreset(t, "standard", pub)
	at := time.Unix(stdV1aTimestamp, 0)
	h := http.Header{}
	h.Set("Webhook-Id", stdV1aID)
	h.Set("Webhook-Timestamp", strconv.Itoa(stdV1aTimestamp))
	h.Set("Webhook-Signature", stdV1aSignature)
	r := func(h http.Header, now time.Time) *Request {
		return &Request{Header: h, Body: []byte(stdV1aPayload), Now: clockAt(now)}
	}
	wantEdReason(t, "reference vector", e.Verify(r(h, at)), "")
	// Beside an HMAC v1 entry and an unknown version, as the spec's
	// example header sends them.
	mixed := withHeaders(h, map[string]string{"Webhook-Signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= v2,abc " + stdV1aSignature})
	wantEdReason(t, "among other versions", e.Verify(r(mixed, at)), "")
	wantEdReason(t, "only v1", e.Verify(r(withHeaders(h, map[string]string{"Webhook-Signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="}), at)), reasonMissingSignature)
	wantEdReason(t, "stale", e.Verify(r(h, at.Add(6*time.Minute))), reasonTimestampTolerance)
	wantEdReason(t, "other id", e.Verify(r(withHeaders(h, map[string]string{"Webhook-Id": "msg_other"}), at)), reasonSignatureMismatch)
	wantEdReason(t, "missing id", e.Verify(r(withHeaders(h, map[string]string{"Webhook-Id": "-"}), at)), reasonMissingID)
	wantEdReason(t, "partial", e.Verify(r(withHeaders(h, map[string]string{"Webhook-Signature": "v1a,"}), at)), reasonMissingSignature)
	unpadded := strings.TrimRight(stdV1aSignature, "=")
	wantEdReason(t, "unpadded base64", e.Verify(r(withHeaders(h, map[string]string{"Webhook-Signature": unpadded}), at)), "")

	// Sign reproduces the vector byte for byte (Ed25519 is deterministic).
	s, err := e.Sign(priv, []byte(stdV1aPayload), SignOptions{Now: at, ID: stdV1aID})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Header.Get("Webhook-Signature"); got != stdV1aSignature {
		t.Errorf("Sign: %s, want %s", got, stdV1aSignature)
	}
	if s.Header.Get("Webhook-Timestamp") != strconv.Itoa(stdV1aTimestamp) || s.Header.Get("Webhook-Id") != stdV1aID {
		t.Errorf("Sign headers: %v", s.Header)
	}
}

// A v1a signature made with crypto/ed25519 over "{id}.{ts}.{body}",
// several entries (rotation on the sender's side) and several keys
// (rotation on ours).
func TestEd25519StandardV1aRotation(t *testing.T) {
	oldKey, newKey, stranger := testEdKey(7), testEdKey(8), testEdKey(9)
	whpk := func(k ed25519.PrivateKey) string { return "whpk_" + base64.StdEncoding.EncodeToString(edPub(k)) }
	e := edPreset(t, "standard", whpk(oldKey), whpk(newKey))
	body := `{"type":"contact.created","data":{"id":"1"}}`
	ts := strconv.FormatInt(testNow.Unix(), 10)
	entry := func(k ed25519.PrivateKey) string {
		return "v1a," + base64.StdEncoding.EncodeToString(ed25519.Sign(k, []byte("msg_1."+ts+"."+body)))
	}
	for _, c := range []struct {
		name, sig, reason string
	}{
		{"old key", entry(oldKey), ""},
		{"new key", entry(newKey), ""},
		{"stranger then new", entry(stranger) + " " + entry(newKey), ""},
		{"stranger only", entry(stranger), reasonSignatureMismatch},
		{"too many entries", strings.Repeat(entry(stranger)+" ", maxEd25519Candidates) + entry(newKey), reasonMalformedSignature},
		{"garbage entry", "v1a,!!!", reasonMalformedSignature},
	} {
		h := http.Header{"Webhook-Id": {"msg_1"}, "Webhook-Timestamp": {ts}, "Webhook-Signature": {c.sig}}
		wantEdReason(t, c.name, e.Verify(&Request{Header: h, Body: []byte(body), Now: clockAt(testNow)}), c.reason)
	}
}

func TestParseEd25519PublicKey(t *testing.T) {
	pub := edPub(testEdKey(4))
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	for _, s := range []string{
		hex.EncodeToString(pub),
		" " + strings.ToUpper(hex.EncodeToString(pub)) + "\n",
		"whpk_" + base64.StdEncoding.EncodeToString(pub),
		"whpk_" + base64.RawStdEncoding.EncodeToString(pub),
		base64.StdEncoding.EncodeToString(pub),
		pemKey,
	} {
		k, err := ParseEd25519PublicKey(s)
		if err != nil || !k.Equal(pub) {
			t.Errorf("ParseEd25519PublicKey(%q) = %x, %v", s, k, err)
		}
	}
	identity := make([]byte, 32)
	identity[0] = 1 // y = 1: the neutral element, order 1
	for name, s := range map[string]string{
		"empty":       "",
		"short hex":   hex.EncodeToString(pub[:31]),
		"long base64": base64.StdEncoding.EncodeToString(append(append([]byte{}, pub...), 0)),
		"not a key":   "hello world",
		"whpk junk":   "whpk_***",
		"identity":    hex.EncodeToString(identity),
		"all zero":    hex.EncodeToString(make([]byte, 32)), // y = 0: order 4
		"off curve":   hex.EncodeToString(append([]byte{2}, make([]byte, 31)...)),
		"rsa pem":     "-----BEGIN RSA PUBLIC KEY-----\nAAAA\n-----END RSA PUBLIC KEY-----\n",
	} {
		if _, err := ParseEd25519PublicKey(s); err == nil {
			t.Errorf("%s: ParseEd25519PublicKey(%q) accepted", name, s)
		}
	}
}

func TestParseEd25519PrivateKey(t *testing.T) {
	priv := testEdKey(5)
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"whsk_" + base64.StdEncoding.EncodeToString(priv.Seed()),
		hex.EncodeToString(priv.Seed()),
		hex.EncodeToString(priv),
		base64.StdEncoding.EncodeToString(priv),
	} {
		k, err := ParseEd25519PrivateKey(s)
		if err != nil || !k.Equal(priv) {
			t.Errorf("ParseEd25519PrivateKey(%.20q...) failed: %v", s, err)
		}
	}
	inconsistent := append(append([]byte{}, priv.Seed()...), edPub(testEdKey(6))...)
	for name, s := range map[string]string{
		"empty":        "",
		"short":        hex.EncodeToString(priv.Seed()[:31]),
		"inconsistent": hex.EncodeToString(inconsistent),
		"public pem":   "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n",
		"junk":         "not a key!",
	} {
		_, err := ParseEd25519PrivateKey(s)
		if err == nil {
			t.Errorf("%s: accepted", name)
			continue
		}
		if s != "" && len(s) > 8 && strings.Contains(err.Error(), s) {
			t.Errorf("%s: the error %q contains the key", name, err)
		}
	}
}

func TestEd25519ValidateErrors(t *testing.T) {
	pub := edPub(testEdKey(1))
	hdr := Source{Kind: SourceHeader, Name: "X-Sig"}
	ts := &TimestampSource{Source: Source{Kind: SourceHeader, Name: "X-Ts"}}
	for _, c := range []struct {
		name string
		e    Ed25519
		want string
	}{
		{"no key", Ed25519{Signature: hdr}, "no public key configured"},
		{"short key", Ed25519{PublicKeys: []ed25519.PublicKey{pub[:10]}, Signature: hdr}, "public key #1 is 10 bytes"},
		{"no signature source", Ed25519{PublicKeys: []ed25519.PublicKey{pub}}, "signature: no source configured"},
		{"signature in body", Ed25519{PublicKeys: []ed25519.PublicKey{pub}, Signature: Source{Kind: SourceField, Name: "sig"}}, "cannot be inside the body"},
		{"no body", Ed25519{PublicKeys: []ed25519.PublicKey{pub}, Signature: hdr, Message: "{timestamp}", Timestamp: ts}, "does not contain {body}"},
		{"timestamp without source", Ed25519{PublicKeys: []ed25519.PublicKey{pub}, Signature: hdr, Message: "{timestamp}{body}"}, "no timestamp source"},
		{"unsigned timestamp", Ed25519{PublicKeys: []ed25519.PublicKey{pub}, Signature: hdr, Timestamp: ts}, "is not signed"},
		{"id unused", Ed25519{PublicKeys: []ed25519.PublicKey{pub}, Signature: hdr, ID: &Source{Kind: SourceHeader, Name: "Id"}}, "has no {id}"},
		{"bad encoding", Ed25519{PublicKeys: []ed25519.PublicKey{pub}, Signature: hdr, Encoding: "base32"}, "encoding \"base32\""},
		{"bad scheme", Ed25519{PublicKeys: []ed25519.PublicKey{pub}, Signature: hdr, Scheme: SchemeStripe}, "unknown scheme"},
		{"negative tolerance", Ed25519{PublicKeys: []ed25519.PublicKey{pub}, Signature: hdr, Tolerance: -time.Second}, "negative"},
		{"bad template", Ed25519{PublicKeys: []ed25519.PublicKey{pub}, Signature: hdr, Message: "{nope}{body}"}, "unknown placeholder {nope}"},
	} {
		err := c.e.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), DirectiveEd25519+": ") {
			t.Errorf("%s: Validate() = %v, want %q", c.name, err, c.want)
		}
		// Verify without a successful Validate fails closed.
		wantEdReason(t, c.name, c.e.Verify(&Request{Header: http.Header{"X-Sig": {"00"}}}), reasonMisconfigured)
	}
	if _, err := Ed25519Preset("slack"); err == nil || !strings.Contains(err.Error(), "discord, standard") {
		t.Errorf("unknown preset: %v", err)
	}
}

// A custom configuration in the shared template language: base64 in a
// header, "{header.X-Delivery}:{timestamp}:{body}" with an RFC 3339 time.
func TestEd25519CustomTemplateSignVerify(t *testing.T) {
	priv := testEdKey(11)
	e := Ed25519{
		Signature: Source{Kind: SourceHeader, Name: "X-Signature"},
		Encoding:  "base64url",
		Message:   "{header.X-Delivery}:{timestamp}:{body}",
		Timestamp: &TimestampSource{Source: Source{Kind: SourceHeader, Name: "X-Sent-At"}, Format: TimestampRFC3339},
		Tolerance: time.Minute,
	}
	if err := e.AddPublicKey(hex.EncodeToString(edPub(priv))); err != nil {
		t.Fatal(err)
	}
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	body := []byte("payload")
	s, err := e.Sign(priv, body, SignOptions{Now: testNow, Header: http.Header{"X-Delivery": {"d-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := ed25519.Sign(priv, []byte("d-1:"+testNow.UTC().Format(time.RFC3339)+":payload"))
	if got := s.Header.Get("X-Signature"); got != base64.RawURLEncoding.EncodeToString(want) {
		t.Fatalf("signature %s, want the signature of the documented signed string", got)
	}
	wantEdReason(t, "signed", e.Verify(&Request{Header: s.Header, Body: body, Now: clockAt(testNow.Add(30 * time.Second))}), "")
	wantEdReason(t, "delivery changed", e.Verify(&Request{Header: withHeaders(s.Header, map[string]string{"X-Delivery": "d-2"}), Body: body, Now: clockAt(testNow)}), reasonSignatureMismatch)
	wantEdReason(t, "late", e.Verify(&Request{Header: s.Header, Body: body, Now: clockAt(testNow.Add(2 * time.Minute))}), reasonTimestampTolerance)
}

// Sign and Verify of the presets agree; the discord signature is the hex
// of the documented signed string.
func TestEd25519PresetSign(t *testing.T) {
	priv := testEdKey(12)
	d := edPreset(t, "discord", hex.EncodeToString(edPub(priv)))
	body := []byte(`{"type":1}`)
	s, err := d.Sign(priv, body, SignOptions{Now: testNow})
	if err != nil {
		t.Fatal(err)
	}
	ts := strconv.FormatInt(testNow.Unix(), 10)
	if s.Header.Get("X-Signature-Timestamp") != ts || s.Header.Get("X-Signature-Ed25519") != hex.EncodeToString(ed25519.Sign(priv, append([]byte(ts), body...))) {
		t.Fatalf("discord headers %v", s.Header)
	}
	wantEdReason(t, "discord", d.Verify(&Request{Header: s.Header, Body: body, Now: clockAt(testNow)}), "")
	if len(s.Notes) == 0 || !strings.Contains(s.Notes[0], "outside the receiver's tolerance") {
		t.Errorf("a signing time far from now gets a note: %v", s.Notes)
	}
	std := edPreset(t, "standard", "whpk_"+base64.StdEncoding.EncodeToString(edPub(priv)))
	s, err = std.Sign(priv, body, SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Header.Get("Webhook-Id"), "msg_") || !strings.HasPrefix(s.Header.Get("Webhook-Signature"), "v1a,") {
		t.Fatalf("standard headers %v", s.Header)
	}
	wantEdReason(t, "standard", std.Verify(&Request{Header: s.Header, Body: body}), "")
	if got := std.FormatEd25519PublicKey(edPub(priv)); !strings.HasPrefix(got, "whpk_") {
		t.Errorf("FormatEd25519PublicKey = %s", got)
	}
}
