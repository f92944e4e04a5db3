package caddymodule

import (
	"encoding/json"
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
