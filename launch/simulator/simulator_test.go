package simulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	testToken = "s3cret-token"
	projectA  = "0b7e7c2a-5f6d-4f59-9a43-2f8c1f5b9d01"
	projectB  = "7c1f0d3e-8a2b-4c5d-9e6f-0a1b2c3d4e5f"
	shaMain   = "0123abcd0123abcd0123abcd0123abcd0123abcd"
	shaDev    = "feedbeeffeedbeeffeedbeeffeedbeeffeedbeef"
	shaOther  = "aaaa1111aaaa1111aaaa1111aaaa1111aaaa1111"
)

const testYAML = `
- step:
    name: preprocess
    image: python:3.12
    command: python preprocess.py {parameters}
    inputs:
      - name: dataset
        default: s3://bucket/raw.csv
- step:
    name: train
    image: python:3.12
    command: python train.py {parameters}
    parameters:
      - name: epochs
        type: integer
        default: 10
- pipeline:
    name: train-pipeline
    nodes:
      - name: preprocess
        type: execution
        step: preprocess
      - name: train
        type: execution
        step: train
    edges:
      - [preprocess.output.*.csv, train.input.data]
`

func testConfig(t testing.TB) Config {
	t.Helper()
	cfg, err := ParseConfigYAML([]byte(testYAML))
	if err != nil {
		t.Fatal(err)
	}
	main := Commit{Identifier: shaMain, Ref: "main", Config: cfg}
	return Config{
		Token: testToken,
		Projects: map[string]*Project{
			projectA: {ID: projectA, Name: "acme/ml", Commits: map[string]Commit{
				shaMain: main,
				"main":  main,
				shaDev:  {Identifier: shaDev, Ref: "dev"}, // no config: any step goes
			}},
			projectB: {Name: "acme/other", Commits: map[string]Commit{
				shaOther: {Ref: "main"}, // identifier taken from the key
			}},
		},
	}
}

func newServer(t testing.TB) (*Simulator, *httptest.Server) {
	t.Helper()
	sim := New(testConfig(t))
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

// result is one HTTP exchange, decoded.
type result struct {
	status int
	header http.Header
	raw    []byte
	json   any
}

func (r result) obj(t testing.TB) map[string]any {
	t.Helper()
	m, ok := r.json.(map[string]any)
	if !ok {
		t.Fatalf("answer is not an object: %s", r.raw)
	}
	return m
}

// call sends body (a string is sent as is, anything else as JSON) with the
// test token and a JSON content type unless headers override them.
func call(t testing.TB, srv *httptest.Server, method, path string, body any, headers ...string) result {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Token "+testToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	res := result{status: resp.StatusCode, header: resp.Header, raw: raw}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	if err := json.Unmarshal(raw, &res.json); err != nil {
		t.Fatalf("%s %s: answer is not JSON: %v: %s", method, path, err, raw)
	}
	return res
}

// jsonEqual compares a decoded value with the JSON text want.
func jsonEqual(t testing.TB, got any, want string) {
	t.Helper()
	var w any
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad want %s: %v", want, err)
	}
	if !reflect.DeepEqual(got, w) {
		g, _ := json.Marshal(got)
		t.Fatalf("got  %s\nwant %s", g, want)
	}
}

func validExecution() map[string]any {
	return map[string]any{
		"project":    projectA,
		"commit":     shaMain,
		"step":       "train",
		"inputs":     map[string]any{"dataset": []any{"s3://bucket/a.csv", "datum://123"}},
		"parameters": map[string]any{"epochs": 5, "rate": 0.1, "flag": true, "names": []any{"a", "b"}},
		"tags":       []any{"webhook"},
		"title":      "from a webhook",
	}
}

func with(base map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == deleteField {
			delete(out, k)
		} else {
			out[k] = kv[i+1]
		}
	}
	return out
}

type deleteMarker struct{}

var deleteField = deleteMarker{}

func TestAuthentication(t *testing.T) {
	_, srv := newServer(t)
	tests := []struct {
		name, header string
		status       int
		detail       string
	}{
		{"missing", "", 401, "Authentication credentials were not provided."},
		{"other scheme", "Bearer " + testToken, 401, "Authentication credentials were not provided."},
		{"no credentials", "Token", 401, "Invalid token header. No credentials provided."},
		{"spaces", "Token a b", 401, "Invalid token header. Token string should not contain spaces."},
		{"wrong", "Token nope", 401, "Invalid token."},
		{"prefix of token", "Token " + testToken[:4], 401, "Invalid token."},
		{"right", "Token " + testToken, 201, ""},
		{"keyword case-insensitive", "token " + testToken, 201, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := call(t, srv, "POST", "/api/v0/executions/", validExecution(), "Authorization", tt.header)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.raw)
			}
			if tt.status == 401 {
				jsonEqual(t, res.json, fmt.Sprintf(`{"detail":%q}`, tt.detail))
				if res.header.Get("WWW-Authenticate") != "Token" {
					t.Errorf("WWW-Authenticate %q", res.header.Get("WWW-Authenticate"))
				}
			}
		})
	}
	t.Run("every endpoint", func(t *testing.T) {
		for _, ep := range []struct{ method, path string }{
			{"GET", "/api/v0/executions/x/"},
			{"POST", "/api/v0/pipelines/"},
			{"GET", "/api/v0/pipelines/x/"},
			{"GET", "/api/v0/commits/"},
			{"GET", "/api/v0/commits/" + shaMain + "/"},
			{"POST", "/api/v0/projects/" + projectA + "/fetch/"},
		} {
			res := call(t, srv, ep.method, ep.path, nil, "Authorization", "Token wrong")
			if res.status != 401 {
				t.Errorf("%s %s: %d", ep.method, ep.path, res.status)
			}
		}
	})
	t.Run("empty configured token accepts nothing", func(t *testing.T) {
		srv := httptest.NewServer(New(Config{Projects: testConfig(t).Projects}))
		defer srv.Close()
		res := call(t, srv, "POST", "/api/v0/executions/", validExecution(), "Authorization", "Token ")
		if res.status != 401 {
			t.Fatalf("status %d", res.status)
		}
	})
}

