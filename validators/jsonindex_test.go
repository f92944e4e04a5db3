package validators

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tidwall/gjson"
)

// FuzzJSONPathIndexed holds a path lookup through the scan's index of
// top-level members to what gjson finds searching the whole body, on any
// body and path: the same type, raw text, string and number, or the same
// absence. A body the scan refuses has no index.
func FuzzJSONPathIndexed(f *testing.F) {
	forIndexSeeds(f, func(body []byte, path string) { f.Add(body, path) })
	f.Fuzz(func(t *testing.T, body []byte, path string) {
		checkIndexedPath(t, body, path)
	})
}

// indexSeedPaths cover what a path may do after its first name (nest,
// count, query, pipe, modify, select several) and the first components
// the index leaves to gjson.
var indexSeedPaths = []string{
	"ref", "head_commit.id", "head_commit", "commits", "commits.0.id", "commits.#",
	"commits.#.id", "commits.#(id==\"x\").message", "repository.owner.login",
	"repository|@pretty", "repository.@reverse", "repository.@keys", "repository.[name,id]",
	"repository.{name,id}", "repository.!true", "repository..name", "ref.", "ref.x",
	"absent", "absent.x", "a", "a.b", "a-b", "a_b.0", "@this", "!true", "..a", "a*", "r?f",
	"a\\.b", "#", "0", "", ".", "a|b", "a.b|c", "k1.@this", "n.@tostr", "x.#(a>1)#",
}

// indexSeedBodies are object bodies with every kind of member value, one
// with escaped names (not indexed), one past maxIndexedMembers, arrays
// and scalars (never indexed), and a real push.
func indexSeedBodies(push []byte) [][]byte {
	many := &strings.Builder{}
	many.WriteByte('{')
	for i := range maxIndexedMembers + 1 {
		fmt.Fprintf(many, `"k%d":%d,`, i, i)
	}
	many.WriteString(`"a":1}`)
	return [][]byte{
		push,
		[]byte(`{"a":{"b":[1,{"c":"d"}],"e":"f"},"a-b":true,"a_b":[null,2.5e3],"n":-0,"s":"x\u00e9\n","t":false,"u":null}`),
		[]byte(` { "ref" : "refs/heads/main" , "x" : [ {"a":1} , {"a":2} ] } `),
		[]byte(`{"r\u0065f":"escaped","ref":"plain"}`),
		[]byte(`{"a":1,"a.b":2,"a":3}`),
		[]byte(`{"a.b":{"c":1},"a":{"b":{"c":2}}}`),
		[]byte(many.String()),
		[]byte(`[{"a":1}]`), []byte(`"a"`), []byte(`{}`), []byte(`{"a":`),
	}
}

func checkIndexedPath(t *testing.T, body []byte, path string) {
	t.Helper()
	var idx memberIndex
	if !validJSONIndexed(body, nil, nil, &idx) {
		if idx.ok || idx.members != nil {
			t.Fatalf("a refused body kept an index: %q", body)
		}
		return
	}
	if !idx.ok {
		return
	}
	got, handled := idx.lookup(body, path)
	if !handled {
		return
	}
	want := gjson.GetBytes(body, path)
	if got.Type != want.Type || got.Raw != want.Raw || got.Str != want.Str ||
		got.Num != want.Num || got.Exists() != want.Exists() {
		t.Fatalf("path %q in %q:\nindexed %s %q %q %v\ngjson   %s %q %q %v",
			path, body, got.Type, got.Raw, got.Str, got.Num, want.Type, want.Raw, want.Str, want.Num)
	}
}

func TestJSONPathIndexedSeeds(t *testing.T) {
	forIndexSeeds(t, func(body []byte, path string) { checkIndexedPath(t, body, path) })
}

// forIndexSeeds calls fn with every seed body and every seed path.
func forIndexSeeds(tb testing.TB, fn func(body []byte, path string)) {
	push, err := os.ReadFile("testdata/push-1k.json")
	if err != nil {
		tb.Fatal(err)
	}
	for _, body := range indexSeedBodies(push) {
		for _, path := range indexSeedPaths {
			fn(body, path)
		}
	}
}

