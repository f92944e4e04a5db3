package launch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hooklaunch/caddy-valohai/launch/convert"
)

const testToken = "s3cr3t-valohai-token"

// recorded is what the test server saw of a request.
type recorded struct {
	method, path string
	header       http.Header
	body         []byte
}

// newTestServer answers every request with handler and records requests.
func newTestServer(t *testing.T, handler http.HandlerFunc) (*httptest.Server, func() []recorded) {
	t.Helper()
	var mu sync.Mutex
	var seen []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen = append(seen, recorded{r.Method, r.URL.Path, r.Header.Clone(), body})
		mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []recorded {
		mu.Lock()
		defer mu.Unlock()
		return append([]recorded(nil), seen...)
	}
}

func answer(status int, body string, headers ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

const executionDetail = `{"id":"0190b7e2-7f1a-7c5e-9d3a-0a1b2c3d4e5f","counter":34,"status":"queued","step":"train",
 "url":"https://app.valohai.com/api/v0/executions/0190b7e2-7f1a-7c5e-9d3a-0a1b2c3d4e5f/",
 "urls":{"display":"https://app.valohai.com/p/acme/proj/execution/34/","stop":"x","copy":"y"},
 "project":{"id":"p"},"commit":{"identifier":"abc","ref":"main"},"parameters":{"epochs":10},"outputs":[]}`

func TestCreateExecutionSuccess(t *testing.T) {
	srv, seen := newTestServer(t, answer(http.StatusCreated, executionDetail))
	c := &Client{BaseURL: srv.URL + "/", Token: testToken}
	body := json.RawMessage(`{"project":"p", "commit":"main","step":"train","inputs":{},"parameters":{"epochs":10}}`)

	res, err := c.CreateExecution(context.Background(), body)
	if err != nil {
		t.Fatal(err)
	}
	want := ActionResult{
		ID:         "0190b7e2-7f1a-7c5e-9d3a-0a1b2c3d4e5f",
		Counter:    34,
		URL:        "https://app.valohai.com/api/v0/executions/0190b7e2-7f1a-7c5e-9d3a-0a1b2c3d4e5f/",
		DisplayURL: "https://app.valohai.com/p/acme/proj/execution/34/",
		Status:     "queued",
	}
	if got := *res; got.ID != want.ID || got.Counter != want.Counter || got.URL != want.URL ||
		got.DisplayURL != want.DisplayURL || got.Status != want.Status || got.Extra != nil {
		t.Errorf("result = %+v, want %+v", got, want)
	}

	reqs := seen()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/api/v0/executions/" {
		t.Errorf("request = %s %s, want POST /api/v0/executions/", r.method, r.path)
	}
	for name, want := range map[string]string{
		"Authorization": "Token " + testToken,
		"Accept":        "application/json",
		"Content-Type":  "application/json",
		"User-Agent":    "caddy-valohai",
	} {
		if got := r.header.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	var sent map[string]any
	if err := json.Unmarshal(r.body, &sent); err != nil || sent["step"] != "train" {
		t.Errorf("body sent = %s (%v)", r.body, err)
	}
}

func TestPerform(t *testing.T) {
	const sha = "abcabcabcabcabcabcabcabcabcabcabcabcabca"
	srv, seen := newTestServer(t, route(map[string]http.HandlerFunc{
		"GET /api/v0/commits/" + sha + "/": answer(200, `{"identifier":"`+sha+`","config":[{"step":{"name":"train","image":"i","command":"c"}}]}`),
		"POST /api/v0/executions/":         answer(http.StatusCreated, executionDetail),
	}))
	c := &Client{BaseURL: srv.URL, Token: testToken, UserAgent: "test-agent/1"}

	res, err := c.Perform(context.Background(), &Action{Kind: ActionRunExecution, Body: json.RawMessage(`{"project":"p","commit":"` + sha + `","step":"train"}`)})
	if err != nil || res.Counter != 34 {
		t.Fatalf("run_execution: %+v, %v", res, err)
	}
	if ua := seen()[1].header.Get("User-Agent"); ua != "test-agent/1" {
		t.Errorf("User-Agent = %q", ua)
	}

	// A run_execution stored by an earlier version holds the finished body
	// (inputs and parameters as objects): it is sent unchanged, no lookup.
	legacy := `{"project":"p","commit":"main","step":"train","inputs":{"data":["s3://x"]},"parameters":{"epochs":5}}`
	if res, err := c.Perform(context.Background(), &Action{Kind: ActionRunExecution, Body: json.RawMessage(legacy)}); err != nil || res.Counter != 34 {
		t.Fatalf("legacy run_execution: %+v, %v", res, err)
	}
	if reqs := seen(); len(reqs) != 3 || reqs[2].method != http.MethodPost || string(reqs[2].body) != legacy {
		t.Fatalf("legacy body not sent as stored: %d requests", len(reqs))
	}

	for _, kind := range []ActionKind{"bogus", ""} {
		_, err := c.Perform(context.Background(), &Action{Kind: kind, Body: json.RawMessage(`{}`)})
		if !errors.Is(err, ErrUnsupportedAction) || !strings.Contains(err.Error(), "action "+string(kind)+" is not supported") {
			t.Errorf("%q: err = %v", kind, err)
		}
		if Retryable(err) {
			t.Errorf("%q: unsupported action is retryable", kind)
		}
	}
	// Every supported kind refuses a missing or incomplete spec for good,
	// before calling Valohai.
	for _, a := range []Action{
		{Kind: ActionRunExecution},
		{Kind: ActionRunExecution, Body: json.RawMessage(`{"project":"p","commit":"main"}`)},
		{Kind: ActionRunExecution, Body: json.RawMessage(`{"project":"p","step":"x"}`)},
		{Kind: ActionRunExecution, Body: json.RawMessage(`{"commit":"main","step":"x"}`)},
		{Kind: ActionRunPipeline},
		{Kind: ActionRunPipeline, Body: json.RawMessage(`{"project":"p","commit":"main"}`)},
		{Kind: ActionRunPipeline, Body: json.RawMessage(`{"project":"p","pipeline":"x"}`)},
		{Kind: ActionRunPipeline, Body: json.RawMessage(`{"commit":"main","pipeline":"x"}`)},
		{Kind: ActionRunPipeline, Body: json.RawMessage(`["not","a","spec"]`)},
		{Kind: ActionCopyPipeline},
		{Kind: ActionCopyPipeline, Body: json.RawMessage(`{"title":"no source"}`)},
		{Kind: ActionFetchRepository},
		{Kind: ActionFetchRepository, Body: json.RawMessage(`{}`)},
		{Kind: ActionFetchRepository, Body: json.RawMessage(`{"project":".."}`)},
	} {
		if _, err := c.Perform(context.Background(), &a); err == nil || Retryable(err) {
			t.Errorf("%s %s: err = %v, want a permanent error", a.Kind, a.Body, err)
		}
	}
	if _, err := c.Perform(context.Background(), nil); err == nil {
		t.Error("nil action: no error")
	}
	if n := len(seen()); n != 3 {
		t.Errorf("%d requests sent, want 3 (failed actions must not reach Valohai)", n)
	}
}

func TestAPIErrors(t *testing.T) {
	const badEnv = `{"environment": [{"message": "Object with slug or primary key bluup does not exist.", "code": "does_not_exist"}]}`
	httpDate := time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name           string
		handler        http.HandlerFunc
		status         int
		retryable      bool
		retryAfterMin  time.Duration
		retryAfterMax  time.Duration
		errContains    string
		errNotContains string
	}{
		{name: "400 validation", handler: answer(400, badEnv), status: 400,
			errContains: "valohai: 400 Bad Request: " + badEnv},
		{name: "401", handler: answer(401, `{"detail":"Invalid token."}`), status: 401, errContains: "Invalid token."},
		{name: "404", handler: answer(404, `{"detail":"Not found."}`), status: 404},
		{name: "503", handler: answer(503, `upstream down`, "Retry-After", "7"), status: 503, retryable: true,
			retryAfterMin: 7 * time.Second, retryAfterMax: 7 * time.Second},
		{name: "500 no retry-after", handler: answer(500, ``), status: 500, retryable: true, errContains: "valohai: 500 Internal Server Error"},
		{name: "429 seconds", handler: answer(429, `{"detail":"Request was throttled."}`, "Retry-After", "120"), status: 429,
			retryable: true, retryAfterMin: 120 * time.Second, retryAfterMax: 120 * time.Second},
		{name: "429 http date", handler: answer(429, ``, "Retry-After", httpDate), status: 429, retryable: true,
			retryAfterMin: 80 * time.Second, retryAfterMax: 91 * time.Second},
		{name: "200 instead of 201", handler: answer(200, `{"results":[]}`), status: 200,
			errContains: "200 OK (expected 201)"},
		{name: "token echoed", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(400)
			io.WriteString(w, "you sent "+r.Header.Get("Authorization"))
		}, status: 400, errContains: "you sent Token [token]", errNotContains: testToken},
		{name: "huge body truncated", handler: answer(502, strings.Repeat("é", 10000)), status: 502, retryable: true,
			errContains: "(truncated)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newTestServer(t, tt.handler)
			c := &Client{BaseURL: srv.URL, Token: testToken}
			res, err := c.CreateExecution(context.Background(), json.RawMessage(`{}`))
			if res != nil {
				t.Errorf("result = %+v, want nil", res)
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) {
				t.Fatalf("err = %#v, want *APIError", err)
			}
			if apiErr.Status != tt.status {
				t.Errorf("Status = %d, want %d", apiErr.Status, tt.status)
			}
			if got := Retryable(err); got != tt.retryable {
				t.Errorf("Retryable = %v, want %v", got, tt.retryable)
			}
			if apiErr.RetryAfter < tt.retryAfterMin || apiErr.RetryAfter > tt.retryAfterMax {
				t.Errorf("RetryAfter = %v, want in [%v, %v]", apiErr.RetryAfter, tt.retryAfterMin, tt.retryAfterMax)
			}
			if len(apiErr.Body) > maxErrorBody+len("…(truncated)") {
				t.Errorf("Body is %d bytes, want at most ~%d", len(apiErr.Body), maxErrorBody)
			}
			msg := err.Error()
			if !strings.Contains(msg, tt.errContains) {
				t.Errorf("Error() = %q, want it to contain %q", msg, tt.errContains)
			}
			if strings.Contains(msg, testToken) || strings.Contains(apiErr.Body, testToken) {
				t.Errorf("token leaked into error: %q", msg)
			}
		})
	}
}

