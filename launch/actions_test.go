package launch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hooklaunch/caddy-valohai/launch/simulator"
)

const (
	taskCommit = "feedbeeffeedbeeffeedbeeffeedbeeffeedbeef"
	payloadURL = "https://gw.example.com/payloads/run-1?expires=1760000000&signature=c2ln"
)

// newSimulated serves a simulator with one project: the basic pipeline's
// valohai.yaml at goldenCommit on main, and the task pipeline's at
// taskCommit on a "tasks" branch. Refs are not keys, so "main" resolves
// through the commit list as it does against Valohai.
func newSimulated(t *testing.T) (*simulator.Simulator, *Client) {
	t.Helper()
	sim := simulator.New(simulator.Config{
		Token: testToken,
		Projects: map[string]*simulator.Project{
			goldenProject: {Name: "acme/ml", Commits: map[string]simulator.Commit{
				goldenCommit: {Ref: "main", Config: loadConfig(t, "pipeline-basic.yaml")},
				taskCommit:   {Ref: "tasks", Config: loadConfig(t, "pipeline-task.yaml")},
			}},
		},
	})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, &Client{BaseURL: srv.URL, Token: testToken}
}

func specAction(t *testing.T, kind ActionKind, spec any) *Action {
	t.Helper()
	body, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	return &Action{Kind: kind, Body: body}
}

// callLines lists the simulator's calls as "METHOD path status".
func callLines(sim *simulator.Simulator) []string {
	var out []string
	for _, c := range sim.Calls() {
		out = append(out, c.Method+" "+c.Path+" "+http.StatusText(c.Status))
	}
	return out
}

// lastPost is the body of the last POST the simulator received.
func lastPost(t *testing.T, sim *simulator.Simulator) map[string]any {
	t.Helper()
	calls := sim.Calls()
	for i := len(calls) - 1; i >= 0; i-- {
		if calls[i].Method == http.MethodPost {
			return plainJSON(t, calls[i].Body).(map[string]any)
		}
	}
	t.Fatal("no POST received")
	return nil
}

func goldenBody(t *testing.T, file string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return plainJSON(t, data).(map[string]any)
}

// nodeTemplate digs out nodes[i].template of a decoded body.
func nodeTemplate(body map[string]any, i int) map[string]any {
	return body["nodes"].([]any)[i].(map[string]any)["template"].(map[string]any)
}

