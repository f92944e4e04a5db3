package simulator

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"
)

// Django REST framework's messages, so clients see what the real API says.
const (
	msgRequired = "This field is required."
	msgNull     = "This field may not be null."
	msgBlank    = "This field may not be blank."
	msgString   = "Not a valid string."
	msgInteger  = "A valid integer is required."
	msgBoolean  = "Must be a valid boolean."
	msgEmpty    = "This list may not be empty."
)

// fieldErrors is a Django-REST-style error body: field name to a list of
// messages (strings or {message, code} objects), or to nested errors.
type fieldErrors map[string]any

// add appends a message to a field's list.
func (e fieldErrors) add(field string, msg any) {
	list, _ := e[field].([]any)
	e[field] = append(list, msg)
}

// coded is an error with a machine-readable code, as Valohai sends for
// lookups that fail.
func coded(msg, code string) map[string]any {
	return map[string]any{"message": msg, "code": code}
}

// pyType names a decoded JSON value the way Python would, for messages
// copied from Django REST framework.
func pyType(v any) string {
	switch x := v.(type) {
	case nil:
		return "NoneType"
	case string:
		return "str"
	case bool:
		return "bool"
	case json.Number:
		if strings.ContainsAny(string(x), ".eE") {
			return "float"
		}
		return "int"
	case []any:
		return "list"
	case map[string]any:
		return "dict"
	}
	return fmt.Sprintf("%T", v)
}

// decodeObject reads a JSON request body as an object. An empty body is an
// empty object, as in Django REST framework. The reply is non-nil when the
// body is refused.
func decodeObject(r *http.Request, body []byte) (map[string]any, *reply) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		// The real API also parses form and multipart bodies; the simulator
		// speaks only JSON, so a client that forgets the header hears it.
		rep := detail(http.StatusUnsupportedMediaType, fmt.Sprintf("Unsupported media type %q in request.", ct))
		return nil, &rep
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return map[string]any{}, nil
	}
	if !utf8.Valid(body) {
		rep := detail(http.StatusBadRequest, "JSON parse error - body is not valid UTF-8")
		return nil, &rep
	}
	if !json.Valid(body) {
		var v any
		err := json.Unmarshal(body, &v) // for the message; Valid already said no
		msg := "invalid JSON"
		if err != nil {
			msg = err.Error()
		}
		return nil, ptr(detail(http.StatusBadRequest, "JSON parse error - "+msg))
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // keep numbers exactly as sent when echoing them
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, ptr(detail(http.StatusBadRequest, "JSON parse error - "+err.Error()))
	}
	switch x := v.(type) {
	case map[string]any:
		return x, nil
	case nil:
		return nil, ptr(reply{status: http.StatusBadRequest, body: fieldErrors{"non_field_errors": []any{"No data provided"}}})
	default:
		msg := fmt.Sprintf("Invalid data. Expected a dictionary, but got %s.", pyType(v))
		return nil, ptr(reply{status: http.StatusBadRequest, body: fieldErrors{"non_field_errors": []any{msg}}})
	}
}

func ptr[T any](v T) *T { return &v }

// requiredString checks a required, non-blank string field.
func requiredString(obj map[string]any, field string, errs fieldErrors) (string, bool) {
	v, ok := obj[field]
	if !ok {
		errs.add(field, msgRequired)
		return "", false
	}
	if v == nil {
		errs.add(field, msgNull)
		return "", false
	}
	str, ok := v.(string)
	if !ok {
		errs.add(field, msgString)
		return "", false
	}
	if strings.TrimSpace(str) == "" {
		errs.add(field, msgBlank)
		return "", false
	}
	return str, true
}

// present reports whether an optional field has a value; null counts as
// absent, since what the real API does with null there is unknown and
// refusing it would reject bodies the real API may take.
func present(obj map[string]any, field string) (any, bool) {
	v, ok := obj[field]
	return v, ok && v != nil
}

func optionalString(obj map[string]any, field string, errs fieldErrors) {
	if v, ok := present(obj, field); ok {
		if _, ok := v.(string); !ok {
			errs.add(field, msgString)
		}
	}
}