func TestNetworkErrorRetryable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	c := &Client{BaseURL: base, Token: testToken}
	_, err := c.CreateExecution(context.Background(), json.RawMessage(`{}`))
	if err == nil {
		t.Fatal("no error from a closed server")
	}
	if !Retryable(err) {
		t.Errorf("Retryable(%v) = false, want true", err)
	}
	if strings.Contains(err.Error(), testToken) {
		t.Errorf("token leaked: %v", err)
	}
}

func TestTimeoutRetryable(t *testing.T) {
	release := make(chan struct{})
	srv, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) { <-release })
	defer close(release)
	c := &Client{BaseURL: srv.URL, HTTP: &http.Client{Timeout: 50 * time.Millisecond}}
	_, err := c.CreateExecution(context.Background(), json.RawMessage(`{}`))
	if err == nil || !Retryable(err) {
		t.Errorf("timeout: err = %v, Retryable = %v, want a retryable error", err, Retryable(err))
	}
}

func TestContextCancellationNotRetryable(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	srv, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	defer close(release)
	c := &Client{BaseURL: srv.URL, Token: testToken}

	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()
	_, err := c.CreateExecution(ctx, json.RawMessage(`{}`))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if Retryable(err) {
		t.Errorf("Retryable(%v) = true, want false", err)
	}

	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if _, err := c.CreateExecution(done, json.RawMessage(`{}`)); err == nil || Retryable(err) {
		t.Errorf("already cancelled: err = %v, Retryable = %v", err, Retryable(err))
	}
}

