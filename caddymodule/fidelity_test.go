package caddymodule

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// fidelityRoutes are the triggers of the fidelity tests: executions whose
// bodies are built from the commit's valohai.yaml like `vh execution run`.
const fidelityRoutes = `
	route /train {
		valohai_launch train-hook {
			project ` + testProject + `
			execution train {
				commit     {webhook.json.commit}
				title      "{webhook.json.title}"
				parameter  epochs {webhook.json.epochs}
				image      python:3.13
				time_limit 90m
				environment_variable_group group-a
				environment_variable_group group-b
				runtime_config_preset preset-1
				priority   3
				env        RUN {run_id}
				tag        "{webhook.json.tag}"
			}
			wait 5s
		}
	}
`

// launchTrain posts to /train and returns the run id and answer.
func launchTrain(t *testing.T, env *testEnv, body string) (string, response) {
	t.Helper()
	r := env.post("/train", []byte(body), map[string]string{"Content-Type": "application/json"})
	var ans struct {
		RunID string `json:"run_id"`
	}
	_ = json.Unmarshal([]byte(r.body), &ans)
	return ans.RunID, r
}

// TestExecutionBodyThroughCaddy: a webhook's values go out typed by the
// step's declaration, with the step's defaults, the execution options, the
// trigger and run tags, and without the title that rendered empty.
func TestExecutionBodyThroughCaddy(t *testing.T) {
	env := startEnv(t, fidelityRoutes, "")
	runID, r := launchTrain(t, env, `{"commit":"main","epochs":"7","title":"","tag":""}`)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	execs := env.executionCalls()
	if len(execs) != 1 {
		t.Fatalf("%d executions", len(execs))
	}
	got, _ := json.Marshal(execs[0])
	var body map[string]any
	_ = json.Unmarshal(got, &body)
	want := map[string]any{
		"project": testProject, "commit": testCommit, "step": "train",
		"parameters":                  map[string]any{"epochs": 7.0, "branch": "main", "learning_rate": 0.001, "dry_run": false},
		"inputs":                      map[string]any{"dataset": []any{"s3://demo-bucket/datasets/latest.csv"}, "weights": []any{}},
		"image":                       "python:3.13",
		"time_limit":                  5400.0,
		"environment_variables":       map[string]any{"RUN": runID},
		"environment_variable_groups": []any{"group-a", "group-b"},
		"runtime_config_preset":       "preset-1",
		"runtime_config":              map[string]any{},
		"priority":                    3.0,
		"tags":                        []any{"webhook:train-hook", "webhook-run:" + runID + ":1"},
	}
	if !reflect.DeepEqual(body, want) {
		t.Errorf("execution body\n got %s\nwant %s", got, mustJSON(want))
	}

	// A value that cannot take the declared type fails for good, naming
	// the parameter; nothing is created.
	_, r = launchTrain(t, env, `{"commit":"main","epochs":"many","title":"x","tag":"t"}`)
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, `parameter \"epochs\"`) || !strings.Contains(r.body, "not a valid integer") {
		t.Errorf("untyped value: %d %s", r.status, r.body)
	}
	if n := len(env.executionCalls()); n != 1 {
		t.Errorf("%d executions after the refused one, want 1", n)
	}
}

