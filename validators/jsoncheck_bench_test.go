package validators

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
)

// pushLikeBody is a GitHub-push-like JSON object of about size bytes.
func pushLikeBody(size int) []byte {
	var b strings.Builder
	b.WriteString(`{"ref":"refs/heads/main","commits":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"%040d","message":"commit %d","author":{"name":"a","email":"a@example.com"},"added":["x/%d.py"]}`, i, i, i)
	}
	b.WriteString(`]}`)
	return []byte(b.String())
}

// BenchmarkCheckJSON is the depth and duplicate-key scan every JSON body
// gets; BenchmarkJSONValidBaseline is encoding/json's json.Valid on the same
// bytes, the cheapest full syntax check in the standard library.
// go test -run '^$' -bench 'CheckJSON|JSONValidBaseline' -benchmem ./validators
func BenchmarkCheckJSON(b *testing.B) {
	push, err := os.ReadFile("testdata/push-1k.json")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("push-1k", func(b *testing.B) {
		b.SetBytes(int64(len(push)))
		for b.Loop() {
			if err := checkJSON(push); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, size := range []int{1 << 10, 1 << 20} {
		body := pushLikeBody(size)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := checkJSON(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkJSONValidBaseline(b *testing.B) {
	for _, size := range []int{1 << 10, 1 << 20} {
		body := pushLikeBody(size)
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if !json.Valid(body) {
					b.Fatal("invalid")
				}
			}
		})
	}
}
