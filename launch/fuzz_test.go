package launch

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// unescapeBraces is the reference meaning of a placeholder-free template:
// the text with \{ and \} turned into braces.
var unescapeBraces = strings.NewReplacer(`\{`, `{`, `\}`, `}`)

func FuzzParseTemplate(f *testing.F) {
	for _, seed := range []string{
		"", "plain", "{run_id}", "Push {webhook.json.head_commit.id}",
		`\{not\}`, `\\{x}`, "{", "}", "{}", "{ a }", "{a{b}", "{{a}}",
		`{"run_id":"{run_id}","text":"Started {valohai.execution.counter}"}`,
		`{webhook.json.friends.#(last=="Murphy").first}`, `{a\}`, "10", "1e5", "true",
		"{é}", "\xff{a}",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tmpl, err := ParseTemplate(s)
		if err != nil {
			if utf8.ValidString(s) {
				t.Fatalf("ParseTemplate(%q) failed on valid UTF-8: %v", s, err)
			}
			return
		}
		if tmpl.Raw() != s {
			t.Fatalf("Raw() = %q, want %q", tmpl.Raw(), s)
		}
		names := tmpl.Placeholders()
		for _, name := range names {
			if name == "" || strings.ContainsAny(name, "{}") || strings.IndexFunc(name, unicode.IsSpace) >= 0 {
				t.Fatalf("ParseTemplate(%q): bad placeholder name %q", s, name)
			}
		}
		if tmpl.IsLiteral() != (len(names) == 0) {
			t.Fatalf("IsLiteral() = %v with placeholders %q", tmpl.IsLiteral(), names)
		}

		// Rendering each placeholder as its own source text gives back the
		// unescaped input, unless a name holds a backslash (then "\}" inside
		// it is part of the name, not an escape).
		echo := func(key string) (any, bool) { return "{" + key + "}", true }
		if !strings.Contains(strings.Join(names, ""), `\`) {
			if got, want := tmpl.String(echo), unescapeBraces.Replace(s); got != want {
				t.Fatalf("String(echo) of %q = %q, want %q", s, got, want)
			}
		}
		if len(names) == 0 {
			want := unescapeBraces.Replace(s)
			if got := tmpl.String(nil); got != want {
				t.Fatalf("String of literal %q = %q, want %q", s, got, want)
			}
			switch v := tmpl.Value(nil).(type) {
			case string:
				if v != want {
					t.Fatalf("Value of literal %q = %q, want %q", s, v, want)
				}
			case bool:
				if want != "true" && want != "false" {
					t.Fatalf("Value of literal %q = %v", s, v)
				}
			default:
				if !isJSONNumber(want) {
					t.Fatalf("Value of literal %q = %#v", s, v)
				}
			}
		}
		// Missing values never panic and never leak the placeholder.
		_ = tmpl.String(func(string) (any, bool) { return nil, false })
		_ = tmpl.Value(func(string) (any, bool) { return map[string]any{"k": []any{1.5, nil}}, true })
	})
}

// FuzzVerifyPayloadURL feeds untrusted URL parts to Verify: it must never
// panic and must accept only what the key signed.
func FuzzVerifyPayloadURL(f *testing.F) {
	key := []byte("fuzz-key-0123456789abcdef0123456")
	s := NewURLSigner(key, "https://h.example/p")
	now := time.Unix(1_760_000_000, 0)
	f.Add("run-1", "1760003600", "")
	f.Add("run-1", "-1", "AAAA")
	f.Add("", "", "")
	f.Add("run\n1", "99999999999999999999", "====")
	f.Fuzz(func(t *testing.T, runID, expires, signature string) {
		err := s.Verify(runID, expires, signature, now)
		if err != nil {
			return
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(runID + "\n" + expires))
		if want := base64.RawURLEncoding.EncodeToString(m.Sum(nil)); signature != want {
			// Non-canonical base64 spelling of the right MAC is the only
			// other way in, and it still needs the MAC.
			got, decErr := base64.RawURLEncoding.DecodeString(signature)
			if decErr != nil || base64.RawURLEncoding.EncodeToString(got) != want {
				t.Fatalf("Verify accepted %q %q %q", runID, expires, signature)
			}
		}
	})
}

// FuzzParseRetryAfter feeds server headers to parseRetryAfter: no panic,
// never negative, never above the cap.
func FuzzParseRetryAfter(f *testing.F) {
	for _, seed := range []string{"", "0", "120", "-1", "Sun, 06 Nov 1994 08:49:37 GMT", "99999999999999999999"} {
		f.Add(seed)
	}
	now := time.Unix(1_760_000_000, 0)
	f.Fuzz(func(t *testing.T, v string) {
		if d := parseRetryAfter(v, now); d < 0 || d > maxRetryAfter {
			t.Fatalf("parseRetryAfter(%q) = %v", v, d)
		}
	})
}