// TestCommitResolutionThroughCaddy: a short sha and a branch go out as the
// full identifier; the commit's config is read once per full sha (cached),
// while the branch is resolved on every launch. API calls are counted.
func TestCommitResolutionThroughCaddy(t *testing.T) {
	env := startEnv(t, fidelityRoutes, "")
	apiCalls := func() []string {
		var out []string
		for _, c := range env.calls() {
			out = append(out, c.Method+" "+c.Path)
		}
		return out
	}
	launch := func(commit string) []string {
		t.Helper()
		env.simControl("reset", `{}`)
		_, r := launchTrain(t, env, `{"commit":"`+commit+`","epochs":1,"title":"t","tag":"x"}`)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d %s", commit, r.status, r.body)
		}
		execs := env.executionCalls()
		if len(execs) != 1 || execs[0]["commit"] != testCommit {
			t.Fatalf("%s: sent %v, want the full identifier %s", commit, execs, testCommit)
		}
		return apiCalls()
	}
	list, detail, create := "GET /api/v0/commits/", "GET /api/v0/commits/"+testCommit+"/", "POST /api/v0/executions/"
	for _, tt := range []struct {
		commit string
		want   []string
	}{
		{"main", []string{list, detail, create}}, // first read of the commit's config
		{"main", []string{list, create}},         // a branch is resolved again; its config is cached
		{testCommit[:7], []string{list, create}}, // a short sha is expanded from the list
		{testCommit, []string{create}},           // a full sha needs no read at all
	} {
		if got := launch(tt.commit); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: API calls %v, want %v", tt.commit, got, tt.want)
		}
	}

	// Unknown commit: one fetch, one more list, then a permanent error.
	env.simControl("reset", `{}`)
	_, r := launchTrain(t, env, `{"commit":"feature/unknown","epochs":1,"title":"t","tag":"x"}`)
	if r.status != http.StatusBadGateway || !strings.Contains(r.body, "even after fetching the repository") {
		t.Errorf("unknown commit: %d %s", r.status, r.body)
	}
	want := []string{list, "POST /api/v0/projects/" + testProject + "/fetch/", list}
	if got := apiCalls(); !reflect.DeepEqual(got, want) {
		t.Errorf("unknown commit: API calls %v, want %v", got, want)
	}
}

