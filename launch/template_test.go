package launch

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// testLookup resolves names from a JSON document decoded with UseNumber,
// as a payload lookup would, plus a few Go-typed values.
func testLookup(t *testing.T) Lookup {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(`{
		"webhook.json.ref": "refs/heads/main",
		"webhook.json.count": 42,
		"webhook.json.ratio": 0.1,
		"webhook.json.big": 1e21,
		"webhook.json.ok": true,
		"webhook.json.none": null,
		"webhook.json.repo": {"name": "r", "tags": ["a", "<b>"]},
		"webhook.json.list": [1, 2.5, "x"],
		"webhook.json.friends.#(last==\"Murphy\").first": "Dale",
		"webhook.json.fav\\.movie": "Deer Hunter",
		"run_id": "01J9Z3"
	}`))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatal(err)
	}
	m["go.float"] = float64(1e21)
	m["go.float.frac"] = 0.30000000000000004
	m["go.int"] = 7
	m["go.uint8"] = uint8(200)
	m["go.status"] = StatusPending
	m["go.raw.string"] = json.RawMessage(`"raw"`)
	m["go.raw.object"] = json.RawMessage(`{ "a" : 1 }`)
	return func(key string) (any, bool) {
		v, ok := m[key]
		return v, ok
	}
}

func mustParse(t *testing.T, s string) *Template {
	t.Helper()
	tmpl, err := ParseTemplate(s)
	if err != nil {
		t.Fatalf("ParseTemplate(%q): %v", s, err)
	}
	return tmpl
}