// TestRunPipelineEndToEnd launches a pipeline by name from a branch into
// the simulator: the branch is resolved to its commit, the commit's
// valohai.yaml converted, the payload input and parameters applied, and the
// pipeline read back.
func TestRunPipelineEndToEnd(t *testing.T) {
	sim, c := newSimulated(t)
	ctx := context.Background()
	a := specAction(t, ActionRunPipeline, PipelineSpec{
		Project:       goldenProject,
		Commit:        "main",
		Pipeline:      "train-pipeline",
		Title:         "From webhook",
		Tags:          []string{"webhook", "push"},
		PayloadInputs: []NodeInput{{Node: "preprocess", Input: "dataset", URL: payloadURL}},
		Parameters: []NamedValue{
			{Name: "epochs", Value: 20},
			{Name: "train.learning_rate", Value: 0.05},
		},
	})
	res, err := c.Perform(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if res.Counter != 1 || res.ID == "" || res.Status != "started" || !strings.HasSuffix(res.DisplayURL, "/p/acme/ml/pipeline/1/") ||
		!strings.HasSuffix(res.URL, "/api/v0/pipelines/"+res.ID+"/") {
		t.Errorf("result = %+v", res)
	}
	wantCalls := []string{
		"GET /api/v0/commits/ OK",
		"GET /api/v0/commits/" + goldenCommit + "/ OK",
		"POST /api/v0/pipelines/ Created",
	}
	if got := callLines(sim); !reflect.DeepEqual(got, wantCalls) {
		t.Errorf("calls:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(wantCalls, "\n  "))
	}

	// What was sent is the golden conversion with the overrides applied.
	want := goldenBody(t, "pipeline-basic.json")
	want["title"] = "From webhook"
	want["tags"] = []any{"webhook", "push"}
	nodeTemplate(want, 0)["inputs"].(map[string]any)["dataset"] = []any{payloadURL}
	nodeTemplate(want, 1)["parameters"].(map[string]any)["learning_rate"] = 0.05
	want["parameters"].(map[string]any)["epochs"].(map[string]any)["expression"] = 20.0
	assertJSONEqual(t, lastPost(t, sim), want)

	// Read back by project:counter.
	p, err := c.GetPipeline(ctx, goldenProject+":1")
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != res.ID || p.Counter != 1 || p.Title != "From webhook" || p.Project != goldenProject ||
		!reflect.DeepEqual(p.Tags, []string{"webhook", "push"}) || len(p.Nodes) != 2 || len(p.Edges) != 3 {
		t.Errorf("pipeline read back = %+v", p)
	}
	if got := nodeTemplate(lastPost(t, sim), 0)["commit"]; got != goldenCommit {
		t.Errorf("nodes run commit %v, want the resolved %s", got, goldenCommit)
	}
}

// TestRunTaskPipelineEndToEnd: a pipeline with task nodes, by commit sha,
// is accepted by the simulator as converted.
func TestRunTaskPipelineEndToEnd(t *testing.T) {
	sim, c := newSimulated(t)
	res, err := c.Perform(context.Background(), specAction(t, ActionRunPipeline, PipelineSpec{
		Project:       goldenProject,
		Commit:        taskCommit,
		Pipeline:      "search",
		PayloadInputs: []NodeInput{{Node: "fetch-data", Input: "payload", URL: payloadURL}}, // by step name
	}))
	if err != nil {
		t.Fatalf("%v\ncalls: %v", err, callLines(sim))
	}
	if res.Counter != 1 {
		t.Errorf("counter = %d", res.Counter)
	}
	sent := lastPost(t, sim)
	if sent["title"] != "search" {
		t.Errorf("title = %v, want the pipeline name", sent["title"])
	}
	if got := nodeTemplate(sent, 0)["inputs"].(map[string]any)["payload"]; !reflect.DeepEqual(got, []any{payloadURL}) {
		t.Errorf("payload input = %v", got)
	}
	if got := nodeTemplate(sent, 1)["commit"]; got != taskCommit {
		t.Errorf("task node commit = %v", got)
	}
	if n := len(sim.Calls()); n != 2 {
		t.Errorf("%d calls, want 2 (a sha needs no commit list): %v", n, callLines(sim))
	}
}

// pipelineAnswer is GET /api/v0/pipelines/<id>/ in the shape valohai-cli's
// fixture records (tests/fixtures/data.py, PIPELINE_DATA): edges name
// nodes by id, nodes carry no template, and a node that ran embeds its
// execution (commit, step, parameters, environment). Here every node ran.
const pipelineAnswer = `{
 "counter": 21, "creator": {"id": 1, "username": "magda"}, "ctime": "2020-09-02T09:14:41.216963Z", "deleted": false,
 "id": "0174aaaa-0000-0000-0000-000000000000",
 "edges": [
  {"id": "e1", "pipeline": "0174aaaa-0000-0000-0000-000000000000", "source_key": "*train-images*",
   "source_node": "01744e18-c8c1-a267-44a2-5e7f0a86bf38", "source_type": "output",
   "target_key": "training-set-images", "target_node": "01744e18-c8c7-a1d4-d0be-0cb3cbfa7ee0", "target_type": "input"},
  {"id": "e2", "pipeline": "0174aaaa-0000-0000-0000-000000000000", "source_key": "model*",
   "source_node": "01744e18-c8c7-a1d4-d0be-0cb3cbfa7ee0", "source_type": "output",
   "target_key": "model", "target_node": "01744e18-c8c9-167b-c2b6-a9f06d0c1735", "target_type": "input"}],
 "log": [{"ctime": "2020-09-02T09:14:41.271304Z", "identifier": "started", "kind": "other", "message": "Pipeline started"}],
 "nodes": [
  {"id": "01744e18-c8c7-a1d4-d0be-0cb3cbfa7ee0", "log": [], "name": "train", "pipeline": "0174aaaa-0000-0000-0000-000000000000",
   "status": "complete", "type": "execution",
   "execution": {"id": "x2", "counter": 25, "step": "train model", "status": "complete",
    "commit": {"repository": 666, "identifier": "000aaa", "ref": "master", "commit_time": "2017-02-15T08:46:58Z"},
    "parameters": {"learning_rate": 0.001, "max_steps": 300}, "environment": {"id": "env-1", "name": "local"}}},
  {"id": "01744e18-c8c9-167b-c2b6-a9f06d0c1735", "log": [], "name": "evaluate", "pipeline": "0174aaaa-0000-0000-0000-000000000000",
   "status": "complete", "type": "execution",
   "execution": {"id": "x3", "counter": 26, "step": "evaluate", "status": "complete",
    "commit": {"identifier": "000aaa", "ref": "master"}, "parameters": {}, "environment": {"id": "env-1"}}},
  {"id": "01744e18-c8c1-a267-44a2-5e7f0a86bf38", "log": [], "name": "preprocess", "pipeline": "0174aaaa-0000-0000-0000-000000000000",
   "status": "complete", "type": "execution",
   "execution": {"id": "x1", "counter": 24, "step": "preprocess", "status": "complete",
    "commit": {"identifier": "000aaa", "ref": "master"}, "parameters": {"ratio": 0.5}, "environment": {"id": "env-1"}}}],
 "project": {"id": "000aaaaa-0000-0000-0000-000000000000", "name": "tensorflow-example"},
 "status": "complete", "title": "Training Pipeline", "tags": ["nightly"],
 "url": "http://127.0.0.1:8000/api/v0/pipelines/0174aaaa-0000-0000-0000-000000000000/",
 "urls": {"display": "http://127.0.0.1:8000/p/magda/tensorflow-example/pipeline/0174aaaa-0000-0000-0000-000000000000/"}
}`

// TestCopyPipelineRealShape copies a pipeline from the answer's real
// shape: edges are mapped from node ids to names, each node's template is
// rebuilt from the execution it ran, and the payload input is applied.
func TestCopyPipelineRealShape(t *testing.T) {
	srv, seen := newTestServer(t, route(map[string]http.HandlerFunc{
		"GET /api/v0/pipelines/src/": answer(200, pipelineAnswer),
		"POST /api/v0/pipelines/":    answer(201, `{"id":"new","counter":22}`),
	}))
	c := &Client{BaseURL: srv.URL, Token: testToken}
	res, err := c.Perform(context.Background(), specAction(t, ActionCopyPipeline, CopySpec{
		Source: "src", Tags: []string{"webhook:t"},
		PayloadInputs: []NodeInput{{Node: "preprocess", Input: "dataset", URL: payloadURL}},
	}))
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != "new" || res.Counter != 22 {
		t.Errorf("result %+v", res)
	}
	reqs := seen()
	if len(reqs) != 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	want := plainJSON(t, []byte(`{
 "project": "000aaaaa-0000-0000-0000-000000000000", "title": "Training Pipeline", "tags": ["nightly", "webhook:t"],
 "nodes": [
  {"name": "train", "type": "execution", "template": {"commit": "000aaa", "step": "train model",
   "parameters": {"learning_rate": 0.001, "max_steps": 300}, "environment": "env-1"}},
  {"name": "evaluate", "type": "execution", "template": {"commit": "000aaa", "step": "evaluate", "parameters": {}, "environment": "env-1"}},
  {"name": "preprocess", "type": "execution", "template": {"commit": "000aaa", "step": "preprocess",
   "parameters": {"ratio": 0.5}, "environment": "env-1", "inputs": {"dataset": ["`+payloadURL+`"]}}}],
 "edges": [
  {"source_node": "preprocess", "source_type": "output", "source_key": "*train-images*",
   "target_node": "train", "target_type": "input", "target_key": "training-set-images"},
  {"source_node": "train", "source_type": "output", "source_key": "model*",
   "target_node": "evaluate", "target_type": "input", "target_key": "model"}],
 "parameters": {}}`))
	assertJSONEqual(t, plainJSON(t, reqs[1].body), want)
}

// TestCopyPipelineFixtureShape: valohai-cli's PIPELINE_DATA itself, a
// pipeline still running whose train and evaluate nodes have no execution
// yet: the copy fails for good, before any POST, and says how to launch
// the graph instead.
func TestCopyPipelineFixtureShape(t *testing.T) {
	var p map[string]any
	if err := json.Unmarshal([]byte(pipelineAnswer), &p); err != nil {
		t.Fatal(err)
	}
	for _, n := range p["nodes"].([]any)[:2] {
		n.(map[string]any)["execution"] = nil
		n.(map[string]any)["status"] = "created"
	}
	data, _ := json.Marshal(p)
	srv, seen := newTestServer(t, route(map[string]http.HandlerFunc{
		"GET /api/v0/pipelines/src/": answer(200, string(data)),
	}))
	c := &Client{BaseURL: srv.URL, Token: testToken}
	_, err := c.Perform(context.Background(), specAction(t, ActionCopyPipeline, CopySpec{Source: "src"}))
	if err == nil || Retryable(err) || !strings.Contains(err.Error(), `node "train"`) ||
		!strings.Contains(err.Error(), "`pipeline <name>") {
		t.Errorf("err = %v, want a permanent error naming the node and pointing to `pipeline <name>`", err)
	}
	if n := len(seen()); n != 1 {
		t.Errorf("%d requests, want only the GET", n)
	}
}

// TestFetchRepositoryEndToEnd fetches twice: the first fetch reports the
// project's commits, the second none.
func TestFetchRepositoryEndToEnd(t *testing.T) {
	sim, c := newSimulated(t)
	a := &Action{Kind: ActionFetchRepository, Project: goldenProject, Body: json.RawMessage(`{}`)}
	for i, want := range [][]any{{goldenCommit, taskCommit}, {}} {
		res, err := c.Perform(context.Background(), a)
		if err != nil {
			t.Fatal(err)
		}
		// As stored with the run.
		stored := marshalPlain(t, res).(map[string]any)
		extra := stored["extra"].(map[string]any)
		if !reflect.DeepEqual(extra["commits"], want) || !reflect.DeepEqual(extra["errors"], []any{}) || stored["status"] != "fetched" {
			t.Errorf("fetch #%d: result = %v, want commits %v", i+1, stored, want)
		}
	}
	if got, want := callLines(sim), []string{
		"POST /api/v0/projects/" + goldenProject + "/fetch/ Created",
		"POST /api/v0/projects/" + goldenProject + "/fetch/ Created",
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("calls = %v", got)
	}
}

// TestRunPipelineFailures: what fails for good and what is retried, and
// that nothing is created when the body cannot be built.
func TestRunPipelineFailures(t *testing.T) {
	base := PipelineSpec{Project: goldenProject, Commit: "main", Pipeline: "train-pipeline"}
	with := func(change func(*PipelineSpec)) PipelineSpec {
		s := base
		change(&s)
		return s
	}
	for _, tt := range []struct {
		name      string
		spec      PipelineSpec
		fail      int // injected 503s before the first call
		retryable bool
		want      string
	}{
		{name: "unknown pipeline", spec: with(func(s *PipelineSpec) { s.Pipeline = "nightly" }),
			want: `pipeline "nightly": not defined in valohai.yaml at commit ` + goldenCommit + ` (pipelines: "train-pipeline")`},
		{name: "unknown commit", spec: with(func(s *PipelineSpec) { s.Commit = "release" }),
			want: `commit or branch "release" is not known to project`}, // after one fetch and one more list
		{name: "unknown project", spec: with(func(s *PipelineSpec) { s.Project = "nope" }), want: `valohai: 400 Bad Request: {"project":`},
		{name: "unknown payload input", spec: with(func(s *PipelineSpec) {
			s.PayloadInputs = []NodeInput{{Node: "train", Input: "dataset", URL: payloadURL}}
		}), want: `node "train" (step "train") has no input "dataset" (inputs: "data")`},
		{name: "payload input not a URI", spec: with(func(s *PipelineSpec) {
			s.PayloadInputs = []NodeInput{{Node: "train", Input: "data", URL: "/tmp/x"}}
		}), want: `"/tmp/x" is not a URI`},
		{name: "unknown parameter", spec: with(func(s *PipelineSpec) {
			s.Parameters = []NamedValue{{Name: "train.momentum", Value: 0.9}}
		}), want: `node "train" (step "train") has no parameter "momentum"`},
		{name: "valohai unavailable", spec: base, fail: 1, retryable: true, want: "503"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sim, c := newSimulated(t)
			sim.Fail(tt.fail, http.StatusServiceUnavailable, 0)
			_, err := c.Perform(context.Background(), specAction(t, ActionRunPipeline, tt.spec))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v\nwant it to contain %q", err, tt.want)
			}
			if Retryable(err) != tt.retryable {
				t.Errorf("Retryable = %v, want %v", Retryable(err), tt.retryable)
			}
			if strings.Contains(err.Error(), testToken) {
				t.Error("token in error")
			}
			for _, call := range sim.Calls() {
				if call.Method == http.MethodPost && strings.HasSuffix(call.Path, "/pipelines/") {
					t.Errorf("a pipeline was created: %s", call.Body)
				}
			}
		})
	}
	// The conversion error is a *PipelineError callers can recognize.
	_, c := newSimulated(t)
	_, err := c.Perform(context.Background(), specAction(t, ActionRunPipeline, with(func(s *PipelineSpec) { s.Pipeline = "x" })))
	var pe *PipelineError
	if !errors.As(err, &pe) || pe.Pipeline != "x" {
		t.Errorf("err = %#v, want a *PipelineError for x", err)
	}

	// Project from the action when the spec has none.
	sim, c := newSimulated(t)
	a := specAction(t, ActionRunPipeline, with(func(s *PipelineSpec) { s.Project = "" }))
	a.Project = goldenProject
	if _, err := c.Perform(context.Background(), a); err != nil {
		t.Errorf("project from the action: %v (calls %v)", err, callLines(sim))
	}
}