// TestFaultCreatedThenConnectionLost: Valohai creates the execution and the
// connection drops before the answer. The worker retries, finds the
// execution by its run tag, and does not create a second one: in the end
// exactly one execution exists, and the run points at it.
func TestFaultCreatedThenConnectionLost(t *testing.T) {
	env := startEnv(t, fidelityRoutes, "retry 5 100ms 200ms")
	env.simControl("drop", `{"creates":1}`)
	runID, r := launchTrain(t, env, `{"commit":"main","epochs":2,"title":"t","tag":"x"}`)
	if r.status != http.StatusOK {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var ans struct {
		Result []struct {
			ExecutionID string `json:"execution_id"`
		} `json:"result"`
	}
	if err := json.Unmarshal([]byte(r.body), &ans); err != nil || len(ans.Result) != 1 {
		t.Fatalf("%s", r.body)
	}
	// What the worker sent (before this test's own listing below).
	var posts, lookups int
	for _, c := range env.calls() {
		switch {
		case c.Method == http.MethodPost && c.Path == "/api/v0/executions/":
			posts++
		case c.Method == http.MethodGet && c.Path == "/api/v0/executions/":
			lookups++
		}
	}
	if posts != 1 || lookups != 1 {
		t.Errorf("%d creates and %d lookups, want 1 and 1", posts, lookups)
	}
	list := env.do(http.MethodGet, env.sim+"/api/v0/executions/?project="+testProject, nil, map[string]string{"Authorization": "Token " + testToken})
	var execs struct {
		Count   int `json:"count"`
		Results []struct {
			ID   string   `json:"id"`
			Tags []string `json:"tags"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(list.body), &execs); err != nil {
		t.Fatal(err)
	}
	if execs.Count != 1 || execs.Results[0].ID != ans.Result[0].ExecutionID ||
		!slices.Contains(execs.Results[0].Tags, "webhook-run:"+runID+":1") {
		t.Fatalf("executions in Valohai: %s; run answered %s", list.body, r.body)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestDryRunThroughCaddy: `dry_run header` answers a request carrying
// Webhook-Dry-Run: 1 with the exact requests that would be sent, after the
// conditions, commit and config reads, conversion and typing; nothing is
// created or stored, no quota is taken and no delivery id remembered.
// Without the header, or on a
// trigger without dry_run, the header changes nothing.
func TestDryRunThroughCaddy(t *testing.T) {
	env := startEnv(t, `
	route /dry {
		webhook_rate_limit 1 1h
		webhook_dedupe {http.request.header.X-Delivery} 1h
		valohai_launch dry-hook {
			project `+testProject+`
			execution train {
				commit    main
				parameter epochs {webhook.json.epochs}
				payload_input dataset
			}
			pipeline labels-to-model {
				commit main
			}
			dry_run header
		}
	}
	route /always {
		valohai_launch always-dry {
			project `+testProject+`
			fetch_repository
			execution train {
				commit main
			}
			dry_run
		}
	}
	route /no-launch {
		webhook_rate_limit 1 1h
		respond "passed" 200
	}
	route /wet {
		webhook_rate_limit 1 1h
		valohai_launch wet-hook {
			project `+testProject+`
			execution train {
				commit main
			}
		}
	}
`, "")
	dry := map[string]string{"Content-Type": "application/json", "Webhook-Dry-Run": "1"}
	for i := range 2 { // twice: a dry run takes no quota, remembers no id
		r := env.post("/dry", []byte(`{"epochs":"4"}`), map[string]string{"Content-Type": "application/json", "Webhook-Dry-Run": "1", "X-Delivery": "d-1"})
		if r.status != http.StatusOK || r.header.Get("Webhook-Duplicate") != "" {
			t.Fatalf("dry run %d: %d %s", i, r.status, r.body)
		}
		var ans struct {
			RunID    string `json:"run_id"`
			Status   string `json:"status"`
			Requests []struct {
				Method string         `json:"method"`
				Path   string         `json:"path"`
				Body   map[string]any `json:"body"`
			} `json:"requests"`
		}
		if err := json.Unmarshal([]byte(r.body), &ans); err != nil || ans.Status != "dry_run" || ans.RunID == "" || len(ans.Requests) != 2 {
			t.Fatalf("dry run answer %s", r.body)
		}
		ex, pl := ans.Requests[0], ans.Requests[1]
		if ex.Method != "POST" || ex.Path != "/api/v0/executions/" || ex.Body["commit"] != testCommit ||
			ex.Body["parameters"].(map[string]any)["epochs"] != 4.0 ||
			!strings.Contains(ex.Body["inputs"].(map[string]any)["dataset"].([]any)[0].(string), ans.RunID) {
			t.Errorf("planned execution %+v", ex)
		}
		if pl.Method != "POST" || pl.Path != "/api/v0/pipelines/" || pl.Body["title"] != "labels-to-model" || len(pl.Body["nodes"].([]any)) == 0 {
			t.Errorf("planned pipeline %+v", pl)
		}
	}
	r := env.post("/always", []byte(`{}`), map[string]string{"Content-Type": "application/json"})
	if r.status != http.StatusOK || !strings.Contains(r.body, `"path":"/api/v0/projects/`+testProject+`/fetch/"`) {
		t.Errorf("always dry: %d %s", r.status, r.body)
	}
	for _, c := range env.calls() {
		if c.Method == http.MethodPost {
			t.Errorf("a dry run sent %s %s", c.Method, c.Path)
		}
	}
	// The quota and the delivery id are untouched: the real launch of the
	// same delivery passes, the next is limited.
	if r := env.post("/dry", []byte(`{"epochs":"4"}`), map[string]string{"Content-Type": "application/json", "X-Delivery": "d-1"}); r.status != http.StatusOK || !strings.Contains(r.body, `"status":"completed"`) {
		t.Fatalf("real launch after dry runs: %d %s", r.status, r.body)
	}
	if r := env.post("/dry", []byte(`{"epochs":"4"}`), map[string]string{"Content-Type": "application/json"}); r.status != http.StatusBadRequest || r.header.Get("Retry-After") == "" {
		t.Errorf("second real launch: %d %s, want the quota exhausted", r.status, r.body)
	}
	// A route without a launch: the header gets nothing past the limit.
	for i, want := range []int{http.StatusOK, http.StatusBadRequest} {
		if r := env.post("/no-launch", []byte(`{}`), dry); r.status != want {
			t.Errorf("dry-run header on a route without a launch, request %d: %d %s, want %d", i, r.status, r.body, want)
		}
	}
	// On a trigger without dry_run, the header launches for real and takes quota.
	if r := env.post("/wet", []byte(`{}`), dry); r.status != http.StatusOK || !strings.Contains(r.body, `"status":"completed"`) {
		t.Fatalf("header on a trigger without dry_run: %d %s", r.status, r.body)
	}
	if r := env.post("/wet", []byte(`{}`), dry); r.status != http.StatusBadRequest || r.header.Get("Retry-After") == "" {
		t.Errorf("header on a trigger without dry_run, twice: %d %s, want the quota exhausted", r.status, r.body)
	}
}