func TestAcceptedButUnreadableNotRetryable(t *testing.T) {
	tests := map[string]http.HandlerFunc{
		"not json": answer(201, `<html>created</html>`),
		"cut short": func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "1000")
			w.WriteHeader(201)
			io.WriteString(w, `{"id":"x"`)
		},
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			srv, _ := newTestServer(t, h)
			c := &Client{BaseURL: srv.URL}
			_, err := c.CreateExecution(context.Background(), json.RawMessage(`{}`))
			if err == nil {
				t.Fatal("no error")
			}
			// Valohai created the execution: a retry would launch it twice.
			if Retryable(err) {
				t.Errorf("Retryable(%v) = true, want false", err)
			}
		})
	}
}

func TestLocalErrorsNotRetryable(t *testing.T) {
	for name, c := range map[string]*Client{
		"bad scheme": {BaseURL: "ftp://valohai.example"},
		"no host":    {BaseURL: "https://"},
		"garbage":    {BaseURL: "http://[::1"},
	} {
		_, err := c.CreateExecution(context.Background(), json.RawMessage(`{}`))
		if err == nil || Retryable(err) {
			t.Errorf("%s: err = %v, Retryable = %v", name, err, Retryable(err))
		}
	}
	c := &Client{BaseURL: "http://127.0.0.1:1"}
	if _, err := c.CreateExecution(context.Background(), json.RawMessage(`{not json`)); err == nil || Retryable(err) {
		t.Errorf("invalid body: err = %v", err)
	}
	if Retryable(nil) {
		t.Error("Retryable(nil) = true")
	}
}

