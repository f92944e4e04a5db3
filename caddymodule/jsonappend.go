package caddymodule

import (
	"encoding/json"
	"strconv"
)

// appendJSONString appends s as encoding/json.Marshal writes it. Text of
// printable ASCII that needs no escaping (run ids, step names, most
// values) is copied between quotes directly; anything else (quotes,
// backslashes, control bytes, non-ASCII, and <, > and & which
// encoding/json escapes for HTML) is left to encoding/json, so the bytes
// are always exactly Marshal's.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			quoted, _ := json.Marshal(s) // a string always encodes
			return append(dst, quoted...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// appendJSONValue appends a placeholder's value as encoding/json.Marshal
// writes it: strings, booleans and null directly, anything else (numbers,
// JSON text, other Go values) by encoding/json itself.
func appendJSONValue(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case string:
		return appendJSONString(dst, x), nil
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