func TestCreateExecution(t *testing.T) {
	_, srv := newServer(t)
	tests := []struct {
		project, commit string
		counter         int
		ref             string
	}{
		{projectA, shaMain, 1, "main"},
		{projectA, "main", 2, "main"}, // by ref (a map key)
		{projectB, "main", 1, "main"}, // by ref (not a key), own counter
		{projectA, "dev", 3, "dev"},   // by ref of a commit without config
		{projectB, shaOther, 2, "main"},
	}
	for _, tt := range tests {
		body := with(validExecution(), "project", tt.project, "commit", tt.commit)
		if tt.commit == "dev" {
			body["step"] = "anything goes without a config"
		}
		res := call(t, srv, "POST", "/api/v0/executions/", body)
		if res.status != 201 {
			t.Fatalf("%s/%s: status %d: %s", tt.project, tt.commit, res.status, res.raw)
		}
		e := res.obj(t)
		id, _ := e["id"].(string)
		if len(id) != 36 {
			t.Errorf("id %q", id)
		}
		if e["counter"] != float64(tt.counter) || e["status"] != "created" {
			t.Errorf("counter %v status %v, want %d created", e["counter"], e["status"], tt.counter)
		}
		if want := srv.URL + "/api/v0/executions/" + id + "/"; e["url"] != want {
			t.Errorf("url %v, want %s", e["url"], want)
		}
		name := map[string]string{projectA: "acme/ml", projectB: "acme/other"}[tt.project]
		urls := e["urls"].(map[string]any)
		if want := fmt.Sprintf("%s/p/%s/execution/%d/", srv.URL, name, tt.counter); urls["display"] != want {
			t.Errorf("display %v, want %s", urls["display"], want)
		}
		if urls["stop"] != srv.URL+"/api/v0/executions/"+id+"/stop/" {
			t.Errorf("stop %v", urls["stop"])
		}
		proj := e["project"].(map[string]any)
		commit := e["commit"].(map[string]any)
		if proj["id"] != tt.project || proj["name"] != name || commit["ref"] != tt.ref {
			t.Errorf("project %v commit %v", proj, commit)
		}
		if _, err := time.Parse(time.RFC3339Nano, e["ctime"].(string)); err != nil {
			t.Errorf("ctime: %v", err)
		}
		jsonEqual(t, e["tags"], `["webhook"]`)
		jsonEqual(t, e["inputs"], `{"dataset":["s3://bucket/a.csv","datum://123"]}`)
		jsonEqual(t, e["parameters"], `{"epochs":5,"rate":0.1,"flag":true,"names":["a","b"]}`)

		// GET by id and by project:counter answers the same execution.
		for _, path := range []string{id, tt.project + ":" + fmt.Sprint(tt.counter), tt.project + ":latest"} {
			got := call(t, srv, "GET", "/api/v0/executions/"+path+"/", nil)
			if got.status != 200 || !reflect.DeepEqual(got.json, res.json) {
				t.Errorf("GET %s: %d %s", path, got.status, got.raw)
			}
		}
	}
	t.Run("exact numbers and optional fields echoed", func(t *testing.T) {
		res := call(t, srv, "POST", "/api/v0/executions/",
			`{"project":"`+projectA+`","commit":"main","step":"train","parameters":{"big":12345678901234567890},"environment":"aws-eu-west-1-g4dn-xlarge","environment_variables":{"A":"b"}}`)
		if res.status != 201 {
			t.Fatalf("%d %s", res.status, res.raw)
		}
		if !bytes.Contains(res.raw, []byte(`"big":12345678901234567890`)) {
			t.Errorf("number not kept exactly: %s", res.raw)
		}
		e := res.obj(t)
		env := e["environment"].(map[string]any)
		if env["slug"] != "aws-eu-west-1-g4dn-xlarge" || len(env["id"].(string)) != 36 {
			t.Errorf("environment %v", env)
		}
		jsonEqual(t, e["inputs"], `{}`)
		jsonEqual(t, e["tags"], `[]`)
		jsonEqual(t, e["environment_variables"], `{"A":"b"}`)
		if e["title"] != nil {
			t.Errorf("title %v", e["title"])
		}
	})
	t.Run("unknown execution", func(t *testing.T) {
		for _, id := range []string{"nope", projectA + ":999", "nope:latest", projectA + ":x"} {
			if res := call(t, srv, "GET", "/api/v0/executions/"+id+"/", nil); res.status != 404 {
				t.Errorf("%s: %d", id, res.status)
			}
		}
	})
}

