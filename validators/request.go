// Package validators holds the webhook conditions of caddy-valohai as pure Go:
// each condition is a function of a Request that returns nil or a
// *Rejection. Nothing here imports Caddy, so every condition is tested alone.
package validators

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
)

// Request is what every condition sees of one webhook: the raw body read
// once (signatures are always computed over these bytes), the headers and
// query, and lazily decoded views of the body that are computed at most once
// and shared by every condition and the launch.
type Request struct {
	Method string
	Host   string
	Path   string
	URL    string // full request URL as the sender addressed it (scheme://host/path?query)
	Header http.Header
	// Query is the parsed query; when it is nil, QueryValues parses
	// RawQuery on first use (most requests never look at it).
	Query      url.Values
	RawQuery   string
	Body       []byte
	RemoteAddr string
	// Now is the clock used by time-based conditions; nil means time.Now.
	Now func() time.Time

	// JWTClaims holds the verified claims of a webhook_jwt condition, or nil.
	JWTClaims map[string]any

	checkOnce sync.Once
	checkErr  error // nil, errJSONTooDeep, errJSONDuplicateKey or errJSONSyntax
	// jsonRead is set once anything looked into the body as JSON.
	jsonRead atomic.Bool
	// index is where a large object body's top-level members are, when
	// the scan recorded them (index.ok), so that path lookups need not
	// search the body from its start.
	index memberIndex

	jsonOnce  sync.Once
	jsonValue any
	jsonOK    bool

	formOnce sync.Once
	form     url.Values

	queryOnce sync.Once

	clockOnce sync.Once
	clockAt   time.Time
}

// QueryValues returns the query parameters: Query, or RawQuery parsed
// once (as url.URL.Query does, ignoring malformed pairs) when Query is nil.
func (r *Request) QueryValues() url.Values {
	r.queryOnce.Do(func() {
		if r.Query == nil {
			r.Query, _ = url.ParseQuery(r.RawQuery)
		}
	})
	return r.Query
}

// Clock returns the current time from Now. When Now is nil it is the
// time of the first call, read once (time.Now): every condition of one
// request judges it at the same instant, and reading the clock once is
// cheaper than once per condition.
func (r *Request) Clock() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	r.clockOnce.Do(func() { r.clockAt = time.Now() })
	return r.clockAt
}

// MediaType is the body's media type without parameters ("" when absent or
// malformed).
func (r *Request) MediaType() string {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return mt
}

// IsForm reports whether the body is an URL-encoded form (Slack slash
// commands, some labeling tools). A Content-Type that does not contain the
// form's subtype in any ASCII case cannot be one, and is not parsed.
func (r *Request) IsForm() bool {
	if !containsFoldASCII(r.Header.Get("Content-Type"), formSubtype) {
		return false
	}
	return r.MediaType() == "application/x-www-form-urlencoded"
}

const formSubtype = "x-www-form-urlencoded"

