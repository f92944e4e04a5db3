package launch

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// parsePayloadURL splits a URL from URLSigner.URL the way the payload
// handler will: the last path segment and two query values.
func parsePayloadURL(t *testing.T, raw string) (runID, expires, signature string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return u.Path[strings.LastIndex(u.Path, "/")+1:], u.Query().Get("expires"), u.Query().Get("signature")
}

func TestPayloadURLRoundtrip(t *testing.T) {
	key, err := NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_760_000_000, 0)
	expires := now.Add(168 * time.Hour)

	for _, base := range []string{
		"https://hooks.example.com/_valohai/payloads",
		"https://hooks.example.com/_valohai/payloads/",
	} {
		s := URLSigner{Key: key, Base: base}
		raw := s.URL("01J9Z3ABCDEF", expires)
		prefix := "https://hooks.example.com/_valohai/payloads/01J9Z3ABCDEF?expires=1760604800&signature="
		if !strings.HasPrefix(raw, prefix) {
			t.Errorf("URL = %q, want prefix %q", raw, prefix)
		}
		runID, exp, sig := parsePayloadURL(t, raw)
		if len(sig) != 43 || strings.ContainsAny(sig, "+/=") {
			t.Errorf("signature %q is not unpadded base64url of 32 bytes", sig)
		}
		for _, at := range []time.Time{now, expires} {
			if err := s.Verify(runID, exp, sig, at); err != nil {
				t.Errorf("Verify at %v: %v", at, err)
			}
		}
	}
}