func TestExecutionValidation(t *testing.T) {
	_, srv := newServer(t)
	valid := validExecution()
	tests := []struct {
		name   string
		body   any
		status int
		want   string // the whole error body
	}{
		{"string", `"hello"`, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got str."]}`},
		{"list", `[1,2]`, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}`},
		{"number", `1.5`, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got float."]}`},
		{"null", `null`, 400, `{"non_field_errors":["No data provided"]}`},
		{"empty body", ``, 400, `{"project":["This field is required."],"commit":["This field is required."],"step":["This field is required."]}`},
		{"empty object", `{}`, 400, `{"project":["This field is required."],"commit":["This field is required."],"step":["This field is required."]}`},
		{"missing project", with(valid, "project", deleteField), 400, `{"project":["This field is required."]}`},
		{"project null", with(valid, "project", nil), 400, `{"project":["This field may not be null."]}`},
		{"project not a string", with(valid, "project", 7), 400, `{"project":["Incorrect type. Expected pk value, received int."]}`},
		{"missing commit", with(valid, "commit", deleteField), 400, `{"commit":["This field is required."]}`},
		{"blank commit", with(valid, "commit", " "), 400, `{"commit":["This field may not be blank."]}`},
		{"unknown commit", with(valid, "commit", "cafe"), 400, `{"commit":[{"message":"Object with identifier or ref cafe does not exist.","code":"does_not_exist"}]}`},
		{"commit of another project", with(valid, "commit", shaOther), 400, `{"commit":[{"message":"Object with identifier or ref ` + shaOther + ` does not exist.","code":"does_not_exist"}]}`},
		{"missing step", with(valid, "step", deleteField), 400, `{"step":["This field is required."]}`},
		{"step not a string", with(valid, "step", true), 400, `{"step":["Not a valid string."]}`},
		{"unknown step", with(valid, "step", "deploy"), 400, `{"step":[{"message":"Step \"deploy\" does not exist in the valohai.yaml of commit ` + shaMain + `.","code":"does_not_exist"}]}`},
		{"inputs not an object", with(valid, "inputs", []any{"s3://x"}), 400, `{"inputs":["Expected a dictionary of items but got type \"list\"."]}`},
		{"input not a URI", with(valid, "inputs", map[string]any{"a": "s3://ok", "b": "local.csv"}), 400, `{"inputs":{"b":["\"local.csv\" is not a URI; expected a URL such as s3://bucket/key, https://host/file or datum://<id>."]}}`},
		{"input list with bad items", with(valid, "inputs", map[string]any{"a": []any{"s3://ok", 3, "nope"}}), 400, `{"inputs":{"a":["Not a valid string.","\"nope\" is not a URI; expected a URL such as s3://bucket/key, https://host/file or datum://<id>."]}}`},
		{"input of wrong type", with(valid, "inputs", map[string]any{"a": map[string]any{}}), 400, `{"inputs":{"a":["Expected a URI or a list of URIs but got type \"dict\"."]}}`},
		{"parameters not an object", with(valid, "parameters", "x=1"), 400, `{"parameters":["Expected a dictionary of items but got type \"str\"."]}`},
		{"parameter object", with(valid, "parameters", map[string]any{"p": map[string]any{"a": 1}}), 400, `{"parameters":{"p":["Expected a scalar or a list of scalars but got type \"dict\"."]}}`},
		{"parameter nested list", with(valid, "parameters", map[string]any{"p": []any{[]any{1}}}), 400, `{"parameters":{"p":["Expected a list of scalars but it holds type \"list\"."]}}`},
		{"tags not a list", with(valid, "tags", "a,b"), 400, `{"tags":["Expected a list of items but got type \"str\"."]}`},
		{"tag not a string", with(valid, "tags", []any{"a", 2}), 400, `{"tags":{"1":["Not a valid string."]}}`},
		{"env var not a string", with(valid, "environment_variables", map[string]any{"A": 1}), 400, `{"environment_variables":{"A":["Not a valid string."]}}`},
		{"env vars not an object", with(valid, "environment_variables", []any{}), 400, `{"environment_variables":["Expected a dictionary of items but got type \"list\"."]}`},
		{"title not a string", with(valid, "title", 5), 400, `{"title":["Not a valid string."]}`},
		{"negative time limit", with(valid, "time_limit", -1), 400, `{"time_limit":["Ensure this value is greater than or equal to 0."]}`},
		{"priority not an integer", with(valid, "priority", 1.5), 400, `{"priority":["A valid integer is required."]}`},
		{"command of numbers", with(valid, "command", []any{1}), 400, `{"command":["Not a valid string."]}`},
		{"several errors at once", with(valid, "step", deleteField, "tags", 1, "title", false), 400, `{"step":["This field is required."],"tags":["Expected a list of items but got type \"int\"."],"title":["Not a valid string."]}`},
		{"unknown project", with(valid, "project", "00000000-0000-0000-0000-000000000000"), 404, `{"detail":"Not found."}`},
		{"unknown project wins over field errors", with(valid, "project", "nope", "step", deleteField), 404, `{"detail":"Not found."}`},
		{"invalid JSON", `{"project":`, 400, ``},
		{"trailing data", `{} {}`, 400, ``},
		{"invalid UTF-8", "{\"title\":\"\xff\"}", 400, `{"detail":"JSON parse error - body is not valid UTF-8"}`},
		{"null optional fields are absent", with(valid, "title", nil, "tags", nil, "inputs", nil), 201, ``},
		{"unknown fields ignored", with(valid, "whatever", map[string]any{"x": 1}), 201, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := call(t, srv, "POST", "/api/v0/executions/", tt.body)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.raw)
			}
			if tt.want != "" {
				jsonEqual(t, res.json, tt.want)
			}
			if tt.status == 400 && tt.want == "" {
				d, _ := res.obj(t)["detail"].(string)
				if !strings.HasPrefix(d, "JSON parse error - ") {
					t.Errorf("detail %q", d)
				}
			}
		})
	}
	t.Run("content type", func(t *testing.T) {
		for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded"} {
			res := call(t, srv, "POST", "/api/v0/executions/", validExecution(), "Content-Type", ct)
			if res.status != 415 {
				t.Errorf("%q: %d", ct, res.status)
			}
			jsonEqual(t, res.json, fmt.Sprintf(`{"detail":"Unsupported media type \"%s\" in request."}`, ct))
		}
		res := call(t, srv, "POST", "/api/v0/executions/", validExecution(), "Content-Type", "application/json; charset=utf-8")
		if res.status != 201 {
			t.Errorf("with charset: %d", res.status)
		}
	})
}

func TestRoutingErrors(t *testing.T) {
	_, srv := newServer(t)
	tests := []struct {
		method, path string
		status       int
		want         string
		allow        string
	}{
		{"PUT", "/api/v0/executions/", 405, `{"detail":"Method \"PUT\" not allowed."}`, "GET, POST"},
		{"DELETE", "/api/v0/pipelines/x/", 405, `{"detail":"Method \"DELETE\" not allowed."}`, "GET"},
		{"GET", "/api/v0/projects/" + projectA + "/fetch/", 405, `{"detail":"Method \"GET\" not allowed."}`, "POST"},
		{"GET", "/api/v0/nothing/", 404, `{"detail":"Not found."}`, ""},
		{"POST", "/api/v0/executions", 404, `{"detail":"Not found."}`, ""}, // no trailing slash
		{"GET", "/api/v0/", 404, `{"detail":"Not found."}`, ""},
		{"GET", "/api/v0/executions//", 404, `{"detail":"Not found."}`, ""},
		{"GET", "/elsewhere", 404, `{"detail":"Not found."}`, ""},
	}
	for _, tt := range tests {
		res := call(t, srv, tt.method, tt.path, nil)
		if res.status != tt.status {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, res.status, tt.status)
			continue
		}
		jsonEqual(t, res.json, tt.want)
		if got := res.header.Get("Allow"); got != tt.allow {
			t.Errorf("%s %s: Allow %q, want %q", tt.method, tt.path, got, tt.allow)
		}
	}
}

func TestFailures(t *testing.T) {
	sim, srv := newServer(t)
	t.Run("503 twice then success", func(t *testing.T) {
		sim.Fail(2, 503, 0)
		for i, want := range []int{503, 503, 201} {
			// The failures come before authentication.
			auth := "Token " + testToken
			if i == 0 {
				auth = "Token wrong"
			}
			res := call(t, srv, "POST", "/api/v0/executions/", validExecution(), "Authorization", auth)
			if res.status != want {
				t.Fatalf("call %d: %d, want %d", i, res.status, want)
			}
			if want == 503 {
				jsonEqual(t, res.json, `{"detail":"Service temporarily unavailable, try again later."}`)
				if res.header.Get("Retry-After") != "" {
					t.Errorf("unexpected Retry-After %q", res.header.Get("Retry-After"))
				}
			}
		}
		calls := sim.Calls()
		if len(calls) != 3 || calls[0].Status != 503 || calls[1].Status != 503 || calls[2].Status != 201 {
			t.Fatalf("calls %+v", calls)
		}
	})
	t.Run("429 with Retry-After", func(t *testing.T) {
		sim.Fail(1, 429, 1500*time.Millisecond)
		res := call(t, srv, "GET", "/api/v0/commits/", nil)
		if res.status != 429 || res.header.Get("Retry-After") != "2" {
			t.Fatalf("%d Retry-After %q", res.status, res.header.Get("Retry-After"))
		}
		jsonEqual(t, res.json, `{"detail":"Request was throttled. Expected available in 2 seconds."}`)
		if res := call(t, srv, "GET", "/api/v0/commits/", nil); res.status != 200 {
			t.Fatalf("after: %d", res.status)
		}
	})
	t.Run("other statuses and cancel", func(t *testing.T) {
		sim.Fail(5, 502, time.Second)
		res := call(t, srv, "GET", "/api/v0/nothing/", nil) // even before URL resolution
		if res.status != 502 || res.header.Get("Retry-After") != "1" {
			t.Fatalf("%d %q", res.status, res.header.Get("Retry-After"))
		}
		jsonEqual(t, res.json, `{"detail":"Bad Gateway."}`)
		sim.Fail(0, 502, 0)
		if res := call(t, srv, "GET", "/api/v0/commits/", nil); res.status != 200 {
			t.Fatalf("after cancel: %d", res.status)
		}
		sim.Fail(1, 200, 0) // not a failure status: taken as 503
		if res := call(t, srv, "GET", "/api/v0/commits/", nil); res.status != 503 {
			t.Fatalf("status 200 as failure: %d", res.status)
		}
	})
}