// containsFoldASCII reports whether s contains the lower-case ASCII
// substring sub, ignoring ASCII case in s.
func containsFoldASCII(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if equalFoldASCII(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

// checkedJSON scans a body that opens an object or array once (linear, no
// recursion) and reports what is wrong with it, or nil. Other bodies
// (scalars, forms, empty) report nil: nothing in them can nest.
func (r *Request) checkedJSON() error {
	r.checkOnce.Do(func() {
		if looksLikeJSONContainer(r.Body) && !validJSONIndexed(r.Body, nil, nil, r.indexFor()) {
			r.checkErr = scanJSON(r.Body) // which problem (checkJSON)
		}
	})
	return r.checkErr
}

// indexFor is where the scan records the body's top-level members: the
// request's index for a body of at least jsonIndexMinBody bytes, nil
// (nothing recorded) for a smaller one.
func (r *Request) indexFor() *memberIndex {
	if len(r.Body) < jsonIndexMinBody {
		return nil
	}
	return &r.index
}

// checkedJSONMembers is checkedJSON that, when it is the one to scan the
// body, also records where the values of the top-level members named in
// want are (see validJSON); captured reports that it did, and the body is
// then a valid container (an object when spans were recorded).
func (r *Request) checkedJSONMembers(want []string, spans [][2]int) (err error, captured bool) {
	r.checkOnce.Do(func() {
		if looksLikeJSONContainer(r.Body) {
			if validJSONIndexed(r.Body, want, spans, r.indexFor()) {
				captured = true
				return
			}
			r.checkErr = scanJSON(r.Body)
		}
	})
	return r.checkErr, captured
}

// JSONRejection is the answer of a handler that reads the JSON body when
// that body is hostile: nested deeper than MaxJSONDepth, or repeating a key
// in one object (readers disagree on which value counts, so a filter and a
// launch could see two different requests). It is nil for any other body,
// including one that is not JSON at all (JSON readers find nothing in it).
func (r *Request) JSONRejection(directive string) *Rejection {
	switch err := r.checkedJSON(); err {
	case errJSONTooDeep, errJSONDuplicateKey:
		return Reject(directive, err.Error())
	}
	return nil
}

// ReadJSONRejection is JSONRejection once something (a field source, a
// filter, a {webhook.json.*} placeholder) has looked into the body as JSON,
// and nil before: the first handler that reads JSON is the one that
// refuses a hostile body, whatever its own verdict was.
func (r *Request) ReadJSONRejection(directive string) *Rejection {
	if !r.jsonRead.Load() {
		return nil
	}
	return r.JSONRejection(directive)
}

// jsonReadable reports whether the body may be handed to a JSON reader
// (gjson, encoding/json): a checked, valid container, or something that
// cannot nest. It marks the body as read as JSON.
func (r *Request) jsonReadable() bool {
	r.jsonRead.Store(true)
	return r.checkedJSON() == nil
}

// JSON returns the body decoded as a JSON value (map[string]any, []any,
// string, float64, bool or nil) and whether it was valid JSON. Decoded once.
func (r *Request) JSON() (any, bool) {
	r.jsonOnce.Do(func() {
		if len(r.Body) == 0 || !r.jsonReadable() {
			return
		}
		var v any
		if err := json.Unmarshal(r.Body, &v); err == nil {
			r.jsonValue, r.jsonOK = v, true
		}
	})
	return r.jsonValue, r.jsonOK
}

// JSONPath looks a gjson path up in the raw body, without decoding it whole.
// A hostile or malformed container body has no paths.
func (r *Request) JSONPath(path string) gjson.Result {
	if !r.jsonReadable() {
		return gjson.Result{}
	}
	if r.index.ok {
		if res, handled := r.index.lookup(r.Body, path); handled {
			return res
		}
	}
	return gjson.GetBytes(r.Body, path)
}

// Form returns the body parsed as an URL-encoded form, or an empty set when
// the body is not a form. Parsed once.
func (r *Request) Form() url.Values {
	r.formOnce.Do(func() {
		r.form = url.Values{}
		if !r.IsForm() {
			return
		}
		if v, err := url.ParseQuery(string(r.Body)); err == nil {
			r.form = v
		}
	})
	return r.form
}

// Field returns a top-level field of the body: a JSON object's member (its
// string value, or its JSON text for other types) or a form field.
func (r *Request) Field(name string) (string, bool) {
	if r.IsForm() {
		vals, ok := r.Form()[name]
		if !ok || len(vals) == 0 {
			return "", false
		}
		return vals[0], true
	}
	return r.JSONField(name)
}

// JSONField returns a top-level member of a JSON object body (its string
// value, or its JSON text for other types), whatever the Content-Type.
func (r *Request) JSONField(name string) (string, bool) {
	res := r.JSONPath(gjson.Escape(name))
	if !res.Exists() {
		return "", false
	}
	if res.Type == gjson.String {
		return res.Str, true
	}
	return res.Raw, true
}
