package launch

import (
	"encoding/json"
	"testing"
	"time"
)

// benchRunBody is the spec valohai_launch stores for the trigger of
// bench/caddyfiles/launch.caddyfile.
const benchRunBody = `{"project":"0190a8e3-5b8e-7a4c-9d1f-3c2b1a0e9f7d","commit":"main","step":"train","title":"Push 6113728f27ae82c7b1a177c8d03f9e96e0adf246 to refs/heads/main","parameters":[{"name":"epochs","value":10},{"name":"branch","value":"refs/heads/main"}],"inputs":[{"name":"dataset","value":"http://127.0.0.1:8080/_valohai/payloads/01a24e24-112f-7e37-b0b8-4b832d02fadf?expires=1796607002\u0026signature=abcdefghijabcdefghijabcdefghijabcdefghij123"}],"tags":["webhook","webhook:bench-push","webhook-run:01a24e24-112f-7e37-b0b8-4b832d02fadf:1"]}`

func benchRun() *Run {
	now := time.Date(2026, 12, 7, 1, 41, 32, 282976619, time.UTC)
	return &Run{
		ID: "01a24e24-112f-7e37-b0b8-4b832d02fadf", Trigger: "bench-push", Host: "127.0.0.1:8080", Path: "/hook",
		CreatedAt: now, UpdatedAt: now, NextAttemptAt: now.Add(time.Minute), Status: StatusPending,
		Actions: []Action{{
			Kind: ActionRunExecution, Body: json.RawMessage(benchRunBody), Project: "0190a8e3-5b8e-7a4c-9d1f-3c2b1a0e9f7d",
			Name: "train", Marker: "webhook-run:01a24e24-112f-7e37-b0b8-4b832d02fadf:1", State: ActionPending,
		}},
	}
}

// checkMarshalRun compares MarshalRun with json.Marshal: the same bytes,
// or an error with the same text.
func checkMarshalRun(t *testing.T, run *Run) {
	t.Helper()
	want, wantErr := json.Marshal(run)
	got, gotErr := MarshalRun(run)
	if (wantErr == nil) != (gotErr == nil) || wantErr != nil && wantErr.Error() != gotErr.Error() {
		t.Fatalf("errors differ: json.Marshal %v, MarshalRun %v", wantErr, gotErr)
	}
	if string(got) != string(want) {
		t.Fatalf("MarshalRun\n%s\njson.Marshal\n%s", got, want)
	}
}