func TestDelay(t *testing.T) {
	sim, srv := newServer(t)
	const d = 150 * time.Millisecond
	sim.SetDelay(d)
	start := time.Now()
	if res := call(t, srv, "GET", "/api/v0/commits/", nil); res.status != 200 {
		t.Fatalf("%d", res.status)
	}
	if el := time.Since(start); el < d {
		t.Fatalf("answered after %v, want at least %v", el, d)
	}

	t.Run("cancelable", func(t *testing.T) {
		sim.Reset()
		sim.SetDelay(time.Hour)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/api/v0/executions/", strings.NewReader(`{"a":1}`))
		req.Header.Set("Content-Type", "application/json")
		start := time.Now()
		_, err := srv.Client().Do(req)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v", err)
		}
		// The handler notices the cancellation shortly after the client.
		deadline := time.Now().Add(5 * time.Second)
		for {
			calls := sim.Calls()
			if len(calls) == 1 && calls[0].Status == 499 {
				if !jsonSame(calls[0].Body, []byte(`{"a":1}`)) {
					t.Errorf("body %s", calls[0].Body)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("calls %+v", calls)
			}
			time.Sleep(5 * time.Millisecond)
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the delay was not canceled")
		}
		sim.SetDelay(0)
	})
}

func TestCallsRecorded(t *testing.T) {
	sim, srv := newServer(t)
	body := validExecution()
	created := call(t, srv, "POST", "/api/v0/executions/?x=1", body)
	call(t, srv, "POST", "/api/v0/executions/", "not json at all")
	call(t, srv, "GET", "/__simulator/calls", nil)
	call(t, srv, "GET", "/elsewhere", nil)
	call(t, srv, "GET", "/api/v0/commits/", nil, "Authorization", "")

	calls := sim.Calls()
	if len(calls) != 3 {
		t.Fatalf("%d calls recorded: %+v", len(calls), calls)
	}
	c := calls[0]
	if c.Method != "POST" || c.Path != "/api/v0/executions/" || c.Query != "x=1" || c.Status != 201 {
		t.Errorf("first call %+v", c)
	}
	want, _ := json.Marshal(body)
	if !jsonSame(c.Body, want) || !jsonSame(c.Response, created.raw) {
		t.Errorf("body %s\nresponse %s", c.Body, c.Response)
	}
	if time.Since(c.At) > time.Minute || c.At.IsZero() {
		t.Errorf("At %v", c.At)
	}
	if string(calls[1].Body) != `"not json at all"` || calls[1].Status != 400 {
		t.Errorf("second call body %s status %d", calls[1].Body, calls[1].Status)
	}
	if calls[2].Body != nil || calls[2].Status != 401 {
		t.Errorf("third call %+v", calls[2])
	}
	// The same list over HTTP.
	res := call(t, srv, "GET", "/__simulator/calls", nil)
	var overHTTP []Call
	if err := json.Unmarshal(res.raw, &overHTTP); err != nil || len(overHTTP) != 3 || overHTTP[0].Status != 201 {
		t.Fatalf("over HTTP: %v %s", err, res.raw)
	}
	// Calls hands out copies.
	calls[0].Body[0] = 'X'
	if sim.Calls()[0].Body[0] == 'X' {
		t.Error("Calls shares its buffers")
	}
	sim.Reset()
	if len(sim.Calls()) != 0 {
		t.Error("Reset kept calls")
	}
	if res := call(t, srv, "GET", "/__simulator/calls", nil); string(res.raw) != "[]\n" {
		t.Errorf("empty calls: %q", res.raw)
	}
}

