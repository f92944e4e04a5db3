package launch

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/tidwall/gjson"
)

// MarshalRun returns the bytes json.Marshal(run) returns, written by
// appending instead of by reflection. Most of Marshal's time for a run
// goes into re-validating and compacting each action's Body, which is
// JSON this package or the store wrote a moment earlier; MarshalRun copies
// a body that is already valid, compact and HTML-safe as it is. Anything
// else (a body that Marshal would change or refuse, a time it cannot
// write) is left to json.Marshal, so the bytes and the errors are always
// Marshal's.
func MarshalRun(run *Run) ([]byte, error) {
	if data, ok := appendRun(run); ok {
		return data, nil
	}
	return json.Marshal(run)
}

// appendRun writes run's JSON; ok is false when a part of it needs
// encoding/json.
func appendRun(run *Run) (_ []byte, ok bool) {
	size := 400
	for i := range run.Actions {
		size += 300 + len(run.Actions[i].Body)
	}
	o := JSONObject{B: append(make([]byte, 0, size), '{')}
	o.String("id", run.ID)
	o.String("trigger", run.Trigger)
	o.OptionalString("host", run.Host)
	o.OptionalString("path", run.Path)
	ok = appendTime(&o, "created_at", run.CreatedAt) && appendTime(&o, "updated_at", run.UpdatedAt)
	o.String("status", string(run.Status))
	o.Key("actions")
	if run.Actions == nil {
		o.B = append(o.B, "null"...)
	} else {
		if len(run.Actions) == 0 {
			o.B = append(o.B, '[')
		}
		for i := range run.Actions {
			o.B = append(o.B, ListSeparator(i))
			ok = appendAction(&o, &run.Actions[i]) && ok
		}
		o.B = append(o.B, ']')
	}
	ok = appendTime(&o, "next_attempt_at", run.NextAttemptAt) && ok
	if run.Notified {
		o.Key("notified")
		o.B = append(o.B, "true"...)
	}
	return append(o.B, '}'), ok
}

// appendAction appends an Action's JSON object to the list in o.B.
func appendAction(list *JSONObject, a *Action) (ok bool) {
	o := JSONObject{B: append(list.B, '{')}
	defer func() { list.B = o.B }()
	o.String("kind", string(a.Kind))
	if len(a.Body) > 0 {
		if !compactHTMLSafe(a.Body) || !gjson.ValidBytes(a.Body) {
			return false
		}
		o.Key("body")
		o.B = append(o.B, a.Body...)
	}
	o.OptionalString("project", a.Project)
	o.OptionalString("name", a.Name)
	o.OptionalString("marker", a.Marker)
	o.String("state", string(a.State))
	if a.Attempts != 0 {
		o.Key("attempts")
		o.B = strconv.AppendInt(o.B, int64(a.Attempts), 10)
	}
	o.OptionalString("last_error", a.LastError)
	if a.Result != nil {
		result, err := json.Marshal(a.Result)
		if err != nil {
			return false
		}
		o.Key("result")
		o.B = append(o.B, result...)
	}
	o.B = append(o.B, '}')
	return true
}

// appendTime appends a time member as time.Time.MarshalJSON writes it;
// false for a time it refuses (a year outside 0-9999).
func appendTime(o *JSONObject, name string, t time.Time) bool {
	o.Key(name)
	o.B = append(o.B, '"')
	b, err := t.AppendText(o.B)
	if err != nil {
		return false
	}
	o.B = append(b, '"')
	return true
}

// compactHTMLSafe reports whether encoding/json's compaction (Marshal of a
// json.RawMessage) would leave valid JSON raw unchanged: no whitespace
// outside strings, and none of the characters it escapes for HTML (<, >,
// &, U+2028, U+2029). It does not check that raw is valid JSON.
func compactHTMLSafe(raw []byte) bool {
	inString := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !compactionSees[c] {
			continue
		}
		switch {
		case c == '<' || c == '>' || c == '&':
			return false
		case c == 0xE2:
			if i+2 < len(raw) && raw[i+1] == 0x80 && raw[i+2]&^1 == 0xA8 {
				return false
			}
		case c == '"':
			inString = !inString
		case c == '\\':
			i++ // only inside a string; the escaped byte is not special
		case !inString: // whitespace
			return false
		}
	}
	return true
}

// compactionSees marks the bytes compactHTMLSafe looks at.
var compactionSees = func() (t [256]bool) {
	for _, c := range []byte("<>&\xE2\"\\ \t\n\r") {
		t[c] = true
	}
	return t
}()
