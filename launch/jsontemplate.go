package launch

import (
	"encoding/json"
	"errors"
	"strings"
)

// JSON renders a template whose literal text is JSON (a response block with
// a JSON content type) so that the result is always valid JSON, whatever
// the placeholders' values are:
//   - a placeholder inside a JSON string of the template becomes its text
//     (objects and lists as their compact JSON), escaped for that string, so
//     a value such as `",":1,":` cannot close the string or add a member;
//   - a placeholder where the template expects a JSON value stays a number,
//     true, false or null when its value is one, and becomes a JSON string
//     of its text otherwise (an unknown placeholder is null).
//
// ValidateJSON checks at provision that the template is JSON around its
// placeholders.
func (t *Template) JSON(look Lookup) string {
	if t == nil {
		return ""
	}
	var b strings.Builder
	inString, escaped := false, false
	for _, p := range t.parts {
		if !p.placeholder {
			b.WriteString(p.text)
			inString, escaped = scanJSONText(p.text, inString, escaped)
			continue
		}
		var v any
		ok := false
		if look != nil {
			v, ok = look(p.text)
		}
		if inString {
			if ok {
				b.WriteString(escapeJSONString(valueText(v)))
			}
			continue
		}
		b.WriteString(jsonValueText(v, ok))
	}
	return b.String()
}

// ValidateJSON reports whether the template is valid JSON once each
// placeholder holds a value of its position (an empty string inside a
// string, a number elsewhere), so that JSON always renders valid JSON. An
// empty body is valid too.
func (t *Template) ValidateJSON() error {
	if strings.TrimSpace(t.Raw()) == "" {
		return nil // no body (a 204, V7's empty 2xx)
	}
	rendered := t.JSON(func(string) (any, bool) { return json.Number("0"), true })
	if !json.Valid([]byte(rendered)) {
		return errors.New("the body is not valid JSON around its placeholders: write it as JSON, with placeholders inside strings (\"{run_id}\") or in place of a value")
	}
	return nil
}

// scanJSONText follows JSON string boundaries through literal template
// text, carrying the state from one literal part to the next.
func scanJSONText(s string, inString, escaped bool) (bool, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		}
	}
	return inString, escaped
}

// escapeJSONString escapes s for the inside of a JSON string (no quotes),
// leaving '<', '>' and '&' as they are.
func escapeJSONString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return ""
	}
	out := strings.TrimSuffix(b.String(), "\n")
	return out[1 : len(out)-1]
}

// jsonValueText is a placeholder's value where the template expects a
// whole JSON value.
func jsonValueText(v any, ok bool) string {
	if !ok || v == nil {
		return "null"
	}
	switch x := v.(type) {
	case bool:
		if x {
			return "true"
		}
		return "false"
	case json.Number:
		if isJSONNumber(string(x)) {
			return string(x)
		}
	case json.RawMessage:
		if text := strings.TrimSpace(string(x)); isJSONNumber(text) || text == "true" || text == "false" || text == "null" {
			return text
		}
	case float64, float32, int, int64, int32, uint, uint64, uint32:
		if text := valueText(x); isJSONNumber(text) {
			return text
		}
	}
	return `"` + escapeJSONString(valueText(v)) + `"`
}