func TestMarshalRunIsMarshal(t *testing.T) {
	zone := time.FixedZone("odd", -(3*3600 + 1800))
	variants := map[string]func(r *Run){
		"as stored by valohai_launch": func(*Run) {},
		"no actions":                  func(r *Run) { r.Actions = nil },
		"empty actions":               func(r *Run) { r.Actions = []Action{} },
		"zero times":                  func(r *Run) { r.CreatedAt, r.UpdatedAt, r.NextAttemptAt = time.Time{}, time.Time{}, time.Time{} },
		"times in a zone":             func(r *Run) { r.UpdatedAt = r.UpdatedAt.In(zone) },
		"year 10000 (Marshal refuses)": func(r *Run) {
			r.NextAttemptAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
		},
		"strings to escape": func(r *Run) {
			r.ID, r.Host, r.Path, r.Trigger = `a"b\c`, "<h>&", "/p\u2028\x01", "ä🚀\xff"
			r.Actions[0].LastError = "<valohai said: \"no\">"
		},
		"empty optional fields": func(r *Run) {
			r.Host, r.Path, r.Actions[0].Project, r.Actions[0].Name, r.Actions[0].Marker = "", "", "", "", ""
		},
		"progress and result": func(r *Run) {
			r.Status, r.Notified = StatusCompleteWithError, true
			r.Actions[0].State, r.Actions[0].Attempts = ActionDone, 3
			r.Actions[0].Result = &ActionResult{ID: "e1", Counter: 7, URL: "https://app.valohai.com/api/v0/executions/e1/",
				DisplayURL: "https://app.valohai.com/p/a/b/execution/e1/?x=1&y=<2>", Status: "queued",
				Extra: map[string]any{"commits": []string{"b", "a"}, "errors": []any{map[string]any{"z": 1, "a": "<"}}, "n": json.Number("1.50")}}
			r.Actions = append(r.Actions, Action{Kind: ActionFetchRepository, Body: json.RawMessage(`{"project":"p"}`), State: ActionFailed, Attempts: -1})
		},
		"no body":          func(r *Run) { r.Actions[0].Body = nil },
		"empty body":       func(r *Run) { r.Actions[0].Body = json.RawMessage{} },
		"body with spaces": func(r *Run) { r.Actions[0].Body = json.RawMessage(" {\"a\" : [1, 2],\n\"b\":\"x y\"} ") },
		"body with HTML":   func(r *Run) { r.Actions[0].Body = json.RawMessage(`{"t":"<a href=\"x\">&</a>"}`) },
		"body with U+2028": func(r *Run) { r.Actions[0].Body = json.RawMessage("{\"t\":\"\u2028\u2029\"}") },
		"body with escapes": func(r *Run) {
			r.Actions[0].Body = json.RawMessage(`{"t":"q\"\\ \u003c \/ é","n":-1.5e+10,"l":[true,false,null,{}]}`)
		},
		"invalid body":          func(r *Run) { r.Actions[0].Body = json.RawMessage(`{"a":}`) },
		"two values as body":    func(r *Run) { r.Actions[0].Body = json.RawMessage(`{}{}`) },
		"number with leading 0": func(r *Run) { r.Actions[0].Body = json.RawMessage(`[01]`) },
		"control byte in a string": func(r *Run) {
			r.Actions[0].Body = json.RawMessage("[\"a\x01\"]")
		},
		"result Marshal refuses": func(r *Run) {
			r.Actions[0].Result = &ActionResult{Extra: map[string]any{"f": func() {}}}
		},
	}
	for name, change := range variants {
		t.Run(name, func(t *testing.T) {
			run := benchRun()
			change(run)
			checkMarshalRun(t, run)
		})
	}
}

// The run valohai_launch stores is written by appending, without
// encoding/json (the point of MarshalRun).
func TestMarshalRunAppendsAStoredRun(t *testing.T) {
	if _, ok := appendRun(benchRun()); !ok {
		t.Fatal("the run of the benchmark's trigger went to encoding/json")
	}
	data, err := MarshalRun(benchRun())
	if err != nil {
		t.Fatal(err)
	}
	var back Run
	if err := json.Unmarshal(data, &back); err != nil || string(back.Actions[0].Body) != benchRunBody {
		t.Fatalf("read back: %v, body %s", err, back.Actions[0].Body)
	}
}

// FuzzMarshalRun: whatever an action's body and the run's texts hold,
// MarshalRun writes json.Marshal's bytes or fails as it does.
func FuzzMarshalRun(f *testing.F) {
	f.Add([]byte(benchRunBody), "refs/heads/main", 0, int64(1796607002282976619))
	f.Add([]byte(`{"a" : 1}`), "<&>", 2, int64(-62135596800000000))
	f.Add([]byte("[\"\u2028\",01]"), "\xff", -1, int64(0))
	f.Add([]byte(`"\ud800"`), "", 1, int64(1<<62))
	f.Fuzz(func(t *testing.T, body []byte, text string, attempts int, nanos int64) {
		run := benchRun()
		run.Actions[0].Body = body
		run.Actions[0].LastError, run.Host = text, text
		run.Actions[0].Attempts = attempts
		run.UpdatedAt = time.Unix(0, nanos).UTC()
		checkMarshalRun(t, run)
	})
}

func BenchmarkMarshalRun(b *testing.B) {
	run := benchRun()
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(run)
		}
	})
	b.Run("MarshalRun", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = MarshalRun(run)
		}
	})
}
