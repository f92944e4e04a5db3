package launch

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestRedactPayloadURLs(t *testing.T) {
	const base = "https://hooks.example.com/_valohai/payloads"
	for _, tt := range []struct{ in, want string }{
		{`{"inputs":{"dataset":["Cannot download https://hooks.example.com/_valohai/payloads/r1?expires=1&signature=abc"]}}`,
			`{"inputs":{"dataset":["Cannot download [payload-url]"]}}`},
		{`{"detail":"https:\/\/hooks.example.com\/_valohai\/payloads\/r1?signature=abc, and more"}`,
			`{"detail":"[payload-url], and more"}`},
		{`url https://hooks.example.com/_valohai/payloads/a and https://hooks.example.com/_valohai/payloads/b end`,
			`url [payload-url] and [payload-url] end`},
		{`https://other.example.com/x?signature=keep`, `https://other.example.com/x?signature=keep`},
	} {
		if got := RedactPayloadURLs(tt.in, base+"/"); got != tt.want {
			t.Errorf("RedactPayloadURLs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := RedactPayloadURLs("x", ""); got != "x" {
		t.Errorf("no base: %q", got)
	}
}

// TestAPIErrorRedactsPayloadURLs: Valohai's error text, as kept in an
// APIError (logged, stored, answered), carries no payload URL.
func TestAPIErrorRedactsPayloadURLs(t *testing.T) {
	const payload = "https://gw.example.com/payloads/run-1?expires=1760000000&signature=s3cr3t"
	srv, _ := newTestServer(t, answer(400, `{"inputs":{"dataset":["Could not read `+payload+`"]}}`))
	c := &Client{BaseURL: srv.URL, Token: testToken, PayloadURL: "https://gw.example.com/payloads"}
	_, err := c.CreateExecution(t.Context(), json.RawMessage(`{}`))
	if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), "[payload-url]") {
		t.Errorf("err = %v, want the payload URL redacted", err)
	}
}

func FuzzRedactPayloadURLs(f *testing.F) {
	const base = "https://h.example/p"
	f.Add("see https://h.example/p/r?signature=x here")
	f.Add(`"https:\/\/h.example\/p\/r"`)
	f.Add("https://h.example/phttps://h.example/p")
	f.Fuzz(func(t *testing.T, s string) {
		out := RedactPayloadURLs(s, base)
		if strings.Contains(out, base) || strings.Contains(out, strings.ReplaceAll(base, "/", `\/`)) {
			t.Fatalf("RedactPayloadURLs(%q) = %q still holds the base", s, out)
		}
	})
}