func TestTemplateString(t *testing.T) {
	look := testLookup(t)
	tests := []struct{ in, want string }{
		{"", ""},
		{"plain text", "plain text"},
		{"Push {webhook.json.ref}", "Push refs/heads/main"},
		{"{webhook.json.count}", "42"},
		{"{webhook.json.ratio}", "0.1"},
		{"{webhook.json.big}", "1e21"}, // json.Number keeps its own spelling
		{"{go.float}", "1000000000000000000000"},
		{"{go.float.frac}", "0.30000000000000004"},
		{"{go.int}/{go.uint8}", "7/200"},
		{"{go.status}", "pending"},
		{"{go.raw.string} {go.raw.object}", `raw {"a":1}`},
		{"ok={webhook.json.ok}", "ok=true"},
		{"[{webhook.json.none}]", "[]"},
		{"{webhook.json.repo}", `{"name":"r","tags":["a","<b>"]}`},
		{"{webhook.json.list}", `[1,2.5,"x"]`},
		{"[{missing}]", "[]"},
		{"{webhook.json.friends.#(last==\"Murphy\").first}", "Dale"},
		{`{webhook.json.fav\.movie}`, "Deer Hunter"},
		{"{run_id}{run_id}", "01J9Z301J9Z3"},
		// Escapes and literal braces.
		{`\{run_id\}`, "{run_id}"},
		{`\{{run_id}\}`, "{01J9Z3}"},
		{`a\b\\{run_id}`, `a\b\{run_id}`}, // only \{ and \} are escapes
		{"{", "{"},
		{"}", "}"},
		{"{}", "{}"},
		{"{run_id", "{run_id"},
		{"run_id}", "run_id}"},
		{"{ run_id }", "{ run_id }"},
		{"{run id}", "{run id}"},
		{"{run_id\t}", "{run_id\t}"},
		{"{{run_id}}", "{01J9Z3}"},
		{"{a{run_id}", "{a01J9Z3"},
		{"{.run_id}", "{.run_id}"},
		{`{"ok":true}`, `{"ok":true}`},
		{`{"run_id":"{run_id}","n":{webhook.json.count}}`, `{"run_id":"01J9Z3","n":42}`},
		{"héllo {run_id} ✓", "héllo 01J9Z3 ✓"},
		{"{ünïcode}", ""},
	}
	for _, tt := range tests {
		if got := mustParse(t, tt.in).String(look); got != tt.want {
			t.Errorf("String(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestTemplateValue(t *testing.T) {
	look := testLookup(t)
	tests := []struct {
		in   string
		want any
	}{
		// Exactly one placeholder keeps the JSON type.
		{"{webhook.json.count}", json.Number("42")},
		{"{webhook.json.ratio}", json.Number("0.1")},
		{"{go.float}", 1e21},
		{"{go.int}", 7},
		{"{webhook.json.ok}", true},
		{"{webhook.json.none}", nil},
		{"{webhook.json.repo}", map[string]any{"name": "r", "tags": []any{"a", "<b>"}}},
		{"{webhook.json.list}", []any{json.Number("1"), json.Number("2.5"), "x"}},
		{"{webhook.json.ref}", "refs/heads/main"},
		{"{missing}", ""},
		// Mixed text is a string.
		{"n={webhook.json.count}", "n=42"},
		{"{webhook.json.count}{webhook.json.count}", "4242"},
		{" {webhook.json.count}", " 42"},
		// Literals.
		{"10", json.Number("10")},
		{"-0.5", json.Number("-0.5")},
		{"0.1", json.Number("0.1")},
		{"1e5", json.Number("1e5")},
		{"2.5E-3", json.Number("2.5E-3")},
		{"10s", "10s"},
		{"007", "007"},
		{"+5", "+5"},
		{"1.", "1."},
		{".5", ".5"},
		{"1e", "1e"},
		{"-", "-"},
		{" 10", " 10"},
		{"0x10", "0x10"},
		{"NaN", "NaN"},
		{"true", true},
		{"false", false},
		{"True", "True"},
		{"null", "null"},
		{"", ""},
		{`\{x\}`, "{x}"},
		{"{x", "{x"},
	}
	for _, tt := range tests {
		got := mustParse(t, tt.in).Value(look)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Value(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}
}

func TestTemplateValueJSON(t *testing.T) {
	var doc map[string]any
	dec := json.NewDecoder(strings.NewReader(`{"n":42,"f":0.1,"b":false,"o":{"k":[1]}}`))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	fromJSON := func(key string) (any, bool) { v, ok := doc[key]; return v, ok }
	asFloat := func(key string) (any, bool) { return float64(42), key == "n" }

	tests := []struct {
		tmpl string
		look Lookup
		want string
	}{
		{"{n}", fromJSON, `{"p":42}`},
		{"{n}", asFloat, `{"p":42}`},
		{"{f}", fromJSON, `{"p":0.1}`},
		{"{b}", fromJSON, `{"p":false}`},
		{"{o}", fromJSON, `{"p":{"k":[1]}}`},
		{"{missing}", fromJSON, `{"p":""}`},
		{"{n}", nil, `{"p":""}`},
		{"10", nil, `{"p":10}`},
		{"0.1", nil, `{"p":0.1}`},
		{"true", nil, `{"p":true}`},
		{"10s", nil, `{"p":"10s"}`},
		{"n{n}", fromJSON, `{"p":"n42"}`},
	}
	for _, tt := range tests {
		out, err := json.Marshal(map[string]any{"p": mustParse(t, tt.tmpl).Value(tt.look)})
		if err != nil {
			t.Fatal(err)
		}
		if string(out) != tt.want {
			t.Errorf("marshal Value(%q) = %s, want %s", tt.tmpl, out, tt.want)
		}
	}
}

func TestTemplateIntrospection(t *testing.T) {
	tests := []struct {
		in      string
		literal bool
		names   []string
	}{
		{"", true, nil},
		{"text", true, nil},
		{`\{run_id\}`, true, nil},
		{`{"a":1}`, true, nil},
		{"{run_id}", false, []string{"run_id"}},
		{"{b} {a} {b} {webhook.json.x.#}", false, []string{"b", "a", "webhook.json.x.#"}},
	}
	for _, tt := range tests {
		tmpl := mustParse(t, tt.in)
		if got := tmpl.IsLiteral(); got != tt.literal {
			t.Errorf("IsLiteral(%q) = %v", tt.in, got)
		}
		if got := tmpl.Placeholders(); !reflect.DeepEqual(got, tt.names) {
			t.Errorf("Placeholders(%q) = %q, want %q", tt.in, got, tt.names)
		}
		if tmpl.Raw() != tt.in {
			t.Errorf("Raw() = %q, want %q", tmpl.Raw(), tt.in)
		}
	}
}

func TestTemplateInvalidUTF8(t *testing.T) {
	if _, err := ParseTemplate("bad \xff byte"); err == nil {
		t.Error("ParseTemplate accepted invalid UTF-8")
	}
}

func TestTemplateNil(t *testing.T) {
	var tmpl *Template
	if tmpl.String(nil) != "" || tmpl.Value(nil) != "" || !tmpl.IsLiteral() || tmpl.Placeholders() != nil || tmpl.Raw() != "" {
		t.Error("nil template is not empty")
	}
}

func TestIsJSONNumber(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "10", "123456789012345678901234567890", "0.5", "-1.25e+10", "1E-2", "5e0"} {
		if !isJSONNumber(s) || !json.Valid([]byte(s)) {
			t.Errorf("%q: want a JSON number", s)
		}
	}
	for _, s := range []string{"", "-", "00", "01", "+1", "1.", ".1", "1e", "1e+", "1.e5", "--1", "1 ", "Inf", "0x1", "1_000", "١"} {
		if isJSONNumber(s) {
			t.Errorf("%q: not a JSON number", s)
		}
	}
}

func BenchmarkTemplateString(b *testing.B) {
	tmpl, _ := ParseTemplate(`{"run_id":"{run_id}","text":"Started {valohai.execution.counter} for {webhook.json.ref}"}`)
	vals := map[string]any{"run_id": "01J9Z3", "valohai.execution.counter": json.Number("34"), "webhook.json.ref": "refs/heads/main"}
	look := func(k string) (any, bool) { v, ok := vals[k]; return v, ok }
	b.ReportAllocs()
	for b.Loop() {
		_ = tmpl.String(look)
	}
}
