package validators

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/tidwall/gjson"
)

// fuzzFilters touch every variable and the common ways of reading a body,
// so that every conversion of sender input into CEL values is exercised.
var fuzzFilters = sync.OnceValue(func() map[string]*Filter {
	exprs := []string{
		`true`,
		`method == "POST"`,
		`has(body.a)`,
		`body.a == "x" || body.b > 3 || body.c.exists(v, v == null)`,
		`body == null || body.size() >= 0`,
		`raw.size() >= 0 && raw.contains("{") == raw.contains("{")`,
		`headers.exists(k, headers[k].startsWith("x")) || headers.size() >= 0`,
		`query.all(k, query[k] != "never-sent-value")`,
		`body.?a.orValue("") != "zz" && jwt.size() == 0`,
		`string(body) != ""`,
		`body.items.all(x, body.items.exists(y, x == y))`,
		`path == "/hook"`,
		`headers["X-Test"] == "xyz" || "A" in headers || query.a == "1" || body.a.a == "x"`,
	}
	out := map[string]*Filter{}
	for _, e := range exprs {
		f := &Filter{Expression: e}
		if err := f.Validate(); err != nil {
			panic(e + ": " + err.Error())
		}
		out[e] = f
	}
	return out
})

// FuzzFilterInput feeds arbitrary bodies, content types, headers and query
// strings to compiled filters. No input may panic; an evaluation error is
// always "no match"; and the conversions keep their meaning: `true` and
// `method == "POST"` always match, and has(body.a) agrees with the JSON
// document for non-form bodies.
func FuzzFilterInput(f *testing.F) {
	f.Add([]byte(`{"a":"x","b":4,"c":[null]}`), "application/json", "X-Test", "xyz", "a=1")
	f.Add([]byte("a=x&b=4&a=y"), "application/x-www-form-urlencoded", "X-Other", "", "")
	f.Add([]byte("a=x"), "application/x-www-form-urlencoded; charset=\"", "", "", "%zz")
	f.Add([]byte(`[1,2,3]`), "", "Content-Type", "application/json", "q=%00")
	f.Add([]byte("\xff\xfe{\"a\":1}"), "text/plain", "X-\xff", "\xff", "\xff=\xfe")
	f.Add([]byte(`{"a":{"a":{"a":[[[[[]]]]]}},"items":[1,2,3,1e308,-0]}`), "application/json", "A", "b", "")
	f.Add([]byte(`"just a string"`), "application/json", "", "", "")
	f.Add([]byte(`{"a":1}{"b":2}`), "application/json", "", "", "")
	f.Fuzz(func(t *testing.T, body []byte, contentType, headerName, headerValue, rawQuery string) {
		h := http.Header{}
		if contentType != "" {
			h.Set("Content-Type", contentType)
		}
		if headerName != "" {
			h[headerName] = []string{headerValue}
		}
		q, _ := url.ParseQuery(rawQuery)
		r := &Request{Method: http.MethodPost, Path: "/hook", Header: h, Query: q, Body: body}
		for expr, flt := range fuzzFilters() {
			matched, err := flt.Match(context.Background(), r)
			if err != nil && matched {
				t.Fatalf("%s: matched despite error %v", expr, err)
			}
			// The shortcuts (only the header and query names looked up,
			// only the body paths read) answer as the full bindings do.
			full := *flt
			full.headerNames, full.queryNames, full.bodyPaths, full.bodyKeys = nil, nil, nil, nil
			fr := &Request{Method: r.Method, Path: r.Path, Header: h, Query: q, Body: body}
			if m2, err2 := full.Match(context.Background(), fr); m2 != matched || (err == nil) != (err2 == nil) {
				t.Fatalf("%s on %q: %v (%v) with the shortcuts, %v (%v) with full bindings", expr, body, matched, err, m2, err2)
			}
			switch expr {
			case `true`, `method == "POST"`, `path == "/hook"`:
				if !matched {
					t.Fatalf("%s: did not match: %v", expr, err)
				}
			case `has(body.a)`:
				if r.IsForm() {
					_, inForm := r.Form()["a"]
					if matched != inForm {
						t.Fatalf("has(body.a) = %v, form has a = %v", matched, inForm)
					}
					continue
				}
				v, isJSON := r.JSON()
				obj, isObject := v.(map[string]any)
				if !isJSON || !isObject {
					if matched {
						t.Fatalf("has(body.a) matched a body that is not a JSON object: %q", body)
					}
					continue
				}
				_, want := obj["a"]
				if matched != want {
					t.Fatalf("has(body.a) = %v, decoded object has a = %v (gjson: %v)", matched, want, gjson.GetBytes(body, "a").Exists())
				}
			}
		}
	})
}