func jsonSame(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

func TestBodyLimit(t *testing.T) {
	sim, srv := newServer(t)
	big := bytes.Repeat([]byte("a"), MaxBodyBytes+1)
	res := call(t, srv, "POST", "/api/v0/executions/", big)
	if res.status != 413 {
		t.Fatalf("%d", res.status)
	}
	if calls := sim.Calls(); len(calls) != 1 || calls[0].Body != nil || calls[0].Status != 413 {
		t.Fatalf("calls %d", len(calls))
	}
}

func validPipeline() map[string]any {
	return map[string]any{
		"project": projectA,
		"title":   "train-pipeline",
		"tags":    []any{},
		"nodes": []any{
			map[string]any{"name": "preprocess", "type": "execution", "template": map[string]any{
				"commit": shaMain, "step": "preprocess", "image": "python:3.12",
				"parameters": map[string]any{"ratio": 0.8}, "inputs": map[string]any{"dataset": []any{"s3://bucket/raw.csv"}},
			}},
			map[string]any{"name": "train", "type": "execution", "on_error": "stop-all", "template": map[string]any{
				"commit": "main", "step": "train", "parameters": map[string]any{"epochs": 5}, "inputs": map[string]any{"data": []any{}},
			}},
			map[string]any{"name": "sweep", "type": "task", "template": map[string]any{
				"commit": shaMain, "step": "train", "type": "grid_search",
				"parameters": map[string]any{"epochs": map[string]any{"style": "single", "rules": map[string]any{"value": []any{5}}}},
			}},
		},
		"edges": []any{
			map[string]any{"source_node": "preprocess", "source_type": "output", "source_key": "*.csv",
				"target_node": "train", "target_type": "input", "target_key": "data"},
		},
		"parameters": map[string]any{
			"epochs": map[string]any{"config": map[string]any{"name": "epochs", "default": 10, "targets": []any{"train.parameters.epochs"}}, "expression": "20"},
		},
	}
}

// pipelineWith returns validPipeline with node i's field (or template field
// when field starts with "template.") replaced.
func pipelineWith(i int, field string, v any) map[string]any {
	p := validPipeline()
	node := p["nodes"].([]any)[i].(map[string]any)
	if tf, ok := strings.CutPrefix(field, "template."); ok {
		node = node["template"].(map[string]any)
		field = tf
	}
	if v == deleteField {
		delete(node, field)
	} else {
		node[field] = v
	}
	return p
}

func TestPipelines(t *testing.T) {
	_, srv := newServer(t)
	res := call(t, srv, "POST", "/api/v0/pipelines/", validPipeline())
	if res.status != 201 {
		t.Fatalf("%d %s", res.status, res.raw)
	}
	p := res.obj(t)
	id := p["id"].(string)
	if p["counter"] != 1.0 || p["status"] != "started" || p["title"] != "train-pipeline" {
		t.Errorf("pipeline %s", res.raw)
	}
	if p["url"] != srv.URL+"/api/v0/pipelines/"+id+"/" || p["urls"].(map[string]any)["display"] != srv.URL+"/p/acme/ml/pipeline/1/" {
		t.Errorf("urls %v %v", p["url"], p["urls"])
	}
	nodes := p["nodes"].([]any)
	if len(nodes) != 3 {
		t.Fatalf("nodes %v", nodes)
	}
	for i, n := range nodes {
		node := n.(map[string]any)
		want := validPipeline()["nodes"].([]any)[i].(map[string]any)
		// An execution node starts at once and embeds its execution; other
		// nodes (the task here) wait.
		exec, _ := node["execution"].(map[string]any)
		started := want["type"] == "execution"
		if len(node["id"].(string)) != 36 || node["name"] != want["name"] || (node["status"] == "started") != started || (exec != nil) != started {
			t.Errorf("node %d %v", i, node)
		}
		if started {
			tmpl := want["template"].(map[string]any)
			commit, _ := exec["commit"].(map[string]any)
			if exec["step"] != tmpl["step"] || commit["identifier"] != "0123abcd0123abcd0123abcd0123abcd0123abcd" || exec["pipeline"] != id {
				t.Errorf("node %d execution %v", i, exec)
			}
		}
		// The real answer (valohai-cli's PIPELINE_DATA) holds no template.
		if _, has := node["template"]; has || node["type"] != want["type"] || node["pipeline"] != id {
			t.Errorf("node %d = %v, want name, type, id, pipeline and run state only", i, node)
		}
	}
	edge := p["edges"].([]any)[0].(map[string]any)
	// Edges name their nodes by node id.
	wantEdge := validPipeline()["edges"].([]any)[0].(map[string]any)
	ids := map[string]string{}
	for _, n := range nodes {
		ids[n.(map[string]any)["name"].(string)] = n.(map[string]any)["id"].(string)
	}
	if edge["pipeline"] != id || len(edge["id"].(string)) != 36 || edge["source_key"] != "*.csv" ||
		edge["source_node"] != ids[wantEdge["source_node"].(string)] || edge["target_node"] != ids[wantEdge["target_node"].(string)] {
		t.Errorf("edge %v", edge)
	}
	for _, path := range []string{id, projectA + ":1", projectA + ":latest"} {
		got := call(t, srv, "GET", "/api/v0/pipelines/"+path+"/", nil)
		if got.status != 200 || !reflect.DeepEqual(got.json, res.json) {
			t.Errorf("GET %s: %d %s", path, got.status, got.raw)
		}
	}
	for _, path := range []string{"nope", projectA + ":2", projectB + ":latest"} {
		if got := call(t, srv, "GET", "/api/v0/pipelines/"+path+"/", nil); got.status != 404 {
			t.Errorf("GET %s: %d", path, got.status)
		}
	}

	// Copy the stored graph, reusing the first node as a mimic.
	copyBody := validPipeline()
	copyBody["nodes"].([]any)[0] = map[string]any{"name": "preprocess", "type": "mimic", "source": nodes[0].(map[string]any)["id"]}
	second := call(t, srv, "POST", "/api/v0/pipelines/", copyBody)
	if second.status != 201 || second.obj(t)["counter"] != 2.0 {
		t.Fatalf("copy: %d %s", second.status, second.raw)
	}
	otherProject := with(validPipeline(), "project", projectB, "nodes", []any{map[string]any{"name": "m", "type": "mimic", "source": nodes[0].(map[string]any)["id"]}}, "edges", deleteField, "parameters", deleteField)
	if got := call(t, srv, "POST", "/api/v0/pipelines/", otherProject); got.status != 400 {
		t.Errorf("mimic of another project's node: %d %s", got.status, got.raw)
	}
}

func TestPipelineValidation(t *testing.T) {
	_, srv := newServer(t)
	valid := validPipeline()
	tests := []struct {
		name   string
		body   any
		status int
		want   string
	}{
		{"not an object", `[]`, 400, `{"non_field_errors":["Invalid data. Expected a dictionary, but got list."]}`},
		{"empty", `{}`, 400, `{"project":["This field is required."],"title":["This field is required."],"nodes":["This field is required."]}`},
		{"unknown project", with(valid, "project", "nope"), 404, `{"detail":"Not found."}`},
		{"title missing", with(valid, "title", deleteField), 400, `{"title":["This field is required."]}`},
		{"title not a string", with(valid, "title", 3), 400, `{"title":["Not a valid string."]}`},
		{"nodes empty", with(valid, "nodes", []any{}, "edges", deleteField, "parameters", deleteField), 400, `{"nodes":["This list may not be empty."]}`},
		{"nodes not a list", with(valid, "nodes", map[string]any{}, "edges", deleteField, "parameters", deleteField), 400, `{"nodes":["Expected a list of items but got type \"dict\"."]}`},
		{"node not an object", with(valid, "nodes", []any{"x"}, "edges", deleteField, "parameters", deleteField), 400, `{"nodes":[{"non_field_errors":["Invalid data. Expected a dictionary, but got str."]}]}`},
		{"node name missing", pipelineWith(2, "name", deleteField), 400, `{"nodes":[` + `{},{},{"name":["This field is required."]}]}`},
		{"node type unknown", pipelineWith(2, "type", "job"), 400, `{"nodes":[{},{},{"type":["\"job\" is not a valid choice."]}]}`},
		{"duplicate node names", pipelineWith(2, "name", "train"), 400, `{"nodes":[{},{},{"name":["Node name \"train\" is used by more than one node."]}]}`},
		{"template missing", pipelineWith(0, "template", deleteField), 400, `{"nodes":[{"template":["This field is required."]},{},{}]}`},
		{"template not an object", pipelineWith(0, "template", "x"), 400, `{"nodes":[{"template":{"non_field_errors":["Invalid data. Expected a dictionary, but got str."]}},{},{}]}`},
		{"template commit unknown", pipelineWith(1, "template.commit", "nope"), 400, `{"nodes":[{},{"template":{"commit":[{"message":"Object with identifier or ref nope does not exist.","code":"does_not_exist"}]}},{}]}`},
		{"template step missing", pipelineWith(1, "template.step", deleteField), 400, `{"nodes":[{},{"template":{"step":["This field is required."]}},{}]}`},
		{"template step unknown", pipelineWith(1, "template.step", "deploy"), 400, `{"nodes":[{},{"template":{"step":[{"message":"Step \"deploy\" does not exist in the valohai.yaml of commit ` + shaMain + `.","code":"does_not_exist"}]}},{}]}`},
		{"template input not a URI", pipelineWith(0, "template.inputs", map[string]any{"dataset": "raw.csv"}), 400, `{"nodes":[{"template":{"inputs":{"dataset":["\"raw.csv\" is not a URI; expected a URL such as s3://bucket/key, https://host/file or datum://<id>."]}}},{},{}]}`},
		{"execution template parameter object", pipelineWith(1, "template.parameters", map[string]any{"epochs": map[string]any{}}), 400, `{"nodes":[{},{"template":{"parameters":{"epochs":["Expected a scalar or a list of scalars but got type \"dict\"."]}}},{}]}`},
		{"mimic without source", pipelineWith(0, "type", "mimic"), 400, `{"nodes":[{"source":["This field is required."]},{},{}]}`},
		{"mimic unknown source", with(pipelineWith(0, "type", "mimic"), "nodes", []any{map[string]any{"name": "preprocess", "type": "mimic", "source": "abc"}, valid["nodes"].([]any)[1], valid["nodes"].([]any)[2]}), 400, `{"nodes":[{"source":[{"message":"Pipeline node abc does not exist in this project.","code":"does_not_exist"}]},{},{}]}`},
		{"deployment node needs no template", pipelineWith(2, "type", "deployment"), 201, ``},
		{"edges not a list", with(valid, "edges", "x"), 400, `{"edges":["Expected a list of items but got type \"str\"."]}`},
		{"edge field missing", with(valid, "edges", []any{map[string]any{"source_node": "preprocess", "source_type": "output", "source_key": "*", "target_node": "train", "target_type": "input"}}), 400, `{"edges":[{"target_key":["This field is required."]}]}`},
		{"edge unknown node", with(valid, "edges", []any{map[string]any{"source_node": "preprocess", "source_type": "output", "source_key": "*", "target_node": "ghost", "target_type": "input", "target_key": "x"}}), 400, `{"edges":[{"target_node":[{"message":"Node \"ghost\" does not exist in this pipeline.","code":"does_not_exist"}]}]}`},
		{"edge unknown type", with(valid, "edges", []any{map[string]any{"source_node": "preprocess", "source_type": "outputs", "source_key": "*", "target_node": "train", "target_type": "input", "target_key": "x"}}), 400, `{"edges":[{"source_type":["\"outputs\" is not a valid choice."]}]}`},
		{"edge not an object", with(valid, "edges", []any{1}), 400, `{"edges":[{"non_field_errors":["Invalid data. Expected a dictionary, but got int."]}]}`},
		{"parameters not an object", with(valid, "parameters", []any{}), 400, `{"parameters":["Expected a dictionary of items but got type \"list\"."]}`},
		{"parameter not an object", with(valid, "parameters", map[string]any{"e": 1}), 400, `{"parameters":{"e":["Expected a dictionary of items but got type \"int\"."]}}`},
		{"parameter target unknown node", with(valid, "parameters", map[string]any{"e": map[string]any{"config": map[string]any{"targets": []any{"ghost.parameters.e"}}, "expression": 1}}), 400, `{"parameters":{"e":["Target \"ghost.parameters.e\" names no node of this pipeline."]}}`},
		{"no edges nor parameters", with(valid, "edges", deleteField, "parameters", deleteField), 201, ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := call(t, srv, "POST", "/api/v0/pipelines/", tt.body)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.raw)
			}
			if tt.want != "" {
				jsonEqual(t, res.json, tt.want)
			}
		})
	}
}