func TestEndpoint(t *testing.T) {
	for base, want := range map[string]string{
		"":                                   "https://app.valohai.com/api/v0/executions/",
		"https://app.valohai.com":            "https://app.valohai.com/api/v0/executions/",
		"https://app.valohai.com/":           "https://app.valohai.com/api/v0/executions/",
		"https://vh.example.com/api/v0/":     "https://vh.example.com/api/v0/executions/",
		"http://localhost:8080/valohai":      "http://localhost:8080/valohai/api/v0/executions/",
		"https://vh.example.com/api/v0":      "https://vh.example.com/api/v0/executions/",
		"https://vh.example.com/prefix///":   "https://vh.example.com/prefix/api/v0/executions/",
		"https://vh.example.com:8443/api/v0": "https://vh.example.com:8443/api/v0/executions/",
	} {
		got, err := (&Client{BaseURL: base}).endpoint("/api/v0/executions/")
		if err != nil || got != want {
			t.Errorf("endpoint(%q) = %q, %v; want %q", base, got, err, want)
		}
	}
}

func TestHelpers(t *testing.T) {
	srv, seen := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v0/commits/abc/":
			answer(200, `{"identifier":"abc","config":{"steps":[]}}`)(w, r)
		case "/api/v0/projects/p/fetch/":
			answer(200, ``)(w, r)
		case "/api/v0/big/":
			answer(200, `"`+strings.Repeat("a", maxAnswerBytes)+`"`)(w, r)
		default:
			answer(404, `{"detail":"Not found."}`)(w, r)
		}
	})
	c := &Client{BaseURL: srv.URL, Token: testToken}
	ctx := context.Background()

	var commit struct {
		Identifier string         `json:"identifier"`
		Config     map[string]any `json:"config"`
	}
	if err := c.getJSON(ctx, "/api/v0/commits/abc/", &commit); err != nil || commit.Identifier != "abc" {
		t.Errorf("getJSON = %+v, %v", commit, err)
	}
	if r := seen()[0]; r.method != http.MethodGet || r.header.Get("Content-Type") != "" || r.header.Get("Authorization") != "Token "+testToken {
		t.Errorf("GET request headers = %v", r.header)
	}
	// An empty 2xx answer with a struct to fill is fine (fetch returns no body).
	if err := c.postJSON(ctx, "/api/v0/projects/p/fetch/", map[string]any{}, 200, &commit); err != nil {
		t.Errorf("postJSON empty answer: %v", err)
	}
	if got := string(seen()[1].body); got != `{}` {
		t.Errorf("postJSON sent %q, want {}", got)
	}
	if err := c.getJSON(ctx, "/api/v0/big/", new(string)); err == nil || Retryable(err) {
		t.Errorf("oversized answer: err = %v", err)
	}
	if err := c.getJSON(ctx, "/api/v0/missing/", nil); err == nil || Retryable(err) {
		t.Errorf("404: err = %v", err)
	}
	if err := c.postJSON(ctx, "/api/v0/x/", make(chan int), 201, nil); err == nil || Retryable(err) {
		t.Errorf("unmarshalable body: err = %v", err)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":                               0,
		"0":                              0,
		" 30 ":                           30 * time.Second,
		"-5":                             0,
		"1.5":                            0,
		"soon":                           0,
		"99999999999999999999999":        maxRetryAfter,
		"Sun, 01 Mar 2026 12:01:00 GMT":  time.Minute,
		"Sun, 01 Mar 2026 11:00:00 GMT":  0,
		"Sunday, 01-Mar-26 12:00:10 GMT": 10 * time.Second,
		"Fri, 01 Mar 2999 12:00:00 GMT":  maxRetryAfter,
	} {
		if got := parseRetryAfter(in, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestAPIErrorMessage(t *testing.T) {
	for _, tt := range []struct {
		err  APIError
		want string
	}{
		{APIError{Status: 400, Body: `{"detail":"x"}`}, `valohai: 400 Bad Request: {"detail":"x"}`},
		{APIError{Status: 503, Body: "  \n"}, `valohai: 503 Service Unavailable`},
		{APIError{Status: 599, Body: "odd"}, `valohai: 599: odd`},
		{APIError{Status: 200, Want: 201}, `valohai: 200 OK (expected 201)`},
	} {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

// route answers by "METHOD /path" (query ignored); anything else is a 404.
func route(routes map[string]http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h, ok := routes[r.Method+" "+r.URL.Path]; ok {
			h(w, r)
			return
		}
		answer(404, `{"detail":"Not found."}`)(w, r)
	}
}

const commitDetail = `{"repository":1,"identifier":"0123abcd0123abcd0123abcd0123abcd0123abcd","ref":"main",
 "commit_time":"2026-03-01T12:00:00.000000Z","adhoc":false,"url":"https://app.valohai.com/api/v0/commits/0123abcd/",
 "config":[{"step":{"name":"train","image":"python:3.12","command":"python train.py",
   "parameters":[{"name":"big","type":"integer","default":12345678901234567890}]}},
  {"pipeline":{"name":"p","nodes":[{"name":"train","type":"execution","step":"train"}],"edges":[]}}]}`

func TestGetCommit(t *testing.T) {
	srv, seen := newTestServer(t, answer(200, commitDetail))
	c := &Client{BaseURL: srv.URL, Token: testToken}
	commit, err := c.GetCommit(context.Background(), "proj-1", "0123abcd0123abcd0123abcd0123abcd0123abcd", true)
	if err != nil {
		t.Fatal(err)
	}
	if commit.Identifier != "0123abcd0123abcd0123abcd0123abcd0123abcd" || commit.Ref != "main" || commit.Adhoc ||
		commit.CommitTime != "2026-03-01T12:00:00.000000Z" || len(commit.Config) != 2 {
		t.Errorf("commit = %+v", commit)
	}
	// Numbers pass through exactly (a float64 would round this one).
	body, err := convert.ConvertPipeline(commit.Config, commit.Identifier, "p")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(body)
	if !strings.Contains(string(data), `"big":12345678901234567890`) {
		t.Errorf("large default not kept exactly: %s", data)
	}
	r := seen()[0]
	if r.method != http.MethodGet || r.path != "/api/v0/commits/0123abcd0123abcd0123abcd0123abcd0123abcd/" {
		t.Errorf("request = %s %s", r.method, r.path)
	}

	// Query: project scope and include=config only when asked.
	var queries []string
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		queries = append(queries, r.URL.RawQuery)
		answer(200, `{"identifier":"~abc","ref":"","adhoc":true}`)(w, r)
	}))
	defer srv2.Close()
	c2 := &Client{BaseURL: srv2.URL, Token: testToken}
	if commit, err := c2.GetCommit(context.Background(), "", "~abc", false); err != nil || commit.Config != nil || !commit.Adhoc {
		t.Errorf("adhoc commit = %+v, %v", commit, err)
	}
	if _, err := c2.GetCommit(context.Background(), "p 1", "x", true); err != nil {
		t.Fatal(err)
	}
	if want := []string{"", "include=config&project=p+1"}; !reflect.DeepEqual(queries, want) {
		t.Errorf("queries = %q, want %q", queries, want)
	}
}