func optionalBool(obj map[string]any, field string, errs fieldErrors) {
	if v, ok := present(obj, field); ok {
		if _, ok := v.(bool); !ok {
			errs.add(field, msgBoolean)
		}
	}
}

func optionalInt(obj map[string]any, field string, minimum int64, errs fieldErrors) {
	v, ok := present(obj, field)
	if !ok {
		return
	}
	n, isNum := v.(json.Number)
	i, err := n.Int64()
	switch {
	case !isNum || err != nil:
		errs.add(field, msgInteger)
	case i < minimum:
		errs.add(field, fmt.Sprintf("Ensure this value is greater than or equal to %d.", minimum))
	}
}

func optionalObject(obj map[string]any, field string, errs fieldErrors) map[string]any {
	v, ok := present(obj, field)
	if !ok {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		errs.add(field, fmt.Sprintf("Expected a dictionary of items but got type %q.", pyType(v)))
	}
	return m
}

// optionalStringList checks a list of strings; element errors are keyed by
// index, as Django REST framework's ListField reports them.
func optionalStringList(obj map[string]any, field string, errs fieldErrors) {
	v, ok := present(obj, field)
	if !ok {
		return
	}
	list, ok := v.([]any)
	if !ok {
		errs.add(field, fmt.Sprintf("Expected a list of items but got type %q.", pyType(v)))
		return
	}
	bad := map[string]any{}
	for i, x := range list {
		if _, ok := x.(string); !ok {
			bad[fmt.Sprint(i)] = []any{msgString}
		}
	}
	if len(bad) > 0 {
		errs[field] = bad
	}
}

// optionalStringMap checks an object of string values.
func optionalStringMap(obj map[string]any, field string, errs fieldErrors) {
	m := optionalObject(obj, field, errs)
	bad := map[string]any{}
	for k, x := range m {
		if _, ok := x.(string); !ok {
			bad[k] = []any{msgString}
		}
	}
	if len(bad) > 0 {
		errs[field] = bad
	}
}

// validateInputs checks "inputs": an object whose values are a URI or a
// list of URIs. An empty list is allowed (a pipeline input an edge fills).
func validateInputs(obj map[string]any, errs fieldErrors) {
	m := optionalObject(obj, "inputs", errs)
	bad := map[string]any{}
	for _, name := range sortedKeys(m) {
		var msgs []any
		check := func(x any) {
			uri, ok := x.(string)
			switch {
			case !ok:
				msgs = append(msgs, msgString)
			case !strings.Contains(uri, "://"):
				msgs = append(msgs, fmt.Sprintf("%q is not a URI; expected a URL such as s3://bucket/key, https://host/file or datum://<id>.", uri))
			}
		}
		switch x := m[name].(type) {
		case string:
			check(x)
		case []any:
			for _, e := range x {
				check(e)
			}
		default:
			msgs = append(msgs, fmt.Sprintf("Expected a URI or a list of URIs but got type %q.", pyType(x)))
		}
		if len(msgs) > 0 {
			bad[name] = msgs
		}
	}
	if len(bad) > 0 {
		errs["inputs"] = bad
	}
}

// validateParameters checks "parameters": an object of scalars (string,
// number, boolean, null) or lists of non-null scalars. Task templates may
// also hold objects, the variant definitions such as
// {"style":"single","rules":{"value":[5]}}.
func validateParameters(obj map[string]any, allowObjects bool, errs fieldErrors) {
	m := optionalObject(obj, "parameters", errs)
	bad := map[string]any{}
	for _, name := range sortedKeys(m) {
		switch x := m[name].(type) {
		case nil, string, bool, json.Number:
		case map[string]any:
			if !allowObjects {
				bad[name] = []any{"Expected a scalar or a list of scalars but got type \"dict\"."}
			}
		case []any:
			for _, e := range x {
				switch e.(type) {
				case string, bool, json.Number:
				default:
					bad[name] = []any{fmt.Sprintf("Expected a list of scalars but it holds type %q.", pyType(e))}
				}
			}
		}
	}
	if len(bad) > 0 {
		errs["parameters"] = bad
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
