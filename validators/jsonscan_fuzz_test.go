package validators

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// FuzzJSONValid holds validJSON, the one-pass fast path of the hostile-JSON
// scan, to the verdict of the token-by-token scan through jsontext on any
// input (syntax, UTF-8 and escapes, duplicate names after unescaping,
// MaxJSONDepth), and its top-level member spans to what encoding/json
// finds as each member's raw value.
func FuzzJSONValid(f *testing.F) {
	for _, seed := range jsonValidSeeds {
		f.Add([]byte(seed))
	}
	if push, err := os.ReadFile("testdata/push-1k.json"); err == nil {
		f.Add(push)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkValidJSON(t, body)
	})
}

var jsonValidSeeds = []string{
	`{"a":[1,2,{"b":null}]}`,
	`{"ref":"refs/heads/evil","ref":"refs/heads/main"}`,
	`{"a":1,"\u0061":2}`,
	`{"a":1,"b":{"a":2},"c":[{"a":1,"a":2}]}`,
	`{"\ud83d\ude00":1,"😀":2}`,
	`{"\ud83d":1}`, `"\ude00"`, `"\ud83d\u0041"`, `"\u00e9"`, `"\uD83D\uDE00"`,
	"\"\xff\"", "\"\xed\xa0\x80\"", "\"a\x01\"", "\"\x7f\"",
	strings.Repeat("[", 1000) + strings.Repeat("]", 1000),
	strings.Repeat("[", 1001) + strings.Repeat("]", 1001),
	strings.Repeat(`{"a":`, 1001) + "1" + strings.Repeat("}", 1001),
	`{"a":1`, `  [] x`, ` {} `, `[]`, `{}`, ``, ` `, `1`, `-0`, `-`, `01`, `1.`, `1.5e`, `1E+2`, `-0.0e-0`,
	`true`, `tru`, `nul`, `null `, `[true,false,null]`, `[1,]`, `{"a":1,}`, `{,}`, `[,1]`,
	`{"a" : 1 , "b" : [ 1 , 2 ] }`, "{\t\"a\"\n:\r1}", `{"a":1}{}`, `{"a":"[[[[","b":"\\\"{{"}`,
	`{"a":"\/\b\f\n\r\t\\\""}`, `"\x"`, `"\u12"`, `"\u12G4"`,
	`{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k18":18,"k1":19}`,
	`{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10,"k11":11,"k12":12,"k13":13,"k14":14,"k15":15,"k16":16,"k17":17,"k\u00318":18,"k18":19}`,
}

func checkValidJSON(t *testing.T, body []byte) {
	t.Helper()
	want := topLevelNames(body)
	spans := make([][2]int, len(want))
	got := validJSON(body, want, spans)
	if scan := scanJSON(body); got != (scan == nil) {
		t.Fatalf("validJSON says %v, the token scan %v, for %q", got, scan, body)
	}
	if err := checkJSON(body); (err == nil) != got {
		t.Fatalf("checkJSON says %v, validJSON %v, for %q", err, got, body)
	}
	if !got || !looksLikeJSONObject(body) {
		return
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		t.Fatalf("encoding/json refuses a valid object %q: %v", body, err)
	}
	for i, name := range want {
		raw, ok := members[name]
		switch {
		case !ok && spans[i] != [2]int{}:
			t.Fatalf("member %q is absent but has span %v in %q", name, spans[i], body)
		case ok && !bytes.Equal(body[spans[i][0]:spans[i][1]], raw):
			t.Fatalf("member %q: span %q, encoding/json %q, in %q", name, body[spans[i][0]:spans[i][1]], raw, body)
		}
	}
}

// topLevelNames are the names of an object body's members as
// encoding/json decodes them, and one that is absent.
func topLevelNames(body []byte) []string {
	var members map[string]json.RawMessage
	_ = json.Unmarshal(body, &members)
	names := []string{"\x00absent"}
	for k := range members {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

func TestJSONValidSeeds(t *testing.T) {
	for _, seed := range jsonValidSeeds {
		checkValidJSON(t, []byte(seed))
	}
	push, err := os.ReadFile("testdata/push-1k.json")
	if err != nil {
		t.Fatal(err)
	}
	checkValidJSON(t, push)
	checkValidJSON(t, pushLikeBody(1<<20))
	// Every prefix of a real body: truncation anywhere is refused.
	for i := range push {
		if validJSON(push[:i], nil, nil) {
			t.Fatalf("prefix of %d bytes accepted", i)
		}
	}
}