func TestGetCommitErrors(t *testing.T) {
	for name, tt := range map[string]struct {
		handler   http.HandlerFunc
		retryable bool
		want      string
	}{
		"config not a list": {answer(200, `{"identifier":"abc","config":{"steps":[]}}`), false, "config is not a list"},
		"config garbage":    {answer(200, `{"identifier":"abc","config":"x"}`), false, "config is not a list"},
		"not found":         {answer(404, `{"detail":"Not found."}`), false, "404"},
		"unavailable":       {answer(503, ``), true, "503"},
	} {
		t.Run(name, func(t *testing.T) {
			srv, _ := newTestServer(t, tt.handler)
			c := &Client{BaseURL: srv.URL, Token: testToken}
			_, err := c.GetCommit(context.Background(), "p", "abc", true)
			if err == nil || !strings.Contains(err.Error(), tt.want) || Retryable(err) != tt.retryable {
				t.Errorf("err = %v (retryable %v), want %q (retryable %v)", err, Retryable(err), tt.want, tt.retryable)
			}
		})
	}
	srv, seen := newTestServer(t, answer(200, commitDetail))
	c := &Client{BaseURL: srv.URL, Token: testToken}
	for _, bad := range []string{"", ".", ".."} {
		if _, err := c.GetCommit(context.Background(), "p", bad, true); err == nil || Retryable(err) {
			t.Errorf("identifier %q: err = %v", bad, err)
		}
	}
	if n := len(seen()); n != 0 {
		t.Errorf("%d requests for invalid identifiers", n)
	}
}