// TestPipelineCreateAnswers: the POST's answer decides retries, as for
// executions.
func TestPipelineCreateAnswers(t *testing.T) {
	const sha = "abcabcabcabcabcabcabcabcabcabcabcabcabca"
	const commit = `{"identifier":"` + sha + `","ref":"main","config":[
 {"step":{"name":"s","image":"i","command":"c"}},
 {"pipeline":{"name":"p","nodes":[{"name":"n","type":"execution","step":"s"}],"edges":[]}}]}`
	for status, retryable := range map[int]bool{400: false, 403: false, 429: true, 500: true, 503: true} {
		srv, seen := newTestServer(t, route(map[string]http.HandlerFunc{
			"GET /api/v0/commits/" + sha + "/": answer(200, commit),
			"POST /api/v0/pipelines/":          answer(status, `{"nodes":[{"template":{"step":["bad"]}}]}`),
		}))
		c := &Client{BaseURL: srv.URL, Token: testToken}
		_, err := c.Perform(context.Background(), specAction(t, ActionRunPipeline, PipelineSpec{Project: "p", Commit: sha, Pipeline: "p"}))
		var apiErr *APIError
		if !errors.As(err, &apiErr) || apiErr.Status != status || Retryable(err) != retryable {
			t.Errorf("%d: err = %v, retryable %v", status, err, Retryable(err))
		}
		reqs := seen()
		if len(reqs) != 2 || reqs[1].method != http.MethodPost {
			t.Errorf("%d: %d requests", status, len(reqs))
			continue
		}
		sent := plainJSON(t, reqs[1].body).(map[string]any)
		if sent["project"] != "p" || sent["title"] != "p" || nodeTemplate(sent, 0)["commit"] != sha {
			t.Errorf("%d: sent %v", status, sent)
		}
	}
}