func TestPayloadURLRejects(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	s := URLSigner{Key: key, Base: "https://h.example/p"}
	now := time.Unix(1_760_000_000, 0)
	runID, exp, sig := parsePayloadURL(t, s.URL("run-1", now.Add(time.Hour)))
	_, _, otherSig := parsePayloadURL(t, s.URL("run-2", now.Add(time.Hour)))
	// Changing the first character changes the first decoded byte (the
	// last character carries padding bits, so it is left alone).
	flipped := []byte(sig)
	if flipped[0] = 'A'; sig[0] == 'A' {
		flipped[0] = 'B'
	}

	tests := []struct {
		name            string
		signer          URLSigner
		runID, exp, sig string
		now             time.Time
		want            error
	}{
		{"genuine", s, runID, exp, sig, now, nil},
		{"tampered run id", s, "run-2", exp, sig, now, ErrBadSignature},
		{"signature of another run", s, runID, exp, otherSig, now, ErrBadSignature},
		{"tampered expires", s, runID, "9999999999", sig, now, ErrBadSignature},
		{"expires respelled", s, runID, "+" + exp, sig, now, ErrBadSignature},
		{"tampered signature", s, runID, exp, string(flipped), now, ErrBadSignature},
		{"truncated signature", s, runID, exp, sig[:20], now, ErrBadSignature},
		{"padded signature", s, runID, exp, sig + "=", now, ErrBadSignature},
		{"std base64 signature", s, runID, exp, strings.NewReplacer("-", "+", "_", "/").Replace(sig) + "/", now, ErrBadSignature},
		{"empty signature", s, runID, exp, "", now, ErrBadSignature},
		{"empty expires", s, runID, "", sig, now, ErrBadSignature},
		{"malformed expires", s, runID, "soon", sig, now, ErrBadSignature},
		{"other key", URLSigner{Key: bytes.Repeat([]byte{8}, 32)}, runID, exp, sig, now, ErrBadSignature},
		{"empty key", URLSigner{}, runID, exp, sig, now, ErrBadSignature},
		{"newline in run id", s, runID + "\n1", exp, sig, now, ErrBadSignature},
		{"last valid instant", s, runID, exp, sig, now.Add(time.Hour), nil},
		{"expired", s, runID, exp, sig, now.Add(time.Hour + time.Nanosecond), ErrExpired},
		{"forged and expired", s, runID, exp, string(flipped), now.Add(48 * time.Hour), ErrBadSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.signer.Verify(tt.runID, tt.exp, tt.sig, tt.now); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

// With an empty key anyone could compute the MAC, so even a URL the same
// empty-key signer produced must fail closed.
func TestPayloadURLEmptyKeyFailsClosed(t *testing.T) {
	s := URLSigner{Base: "https://h.example/p"}
	now := time.Unix(1_760_000_000, 0)
	runID, exp, sig := parsePayloadURL(t, s.URL("run-1", now.Add(time.Hour)))
	if err := s.Verify(runID, exp, sig, now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify with empty key = %v, want ErrBadSignature", err)
	}
	if err := (URLSigner{Key: []byte{}}).Verify(runID, exp, sig, now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Verify with zero-length key = %v, want ErrBadSignature", err)
	}
}

func TestPayloadURLEscapesRunID(t *testing.T) {
	s := URLSigner{Key: []byte("k"), Base: "https://h.example/p"}
	now := time.Unix(1_760_000_000, 0)
	raw := s.URL("a/b c?d", now)
	if !strings.HasPrefix(raw, "https://h.example/p/a%2Fb%20c%3Fd?") {
		t.Fatalf("URL = %q: run id not path-escaped", raw)
	}
	u, _ := url.Parse(raw)
	runID := strings.TrimPrefix(u.Path, "/p/")
	if err := s.Verify(runID, u.Query().Get("expires"), u.Query().Get("signature"), now); err != nil || runID != "a/b c?d" {
		t.Errorf("Verify(%q) = %v", runID, err)
	}
}

func TestNewSigningKey(t *testing.T) {
	a, err := NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 32 || len(b) != 32 || bytes.Equal(a, b) {
		t.Errorf("keys %x and %x: want two different 32-byte keys", a, b)
	}
}

// NewURLSigner's signer (keyed HMACs reused from a pool) makes the same
// URLs as a URLSigner literal (a new HMAC per URL) for the same key, from
// many goroutines at once, and they are the documented
// <base>/<run id>?expires=<unix>&signature=<base64url HMAC> with the run
// id path-escaped.
func TestNewURLSignerSameURLs(t *testing.T) {
	key := bytes.Repeat([]byte{9}, 32)
	const base = "https://hooks.example.com/_valohai/payloads/"
	literal := URLSigner{Key: key, Base: base}
	pooled := NewURLSigner(key, base)
	expires := time.Unix(1_760_604_800, 0)

	want := literal.URL("a b/c", expires)
	if !strings.HasPrefix(want, "https://hooks.example.com/_valohai/payloads/a%20b%2Fc?expires=1760604800&signature=") {
		t.Fatalf("URL = %q", want)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				runID := fmt.Sprintf("run-%d-%d", g, i)
				at := expires.Add(time.Duration(i) * time.Second)
				if got, want := pooled.URL(runID, at), literal.URL(runID, at); got != want {
					t.Errorf("pooled URL %q, literal %q", got, want)
					return
				}
				id, exp, sig := parsePayloadURL(t, pooled.URL(runID, at))
				if err := pooled.Verify(id, exp, sig, expires); err != nil {
					t.Errorf("pooled Verify of its own URL: %v", err)
					return
				}
				if err := literal.Verify(id, exp, sig, expires); err != nil {
					t.Errorf("literal Verify of the pooled URL: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkURLSigner: a URLSigner literal keys a new HMAC per URL,
// NewURLSigner's reuses keyed ones.
//
//	go test -run '^$' -bench URLSigner -benchmem ./launch
func BenchmarkURLSigner(b *testing.B) {
	key := bytes.Repeat([]byte{9}, 32)
	expires := time.Unix(1_760_604_800, 0)
	for name, s := range map[string]URLSigner{
		"literal":   {Key: key, Base: "http://127.0.0.1:8080/_valohai/payloads"},
		"NewSigner": NewURLSigner(key, "http://127.0.0.1:8080/_valohai/payloads"),
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = s.URL("01a24e24-112f-7e37-b0b8-4b832d02fadf", expires)
			}
		})
	}
}
