package validators

import "github.com/tidwall/gjson"

// jsonIndexMinBody is the smallest object body whose top-level members the
// hostile-JSON scan records. Below it, a path lookup searching the body
// costs about what recording would; above it, every {webhook.json.*}
// placeholder or field source would otherwise search the body from its
// start again, and a GitHub push puts head_commit after its commits
// (README.md, "Hostile input": the scan every JSON body gets).
const jsonIndexMinBody = 4 << 10

// maxIndexedMembers bounds the index: a body with more top-level members
// than this (a hostile one of a million tiny members, say) is searched
// instead, and the index costs at most this many entries.
const maxIndexedMembers = 256

// memberIndex is where the top-level members of a valid JSON object body
// are, recorded by the hostile-JSON scan in the same pass. Names with an
// escape sequence are not indexed (ok is false then), so every indexed
// name is its raw bytes, compared as gjson compares them.
type memberIndex struct {
	members []memberSpan
	ok      bool
}

// memberSpan is one top-level member: its name's raw bytes (between the
// quotes) and its value, as offsets into the body.
type memberSpan struct {
	nameStart, nameEnd int
	start, end         int
}

// lookup resolves a gjson path whose first component is a plain name
// (letters, digits, '_' and '-') on the indexed body: the named member's
// value is found in the index, and the rest of the path is looked up in
// that value alone, which gjson does in the same way as it does inside the
// whole body. handled is false for any other path, which the caller
// searches the body for; FuzzJSONPathIndexed holds both to the same
// result.
func (x *memberIndex) lookup(body []byte, path string) (res gjson.Result, handled bool) {
	name, rest, ok := plainFirstName(path)
	if !ok {
		return gjson.Result{}, false
	}
	for _, m := range x.members {
		if string(body[m.nameStart:m.nameEnd]) != name {
			continue
		}
		value := body[m.start:m.end]
		if rest == "" {
			return gjson.ParseBytes(value), true
		}
		return gjson.GetBytes(value, rest), true
	}
	return gjson.Result{}, true // no such member
}

// plainFirstName splits path into its first component, when that is a
// plain name, and the rest after the dot. It refuses a path whose rest
// would mean something else at the start of a path than inside one (a
// second dot: JSON lines; '!': a literal), or that gjson applies even to
// a member that is absent, as it does a pipe ('@': a modifier; '[' and
// '{': a selection of several paths).
func plainFirstName(path string) (name, rest string, ok bool) {
	i := 0
	for i < len(path) && plainPathByte(path[i]) {
		i++
	}
	switch {
	case i == 0:
		return "", "", false
	case i == len(path):
		return path, "", true
	case path[i] != '.' || i+1 == len(path):
		return "", "", false
	}
	rest = path[i+1:]
	switch rest[0] {
	case '.', '!', '@', '[', '{':
		return "", "", false
	}
	return path[:i], rest, true
}

func plainPathByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