func TestCopyPipelineFailures(t *testing.T) {
	for _, tt := range []struct {
		name, answer string
		status       int
		retryable    bool
		want         string
	}{
		{name: "not found", answer: `{"detail":"Not found."}`, status: 404, want: "404"},
		{name: "unavailable", answer: ``, status: 502, retryable: true, want: "502"},
		{name: "no template", status: 200, answer: `{"id":"x","title":"t","project":"p",
			"nodes":[{"name":"a","type":"execution","status":"complete"}]}`,
			want: `copy_pipeline src: pipeline "t": node "a": Valohai's answer carries no template for it`},
		{name: "no project", status: 200, answer: `{"id":"x","title":"t","nodes":[{"name":"m","type":"mimic","source":"n"}]}`,
			want: "no project"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv, seen := newTestServer(t, route(map[string]http.HandlerFunc{
				"GET /api/v0/pipelines/src/": answer(tt.status, tt.answer),
			}))
			c := &Client{BaseURL: srv.URL, Token: testToken}
			_, err := c.Perform(context.Background(), specAction(t, ActionCopyPipeline, CopySpec{
				Source: "src", PayloadInputs: []NodeInput{{Node: "a", Input: "i", URL: payloadURL}},
			}))
			if err == nil || !strings.Contains(err.Error(), tt.want) || Retryable(err) != tt.retryable {
				t.Errorf("err = %v (retryable %v), want %q (retryable %v)", err, Retryable(err), tt.want, tt.retryable)
			}
			if n := len(seen()); n != 1 {
				t.Errorf("%d requests, want only the GET", n)
			}
		})
	}
}

