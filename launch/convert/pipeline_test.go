package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hooklaunch/caddy-valohai/launch/internal/jsontest"
	"github.com/hooklaunch/caddy-valohai/launch/simulator"
)

const (
	goldenProject = jsontest.GoldenProject
	goldenCommit  = jsontest.GoldenCommit
)

// loadConfig parses a valohai.yaml from testdata the way the simulator
// serves it.
func loadConfig(t testing.TB, name string) []any {
	t.Helper()
	return jsontest.LoadConfig(t, filepath.Join(testdataDir, name))
}

func parseYAMLConfig(t testing.TB, yaml string) []any {
	t.Helper()
	config, err := simulator.ParseConfigYAML([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return config
}

// viaAPI sends a config through JSON as the client receives it from the
// API: numbers become json.Number.
func viaAPI(t testing.TB, config []any) []any {
	t.Helper()
	data, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	var out []any
	if err := decodeNumbers(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func plainJSON(t testing.TB, data []byte) any { t.Helper(); return jsontest.Plain(t, data) }

func marshalPlain(t testing.TB, v any) any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return plainJSON(t, data)
}

func jsonDiff(path string, got, want any) []string { return jsontest.Diff(path, got, want) }

func assertJSONEqual(t *testing.T, got, want any) {
	t.Helper()
	if diffs := jsonDiff("$", got, want); len(diffs) > 0 {
		t.Errorf("body differs from the expected one:\n  %s", strings.Join(diffs, "\n  "))
	}
}

// TestConvertPipelineGolden converts real-shaped valohai.yaml files and
// compares the bodies with hand-checked expected ones, both for the config
// as parsed from YAML and as received from the API through JSON.
func TestConvertPipelineGolden(t *testing.T) {
	for _, tt := range []struct{ file, pipeline string }{
		{"pipeline-basic", "train-pipeline"},
		{"pipeline-task", "search"},
		{"pipeline-overrides", "harbors"},
		{"pipeline-deploy", "train-and-deploy"},
	} {
		wantData, err := os.ReadFile(filepath.Join(testdataDir, tt.file+".json"))
		if err != nil {
			t.Fatal(err)
		}
		want := plainJSON(t, wantData)
		config := loadConfig(t, tt.file+".yaml")
		for source, cfg := range map[string][]any{"yaml": config, "api": viaAPI(t, config)} {
			t.Run(tt.file+"/"+source, func(t *testing.T) {
				body, err := ConvertPipeline(cfg, goldenCommit, tt.pipeline)
				if err != nil {
					t.Fatal(err)
				}
				if body.Project != "" {
					t.Errorf("Project = %q, want it left to the caller", body.Project)
				}
				body.Project = goldenProject
				assertJSONEqual(t, marshalPlain(t, body), want)
			})
		}
	}
}

// TestConvertPipelineCopiesConfig checks that a body shares nothing with
// the config it came from: overriding one body leaves the config, and so
// the next conversion, untouched.
func TestConvertPipelineCopiesConfig(t *testing.T) {
	config := loadConfig(t, "pipeline-overrides.yaml")
	first, err := ConvertPipeline(config, goldenCommit, "harbors")
	if err != nil {
		t.Fatal(err)
	}
	before := marshalPlain(t, first)
	first.Node("prep-a").Template["parameters"].(map[string]any)["sources"].([]any)[0] = "mutated"
	first.Node("prep-a").Template["inputs"].(map[string]any)["extra"].([]any)[0] = "mutated://x"
	first.Parameters["sources"].Config["default"].([]any)[0] = "mutated"
	second, err := ConvertPipeline(config, goldenCommit, "harbors")
	if err != nil {
		t.Fatal(err)
	}
	assertJSONEqual(t, marshalPlain(t, second), before)
}

// TestConvertPipelineErrors checks the converter's own refusals, without
// the schema check in front of it (TestValidateConfigParity covers that).
func TestConvertPipelineErrors(t *testing.T) {
	const steps = `
- step: {name: prep, image: python:3.12, command: python prep.py, inputs: [{name: data}], parameters: [{name: n, default: 1}]}
- step: {name: train, image: python:3.12, command: python train.py}
- task: {name: broken-task}
`
	tests := []struct {
		name, yaml, pipeline, commit string
		want                         string
	}{
		{"unknown pipeline", steps + `
- pipeline: {name: nightly, nodes: [{name: a, type: execution, step: prep}]}
- pipeline: {name: weekly, nodes: [{name: a, type: execution, step: prep}]}`,
			"hourly", goldenCommit, `pipeline "hourly": not defined in valohai.yaml at commit ` + goldenCommit + ` (pipelines: "nightly", "weekly")`},
		{"no pipelines at all", steps, "nightly", goldenCommit, `which defines no pipelines`},
		{"no pipeline name", steps, "", goldenCommit, `no pipeline name given`},
		{"no commit", steps + `
- pipeline: {name: p, nodes: [{name: a, type: execution, step: prep}]}`, "p", "", `pipeline "p": no commit given`},
		{"unknown step", steps + `
- pipeline: {name: p, nodes: [{name: fit, type: execution, step: fit}]}`,
			"p", goldenCommit, `pipeline "p": node "fit": step "fit" is not defined in valohai.yaml at commit ` + goldenCommit + ` (steps: "prep", "train")`},
		{"unknown task", steps + `
- pipeline: {name: p, nodes: [{name: sweep, type: task, task: nope}]}`, "p", goldenCommit, `node "sweep": task "nope" is not defined`},
		{"task without step", steps + `
- pipeline: {name: p, nodes: [{name: sweep, type: task, task: broken-task}]}`, "p", goldenCommit, `task "broken-task" names no step`},
		{"execution naming a task", steps + `
- pipeline: {name: p, nodes: [{name: sweep, type: execution, task: broken-task}]}`, "p", goldenCommit, `only task nodes can name a task`},
		{"node without step", steps + `
- pipeline: {name: p, nodes: [{name: a, type: execution}]}`, "p", goldenCommit, `node "a" names no step`},
		{"node without type", steps + `
- pipeline: {name: p, nodes: [{name: a, step: prep}]}`, "p", goldenCommit, `node "a" has no type`},
		{"unknown node type", steps + `
- pipeline: {name: p, nodes: [{name: a, type: mimic, step: prep}]}`, "p", goldenCommit, `node "a": type "mimic" cannot be converted`},
		{"node without name", steps + `
- pipeline: {name: p, nodes: [{type: execution, step: prep}]}`, "p", goldenCommit, `node #1 has no name`},
		{"duplicate node", steps + `
- pipeline: {name: p, nodes: [{name: a, type: execution, step: prep}, {name: a, type: execution, step: train}]}`,
			"p", goldenCommit, `more than one node is named "a"`},
		{"no nodes", steps + `
- pipeline: {name: p, nodes: []}`, "p", goldenCommit, `pipeline "p": has no nodes`},
		{"nodes not a list", steps + `
- pipeline: {name: p, nodes: {a: 1}}`, "p", goldenCommit, `pipeline: nodes must be a list, not a mapping`},
		{"edge to unknown node", steps + `
- pipeline:
    name: p
    nodes: [{name: a, type: execution, step: prep}, {name: b, type: execution, step: train}]
    edges: [[a.output.x, c.input.data]]`, "p", goldenCommit, `edge #1: target "c.input.data" names node "c", which the pipeline does not have`},
		{"edge from unknown node, map form", steps + `
- pipeline:
    name: p
    nodes: [{name: a, type: execution, step: prep}]
    edges: [{source: z.output.x, target: a.input.data}]`, "p", goldenCommit, `edge #1: source "z.output.x" names node "z"`},
		{"edge with two parts", steps + `
- pipeline:
    name: p
    nodes: [{name: a, type: execution, step: prep}]
    edges: [[a.output, a.input.data]]`, "p", goldenCommit, `edge #1: source "a.output" is not node.type.key`},
		{"edge with an unknown type", steps + `
- pipeline:
    name: p
    nodes: [{name: a, type: execution, step: prep}]
    edges: [[a.outputs.x, a.input.data]]`, "p", goldenCommit, `has type "outputs"`},
		{"edge of three items", steps + `
- pipeline:
    name: p
    nodes: [{name: a, type: execution, step: prep}]
    edges: [[a.output.x, a.input.data, a.input.data]]`, "p", goldenCommit, `edge #1 must be [source, target], not a list of 3`},
		{"parameter target to unknown node", steps + `
- pipeline:
    name: p
    nodes: [{name: a, type: execution, step: prep}]
    parameters: [{name: n, target: b.parameter.n, default: 2}]`, "p", goldenCommit, `parameter "n": target "b.parameter.n" names node "b"`},
		{"parameter target not a parameter", steps + `
- pipeline:
    name: p
    nodes: [{name: a, type: execution, step: prep}]
    parameters: [{name: n, targets: [a.input.data]}]`, "p", goldenCommit, `must point at a node's parameter`},
		{"parameter with target and targets", steps + `
- pipeline:
    name: p
    nodes: [{name: a, type: execution, step: prep}]
    parameters: [{name: n, target: a.parameter.n, targets: [a.parameter.n]}]`, "p", goldenCommit, `has both target and targets`},
		{"bad on-error", steps + `
- pipeline: {name: p, nodes: [{name: a, type: execution, step: prep, on-error: explode}]}`, "p", goldenCommit, `on-error explode is not one of`},
		{"bad duration", `
- step: {name: prep, image: x, command: y, time-limit: 5 fortnights}
- pipeline: {name: p, nodes: [{name: a, type: execution, step: prep}]}`, "p", goldenCommit, `time-limit: "5 fortnights" has an unknown unit "fortnights"`},
		{"bad mount", `
- step: {name: prep, image: x, command: y, mounts: [/no-colon]}
- pipeline: {name: p, nodes: [{name: a, type: execution, step: prep}]}`, "p", goldenCommit, `mount "/no-colon" is not source:destination`},
		{"parameter without a name", `
- step: {name: prep, image: x, command: y, parameters: [{default: 1}]}
- pipeline: {name: p, nodes: [{name: a, type: execution, step: prep}]}`, "p", goldenCommit, `step "prep": parameters #1 has no name`},
		{"bad task type", `
- step: {name: prep, image: x, command: y}
- task: {name: t, step: prep, type: exhaustive}
- pipeline: {name: p, nodes: [{name: a, type: task, task: t}]}`, "p", goldenCommit, `type exhaustive is not one of`},
		{"variant without rules", `
- step: {name: prep, image: x, command: y}
- task: {name: t, step: prep, parameters: [{name: n, style: linear}]}
- pipeline: {name: p, nodes: [{name: a, type: task, task: t}]}`, "p", goldenCommit, `parameter "n" has no rules`},
		{"deployment without deployment", steps + `
- pipeline: {name: p, nodes: [{name: d, type: deployment}]}`, "p", goldenCommit, `a deployment node needs a deployment`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := convertPipeline(parseYAMLConfig(t, tt.yaml), tt.commit, tt.pipeline)
			if err == nil {
				t.Fatalf("no error; body %s", compactJSON(marshalPlain(t, body)))
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tt.want)
			}
			var pe *PipelineError
			if !errors.As(err, &pe) {
				t.Errorf("error is %T, want *PipelineError", err)
			}
		})
	}
}

// TestConvertPipelineSkipsOtherEntries: entries that are not steps or
// pipelines, or are malformed, do not stop the conversion of a pipeline
// that does not use them.
func TestConvertPipelineSkipsOtherEntries(t *testing.T) {
	config := []any{
		"not a mapping",
		nil,
		map[string]any{"endpoint": map[string]any{"name": "e"}},
		map[string]any{"step": "not a mapping"},
		map[string]any{"step": map[string]any{"image": "no name"}},
		map[any]any{"step": map[any]any{"name": "prep", "image": "x", "command": "y", 3: "odd key"}},
		map[string]any{"pipeline": map[string]any{"name": "p", "nodes": []any{
			map[string]any{"name": "a", "type": "execution", "step": "prep"},
		}}},
	}
	// valohai-yaml's schema refuses such a file (ConvertPipeline does too);
	// the converter behind it skips what it cannot read.
	var ce *ConfigError
	if _, err := ConvertPipeline(config, goldenCommit, "p"); !errors.As(err, &ce) {
		t.Errorf("ConvertPipeline err = %v, want a *ConfigError", err)
	}
	body, err := convertPipeline(config, goldenCommit, "p")
	if err != nil {
		t.Fatal(err)
	}
	if got := body.Node("a").Template["image"]; got != "x" {
		t.Errorf("image = %v", got)
	}
	if _, err := json.Marshal(body); err != nil {
		t.Errorf("body does not marshal: %v", err)
	}
}

func convertFile(t *testing.T, file, pipeline string) *PipelineBody {
	t.Helper()
	body, err := ConvertPipeline(viaAPI(t, loadConfig(t, file)), goldenCommit, pipeline)
	if err != nil {
		t.Fatal(err)
	}
	return body
}

func TestSetNodeInput(t *testing.T) {
	const payload = "https://gw.example.com/payloads/run-1?expires=1&signature=abc"
	body := convertFile(t, "pipeline-basic.yaml", "train-pipeline")
	if err := body.SetNodeInput("preprocess", "dataset", payload); err != nil {
		t.Fatal(err)
	}
	if err := body.SetNodeInput("train", "data", "s3://a/1", "s3://a/2"); err != nil {
		t.Fatal(err)
	}
	got := marshalPlain(t, body).(map[string]any)["nodes"].([]any)
	if in := got[0].(map[string]any)["template"].(map[string]any)["inputs"]; !reflect.DeepEqual(in,
		map[string]any{"dataset": []any{payload}, "labels": []any{}}) {
		t.Errorf("preprocess inputs = %v", in)
	}
	if in := got[1].(map[string]any)["template"].(map[string]any)["inputs"]; !reflect.DeepEqual(in,
		map[string]any{"data": []any{"s3://a/1", "s3://a/2"}}) {
		t.Errorf("train inputs = %v", in)
	}

	// A node may be named by the step it runs when one node runs it.
	task := convertFile(t, "pipeline-task.yaml", "search")
	if err := task.SetNodeInput("fetch-data", "payload", payload); err != nil {
		t.Fatal(err)
	}
	if in := task.Node("fetch").Template["inputs"].(map[string]any)["payload"]; !reflect.DeepEqual(in, []any{payload}) {
		t.Errorf("fetch payload = %v", in)
	}

	overrides := convertFile(t, "pipeline-overrides.yaml", "harbors")
	deploy := convertFile(t, "pipeline-deploy.yaml", "train-and-deploy")
	for _, tt := range []struct {
		name        string
		body        *PipelineBody
		node, input string
		urls        []string
		want        string
	}{
		{"unknown node", body, "evaluate", "data", []string{payload},
			`pipeline "train-pipeline": has no node "evaluate" (nodes: "preprocess", "train")`},
		{"unknown input", body, "preprocess", "datasets", []string{payload},
			`node "preprocess" (step "preprocess") has no input "datasets" (inputs: "dataset", "labels")`},
		{"step without inputs", deploy, "train", "data", []string{payload}, `has no inputs, so it cannot take input "data"`},
		{"deployment node", deploy, "deploy", "model", []string{payload}, `node "deploy" is a deployment node`},
		{"step run by two nodes", overrides, "preprocess", "dataset", []string{payload},
			`step "preprocess" is run by several nodes ("prep-a", "prep-b"): name the node`},
		{"not a URI", body, "preprocess", "dataset", []string{"payload.json"}, `"payload.json" is not a URI`},
		{"URI with a space", body, "preprocess", "dataset", []string{"https://x/a b"}, `is not a URI`},
		{"signed URL is not echoed", body, "preprocess", "dataset", []string{"https://gw/p/run 1?expires=1&signature=SECRETSIG"},
			`"https://gw/p/run 1?…" is not a URI`},
		{"no URL", body, "preprocess", "dataset", nil, `no URL given for input "dataset"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := marshalPlain(t, tt.body)
			err := tt.body.SetNodeInput(tt.node, tt.input, tt.urls...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tt.want)
			}
			var pe *PipelineError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *PipelineError", err)
			}
			if strings.Contains(err.Error(), "SECRETSIG") {
				t.Errorf("signature leaked into %q", err)
			}
			assertJSONEqual(t, marshalPlain(t, tt.body), before) // unchanged
		})
	}
}

func TestSetParameter(t *testing.T) {
	body := convertFile(t, "pipeline-overrides.yaml", "harbors")
	for _, set := range []struct {
		name  string
		value any
	}{
		{"threshold", json.Number("0.9")},
		{"sources", []string{"harbor-c", "harbor-d"}},
		{"sample", 0.25},
		{"prep-b.sample", 0.5},
		{"evaluate.threshold", true}, // by step name: one node runs evaluate
	} {
		if err := body.SetParameter(set.name, set.value); err != nil {
			t.Fatalf("SetParameter(%q): %v", set.name, err)
		}
	}
	got := marshalPlain(t, body).(map[string]any)
	params := got["parameters"].(map[string]any)
	for name, want := range map[string]any{
		"threshold": 0.9,
		"sources":   map[string]any{"style": "single", "rules": map[string]any{"value": []any{"harbor-c", "harbor-d"}}},
		"sample":    0.25,
	} {
		if expr := params[name].(map[string]any)["expression"]; !reflect.DeepEqual(expr, want) {
			t.Errorf("parameter %s expression = %v, want %v", name, expr, want)
		}
	}
	// The config (default, targets) is not touched by an override.
	if def := params["threshold"].(map[string]any)["config"].(map[string]any)["default"]; def != 0.75 {
		t.Errorf("threshold default = %v, want 0.75", def)
	}
	if v := body.Node("prep-b").Template["parameters"].(map[string]any)["sample"]; v != 0.5 {
		t.Errorf("prep-b sample = %v", v)
	}
	if v := body.Node("prep-a").Template["parameters"].(map[string]any)["sample"]; marshalPlain(t, v) != 1.0 {
		t.Errorf("prep-a sample = %v, want the default 1 (only prep-b was set)", v)
	}
	if v := body.Node("check").Template["parameters"].(map[string]any)["threshold"]; v != true {
		t.Errorf("check threshold = %v", v)
	}

	basic := convertFile(t, "pipeline-basic.yaml", "train-pipeline")
	deploy := convertFile(t, "pipeline-deploy.yaml", "train-and-deploy")
	for _, tt := range []struct {
		name      string
		body      *PipelineBody
		parameter string
		value     any
		want      string
	}{
		{"unknown pipeline parameter", basic, "epoch", 3,
			`pipeline "train-pipeline": has no parameter "epoch" (parameters: "epochs"); use <node>.<parameter>`},
		{"no pipeline parameters", deploy, "epochs", 3, `has no pipeline parameters, so "epochs" cannot be set`},
		{"unknown node", basic, "evaluate.epochs", 3, `has no node "evaluate"`},
		{"unknown node parameter", basic, "train.epoch", 3,
			`node "train" (step "train") has no parameter "epoch" (parameters: "epochs", "learning_rate", "seed")`},
		{"an input, not a parameter", basic, "train.data", "s3://x/y", `"data" is an input of node "train", not a parameter; give it as a payload input`},
		{"deployment node", deploy, "deploy.epochs", 3, `node "deploy" is a deployment node`},
		{"not JSON", basic, "epochs", make(chan int), `parameter "epochs": the value cannot be sent as JSON`},
		{"trailing dot", basic, "train.", 3, `has no parameter "train."`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := marshalPlain(t, tt.body)
			err := tt.body.SetParameter(tt.parameter, tt.value)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tt.want)
			}
			var pe *PipelineError
			if !errors.As(err, &pe) {
				t.Errorf("error %T is not a *PipelineError", err)
			}
			assertJSONEqual(t, marshalPlain(t, tt.body), before)
		})
	}
}

func TestPipelineBodyMarshalsEmptyCollections(t *testing.T) {
	got := marshalPlain(t, PipelineBody{Project: "p", Title: "t"})
	want := map[string]any{"project": "p", "title": "t", "tags": []any{}, "nodes": []any{}, "edges": []any{}, "parameters": map[string]any{}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("marshalled %v, want %v", got, want)
	}
	// Known fields win over Fields of the same name.
	node := marshalPlain(t, PipelineNode{Name: "n", Type: "mimic", Fields: map[string]any{"name": "x", "source": "id"}})
	if !reflect.DeepEqual(node, map[string]any{"name": "n", "type": "mimic", "source": "id"}) {
		t.Errorf("node marshalled %v", node)
	}
}

func TestSplitNodeRef(t *testing.T) {
	for in, want := range map[string][3]any{
		"preprocess.dataset": {"preprocess", "dataset", true},
		"a.b.c":              {"a.b", "c", true},
		"nodot":              {"", "", false},
		".x":                 {"", "", false},
		"x.":                 {"", "", false},
		"":                   {"", "", false},
	} {
		node, name, ok := SplitNodeRef(in)
		if got := [3]any{node, name, ok}; got != want {
			t.Errorf("SplitNodeRef(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestDurationSeconds(t *testing.T) {
	for _, tt := range []struct {
		in   any
		secs int64
		set  bool
		bad  bool
	}{
		{in: nil},
		{in: ""},
		{in: "  "},
		{in: 0},
		{in: 600, secs: 600, set: true},
		{in: json.Number("3600"), secs: 3600, set: true},
		{in: float64(90), secs: 90, set: true},
		{in: "2h", secs: 7200, set: true},
		{in: "1h 30m", secs: 5400, set: true},
		{in: "1.5h", secs: 5400, set: true},
		{in: "2 days", secs: 172800, set: true},
		{in: "1w", secs: 604800, set: true},
		{in: "45 seconds", secs: 45, set: true},
		{in: "600", secs: 600, set: true}, // valohai-yaml crashes on a unitless string
		{in: "0s", bad: true},
		{in: "soon", bad: true},
		{in: "3 fortnights", bad: true},
		{in: "1.2.3h", bad: true},
		{in: 1.5, bad: true},
		{in: -5, bad: true},
		{in: json.Number("1e300"), bad: true},
		{in: "99999999999999999999h", bad: true},
		{in: true, bad: true},
	} {
		secs, set, err := durationSeconds(tt.in)
		if (err != nil) != tt.bad || secs != tt.secs || set != tt.set {
			t.Errorf("durationSeconds(%#v) = %d, %v, %v; want %d, %v, error %v", tt.in, secs, set, err, tt.secs, tt.set, tt.bad)
		}
	}
}

// FuzzConvertPipeline feeds arbitrary YAML-shaped documents (JSON decoded
// as the client decodes the API's config) to the converter and the
// overrides: they must never panic, and a body they accept must be
// consistent and encodable.
func FuzzConvertPipeline(f *testing.F) {
	for _, file := range []string{"pipeline-basic", "pipeline-task", "pipeline-overrides", "pipeline-deploy"} {
		config := loadConfig(f, file+".yaml")
		data, err := json.Marshal(config)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, "", "preprocess.dataset", "epochs")
	}
	f.Add([]byte(`[{"pipeline":{"name":"p","nodes":[{"name":"a","type":"task","task":"t"}]}},{"task":{"name":"t","step":"s","parameter-sets":[{"x":1},{}]}},{"step":{"name":"s","command":["a"],"inputs":[{"name":"i"}]}}]`),
		"p", "a.i", "a.x")
	f.Add([]byte(`[{"step":{"name":"s","time-limit":"1e308h","mounts":[{"source":1,"destination":[]}]}},{"pipeline":{"name":"","nodes":null}}]`), "", "s.i", ".")
	f.Add([]byte(`[{"blueprint":{"name":"b","nodes":[{"name":"d","type":"deployment","deployment":{},"endpoints":"e"}],"edges":[{"source":"d.file.x","target":"d.file.y","configuration":[]}]}}]`), "b", "d.x", "d.y")
	f.Fuzz(func(t *testing.T, data []byte, name, inputRef, paramRef string) {
		var config []any
		if err := decodeNumbers(data, &config); err != nil {
			return
		}
		names := []string{name}
		for _, item := range config {
			if m, ok := item.(map[string]any); ok {
				for _, k := range []string{"pipeline", "blueprint"} {
					if p, ok := m[k].(map[string]any); ok {
						if n, ok := p["name"].(string); ok {
							names = append(names, n)
						}
					}
				}
			}
		}
		for _, n := range names {
			body, err := ConvertPipeline(config, "abc123", n)
			if err != nil {
				var pe *PipelineError
				var ce *ConfigError
				if !errors.As(err, &pe) && !errors.As(err, &ce) {
					t.Fatalf("error %T (%v) is neither a *PipelineError nor a *ConfigError", err, err)
				}
				continue
			}
			checkBody(t, body)
			if node, input, ok := SplitNodeRef(inputRef); ok {
				_ = body.SetNodeInput(node, input, "https://x.example/p")
			}
			_ = body.SetParameter(paramRef, []any{json.Number("1"), "two"})
			_ = body.SetParameter(inputRef, nil)
			checkBody(t, body)
		}
	})
}

// checkBody asserts what every converted body must satisfy.
func checkBody(t *testing.T, body *PipelineBody) {
	t.Helper()
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatalf("body does not marshal: %v", err)
	}
	if !json.Valid(data) {
		t.Fatalf("invalid JSON: %s", data)
	}
	if len(body.Nodes) == 0 {
		t.Fatal("a body without nodes was accepted")
	}
	nodes := map[string]bool{}
	for _, n := range body.Nodes {
		if n.Name == "" || nodes[n.Name] {
			t.Fatalf("node name %q empty or repeated", n.Name)
		}
		nodes[n.Name] = true
		if (n.Type == nodeExecution || n.Type == nodeTask) && (n.Template == nil || n.Template["commit"] == "" || n.step() == "") {
			t.Fatalf("node %q has an incomplete template %v", n.Name, n.Template)
		}
	}
	for _, e := range body.Edges {
		if !nodes[e.SourceNode] || !nodes[e.TargetNode] || !edgeEndpointTypes[e.SourceType] || !edgeEndpointTypes[e.TargetType] || e.SourceKey == "" || e.TargetKey == "" {
			t.Fatalf("edge %+v is inconsistent with nodes %v", e, nodes)
		}
	}
	for name, p := range body.Parameters {
		targets, _ := p.Config["targets"].([]any)
		for _, target := range targets {
			node, _, _ := strings.Cut(target.(string), ".")
			if !nodes[node] {
				t.Fatalf("parameter %q targets unknown node %q", name, node)
			}
		}
	}
}

// TestConvertAutorestartOverride mirrors valohai-yaml's
// test_pipeline_conversion_autorestart_override: a node's override decides
// autorestart, an explicit false included, and the value lives only in
// runtime_config. It also covers the other override fields.
func TestConvertAutorestartOverride(t *testing.T) {
	config := parseYAMLConfig(t, `
- step: {name: train, image: x, command: y, environment: spot, autorestart: true,
         mounts: ["/a:/b"], runtime-config-preset: preset-1}
- step: {name: predict, image: x, command: y, environment: spot}
- pipeline:
    name: Training pipeline
    nodes:
      - {name: train-node, type: execution, step: train, override: {autorestart: false}}
      - {name: predict-node, type: execution, step: predict, override: {autorestart: true}}
      - {name: train-task-node, type: task, step: train, override: {autorestart: false}}
      - {name: inherit-node, type: execution, step: train,
         override: {image: "", mounts: [{source: /c, destination: /d, type: NFS, options: {ro: 1, skip: null}}],
                    runtime-config-preset: preset-2}}
      - {name: remote-node, type: execution, step: remote, commit: other, override: {autorestart: true, image: img}}
`)
	// autorestart is outside valohai-yaml's schema (ConvertPipeline refuses
	// the file); the converter itself still carries it as before.
	var ce *ConfigError
	if _, err := ConvertPipeline(config, "abc123", "Training pipeline"); !errors.As(err, &ce) {
		t.Errorf("ConvertPipeline err = %v, want a *ConfigError (autorestart is not in the schema)", err)
	}
	body, err := convertPipeline(config, "abc123", "Training pipeline")
	if err != nil {
		t.Fatal(err)
	}
	templates := map[string]map[string]any{}
	for _, n := range body.Nodes {
		templates[n.Name] = n.Template
	}
	for node, want := range map[string]any{
		"train-node": false, "predict-node": true, "train-task-node": false, "inherit-node": true, "remote-node": true,
	} {
		rc, _ := templates[node]["runtime_config"].(map[string]any)
		if rc["autorestart"] != want {
			t.Errorf("%s: runtime_config.autorestart = %v, want %v", node, rc["autorestart"], want)
		}
		if _, ok := templates[node]["autorestart"]; ok {
			t.Errorf("%s: autorestart at the top level of the template", node)
		}
	}
	inherit := marshalPlain(t, templates["inherit-node"]).(map[string]any)
	if inherit["image"] != "x" {
		t.Errorf("an empty override image replaced the step's: %v", inherit["image"])
	}
	if want := []any{map[string]any{"source": "/c", "destination": "/d", "readonly": false, "type": "nfs", "options": map[string]any{"ro": 1.0}}}; !reflect.DeepEqual(inherit["mounts"], want) {
		t.Errorf("override mounts = %v, want %v", inherit["mounts"], want)
	}
	if inherit["runtime-config-preset"] != "preset-2" {
		t.Errorf("runtime-config-preset = %v", inherit["runtime-config-preset"])
	}
	if want := map[string]any{"commit": "other", "step": "remote", "image": "img", "runtime_config": map[string]any{"autorestart": true}}; !reflect.DeepEqual(marshalPlain(t, templates["remote-node"]), want) {
		t.Errorf("remote template = %v, want %v", templates["remote-node"], want)
	}
}

// TestPythonSemantics pins the Python behaviours the port relies on to
// decide what valohai-yaml keeps and how it prints values.
func TestPythonSemantics(t *testing.T) {
	for _, tt := range []struct {
		v      any
		truthy bool
		str    string
		kind   string
	}{
		{nil, false, "<nil>", "null"},
		{"", false, "", "a string"},
		{"0", true, "0", "a string"},
		{false, false, "False", "a boolean"},
		{true, true, "True", "a boolean"},
		{0, false, "0", "a number"},
		{json.Number("0.0"), false, "0.0", "a number"},
		{json.Number("2"), true, "2", "a number"},
		{2.5, true, "2.5", "a number"},
		{int64(-1), true, "-1", "a number"},
		{[]any{}, false, "[]", "a list"},
		{[]any{1}, true, "[1]", "a list"},
		{[]string{"a"}, true, "[a]", "[]string"},
		{map[string]any{}, false, "map[]", "a mapping"},
		{map[any]any{1: 2}, true, "map[1:2]", "a mapping"},
	} {
		if got := truthy(tt.v); got != tt.truthy {
			t.Errorf("truthy(%#v) = %v", tt.v, got)
		}
		if got := pyStr(tt.v); got != tt.str {
			t.Errorf("pyStr(%#v) = %q, want %q", tt.v, got, tt.str)
		}
		if got := kindOf(tt.v); got != tt.kind {
			t.Errorf("kindOf(%#v) = %q, want %q", tt.v, got, tt.kind)
		}
	}
	if got := listify([]int{1, 2}); !reflect.DeepEqual(got, []any{1, 2}) {
		t.Errorf("listify([]int) = %v", got)
	}
	if got := convertExpression([2]string{"a", "b"}); !reflect.DeepEqual(got, map[string]any{"style": "single", "rules": map[string]any{"value": []any{"a", "b"}}}) {
		t.Errorf("convertExpression(array) = %v", got)
	}
	if got := convertExpression([]byte("x")); !reflect.DeepEqual(got, []byte("x")) {
		t.Errorf("convertExpression([]byte) = %v, want it untouched", got)
	}
	names := make([]string, 25)
	for i := range names {
		names[i] = fmt.Sprint(i)
	}
	if got := quoteList(names); !strings.HasSuffix(got, `"19", and 5 more`) {
		t.Errorf("quoteList(25 names) = %s", got)
	}
	if got := redactQuery("https://h/p?signature=s#f"); got != "https://h/p?…" {
		t.Errorf("redactQuery = %q", got)
	}
}