const commitList = `{"count":4,"next":null,"previous":null,"results":[
 {"identifier":"aaaa000000000000000000000000000000000001","ref":"main","commit_time":"2026-03-01T10:00:00.000000Z"},
 {"identifier":"bbbb000000000000000000000000000000000002","ref":"main","commit_time":"2026-03-02T10:00:00.000000Z"},
 {"identifier":"bbbc000000000000000000000000000000000003","ref":"dev","commit_time":"2026-03-03T10:00:00.000000Z"},
 {"identifier":"cccc000000000000000000000000000000000004","ref":"v1.0","commit_time":"2026-02-01T10:00:00.000000Z"}]}`

func TestResolveCommit(t *testing.T) {
	detail := func(w http.ResponseWriter, r *http.Request) {
		id := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/api/v0/commits/"), "/")
		if !strings.Contains(commitList, `"identifier":"`+id+`"`) {
			answer(404, `{"detail":"Not found."}`)(w, r)
			return
		}
		answer(200, `{"identifier":"`+id+`","ref":"x","config":[]}`)(w, r)
	}
	handler := func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v0/commits/":
			answer(200, commitList)(w, r)
		case "/api/v0/projects/proj/fetch/":
			answer(201, `{"commits":[],"errors":[]}`)(w, r)
		default:
			detail(w, r)
		}
	}
	// As valohai-cli resolves --commit: exact identifier, else (what git
	// gives the CLI locally) the newest commit on a branch or tag, else the
	// newest commit whose sha starts with ref; nothing found: one fetch and
	// one more list before failing.
	for _, tt := range []struct {
		ref, want, err string
		requests       int
	}{
		{ref: "cccc000000000000000000000000000000000004", want: "cccc000000000000000000000000000000000004", requests: 1},
		{ref: "main", want: "bbbb000000000000000000000000000000000002", requests: 2}, // newest on main
		{ref: "v1.0", want: "cccc000000000000000000000000000000000004", requests: 2},
		{ref: "aaaa00", want: "aaaa000000000000000000000000000000000001", requests: 2},
		{ref: "bbb", want: "bbbc000000000000000000000000000000000003", requests: 2}, // newest of two
		{ref: "bbbb", want: "bbbb000000000000000000000000000000000002", requests: 2},
		{ref: "bbb0", err: "not known", requests: 3},
		{ref: "feature/x", err: `commit or branch "feature/x" is not known to project proj, even after fetching the repository`, requests: 3},
		{ref: "~adhoc", err: "404", requests: 1},
	} {
		t.Run(tt.ref, func(t *testing.T) {
			srv, seen := newTestServer(t, handler)
			c := &Client{BaseURL: srv.URL, Token: testToken}
			commit, err := c.ResolveCommit(context.Background(), "proj", tt.ref)
			switch {
			case tt.err != "":
				if err == nil || !strings.Contains(err.Error(), tt.err) || Retryable(err) {
					t.Errorf("err = %v, want a permanent error containing %q", err, tt.err)
				}
			case err != nil:
				t.Fatal(err)
			case commit.Identifier != tt.want:
				t.Errorf("resolved to %s, want %s", commit.Identifier, tt.want)
			}
			reqs := seen()
			if len(reqs) != tt.requests {
				t.Errorf("%d requests, want %d", len(reqs), tt.requests)
			}
		})
	}

	// Ambiguous prefix.
	srv, _ := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v0/commits/" {
			answer(200, `{"results":[{"identifier":"abcd1","ref":"a"},{"identifier":"abcd2","ref":"b"}]}`)(w, r)
			return
		}
		answer(404, `{}`)(w, r)
	})
	c := &Client{BaseURL: srv.URL, Token: testToken}
	// Like valohai-cli, an ambiguous prefix takes the newest match.
	if _, err := c.ResolveCommit(context.Background(), "p", "abcd"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("ambiguous prefix: err = %v, want the newest match's detail read (404 here)", err)
	}

	// A failing lookup is not turned into "not known": a 503 stays retryable.
	srv503, seen503 := newTestServer(t, answer(503, ``))
	c = &Client{BaseURL: srv503.URL, Token: testToken}
	if _, err := c.ResolveCommit(context.Background(), "p", "main"); !Retryable(err) {
		t.Errorf("503: err = %v, want retryable", err)
	}
	if n := len(seen503()); n != 1 {
		t.Errorf("503: %d requests, want 1", n)
	}
}