// TestPipelineCopy checks what a copy keeps of a pipeline as the API
// returns it, and drops: the server's record of the run.
func TestPipelineCopy(t *testing.T) {
	const answer = `{
 "id":"0190c000-0000-7000-8000-000000000001","counter":5,"status":"complete","title":"nightly",
 "project":{"id":"proj-1"},"tags":["a"],
 "nodes":[
  {"id":"n1","name":"train","type":"execution","status":"complete","execution":{"id":"e1","counter":9},"log":[{"x":1}],
   "on-error":"continue","edge-merge-mode":"append",
   "actions":[{"when":["node-complete"],"if":[],"then":["stop-pipeline"]}],
   "template":{"project":"proj-1","commit":"abc","step":"train","parameters":{"epochs":10},"inputs":{"data":[]},"runtime_config":{}}},
  {"id":"n2","name":"deploy","type":"deployment","status":"created","execution":null,
   "deployment":{"id":"dep-1","name":"digits"},"commit":"abc","aliases":["staging"],"endpoints":["predict"],
   "endpoint_configurations":{"predict":{"enabled":true,"files":{}}}},
  {"id":"n3","name":"reused","type":"mimic","source":"n0","status":"complete"}],
 "edges":[{"id":"e1","pipeline":"0190c000","source_node":"train","source_type":"output","source_key":"model*",
   "target_node":"deploy","target_type":"file","target_key":"predict.model","configuration":{}}],
 "parameters":{"epochs":{"config":{"name":"epochs","default":10,"targets":["train.parameters.epochs"]},"expression":12}}}`
	srv, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, answer) })
	p, err := (&Client{BaseURL: srv.URL}).GetPipeline(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	body, err := p.Copy()
	if err != nil {
		t.Fatal(err)
	}
	want := plainJSON(t, []byte(`{
 "project":"proj-1","title":"nightly","tags":["a"],
 "nodes":[
  {"name":"train","type":"execution","on-error":"continue","edge-merge-mode":"append",
   "actions":[{"when":["node-complete"],"if":[],"then":["stop-pipeline"]}],
   "template":{"commit":"abc","step":"train","parameters":{"epochs":10},"inputs":{"data":[]},"runtime_config":{}}},
  {"name":"deploy","type":"deployment","deployment":"dep-1","commit":"abc","aliases":["staging"],"endpoints":["predict"],
   "endpoint_configurations":{"predict":{"enabled":true,"files":{}}}},
  {"name":"reused","type":"mimic","source":"n0"}],
 "edges":[{"source_node":"train","source_type":"output","source_key":"model*",
   "target_node":"deploy","target_type":"file","target_key":"predict.model"}],
 "parameters":{"epochs":{"config":{"name":"epochs","default":10,"targets":["train.parameters.epochs"]},"expression":12}}}`))
	assertJSONEqual(t, marshalPlain(t, body), want)

	// The copy shares nothing with the source.
	body.Node("train").Template["parameters"].(map[string]any)["epochs"] = 1
	if p.Nodes[0]["template"].(map[string]any)["parameters"].(map[string]any)["epochs"] != json.Number("10") {
		t.Error("changing the copy changed the source")
	}

	for name, tt := range map[string]struct {
		p    Pipeline
		want string
	}{
		"no nodes":     {Pipeline{Title: "t"}, `pipeline "t": has no nodes to copy`},
		"nameless":     {Pipeline{Nodes: []map[string]any{{"type": "mimic"}}}, "node #1 has no name"},
		"unknown type": {Pipeline{Nodes: []map[string]any{{"name": "a", "type": "webhook"}}}, `node "a" has type "webhook"`},
		"duplicate":    {Pipeline{Nodes: []map[string]any{{"name": "a", "type": "mimic"}, {"name": "a", "type": "mimic"}}}, `more than one node is named "a"`},
		"edge to a missing node": {Pipeline{
			Nodes: []map[string]any{{"name": "a", "type": "mimic"}},
			Edges: []map[string]any{{"source_node": "a", "source_type": "output", "source_key": "x", "target_node": "b", "target_type": "input", "target_key": "y"}},
		}, `edge #1 connects "a" to "b", but the pipeline's nodes are "a"`},
		"edge missing a field": {Pipeline{
			Nodes: []map[string]any{{"name": "a", "type": "mimic"}},
			Edges: []map[string]any{{"source_node": "a", "source_type": "output"}},
		}, "edge #1 has no source_key"},
		"parameter not an object": {Pipeline{
			Nodes:      []map[string]any{{"name": "a", "type": "mimic"}},
			Parameters: map[string]any{"x": 3},
		}, `parameter "x" is not an object`},
	} {
		if _, err := tt.p.Copy(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tt.want)
		}
	}
}

