package caddymodule

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

const actionsRoutes = `
	handle /labels-done {
		webhook_token labels-token
		valohai_launch labels-to-model {
			project ` + testProject + `
			pipeline labels-to-model {
				commit        main
				payload_input preprocess.annotations
				title         "Labels {webhook.json.dataset.name}"
				parameter     epochs {webhook.json.epochs}
				parameter     preprocess.split 0.9
				tag           v7
			}
		}
	}
	handle /predict {
		webhook_token predict-token
		valohai_launch slack-predict {
			project ` + testProject + `
			pipeline slack-predict {
				commit        main
				payload_input parse.request
			}
			response {
				status       200
				content_type application/json
				body         ` + "`" + `{"response_type":"ephemeral","text":"Pipeline {valohai.pipeline.counter} started for {webhook.form.user_name}","run_id":"{run_id}"}` + "`" + `
			}
		}
	}
	handle /rerun {
		webhook_token rerun-token
		valohai_launch rerun {
			project ` + testProject + `
			copy_pipeline {webhook.json.source} {
				payload_input train.dataset
				title         "Re-run of {webhook.json.source}"
			}
		}
	}
	handle /push {
		webhook_token push-token
		valohai_launch push {
			project ` + testProject + `
			fetch_repository
			execution train {
				commit main
			}
		}
	}
	handle /slow {
		webhook_token slow-token
		valohai_launch slow {
			project ` + testProject + `
			execution train {
				commit main
			}
			wait 0s
		}
	}
	handle /missing {
		webhook_token missing-token
		valohai_launch missing {
			project ` + testProject + `
			pipeline no-such-pipeline {
				commit main
			}
		}
	}
	handle /run-info {
		valohai_run_info slow push
	}
`

// simPipelines returns the bodies of pipelines the simulator accepted.
func (e *testEnv) simPipelines() []map[string]any {
	e.t.Helper()
	var out []map[string]any
	for _, c := range e.calls() {
		if c.Method == http.MethodPost && c.Path == "/api/v0/pipelines/" && c.Status == http.StatusCreated {
			dec := json.NewDecoder(bytes.NewReader(c.Body))
			dec.UseNumber()
			var body map[string]any
			if err := dec.Decode(&body); err != nil {
				e.t.Fatal(err)
			}
			out = append(out, body)
		}
	}
	return out
}

func nodeByName(t *testing.T, body map[string]any, name string) map[string]any {
	t.Helper()
	for _, n := range body["nodes"].([]any) {
		if node := n.(map[string]any); node["name"] == name {
			return node
		}
	}
	t.Fatalf("no node %q in %v", name, body["nodes"])
	return nil
}

type pipelineResult struct {
	RunID  string `json:"run_id"`
	Status string `json:"status"`
	Result []struct {
		Action          string   `json:"action"`
		PipelineName    string   `json:"pipeline_name"`
		PipelineID      string   `json:"pipeline_id"`
		PipelineCounter int64    `json:"pipeline_counter"`
		ExecutionID     string   `json:"execution_id"`
		URL             string   `json:"url"`
		Commits         []string `json:"commits"`
		Error           string   `json:"error"`
	} `json:"result"`
}

func decodePipelineResult(t *testing.T, r response) pipelineResult {
	t.Helper()
	var pr pipelineResult
	if err := json.Unmarshal([]byte(r.body), &pr); err != nil {
		t.Fatalf("%v: %q", err, r.body)
	}
	return pr
}

