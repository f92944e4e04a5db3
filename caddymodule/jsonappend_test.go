package caddymodule

import (
	"cmp"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// jsonStringSeeds are strings on both sides of appendJSONString's fast
// path: plain ASCII, and every kind of byte encoding/json escapes.
var jsonStringSeeds = []string{
	"", "01a24e24-112f-7e37-b0b8-4b832d02fadf", "pending", "refs/heads/main",
	`say "hi"`, `back\slash`, "tab\there", "nl\n", "\x00\x1f\x7f", "<script>", "a&b", "ä", "€",
	"\u2028\u2029", "\xff invalid", "emoji 🚀",
}

func TestAppendJSONStringIsMarshal(t *testing.T) {
	for _, s := range jsonStringSeeds {
		want, _ := json.Marshal(s)
		if got := appendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("appendJSONString(%q) = %s, want x%s", s, got, want)
		}
	}
}

// FuzzAppendJSONString: for any text (placeholders carry webhook fields
// into titles, tags and parameters) the bytes are encoding/json's.
func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStringSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}

// The answer without results (a pending run, wait 0s, also when
// webhook_dedupe overrides its status) is byte for byte what json.Encoder
// writes for it, whatever the run id.
func TestWriteRunResponseWithoutResults(t *testing.T) {
	for _, override := range []int{0, http.StatusOK} {
		for _, id := range jsonStringSeeds {
			rec := httptest.NewRecorder()
			if err := writeRunResponse(rec, &launch.Run{ID: id, Status: launch.StatusPending}, override); err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(runResponse{RunID: id, Status: launch.StatusPending})
			wantCode := cmp.Or(override, http.StatusAccepted)
			if rec.Body.String() != string(want)+"\n" || rec.Code != wantCode || rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("run %q: %d %v %q, want %d application/json %q", id, rec.Code, rec.Header(), rec.Body, wantCode, want)
			}
		}
	}
}