// TestActionSpecJSON pins the JSON the Caddy glue stores in Action.Body.
func TestActionSpecJSON(t *testing.T) {
	for _, tt := range []struct {
		spec any
		want string
	}{
		{PipelineSpec{Project: "p", Commit: "main", Pipeline: "x", Title: "T", Tags: []string{"a"},
			PayloadInputs: []NodeInput{{Node: "n", Input: "i", URL: "https://u"}},
			Parameters:    []NamedValue{{Name: "epochs", Value: 5}}},
			`{"project":"p","commit":"main","pipeline":"x","title":"T","tags":["a"],"payload_inputs":[{"node":"n","input":"i","url":"https://u"}],"parameters":[{"name":"epochs","value":5}]}`},
		{PipelineSpec{Project: "p", Commit: "main", Pipeline: "x"}, `{"project":"p","commit":"main","pipeline":"x"}`},
		{CopySpec{Source: "p:3", Title: "t"}, `{"source":"p:3","title":"t"}`},
		{FetchSpec{Project: "p"}, `{"project":"p"}`},
	} {
		data, err := json.Marshal(tt.spec)
		if err != nil || string(data) != tt.want {
			t.Errorf("%T marshals to %s (%v), want %s", tt.spec, data, err, tt.want)
		}
	}
	// Values keep their exact JSON number through the stored body.
	var spec PipelineSpec
	if err := decodeSpec(&Action{Kind: ActionRunPipeline, Body: json.RawMessage(`{"parameters":[{"name":"n","value":12345678901234567890}]}`)}, &spec); err != nil {
		t.Fatal(err)
	}
	if v := spec.Parameters[0].Value; v != json.Number("12345678901234567890") {
		t.Errorf("value = %#v", v)
	}
}

