package launch

import (
	"encoding/json"
	"strconv"
)

// The accept path of a webhook writes JSON it builds itself (an action's
// spec, the stored run, the 202 answer) by appending, with exactly the
// bytes encoding/json.Marshal would write, so that what is stored and
// sent does not depend on which of the two wrote it.

// AppendJSONString appends s as encoding/json.Marshal writes it.
// Printable ASCII (ids, names, URLs, most values) is copied between
// quotes, with <, > and & escaped for HTML as encoding/json does; a string
// with anything else (quotes, backslashes, control bytes, non-ASCII) is
// left to encoding/json.
func AppendJSONString(dst []byte, s string) []byte {
	start := len(dst)
	dst = append(dst, '"')
	copied := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if unescapedInJSON[c] {
			continue
		}
		if c != '<' && c != '>' && c != '&' {
			quoted, _ := json.Marshal(s) // a string always encodes
			return append(dst[:start], quoted...)
		}
		dst = append(dst, s[copied:i]...)
		dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
		copied = i + 1
	}
	dst = append(dst, s[copied:]...)
	return append(dst, '"')
}

const hexDigits = "0123456789abcdef"

// unescapedInJSON marks the bytes encoding/json writes into a string as they
// are: printable ASCII but the quote, the backslash and <, > and &.
var unescapedInJSON = func() (t [256]bool) {
	for c := 0x20; c <= 0x7e; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()

// AppendJSONValue appends v as encoding/json.Marshal writes it: strings,
// booleans and null directly, anything else (numbers, JSON text, other Go
// values) by encoding/json itself, whose error it returns.
func AppendJSONValue(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return AppendJSONString(dst, x), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case nil:
		return append(dst, "null"...), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// JSONObject appends the members of a JSON object to B, which the caller
// opens with '{' and closes with '}'.
type JSONObject struct {
	B []byte
}

// Key appends "name": after a comma unless it is the first member.
func (o *JSONObject) Key(name string) {
	if o.B[len(o.B)-1] != '{' {
		o.B = append(o.B, ',')
	}
	o.B = AppendJSONString(o.B, name)
	o.B = append(o.B, ':')
}

// String appends a string member.
func (o *JSONObject) String(name, value string) {
	o.Key(name)
	o.B = AppendJSONString(o.B, value)
}

// OptionalString appends a string member unless it is empty (omitempty).
func (o *JSONObject) OptionalString(name, value string) {
	if value != "" {
		o.String(name, value)
	}
}

// OptionalStrings appends a list of strings unless it is empty
// (omitempty).
func (o *JSONObject) OptionalStrings(name string, list []string) {
	if len(list) == 0 {
		return
	}
	o.Key(name)
	for i, s := range list {
		o.B = append(o.B, ListSeparator(i))
		o.B = AppendJSONString(o.B, s)
	}
	o.B = append(o.B, ']')
}

// ListSeparator is what goes before item i of a JSON list.
func ListSeparator(i int) byte {
	if i == 0 {
		return '['
	}
	return ','
}
