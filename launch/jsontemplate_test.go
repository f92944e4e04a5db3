package launch

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestTemplateJSONAlwaysValid(t *testing.T) {
	tmpl, err := ParseTemplate(`{"id":"{run_id}","v":{x},"s":"pre {x} post","esc":"a\"{x}"}`)
	if err != nil {
		t.Fatal(err)
	}
	if err := tmpl.ValidateJSON(); err != nil {
		t.Fatal(err)
	}
	for _, v := range []any{
		"plain", `",":1,":`, `"}`, "\\", "</script>", nil, true, json.Number("12.5"), 7.0,
		json.RawMessage(`{"a":[1,"b"]}`), json.RawMessage(`"str"`), json.RawMessage(` 42 `),
		map[string]any{"k": []any{1, "x"}}, []any{"a", 2}, json.Number("1,\"x\":2"),
	} {
		out := tmpl.JSON(func(key string) (any, bool) {
			if key == "run_id" {
				return "r-1", true
			}
			return v, true
		})
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("value %#v: invalid JSON %s: %v", v, out, err)
		}
		if len(got) != 4 || got["id"] != "r-1" {
			t.Fatalf("value %#v changed the answer's members: %s", v, out)
		}
	}
	for _, bad := range []string{`{"a":}`, `{"a":"{x}"`, `not json {x}`} {
		tm, _ := ParseTemplate(bad)
		if tm.ValidateJSON() == nil {
			t.Errorf("%q accepted as a JSON body", bad)
		}
	}
	for _, ok := range []string{"", "  ", `[{x},"{y}"]`, `{x}`} {
		tm, _ := ParseTemplate(ok)
		if err := tm.ValidateJSON(); err != nil {
			t.Errorf("%q refused: %v", ok, err)
		}
	}
}

// FuzzTemplateJSON: whatever text a webhook field holds, a response body
// that is JSON around its placeholders renders as valid JSON with the same
// members.
func FuzzTemplateJSON(f *testing.F) {
	f.Add(`",":1,":`, []byte(`{"a":1}`))
	f.Add("\\", []byte(`[1,2]`))
	f.Add("\xff\xfe", []byte(`12`))
	f.Add("}", []byte(`not json`))
	tmpl, err := ParseTemplate(`{"s":"{s}","v":{s},"raw":"{raw}","rv":{raw}}`)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string, raw []byte) {
		out := tmpl.JSON(func(key string) (any, bool) {
			if key == "s" {
				return s, true
			}
			return json.RawMessage(raw), true
		})
		// UseNumber: a number too large for a float64 (the fuzzer's
		// 777…7, 300 digits) is valid JSON that a float64 decoder refuses.
		var got map[string]any
		dec := json.NewDecoder(strings.NewReader(out))
		dec.UseNumber()
		if err := dec.Decode(&got); err != nil || len(got) != 4 || dec.More() {
			t.Fatalf("s=%q raw=%q: %s (%v)", s, raw, out, err)
		}
	})
}