// TestFetchRepositoryReportsErrors: fetch errors are recorded, and do not
// fail the action (Valohai answered 201).
func TestFetchRepositoryReportsErrors(t *testing.T) {
	srv, seen := newTestServer(t, answer(201, `{"commits":[{"identifier":"b2"},{"identifier":"a1"}],"errors":["Could not fetch ref x"]}`))
	c := &Client{BaseURL: srv.URL, Token: testToken}
	res, err := c.Perform(context.Background(), specAction(t, ActionFetchRepository, FetchSpec{Project: "proj-9"}))
	if err != nil {
		t.Fatal(err)
	}
	stored := marshalPlain(t, res).(map[string]any)
	want := map[string]any{"status": "fetched_with_errors", "extra": map[string]any{
		"commits": []any{"b2", "a1"}, // Valohai's order
		"errors":  []any{"Could not fetch ref x"},
	}}
	if !reflect.DeepEqual(stored, want) {
		t.Errorf("result = %v, want %v", stored, want)
	}
	if p := seen()[0].path; p != "/api/v0/projects/proj-9/fetch/" {
		t.Errorf("path = %s", p)
	}
	srv503, _ := newTestServer(t, answer(503, ``))
	c = &Client{BaseURL: srv503.URL, Token: testToken}
	if _, err := c.Perform(context.Background(), specAction(t, ActionFetchRepository, FetchSpec{Project: "p"})); !Retryable(err) {
		t.Errorf("503: err = %v, want retryable", err)
	}
}
