package validators

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
)

// benchSizes are a typical webhook and a large one (GitHub caps at 25 MB).
var benchSizes = []struct {
	name string
	size int
}{
	{"1KiB", 1 << 10},
	{"1MiB", 1 << 20},
}

func benchBody(size int) []byte {
	body := make([]byte, size)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	return body
}

// BenchmarkVerifyGitHub is the whole webhook_hmac check of a GitHub
// delivery: header lookup, prefix, hex decode, pooled MAC, compare.
func BenchmarkVerifyGitHub(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			body := benchBody(bs.size)
			h := githubHMAC(b, githubSecret)
			r := &Request{
				Header: http.Header{"X-Hub-Signature-256": {"sha256=" + hexSHA256(githubSecret, string(body))}},
				Body:   body,
			}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := h.Verify(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRawHMAC is the baseline: what a hand-written GitHub check does
// with crypto/hmac alone (new MAC, write body, hex decode, hmac.Equal).
func BenchmarkRawHMAC(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			body := benchBody(bs.size)
			key := []byte(githubSecret)
			header := "sha256=" + hexSHA256(githubSecret, string(body))
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				sig, err := hex.DecodeString(strings.TrimPrefix(header, "sha256="))
				if err != nil {
					b.Fatal(err)
				}
				m := hmac.New(sha256.New, key)
				m.Write(body)
				if !hmac.Equal(m.Sum(nil), sig) {
					b.Fatal("mismatch")
				}
			}
		})
	}
}