func TestActionsThroughCaddy(t *testing.T) {
	env := startEnv(t, actionsRoutes, "")

	t.Run("pipeline by name with the payload as a node input (V7 labels → training)", func(t *testing.T) {
		body := []byte(`{"event_type":"workflow_complete","dataset":{"name":"cars-v3"},"epochs":7}`)
		r := env.post("/labels-done", body, map[string]string{"Authorization": "Bearer labels-token", "Content-Type": "application/json"})
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
		pr := decodePipelineResult(t, r)
		if pr.Status != "completed" || len(pr.Result) != 1 || pr.Result[0].Action != "run_pipeline" || pr.Result[0].PipelineID == "" || pr.Result[0].PipelineCounter < 1 || pr.Result[0].PipelineName != "labels-to-model" {
			t.Fatalf("response %s", r.body)
		}
		pipes := env.simPipelines()
		p := pipes[len(pipes)-1]
		if p["title"] != "Labels cars-v3" || p["project"] != testProject {
			t.Fatalf("pipeline %v", p)
		}
		pre := nodeByName(t, p, "preprocess")["template"].(map[string]any)
		ann := pre["inputs"].(map[string]any)["annotations"].([]any)
		if len(ann) != 1 || !strings.Contains(ann[0].(string), "/_valohai/payloads/"+pr.RunID+"?") {
			t.Fatalf("preprocess inputs %v", pre["inputs"])
		}
		if got := env.do(http.MethodGet, ann[0].(string), nil, nil); got.body != string(body) {
			t.Fatalf("payload served %q", got.body)
		}
		if split := pre["parameters"].(map[string]any)["split"]; split != json.Number("0.9") {
			t.Fatalf("node parameter override: %#v", split)
		}
		epochs := p["parameters"].(map[string]any)["epochs"].(map[string]any)
		if epochs["expression"] != json.Number("7") {
			t.Fatalf("pipeline parameter epochs %v", epochs)
		}
		edges := p["edges"].([]any)
		if len(edges) != 1 || edges[0].(map[string]any)["target_key"] != "dataset" {
			t.Fatalf("edges %v", edges)
		}
		if tr := nodeByName(t, p, "train")["template"].(map[string]any); tr["commit"] != testCommit {
			t.Fatalf("nodes must run the commit main resolved to, got %v", tr["commit"])
		}
	})

	t.Run("Slack /predict pattern with a response block", func(t *testing.T) {
		form := url.Values{"command": {"/predict"}, "text": {`a "quoted" cat`}, "user_name": {`rick "o"`}}
		r := env.post("/predict", []byte(form.Encode()), map[string]string{"Authorization": "Bearer predict-token", "Content-Type": "application/x-www-form-urlencoded"})
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("%d %s %s", r.status, r.header.Get("Content-Type"), r.body)
		}
		var slack struct {
			Text  string `json:"text"`
			RunID string `json:"run_id"`
		}
		if err := json.Unmarshal([]byte(r.body), &slack); err != nil {
			t.Fatalf("the response block must stay valid JSON with quotes in the user name: %v %q", err, r.body)
		}
		if !strings.HasPrefix(slack.Text, "Pipeline ") || !strings.HasSuffix(slack.Text, ` started for rick "o"`) || slack.RunID == "" {
			t.Fatalf("text %q run %q", slack.Text, slack.RunID)
		}
		p := env.simPipelines()
		req := nodeByName(t, p[len(p)-1], "parse")["template"].(map[string]any)["inputs"].(map[string]any)["request"].([]any)
		if got := env.do(http.MethodGet, req[0].(string), nil, nil); got.body != form.Encode() || got.header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			t.Fatalf("the Slack payload served as %q %q", got.header.Get("Content-Type"), got.body)
		}
	})

	t.Run("copy pipeline", func(t *testing.T) {
		before := env.simPipelines()
		src := before[0]
		r := env.post("/rerun", []byte(`{"source":"`+testProject+`:1"}`), map[string]string{"Authorization": "Bearer rerun-token", "Content-Type": "application/json"})
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
		pr := decodePipelineResult(t, r)
		if pr.Result[0].Action != "copy_pipeline" || pr.Result[0].PipelineID == "" {
			t.Fatalf("%s", r.body)
		}
		after := env.simPipelines()
		cp := after[len(after)-1]
		if cp["title"] != "Re-run of "+testProject+":1" || len(cp["nodes"].([]any)) != len(src["nodes"].([]any)) || len(cp["edges"].([]any)) != 1 {
			t.Fatalf("copy %v", cp)
		}
		ds := nodeByName(t, cp, "train")["template"].(map[string]any)["inputs"].(map[string]any)["dataset"].([]any)
		if len(ds) != 1 || !strings.Contains(ds[0].(string), pr.RunID) {
			t.Fatalf("copied train inputs %v", ds)
		}
	})

	t.Run("fetch repository then an execution, in order", func(t *testing.T) {
		r := env.post("/push", []byte(`{}`), map[string]string{"Authorization": "Bearer push-token"})
		if r.status != http.StatusOK {
			t.Fatalf("%d %s", r.status, r.body)
		}
		pr := decodePipelineResult(t, r)
		if len(pr.Result) != 2 || pr.Result[0].Action != "fetch_repository" || pr.Result[1].Action != "run_execution" || pr.Result[1].ExecutionID == "" {
			t.Fatalf("%s", r.body)
		}
		if len(pr.Result[0].Commits) != 1 || pr.Result[0].Commits[0] != testCommit {
			t.Fatalf("first fetch should report the project's commit: %s", r.body)
		}
		var order []string
		for _, c := range env.calls() {
			if c.Path == "/api/v0/projects/"+testProject+"/fetch/" || c.Path == "/api/v0/executions/" {
				order = append(order, c.Path)
			}
		}
		if n := len(order); n < 2 || !strings.Contains(order[n-2], "/fetch/") || order[n-1] != "/api/v0/executions/" {
			t.Fatalf("call order %v", order)
		}
		r = env.post("/push", []byte(`{}`), map[string]string{"Authorization": "Bearer push-token"})
		if pr := decodePipelineResult(t, r); len(pr.Result[0].Commits) != 0 {
			t.Fatalf("second fetch has no new commits: %s", r.body)
		}
	})

	t.Run("unknown pipeline fails with a clear error", func(t *testing.T) {
		r := env.post("/missing", []byte(`{}`), map[string]string{"Authorization": "Bearer missing-token"})
		if r.status != http.StatusBadGateway {
			t.Fatalf("%d %s", r.status, r.body)
		}
		pr := decodePipelineResult(t, r)
		if pr.Status != "error" || !strings.Contains(pr.Result[0].Error, "no-such-pipeline") || !strings.Contains(pr.Result[0].Error, "labels-to-model") {
			t.Fatalf("error should name the pipeline and the known ones: %s", r.body)
		}
	})

	t.Run("run info before and after completion", func(t *testing.T) {
		env.simControl("delay", `{"delay":"1s"}`)
		r := env.post("/slow", []byte(`{}`), map[string]string{"Authorization": "Bearer slow-token"})
		if r.status != http.StatusAccepted {
			t.Fatalf("%d %s", r.status, r.body)
		}
		id := decodeLaunch(t, r).RunID
		info := env.do(http.MethodGet, env.hook+"/run-info?run_id="+id, nil, nil)
		if info.status != http.StatusOK || strings.ReplaceAll(strings.ReplaceAll(info.body, " ", ""), "\n", "") != `{"status":"pending","result":[]}` {
			t.Fatalf("pending run info: %d %q", info.status, info.body)
		}
		var done struct {
			Status string `json:"status"`
			Result []struct {
				Action, ExecutionStep, ExecutionID string
			} `json:"result"`
		}
		waitFor(t, "the run to complete", 10*time.Second, func() bool {
			info := env.do(http.MethodPost, env.hook+"/run-info", []byte(`{"run_id":"`+id+`"}`), map[string]string{"Content-Type": "application/json"})
			_ = json.Unmarshal([]byte(info.body), &done)
			return done.Status == "completed"
		})
		env.simControl("delay", `{"delay":"0s"}`)
		raw := env.do(http.MethodPost, env.hook+"/run-info", []byte("run_id="+id), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		mustContain(t, raw.body, `"execution_step": "train"`)
		mustContain(t, raw.body, `"action": "run_execution"`)
		// Runs of triggers the run-info does not list are invisible.
		other := env.post("/missing", []byte(`{}`), map[string]string{"Authorization": "Bearer missing-token"})
		if r := env.do(http.MethodGet, env.hook+"/run-info?run_id="+decodePipelineResult(t, other).RunID, nil, nil); r.status != http.StatusNotFound {
			t.Fatalf("another trigger's run: %d", r.status)
		}
		if r := env.do(http.MethodGet, env.hook+"/run-info", nil, nil); r.status != http.StatusBadRequest {
			t.Fatalf("no run_id: %d", r.status)
		}
		if r := env.do(http.MethodGet, env.hook+"/run-info?run_id=nope", nil, nil); r.status != http.StatusNotFound {
			t.Fatalf("unknown run: %d", r.status)
		}
	})
}