func TestCommits(t *testing.T) {
	_, srv := newServer(t)
	config, _ := ParseConfigYAML([]byte(testYAML))
	wantConfig, _ := json.Marshal(config)
	tests := []struct {
		name, path string
		status     int
		ref        string
		withConfig string // JSON of config, "" when absent
	}{
		{"detail", "/api/v0/commits/" + shaMain + "/?project=" + projectA, 200, "main", ""},
		{"with config", "/api/v0/commits/" + shaMain + "/?project=" + projectA + "&include=config", 200, "main", string(wantConfig)},
		{"include list", "/api/v0/commits/" + shaMain + "/?include=foo,config", 200, "main", string(wantConfig)},
		{"no config held", "/api/v0/commits/" + shaDev + "/?include=config", 200, "dev", "[]"},
		{"without project", "/api/v0/commits/" + shaOther + "/", 200, "main", ""},
		{"wrong project", "/api/v0/commits/" + shaOther + "/?project=" + projectA, 404, "", ""},
		{"unknown project", "/api/v0/commits/" + shaMain + "/?project=nope", 404, "", ""},
		{"unknown commit", "/api/v0/commits/cafe/", 404, "", ""},
		{"refs are not identifiers", "/api/v0/commits/main/?project=" + projectA, 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := call(t, srv, "GET", tt.path, nil)
			if res.status != tt.status {
				t.Fatalf("status %d, want %d: %s", res.status, tt.status, res.raw)
			}
			if tt.status != 200 {
				jsonEqual(t, res.json, `{"detail":"Not found."}`)
				return
			}
			c := res.obj(t)
			if c["ref"] != tt.ref || c["adhoc"] != false || !strings.HasSuffix(c["url"].(string), "/api/v0/commits/"+c["identifier"].(string)+"/") {
				t.Errorf("commit %s", res.raw)
			}
			cfg, has := c["config"]
			if has != (tt.withConfig != "") {
				t.Fatalf("config present %v: %s", has, res.raw)
			}
			if has {
				jsonEqual(t, cfg, tt.withConfig)
			}
		})
	}
	t.Run("list", func(t *testing.T) {
		res := call(t, srv, "GET", "/api/v0/commits/?project="+projectA+"&adhoc=false&limit=9000", nil)
		if res.status != 200 {
			t.Fatalf("%d", res.status)
		}
		list := res.obj(t)
		if list["count"] != 2.0 || list["next"] != nil {
			t.Fatalf("%s", res.raw)
		}
		results := list["results"].([]any)
		if results[0].(map[string]any)["identifier"] != shaMain || results[1].(map[string]any)["identifier"] != shaDev {
			t.Errorf("%s", res.raw)
		}
		// The CLI follows each commit's url with include=config.
		detail := call(t, srv, "GET", strings.TrimPrefix(results[0].(map[string]any)["url"].(string), srv.URL)+"?include=config", nil)
		if detail.status != 200 || detail.obj(t)["config"] == nil {
			t.Errorf("follow url: %d", detail.status)
		}
		if all := call(t, srv, "GET", "/api/v0/commits/", nil); all.obj(t)["count"] != 3.0 {
			t.Errorf("all: %s", all.raw)
		}
		if bad := call(t, srv, "GET", "/api/v0/commits/?project=nope", nil); bad.status != 400 {
			t.Errorf("unknown project: %d", bad.status)
		}
	})
}