// TestJSONIndexRecordsTopLevelMembers checks what the index holds: every
// top-level member of a plain object in order, none for an escaped name
// or too many members, and which paths it answers itself.
func TestJSONIndexRecordsTopLevelMembers(t *testing.T) {
	body := []byte(`{"ref": "refs/heads/main", "commits":[{"id":"a"}], "head_commit" :{"id":"b"}}`)
	var idx memberIndex
	if !validJSONIndexed(body, nil, nil, &idx) || !idx.ok {
		t.Fatalf("no index for %q", body)
	}
	var got []string
	for _, m := range idx.members {
		got = append(got, string(body[m.nameStart:m.nameEnd])+"="+string(body[m.start:m.end]))
	}
	want := []string{`ref="refs/heads/main"`, `commits=[{"id":"a"}]`, `head_commit={"id":"b"}`}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("members %q, want %q", got, want)
	}
	if res, handled := idx.lookup(body, "head_commit.id"); !handled || res.Str != "b" {
		t.Fatalf("head_commit.id: %v %v", res, handled)
	}
	if res, handled := idx.lookup(body, "nope.id"); !handled || res.Exists() {
		t.Fatalf("an absent member: %v %v", res, handled)
	}
	for _, path := range []string{"@this", "ref|@reverse", "r*", "..ref", "ref..x", "ref.!true", "a\\.b"} {
		if _, handled := idx.lookup(body, path); handled {
			t.Errorf("the index answered %q itself", path)
		}
	}

	for name, body := range map[string][]byte{
		"escaped name": []byte(`{"a":1,"\u0062":2}`),
		"array":        []byte(`[{"a":1}]`),
		"too many":     indexSeedBodies(nil)[6],
	} {
		idx := memberIndex{members: []memberSpan{{}}, ok: true}
		if !validJSONIndexed(body, nil, nil, &idx) {
			t.Fatalf("%s: refused", name)
		}
		if idx.ok || len(idx.members) != 0 {
			t.Errorf("%s: indexed (%d members)", name, len(idx.members))
		}
	}
}

// TestRequestJSONPathUsesIndexOnLargeBodies checks the lookups a condition
// or a placeholder makes through a Request: a large object body is
// indexed by its first scan (whoever makes it), a small one is not, and
// both answer as gjson does; a hostile large body answers nothing.
func TestRequestJSONPathUsesIndexOnLargeBodies(t *testing.T) {
	large := lateMemberBody(64 << 10)
	for _, first := range []string{"JSONPath", "filter scan"} {
		r := &Request{Body: large}
		if first == "filter scan" {
			spans := make([][2]int, 1)
			if err, captured := r.checkedJSONMembers([]string{"ref"}, spans); err != nil || !captured {
				t.Fatalf("%s: scan %v %v", first, err, captured)
			}
		}
		if got := r.JSONPath("head_commit.id").Str; got != "late" {
			t.Fatalf("%s: head_commit.id = %q", first, got)
		}
		if !r.index.ok || len(r.index.members) != 3 {
			t.Fatalf("%s: index %v with %d members", first, r.index.ok, len(r.index.members))
		}
		if got, _ := r.JSONField("ref"); got != "refs/heads/main" {
			t.Fatalf("%s: ref = %q", first, got)
		}
	}
	small := &Request{Body: []byte(`{"ref":"refs/heads/main","head_commit":{"id":"late"}}`)}
	if got := small.JSONPath("head_commit.id").Str; got != "late" || small.index.ok {
		t.Fatalf("small body: %q, indexed %v", got, small.index.ok)
	}
	hostile := &Request{Body: append(bytes.Clone(large[:len(large)-1]), `,"ref":"x"}`...)}
	if res := hostile.JSONPath("head_commit.id"); res.Exists() || hostile.index.ok {
		t.Fatalf("duplicate-key body: %v, indexed %v", res, hostile.index.ok)
	}
}

// lateMemberBody is a push-like object of about size bytes whose
// head_commit comes after its commits, as GitHub sends it.
func lateMemberBody(size int) []byte {
	b := pushLikeBody(size)
	return append(b[:len(b)-1], `,"head_commit":{"id":"late"}}`...)
}

// BenchmarkJSONPathLateMember is a {webhook.json.head_commit.id}
// placeholder on a push whose head_commit follows its commits: gjson
// searching the body against the index the scan recorded (the scan
// itself is outside the loop; it runs once per request either way).
// go test -run '^$' -bench JSONPathLateMember -benchmem ./validators
func BenchmarkJSONPathLateMember(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		body := lateMemberBody(size)
		b.Run(fmt.Sprintf("%dKiB/gjson", size>>10), func(b *testing.B) {
			for b.Loop() {
				if gjson.GetBytes(body, "head_commit.id").Str != "late" {
					b.Fatal("not found")
				}
			}
		})
		b.Run(fmt.Sprintf("%dKiB/indexed", size>>10), func(b *testing.B) {
			r := &Request{Body: body}
			r.JSONPath("ref") // the scan, once
			for b.Loop() {
				if r.JSONPath("head_commit.id").Str != "late" {
					b.Fatal("not found")
				}
			}
		})
	}
}
