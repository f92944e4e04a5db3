package launch

import (
	"encoding/json"
	"testing"
)

// jsonStringSeeds are strings on both sides of AppendJSONString's fast
// path: plain ASCII, and every kind of byte encoding/json escapes.
var jsonStringSeeds = []string{
	"", "01a24e24-112f-7e37-b0b8-4b832d02fadf", "pending", "refs/heads/main",
	`say "hi"`, `back\slash`, "tab\there", "nl\n", "\x00\x1f\x7f", "<script>", "a&b", "ä", "€",
	"\u2028\u2029", "\xff invalid", "emoji 🚀", "http://h/p/r?expires=1&signature=a<b>&", "<<>>&&",
}

func TestAppendJSONStringIsMarshal(t *testing.T) {
	for _, s := range jsonStringSeeds {
		want, _ := json.Marshal(s)
		if got := AppendJSONString([]byte("x"), s); string(got) != "x"+string(want) {
			t.Errorf("AppendJSONString(%q) = %s, want x%s", s, got, want)
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
		if got := AppendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}

// AppendJSONValue writes what json.Marshal writes, and fails where it
// fails.
func TestAppendJSONValueIsMarshal(t *testing.T) {
	values := []any{"x<y", true, false, nil, json.Number("1.50"), json.Number("1x"), json.RawMessage(` [1, "<"] `),
		json.RawMessage(`{bad`), 0.1, 1e21, 42, int64(-7), []string{"a"}, map[string]any{"b": 1, "a": "&"}, func() {}}
	for _, v := range values {
		want, wantErr := json.Marshal(v)
		got, gotErr := AppendJSONValue([]byte("x"), v)
		if (wantErr == nil) != (gotErr == nil) || wantErr == nil && string(got) != "x"+string(want) {
			t.Errorf("AppendJSONValue(%#v) = %s, %v; json.Marshal %s, %v", v, got, gotErr, want, wantErr)
		}
	}
}