func TestFetch(t *testing.T) {
	_, srv := newServer(t)
	first := call(t, srv, "POST", "/api/v0/projects/"+projectA+"/fetch/", nil)
	if first.status != 201 {
		t.Fatalf("%d %s", first.status, first.raw)
	}
	f := first.obj(t)
	commits := f["commits"].([]any)
	if len(commits) != 2 || commits[0].(map[string]any)["identifier"] != shaMain || commits[1].(map[string]any)["identifier"] != shaDev {
		t.Fatalf("first fetch %s", first.raw)
	}
	c := commits[0].(map[string]any)
	if c["ref"] != "main" || c["repository"] == nil || c["commit_time"] == nil || c["url"] == nil {
		t.Errorf("commit %v", c)
	}
	jsonEqual(t, f["errors"], `[]`)
	second := call(t, srv, "POST", "/api/v0/projects/"+projectA+"/fetch/", `{}`)
	jsonEqual(t, second.json, `{"commits":[],"errors":[]}`)
	// Each project keeps its own memory.
	if other := call(t, srv, "POST", "/api/v0/projects/"+projectB+"/fetch/", nil); len(other.obj(t)["commits"].([]any)) != 1 {
		t.Errorf("other project %s", other.raw)
	}
	if unknown := call(t, srv, "POST", "/api/v0/projects/nope/fetch/", nil); unknown.status != 404 {
		t.Errorf("unknown project %d", unknown.status)
	}
}

func TestControlEndpoints(t *testing.T) {
	sim, srv := newServer(t)
	post := func(path, body string) result {
		t.Helper()
		return call(t, srv, "POST", "/__simulator/"+path, body, "Authorization", "")
	}
	res := post("fail", `{"count":1,"status":429,"retry_after_seconds":3}`)
	if res.status != 200 {
		t.Fatalf("%d %s", res.status, res.raw)
	}
	jsonEqual(t, res.obj(t)["fail"], `{"count":1,"status":429,"retry_after_seconds":3}`)
	if got := call(t, srv, "GET", "/api/v0/commits/", nil); got.status != 429 || got.header.Get("Retry-After") != "3" {
		t.Fatalf("%d %q", got.status, got.header.Get("Retry-After"))
	}
	if got := call(t, srv, "GET", "/api/v0/commits/", nil); got.status != 200 {
		t.Fatalf("after the failure: %d", got.status)
	}
	if res := post("fail", `{"count":1}`); res.obj(t)["fail"].(map[string]any)["status"] != 503.0 {
		t.Errorf("default status: %s", res.raw)
	}
	if got := call(t, srv, "GET", "/api/v0/commits/", nil); got.status != 503 {
		t.Fatalf("default fail: %d", got.status)
	}

	if res := post("delay", `{"delay":"120ms"}`); res.status != 200 || res.obj(t)["delay"] != "120ms" {
		t.Fatalf("delay %d %s", res.status, res.raw)
	}
	start := time.Now()
	call(t, srv, "GET", "/api/v0/commits/", nil)
	if time.Since(start) < 120*time.Millisecond {
		t.Error("delay not applied")
	}
	// The helpers themselves are never delayed (an hour would time out the
	// test) nor recorded.
	post("delay", `{"delay":"1h"}`)
	calls := call(t, srv, "GET", "/__simulator/calls/", nil)
	if n := len(calls.json.([]any)); n != 4 {
		t.Errorf("%d calls", n)
	}

	res = post("reset", ``)
	jsonEqual(t, res.json, `{"fail":{"count":0,"status":0,"retry_after_seconds":0},"delay":"0s","delay_after_create":false,"calls":0}`)
	if len(sim.Calls()) != 0 {
		t.Error("reset kept calls")
	}

	bad := []struct{ path, body string }{
		{"fail", `{"count":-1}`},
		{"fail", `{"count":1,"status":302}`},
		{"fail", `{"cuont":1}`},
		{"fail", `{"count":"1"}`},
		{"fail", `{"count":1,"retry_after_seconds":-2}`},
		{"delay", `{"delay":"soon"}`},
		{"delay", `{"delay":"-1s"}`},
		{"delay", `{}`},
		{"delay", `{"delay":"1s"} x`},
	}
	for _, b := range bad {
		if res := post(b.path, b.body); res.status != 400 {
			t.Errorf("%s %s: %d", b.path, b.body, res.status)
		}
	}
	for _, m := range []struct{ method, path string }{{"GET", "fail"}, {"GET", "reset"}, {"POST", "calls"}} {
		res := call(t, srv, m.method, "/__simulator/"+m.path, nil)
		if res.status != 405 {
			t.Errorf("%s %s: %d", m.method, m.path, res.status)
		}
	}
	if res := call(t, srv, "GET", "/__simulator/other", nil); res.status != 404 {
		t.Errorf("unknown helper: %d", res.status)
	}
	if len(sim.Calls()) != 0 {
		t.Error("helpers recorded")
	}
}

func TestMountAndBaseURL(t *testing.T) {
	sim := New(testConfig(t))
	srv := httptest.NewServer(sim)
	defer srv.Close()
	res := call(t, srv, "POST", "/valohai/api/v0/executions/", validExecution())
	if res.status != 201 {
		t.Fatalf("%d %s", res.status, res.raw)
	}
	e := res.obj(t)
	if !strings.HasPrefix(e["url"].(string), srv.URL+"/valohai/api/v0/executions/") ||
		e["urls"].(map[string]any)["display"] != srv.URL+"/valohai/p/acme/ml/execution/1/" {
		t.Errorf("urls %v %v", e["url"], e["urls"])
	}
	if res := call(t, srv, "GET", "/valohai/__simulator/calls", nil); len(res.json.([]any)) != 1 {
		t.Errorf("mounted helpers %s", res.raw)
	}

	cfg := testConfig(t)
	cfg.BaseURL = "https://valohai.example.com/"
	srv2 := httptest.NewServer(New(cfg))
	defer srv2.Close()
	e = call(t, srv2, "POST", "/api/v0/executions/", validExecution()).obj(t)
	if e["urls"].(map[string]any)["display"] != "https://valohai.example.com/p/acme/ml/execution/1/" {
		t.Errorf("display %v", e["urls"])
	}
}

func TestConcurrentCounters(t *testing.T) {
	sim, srv := newServer(t)
	const n = 40
	body, _ := json.Marshal(validExecution())
	type answer struct {
		counter float64
		err     error
	}
	answers := make(chan answer, n)
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("POST", srv.URL+"/api/v0/executions/", bytes.NewReader(body))
			req.Header.Set("Authorization", "Token "+testToken)
			req.Header.Set("Content-Type", "application/json")
			resp, err := srv.Client().Do(req)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			var e struct{ Counter float64 }
			err = json.NewDecoder(resp.Body).Decode(&e)
			if err == nil && resp.StatusCode != 201 {
				err = fmt.Errorf("status %d", resp.StatusCode)
			}
			_ = sim.Calls() // read while others write
			answers <- answer{e.Counter, err}
		}()
	}
	wg.Wait()
	close(answers)
	seen := map[float64]bool{}
	for a := range answers {
		if a.err != nil {
			t.Fatal(a.err)
		}
		if seen[a.counter] || a.counter < 1 || a.counter > n {
			t.Fatalf("counter %v repeated or out of range", a.counter)
		}
		seen[a.counter] = true
	}
	if len(sim.Calls()) != n {
		t.Fatalf("%d calls", len(sim.Calls()))
	}
}