func TestListCommitsQuery(t *testing.T) {
	srv, seen := newTestServer(t, answer(200, commitList))
	c := &Client{BaseURL: srv.URL, Token: testToken}
	commits, err := c.ListCommits(context.Background(), "proj")
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, cm := range commits {
		order = append(order, cm.Identifier[:4])
	}
	if want := []string{"bbbc", "bbbb", "aaaa", "cccc"}; !reflect.DeepEqual(order, want) {
		t.Errorf("order = %v, want newest first %v", order, want)
	}
	r := seen()[0]
	if r.path != "/api/v0/commits/" {
		t.Errorf("path = %s", r.path)
	}
	if _, err := c.ListCommits(context.Background(), ""); err == nil {
		t.Error("no project: no error")
	}
}

const pipelineDetail = `{"id":"0190c000-0000-7000-8000-000000000001","counter":21,"status":"started","title":"nightly",
 "project":{"id":"proj-1","name":"acme/ml"},"tags":["webhook"],
 "url":"https://app.valohai.com/api/v0/pipelines/0190c000-0000-7000-8000-000000000001/",
 "urls":{"display":"https://app.valohai.com/p/acme/ml/pipeline/21/"},
 "nodes":[{"id":"n1","name":"train","type":"execution","status":"created","execution":null,"log":[],
   "template":{"commit":"abc","step":"train","parameters":{"epochs":10}}}],
 "edges":[],"parameters":{}}`

func TestCreatePipeline(t *testing.T) {
	srv, seen := newTestServer(t, answer(201, pipelineDetail))
	c := &Client{BaseURL: srv.URL, Token: testToken}
	body := &PipelineBody{Project: "proj-1", Title: "nightly", Nodes: []*convert.PipelineNode{{Name: "m", Type: "mimic", Fields: map[string]any{"source": "n0"}}}}
	res, err := c.CreatePipeline(context.Background(), body)
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != "0190c000-0000-7000-8000-000000000001" || res.Counter != 21 || res.Status != "started" ||
		res.DisplayURL != "https://app.valohai.com/p/acme/ml/pipeline/21/" || res.URL == "" {
		t.Errorf("result = %+v", res)
	}
	r := seen()[0]
	if r.method != http.MethodPost || r.path != "/api/v0/pipelines/" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("request = %s %s %v", r.method, r.path, r.header)
	}
	want := `{"edges":[],"nodes":[{"name":"m","source":"n0","type":"mimic"}],"parameters":{},"project":"proj-1","tags":[],"title":"nightly"}`
	if got := compactJSON(plainJSON(t, r.body)); got != want {
		t.Errorf("body = %s\nwant %s", got, want)
	}

	for status, retryable := range map[int]bool{400: false, 404: false, 429: true, 502: true} {
		srv, _ := newTestServer(t, answer(status, `{"nodes":["bad"]}`))
		c := &Client{BaseURL: srv.URL, Token: testToken}
		if _, err := c.CreatePipeline(context.Background(), body); err == nil || Retryable(err) != retryable {
			t.Errorf("%d: err = %v, retryable %v", status, err, Retryable(err))
		}
	}
	if _, err := c.CreatePipeline(context.Background(), nil); err == nil || Retryable(err) {
		t.Errorf("nil body: err = %v", err)
	}
}

