package validators

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// addAgain returns h with a second copy of name's value (the same value:
// even an identical copy is refused, there is no telling which a later
// reader takes).
func addAgain(h http.Header, name string) http.Header {
	c := h.Clone()
	c.Add(name, c.Get(name))
	return c
}

// Every condition refuses a request that sends what it checks more than
// once: a replay with a second webhook-id would pass the signature (over
// the first) and miss a dedupe window keyed on Caddy's joined
// {http.request.header.Webhook-Id}. README.md, "Hostile input".
func TestRepeatedSignedValuesAreRefused(t *testing.T) {
	t.Run("webhook_hmac standard: signature, timestamp, id", func(t *testing.T) {
		h := presetHMAC(t, "standard", standardSecret)
		base := http.Header{"Webhook-Id": {standardID}, "Webhook-Timestamp": {standardTS}, "Webhook-Signature": {"v1," + standardSig}}
		at := clockAt(time.Unix(1614265330, 0).Add(2 * time.Second))
		checkVerdict(t, h.Verify(&Request{Header: base, Body: []byte(standardBody), Now: at}), "", DirectiveHMAC)
		for name, want := range map[string]string{
			"Webhook-Signature": "webhook_hmac: signature sent more than once",
			"Webhook-Timestamp": "webhook_hmac: timestamp sent more than once",
			"Webhook-Id":        "webhook_hmac: id sent more than once",
		} {
			checkVerdict(t, h.Verify(&Request{Header: addAgain(base, name), Body: []byte(standardBody), Now: at}), want, DirectiveHMAC)
		}
	})

	t.Run("webhook_hmac: a header the message signs", func(t *testing.T) {
		h := prepared(t, HMAC{
			Secrets:   secretsOf("event-secret"),
			Signature: mustSource(t, "header", "X-Signature"),
			Message:   "{header.X-Event}.{body}",
		})
		body := `{"a":1}`
		base := http.Header{"X-Event": {"push"}, "X-Signature": {hex.EncodeToString(macOf(sha256.New, "event-secret", "push.", body))}}
		checkVerdict(t, h.Verify(&Request{Header: base, Body: []byte(body)}), "", DirectiveHMAC)
		checkVerdict(t, h.Verify(&Request{Header: addAgain(base, "X-Event"), Body: []byte(body)}),
			"webhook_hmac: signed header X-Event sent more than once", DirectiveHMAC)
	})

	t.Run("webhook_ed25519 standard: id", func(t *testing.T) {
		priv, err := ParseEd25519PrivateKey("whsk_" + stdV1aSeed)
		if err != nil {
			t.Fatal(err)
		}
		e := edPreset(t, "standard", "whpk_"+base64.StdEncoding.EncodeToString(edPub(priv)))
		base := http.Header{}
		base.Set("Webhook-Id", stdV1aID)
		base.Set("Webhook-Timestamp", strconv.Itoa(stdV1aTimestamp))
		base.Set("Webhook-Signature", stdV1aSignature)
		at := clockAt(time.Unix(stdV1aTimestamp, 0))
		wantEdReason(t, "once", e.Verify(&Request{Header: base, Body: []byte(stdV1aPayload), Now: at}), "")
		wantEdReason(t, "id twice", e.Verify(&Request{Header: addAgain(base, "Webhook-Id"), Body: []byte(stdV1aPayload), Now: at}), "id sent more than once")
		wantEdReason(t, "signature twice", e.Verify(&Request{Header: addAgain(base, "Webhook-Signature"), Body: []byte(stdV1aPayload), Now: at}), "signature sent more than once")
	})

	t.Run("webhook_token: header, query, form field", func(t *testing.T) {
		tok := func(src Source) *Token {
			tk := &Token{Source: src, Secrets: secretsOf(tokenSecret)}
			if err := tk.Validate(); err != nil {
				t.Fatal(err)
			}
			return tk
		}
		header := tok(mustSource(t, "header", "X-Gitlab-Token"))
		base := http.Header{"X-Gitlab-Token": {tokenSecret}}
		checkVerdict(t, header.Verify(&Request{Header: base}), "", DirectiveToken)
		checkVerdict(t, header.Verify(&Request{Header: addAgain(base, "X-Gitlab-Token")}), "webhook_token: token sent more than once", DirectiveToken)

		query := tok(mustSource(t, "query", "token"))
		checkVerdict(t, query.Verify(&Request{Query: url.Values{"token": {tokenSecret}}}), "", DirectiveToken)
		checkVerdict(t, query.Verify(&Request{Query: url.Values{"token": {tokenSecret, tokenSecret}}}), "webhook_token: token sent more than once", DirectiveToken)

		field := tok(mustSource(t, "field", "token"))
		form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
		checkVerdict(t, field.Verify(&Request{Header: form, Body: []byte("token=" + tokenSecret)}), "", DirectiveToken)
		checkVerdict(t, field.Verify(&Request{Header: form, Body: []byte("token=" + tokenSecret + "&token=" + tokenSecret)}),
			"webhook_token: token sent more than once", DirectiveToken)
	})

	t.Run("webhook_timestamp", func(t *testing.T) {
		ts := &Timestamp{Source: mustSource(t, "header", "X-Timestamp"), Format: TimestampUnix, Tolerance: time.Minute}
		now := time.Unix(1700000000, 0)
		base := http.Header{"X-Timestamp": {"1700000000"}}
		checkVerdict(t, ts.Verify(&Request{Header: base, Now: clockAt(now)}), "", DirectiveTimestamp)
		checkVerdict(t, ts.Verify(&Request{Header: addAgain(base, "X-Timestamp"), Now: clockAt(now)}),
			"webhook_timestamp: timestamp sent more than once", DirectiveTimestamp)
	})

	t.Run("webhook_jwt", func(t *testing.T) {
		k := testJWTKeys()
		j := preparedJWT(t, JWT{Secrets: [][]byte{k.secret}})
		r := bearer(mint(t, jwt.SigningMethodHS256, k.secret, jwtClaims(), nil))
		wantReason(t, j.Verify(r), "")
		r = bearer(mint(t, jwt.SigningMethodHS256, k.secret, jwtClaims(), nil))
		r.Header = addAgain(r.Header, "Authorization")
		wantReason(t, j.Verify(r), "token sent more than once")
	})
}

