package validators

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// FuzzEd25519Headers feeds arbitrary signature, timestamp and id headers
// to both presets, and arbitrary text to the public key parser. Nothing may
// panic, and a request passes only when its headers hold the signature the
// private key really makes over what they claim: a guess never passes.
func FuzzEd25519Headers(f *testing.F) {
	priv := testEdKey(21)
	pub := edPub(priv)
	ts := strconv.FormatInt(testNow.Unix(), 10)
	discordSig := hex.EncodeToString(ed25519.Sign(priv, []byte(ts+fuzzBody)))
	stdSig := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(fuzzID+"."+ts+"."+fuzzBody)))
	for _, s := range []struct {
		scheme          uint8
		sig, ts, id, pk string
	}{
		{0, discordSig, ts, "", hex.EncodeToString(pub)},
		{0, strings.ToUpper(discordSig), ts, "", "whpk_" + base64.StdEncoding.EncodeToString(pub)},
		{0, discordSig[:64], "00" + ts, "", ""},
		{1, "v1a," + stdSig, ts, fuzzID, "-----BEGIN PUBLIC KEY-----\n"},
		{1, "v1,abc v1a," + strings.TrimRight(stdSig, "=") + " v1a,", ts, fuzzID, "whpk_"},
		{1, strings.Repeat("v1a,AAAA ", 10), "99999999999999999999", "", strings.Repeat("0", 64)},
		{1, "", "", "", ""},
		{0, "\x00\xff", "-1", "\n", "\xff"},
	} {
		f.Add(s.scheme, s.sig, s.ts, s.id, s.pk)
	}
	discord := edPreset(f, "discord", hex.EncodeToString(pub))
	standard := edPreset(f, "standard", "whpk_"+base64.StdEncoding.EncodeToString(pub))

	f.Fuzz(func(t *testing.T, scheme uint8, sig, ts, id, pk string) {
		if k, err := ParseEd25519PublicKey(pk); err == nil && len(k) != ed25519.PublicKeySize {
			t.Fatalf("ParseEd25519PublicKey(%q) returned %d bytes", pk, len(k))
		}
		r := &Request{Header: http.Header{}, Body: []byte(fuzzBody), Now: clockAt(testNow)}
		if scheme%2 == 0 {
			r.Header.Set("X-Signature-Ed25519", sig)
			r.Header.Set("X-Signature-Timestamp", ts)
			if discord.Verify(r) == nil {
				want := hex.EncodeToString(ed25519.Sign(priv, []byte(ts+fuzzBody)))
				if !strings.EqualFold(strings.TrimSpace(sig), want) {
					t.Fatalf("discord accepted signature %q for timestamp %q", sig, ts)
				}
			}
			return
		}
		r.Header.Set("Webhook-Signature", sig)
		r.Header.Set("Webhook-Timestamp", ts)
		r.Header.Set("Webhook-Id", id)
		if standard.Verify(r) == nil {
			want := base64.StdEncoding.EncodeToString(ed25519.Sign(priv, []byte(id+"."+ts+"."+fuzzBody)))
			if !strings.Contains(sig, "v1a,"+strings.TrimRight(want, "=")) {
				t.Fatalf("standard accepted %q for id %q timestamp %q", sig, id, ts)
			}
		}
	})
}