func TestParseConfigYAML(t *testing.T) {
	config, err := ParseConfigYAML([]byte(testYAML))
	if err != nil {
		t.Fatal(err)
	}
	if len(config) != 3 {
		t.Fatalf("%d items", len(config))
	}
	step := config[1].(map[string]any)["step"].(map[string]any)
	if step["name"] != "train" || step["parameters"].([]any)[0].(map[string]any)["default"] != 10 {
		t.Errorf("step %v", step)
	}
	if names := stepNames(config); !reflect.DeepEqual(names, map[string]bool{"preprocess": true, "train": true}) {
		t.Errorf("steps %v", names)
	}
	if _, err := json.Marshal(config); err != nil {
		t.Error(err)
	}

	tests := []struct {
		name, yaml string
		ok         bool
	}{
		{"empty", ``, true},
		{"non-string keys", "- step:\n    name: s\n    1: one\n    true: yes\n", true},
		{"not a list", "step: {name: x}\n", false},
		{"not YAML", "- [unclosed\n", false},
		{"NaN", "- step: {name: x, v: .nan}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ParseConfigYAML([]byte(tt.yaml))
			if (err == nil) != tt.ok {
				t.Fatalf("err %v", err)
			}
			if tt.ok {
				if _, err := json.Marshal(cfg); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	if err := testConfig(t).Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bad := []Config{
		{Projects: map[string]*Project{}},
		{Token: "t", Projects: map[string]*Project{"a": {ID: "b"}}},
		{Token: "t", Projects: map[string]*Project{"": {}}},
		{Token: "t", Projects: map[string]*Project{"a": {Commits: map[string]Commit{"": {}}}}},
		{Token: "t", Projects: map[string]*Project{"a": {Commits: map[string]Commit{"c": {Config: []any{math.NaN()}}}}}},
		{Token: "t", Projects: map[string]*Project{"a": {Commits: map[string]Commit{"c": {Config: []any{func() {}}}}}}},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("config %d accepted", i)
		}
	}
	// New copes anyway: a NaN in a config is answered as text, not a 500.
	cfg := testConfig(t)
	cfg.Projects[projectA].Commits["nan"] = Commit{Config: []any{map[any]any{"step": map[string]any{"name": "n", "x": math.Inf(1)}}}}
	srv := httptest.NewServer(New(cfg))
	defer srv.Close()
	res := call(t, srv, "GET", "/api/v0/commits/nan/?include=config", nil)
	if res.status != 200 {
		t.Fatalf("%d %s", res.status, res.raw)
	}
	jsonEqual(t, res.obj(t)["config"], `[{"step":{"name":"n","x":"+Inf"}}]`)
}

// FuzzExecutionBody feeds arbitrary bytes as an execution body: the answer
// must always be JSON with a 201, 400 or 404, never a panic or a 500.
func FuzzExecutionBody(f *testing.F) {
	seeds := []string{
		``, `{}`, `null`, `"x"`, `[]`, `1e400`, `{"project":`, "\xff",
		`{"project":"` + projectA + `","commit":"main","step":"train"}`,
		`{"project":"` + projectA + `","commit":"main","step":"train","inputs":{"a":["s3://x",1,null]},"parameters":{"p":[{}],"q":{"r":1}},"tags":[null],"environment_variables":{"a":[]},"priority":1e99,"time_limit":"1","command":[[]]}`,
		`{"project":"nope","commit":1}`,
		`{"project":null,"commit":null,"step":null,"inputs":null}`,
		`{"project":"` + projectA + `","commit":"` + shaDev + `","step":"s","inputs":{"":""},"environment":"` + projectB + `"}`,
		strings.Repeat("[", 20000),
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	cfg := testConfig(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		sim := New(cfg) // fresh each time, so stored executions do not pile up
		req := httptest.NewRequest("POST", "/api/v0/executions/", bytes.NewReader(body))
		req.Header.Set("Authorization", "Token "+testToken)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		switch rec.Code {
		case 201, 400, 404:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.Bytes())
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer is not JSON: %q", rec.Body.Bytes())
		}
		if rec.Code == 201 {
			var e map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e["id"] == nil || e["urls"] == nil {
				t.Fatalf("created without id or urls: %s", rec.Body.Bytes())
			}
		}
	})
}

// FuzzPipelineBody does the same for pipeline bodies.
func FuzzPipelineBody(f *testing.F) {
	valid, _ := json.Marshal(validPipeline())
	for _, s := range []string{``, `{}`, `[]`, string(valid),
		`{"project":"` + projectA + `","title":"t","nodes":[{"name":"a","type":"mimic","source":null},{"name":"a","type":"task","template":[]}],"edges":[{"source_node":1}],"parameters":{"p":{"config":{"targets":[1,"x"]}}}}`,
	} {
		f.Add([]byte(s))
	}
	cfg := testConfig(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		sim := New(cfg)
		req := httptest.NewRequest("POST", "/api/v0/pipelines/", bytes.NewReader(body))
		req.Header.Set("Authorization", "Token "+testToken)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		switch rec.Code {
		case 201, 400, 404:
		default:
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body.Bytes())
		}
		if !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("answer is not JSON: %q", rec.Body.Bytes())
		}
	})
}

// A delay after_create lets a create take effect at once while its answer
// waits: the execution is listed before its creator hears back, and a
// client that gives up still leaves it created.
func TestDelayAfterCreate(t *testing.T) {
	_, srv := newServer(t)
	res := call(t, srv, "POST", "/__simulator/delay", `{"delay":"1h","after_create":true}`, "Authorization", "")
	if res.status != 200 || res.obj(t)["delay_after_create"] != true {
		t.Fatalf("delay after_create: %d %s", res.status, res.raw)
	}
	body, _ := json.Marshal(validExecution())
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/api/v0/executions/", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Token "+testToken)
	client := &http.Client{Timeout: 300 * time.Millisecond}
	if res, err := client.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("the create was answered (%d) despite the 1h delay", res.StatusCode)
	}
	// Listing is not delayed, and shows the execution its client never
	// heard about.
	list := call(t, srv, "GET", "/api/v0/executions/?project="+projectA, nil)
	if list.status != 200 {
		t.Fatalf("list: %d %s", list.status, list.raw)
	}
	if n := len(list.obj(t)["results"].([]any)); n != 1 {
		t.Fatalf("%d executions listed, want the one whose answer was cut off", n)
	}
}