// A signature of a padded base64 length that holds no "=" decodes to more
// bytes than a MAC (88 characters are 66 bytes for a 64-byte SHA-512 MAC or
// Ed25519 signature): refused as malformed. FuzzEd25519Headers found the
// decoder writing those bytes past its 64-byte buffer, a panic per request.
func TestUnpaddedFullLengthBase64SignatureIsMalformed(t *testing.T) {
	sig := strings.Repeat("A", 87) + "B" // 88 characters, no padding
	h := prepared(t, HMAC{
		Secrets:   secretsOf("sha512-secret"),
		Signature: mustSource(t, "header", "X-Signature"),
		Algorithm: "sha512",
		Encoding:  "base64",
	})
	checkVerdict(t, h.Verify(&Request{Header: http.Header{"X-Signature": {sig}}, Body: []byte("{}")}),
		"webhook_hmac: malformed signature", DirectiveHMAC)
	// The same MAC properly encoded still passes.
	good := base64.StdEncoding.EncodeToString(macOf(sha512.New, "sha512-secret", "{}"))
	checkVerdict(t, h.Verify(&Request{Header: http.Header{"X-Signature": {good}}, Body: []byte("{}")}), "", DirectiveHMAC)

	priv := testEdKey(3)
	e := edPreset(t, "standard", "whpk_"+base64.StdEncoding.EncodeToString(edPub(priv)))
	hdr := http.Header{"Webhook-Id": {"msg_1"}, "Webhook-Timestamp": {strconv.FormatInt(testNow.Unix(), 10)}, "Webhook-Signature": {"v1a," + sig}}
	wantEdReason(t, "unpadded 88 characters", e.Verify(&Request{Header: hdr, Body: []byte("{}"), Now: clockAt(testNow)}), reasonMalformedSignature)
}
