package launch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Lookup resolves a placeholder name, such as "webhook.json.ref", to its
// value. Values are what encoding/json decodes into (string, float64 or
// json.Number, bool, nil, map[string]any, []any) or other Go scalars.
type Lookup func(key string) (value any, ok bool)

// Template is an action value with Caddy-style placeholders, parsed once at
// provision and rendered per run.
//
// Syntax: {name} is a placeholder when name is non-empty, starts with a
// letter, digit or underscore, and holds no whitespace and no '{'; it ends
// at the first '}'. Names may contain dots, dashes and gjson path
// characters (#, *, ?, |, @, [, ], quotes, backslashes). \{ and \} are
// literal braces; any other '{' or '}' that does not form a placeholder is
// literal too, so JSON objects such as {"ok":true} need no escaping.
type Template struct {
	raw   string
	parts []templatePart
	// literal is the value of a template without placeholders.
	literal any
}

// templatePart is either literal text or, when placeholder is true, a name.
type templatePart struct {
	text        string
	placeholder bool
}

// ParseTemplate parses s. It fails only for text that is not valid UTF-8,
// which could not be sent to Valohai intact.
func ParseTemplate(s string) (*Template, error) {
	if !utf8.ValidString(s) {
		return nil, errors.New("template is not valid UTF-8")
	}
	t := &Template{raw: s}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts = append(t.parts, templatePart{text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && (s[i+1] == '{' || s[i+1] == '}'):
			lit.WriteByte(s[i+1])
			i += 2
		case c == '{':
			if n := placeholderLen(s[i+1:]); n > 0 {
				flush()
				t.parts = append(t.parts, templatePart{text: s[i+1 : i+1+n], placeholder: true})
				i += n + 2
				continue
			}
			lit.WriteByte(c)
			i++
		default:
			lit.WriteByte(c)
			i++
		}
	}
	flush()
	if t.IsLiteral() {
		t.literal = literalValue(t.String(nil))
	}
	return t, nil
}

// placeholderLen returns the length of the placeholder name at the start of
// s (just after a '{'), or 0 when no placeholder starts there.
func placeholderLen(s string) int {
	first, _ := utf8.DecodeRuneInString(s)
	if first != '_' && !unicode.IsLetter(first) && !unicode.IsDigit(first) {
		return 0
	}
	for i, r := range s {
		switch {
		case r == '}':
			return i
		case r == '{' || unicode.IsSpace(r):
			return 0
		}
	}
	return 0
}

// literalValue types a placeholder-free value for JSON: JSON numbers become
// json.Number (so 10 stays 10 and 0.1 stays 0.1), true and false become
// bools, anything else stays a string.
func literalValue(s string) any {
	switch {
	case s == "true":
		return true
	case s == "false":
		return false
	case isJSONNumber(s):
		return json.Number(s)
	}
	return s
}

// isJSONNumber reports whether s is exactly one number in JSON syntax:
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func isJSONNumber(s string) bool {
	i := 0
	digits := func() int {
		start := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - start
	}
	if i < len(s) && s[i] == '-' {
		i++
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case digits() == 0:
		return false
	}
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			return false
		}
	}
	return i == len(s)
}

// Raw returns the template text as written.
func (t *Template) Raw() string {
	if t == nil {
		return ""
	}
	return t.raw
}

// IsLiteral reports whether the template has no placeholders.
func (t *Template) IsLiteral() bool {
	if t == nil {
		return true
	}
	for _, p := range t.parts {
		if p.placeholder {
			return false
		}
	}
	return true
}

// Placeholders returns the placeholder names the template uses, each once,
// in order of first use; config validation checks them.
func (t *Template) Placeholders() []string {
	if t == nil {
		return nil
	}
	var names []string
	seen := map[string]bool{}
	for _, p := range t.parts {
		if p.placeholder && !seen[p.text] {
			seen[p.text] = true
			names = append(names, p.text)
		}
	}
	return names
}

// String renders the template as text. Placeholders become their values as
// text: strings as they are, numbers without exponent (1e21 is
// 1000000000000000000000), bools as true/false, nil as "", objects and lists
// as compact JSON. Unknown placeholders, and all of them when look is nil,
// render as "".
func (t *Template) String(look Lookup) string {
	if t == nil {
		return ""
	}
	if len(t.parts) == 1 && !t.parts[0].placeholder {
		return t.parts[0].text
	}
	var b strings.Builder
	for _, p := range t.parts {
		if !p.placeholder {
			b.WriteString(p.text)
			continue
		}
		if look == nil {
			continue
		}
		if v, ok := look(p.text); ok {
			b.WriteString(valueText(v))
		}
	}
	return b.String()
}

// Value renders the template as a typed value for a JSON body. A template
// that is exactly one placeholder keeps the JSON type of its value (a
// number stays a number, an object an object); an unknown one is "". A
// template without placeholders that is a JSON number is a json.Number, and
// "true" or "false" a bool. Anything else is String(look).
//
// Use Value only for fields that accept any JSON type (parameters); fields
// that must be strings (commit, title, tags, env) take String, or a commit
// "1234567" would be sent as a number.
func (t *Template) Value(look Lookup) any {
	if t == nil {
		return ""
	}
	if t.IsLiteral() {
		return t.literal
	}
	if len(t.parts) == 1 {
		if look == nil {
			return ""
		}
		v, ok := look(t.parts[0].text)
		if !ok {
			return ""
		}
		return v
	}
	return t.String(look)
}

// valueText is the text form of a looked-up value.
func valueText(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case float32:
		return strconv.FormatFloat(float64(x), 'f', -1, 32)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case json.RawMessage:
		return rawText(x)
	case []byte:
		return string(x)
	case fmt.Stringer:
		return x.String()
	case error:
		return x.Error()
	}
	// Named and other-sized scalars (a RunStatus, an int32, a uint).
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return rv.String()
	case reflect.Bool:
		return strconv.FormatBool(rv.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(rv.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(rv.Float(), 'f', -1, 64)
	}
	return compactJSON(v)
}

// rawText is the text form of a JSON value kept as its raw text: a string
// unquoted, anything else compacted, without decoding objects and lists
// into Go values only to print them again.
func rawText(x json.RawMessage) string {
	trimmed := bytes.TrimSpace(x)
	if len(trimmed) > 0 && trimmed[0] == '"' {
		var s string
		if err := json.Unmarshal(trimmed, &s); err == nil {
			return s
		}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, trimmed); err != nil {
		return string(x)
	}
	return buf.String()
}

// compactJSON renders objects and lists as compact JSON without HTML
// escaping (a "<" in a payload stays "<" in a title).
func compactJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSuffix(buf.String(), "\n")
}
