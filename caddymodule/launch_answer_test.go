package caddymodule

import (
	"cmp"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// answerRoutes is bench/caddyfiles/launch.caddyfile's trigger behind a
// token (its title also carries characters JSON writers escape): the
// accept path whose CPU issue 12 cuts.
var answerRoutes = `
	handle /accept {
		webhook_token accept-token` + launchTrigger("accept-push", testProject, " <&>") + `
	}
`

// TestAcceptedAnswerBytes pins what a sender and Valohai see of an
// accepted run with wait 0s, byte for byte: the 202 answer's status,
// headers and body (README.md, "Every answer, by status"), and the
// execution the workers then create.
func TestAcceptedAnswerBytes(t *testing.T) {
	env := startEnv(t, answerRoutes, "")
	body := []byte(`{"ref":"refs/heads/main","head_commit":{"id":"6113728f27ae82c7b1a177c8d03f9e96e0adf246"}}`)
	r := env.post("/accept", body, map[string]string{
		"Authorization": "Bearer accept-token",
		"Content-Type":  "application/json",
	})
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d %q", r.status, r.body)
	}
	m := regexp.MustCompile(`^\{"run_id":"([0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12})","status":"pending"\}\n$`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("202 body %q, want {\"run_id\":\"<UUIDv7>\",\"status\":\"pending\"} and a newline", r.body)
	}
	runID := m[1]
	header := r.header.Clone()
	if _, err := http.ParseTime(header.Get("Date")); err != nil {
		t.Errorf("Date %q: %v", header.Get("Date"), err)
	}
	header.Del("Date")
	want := http.Header{
		"Content-Length": {"69"},
		"Content-Type":   {"application/json"},
		"Server":         {"Caddy"},
	}
	if !reflect.DeepEqual(header, want) {
		t.Errorf("202 headers %v, want %v and Date", header, want)
	}

	var calls []map[string]any
	waitFor(t, "the execution", 20*time.Second, func() bool {
		calls = env.executionCalls()
		return len(calls) == 1
	})
	got := calls[0]
	inputs, _ := got["inputs"].(map[string]any)
	dataset, _ := inputs["dataset"].([]any)
	if len(dataset) != 1 || !strings.HasPrefix(dataset[0].(string), env.hook+"/_valohai/payloads/"+runID+"?expires=") {
		t.Fatalf("dataset input %v, want the run's payload URL", inputs["dataset"])
	}
	inputs["dataset"] = []any{"<payload url>"}
	wantBody := `{
		"commit": "` + testCommit + `",
		"inputs": {"dataset": ["<payload url>"], "weights": []},
		"parameters": {"epochs": 10, "branch": "refs/heads/main", "learning_rate": 0.001, "dry_run": false},
		"project": "` + testProject + `",
		"step": "train",
		"title": "Push 6113728f27ae82c7b1a177c8d03f9e96e0adf246 to refs/heads/main <&>",
		"environment_variables": {},
		"tags": ["webhook", "webhook:accept-push", "webhook-run:` + runID + `:1"],
		"runtime_config": {}
	}`
	var wantMap map[string]any
	dec := json.NewDecoder(strings.NewReader(wantBody))
	dec.UseNumber()
	if err := dec.Decode(&wantMap); err != nil {
		t.Fatal(err)
	}
	gotJSON, _ := json.Marshal(got)
	wantJSON, _ := json.Marshal(wantMap)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("execution body\n%s\nwant\n%s", gotJSON, wantJSON)
	}
}

// The answer without results (a pending run, wait 0s, also when
// webhook_dedupe overrides its status) is byte for byte what json.Encoder
// writes for it, whatever the run id.
func TestWriteRunResponseWithoutResults(t *testing.T) {
	for _, override := range []int{0, http.StatusOK} {
		for _, id := range []string{"01a24e24-112f-7e37-b0b8-4b832d02fadf", "", `q"\\`, "<&>", "ä\xff"} {
			rec := httptest.NewRecorder()
			if err := writeRunResponse(rec, &launch.Run{ID: id, Status: launch.StatusPending}, override); err != nil {
				t.Fatal(err)
			}
			want, _ := json.Marshal(runResponse{RunID: id, Status: launch.StatusPending})
			wantCode := cmp.Or(override, http.StatusAccepted)
			if rec.Body.String() != string(want)+"\n" || rec.Code != wantCode || rec.Header().Get("Content-Type") != "application/json" {
				t.Errorf("run %q: %d %v %q, want %d application/json %q", id, rec.Code, rec.Header(), rec.Body, wantCode, want)
			}
		}
	}
}

// BenchmarkPendingAnswer is the 202 answer of wait 0s written by
// json.Encoder (as before) and by writeRunResponse.
//
//	go test -run '^$' -bench PendingAnswer -benchmem ./caddymodule
func BenchmarkPendingAnswer(b *testing.B) {
	run := &launch.Run{ID: "01a24e24-112f-7e37-b0b8-4b832d02fadf", Status: launch.StatusPending}
	w := &discardWriter{h: http.Header{}}
	b.Run("json.Encoder", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(runResponse{RunID: run.ID, Status: run.Status})
		}
	})
	b.Run("writeRunResponse", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			_ = writeRunResponse(w, run, 0)
		}
	})
}