func TestGetPipeline(t *testing.T) {
	srv, seen := newTestServer(t, route(map[string]http.HandlerFunc{
		"GET /api/v0/pipelines/proj-1:21/": answer(200, pipelineDetail),
		"GET /api/v0/pipelines/plain/":     answer(200, `{"id":"plain","project":"proj-2","nodes":[]}`),
	}))
	c := &Client{BaseURL: srv.URL, Token: testToken}
	p, err := c.GetPipeline(context.Background(), "proj-1:21")
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "0190c000-0000-7000-8000-000000000001" || p.Counter != 21 || p.Project != "proj-1" || p.Title != "nightly" ||
		!reflect.DeepEqual(p.Tags, []string{"webhook"}) || p.DisplayURL != "https://app.valohai.com/p/acme/ml/pipeline/21/" || len(p.Nodes) != 1 {
		t.Errorf("pipeline = %+v", p)
	}
	if v := p.Nodes[0]["template"].(map[string]any)["parameters"].(map[string]any)["epochs"]; v != json.Number("10") {
		t.Errorf("epochs = %#v, want json.Number 10", v)
	}
	if seen()[0].path != "/api/v0/pipelines/proj-1:21/" {
		t.Errorf("path = %s", seen()[0].path)
	}
	if p, err := c.GetPipeline(context.Background(), "plain"); err != nil || p.Project != "proj-2" {
		t.Errorf("project as id: %+v, %v", p, err)
	}
	if _, err := c.GetPipeline(context.Background(), "missing"); err == nil || Retryable(err) {
		t.Errorf("404: err = %v", err)
	}
	if _, err := c.GetPipeline(context.Background(), ".."); err == nil || Retryable(err) {
		t.Errorf("dot segment: err = %v", err)
	}
}

func TestFetchRepository(t *testing.T) {
	srv, seen := newTestServer(t, answer(201, `{"commits":[
  {"repository":666,"identifier":"f00d","ref":"master","commit_time":"2026-03-01T10:00:00Z","url":"u"}],
  "errors":["Could not fetch branch x",{"message":"odd","code":"c"}]}`))
	c := &Client{BaseURL: srv.URL, Token: testToken}
	res, err := c.FetchRepository(context.Background(), "proj-1")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Commits) != 1 || res.Commits[0].Identifier != "f00d" || res.Commits[0].Ref != "master" {
		t.Errorf("commits = %+v", res.Commits)
	}
	if want := []string{"Could not fetch branch x", `{"message":"odd","code":"c"}`}; !reflect.DeepEqual(res.Errors, want) {
		t.Errorf("errors = %q, want %q", res.Errors, want)
	}
	r := seen()[0]
	if r.method != http.MethodPost || r.path != "/api/v0/projects/proj-1/fetch/" || len(r.body) != 0 || r.header.Get("Content-Type") != "" {
		t.Errorf("request = %s %s body %q content-type %q", r.method, r.path, r.body, r.header.Get("Content-Type"))
	}

	srv2, _ := newTestServer(t, answer(201, `{}`))
	c2 := &Client{BaseURL: srv2.URL, Token: testToken}
	if res, err := c2.FetchRepository(context.Background(), "p"); err != nil || res.Commits == nil || res.Errors == nil {
		t.Errorf("empty answer: %+v, %v (want empty, non-nil lists)", res, err)
	}
	srv3, _ := newTestServer(t, answer(200, `{"commits":[]}`))
	c3 := &Client{BaseURL: srv3.URL, Token: testToken}
	if _, err := c3.FetchRepository(context.Background(), "p"); err == nil || Retryable(err) {
		t.Errorf("200 instead of 201: err = %v", err)
	}
	if _, err := c3.FetchRepository(context.Background(), ""); err == nil {
		t.Error("no project: no error")
	}
}
