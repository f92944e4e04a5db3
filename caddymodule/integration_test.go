package caddymodule

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/google/uuid"
)

// GitHub's published example: https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries
const (
	githubSecret    = "It's a Secret to Everybody"
	githubBody      = "Hello, World!"
	githubSignature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
)

const foundationRoutes = `
	handle /github {
		webhook_hmac github "It's a Secret to Everybody"
		valohai_launch github-push {
			project ` + testProject + `
			execution train {
				commit        main
				payload_input dataset
				title         "Push {webhook.json.ref}"
				parameter     epochs {webhook.json.epochs}
				parameter     branch {webhook.json.ref}
				parameter     learning_rate 0.5
				parameter     dry_run false
				input         weights datum://model-latest
				tag           webhook
				env           SOURCE github
			}
		}
	}
	handle /labels {
		webhook_token {env.VALOHAI_TEST_LABELS_TOKEN}
		valohai_launch labels {
			project ` + testProject + `
			execution label-import {
				commit        main
				payload_input annotations
			}
		}
	}
	handle /small {
		webhook_token {
			secret small-token
			max_body 64
		}
		valohai_launch small {
			project ` + testProject + `
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
`

func githubSign(body []byte) string {
	m := hmac.New(sha256.New, []byte(githubSecret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// launchGitHubJSON posts body, signed, to foundationRoutes' /github and
// returns the execution it launched and that execution's parameters.
func launchGitHubJSON(t *testing.T, env *testEnv, body []byte) (execution, params map[string]any) {
	t.Helper()
	r := env.post("/github", body, map[string]string{"X-Hub-Signature-256": githubSign(body), "Content-Type": "application/json"})
	if r.status != http.StatusOK {
		t.Fatalf("status %d %q", r.status, r.body)
	}
	calls := env.executionCalls()
	execution = calls[len(calls)-1]
	return execution, execution["parameters"].(map[string]any)
}

type launchResponse struct {
	RunID  string `json:"run_id"`
	Status string `json:"status"`
	Result []struct {
		Action           string `json:"action"`
		ExecutionID      string `json:"execution_id"`
		ExecutionCounter int64  `json:"execution_counter"`
		URL              string `json:"url"`
		Error            string `json:"error"`
	} `json:"result"`
}

func decodeLaunch(t *testing.T, r response) launchResponse {
	t.Helper()
	var lr launchResponse
	if err := json.Unmarshal([]byte(r.body), &lr); err != nil {
		t.Fatalf("response is not the launch JSON: %v: %q", err, r.body)
	}
	return lr
}

func TestFoundationThroughCaddy(t *testing.T) {
	t.Setenv("VALOHAI_TEST_LABELS_TOKEN", "labels-token")
	env := startEnv(t, foundationRoutes, "")

	t.Run("GitHub published example launches an execution", func(t *testing.T) {
		before := len(env.executionCalls())
		r := env.post("/github", []byte(githubBody), map[string]string{
			"X-Hub-Signature-256": githubSignature,
			"Content-Type":        "text/plain; charset=utf-8",
		})
		if r.status != http.StatusOK {
			t.Fatalf("status %d, body %q", r.status, r.body)
		}
		lr := decodeLaunch(t, r)
		if lr.RunID == "" || lr.Status != "completed" || len(lr.Result) != 1 {
			t.Fatalf("unexpected response %q", r.body)
		}
		res := lr.Result[0]
		if res.Action != "run_execution" || res.ExecutionID == "" || res.ExecutionCounter < 1 || !strings.Contains(res.URL, "/execution/") {
			t.Fatalf("unexpected result %+v", res)
		}
		calls := env.executionCalls()
		if len(calls) != before+1 {
			t.Fatalf("simulator got %d executions, want %d", len(calls), before+1)
		}
		body := calls[len(calls)-1]
		// The branch goes out as the full commit identifier, as valohai-cli sends it.
		if body["project"] != testProject || body["commit"] != testCommit || body["step"] != "train" {
			t.Fatalf("execution body %v", body)
		}

		// The payload input is a signed URL serving exactly the posted bytes.
		inputs := body["inputs"].(map[string]any)
		if w := inputs["weights"].([]any); len(w) != 1 || w[0] != "datum://model-latest" {
			t.Fatalf("weights input %v", w)
		}
		ds := inputs["dataset"].([]any)
		if len(ds) != 1 {
			t.Fatalf("dataset input %v", ds)
		}
		payloadURL := ds[0].(string)
		if !strings.HasPrefix(payloadURL, env.hook+"/_valohai/payloads/"+lr.RunID+"?") {
			t.Fatalf("payload url %q", payloadURL)
		}
		got := env.do(http.MethodGet, payloadURL, nil, nil)
		if got.status != http.StatusOK || got.body != githubBody {
			t.Fatalf("payload: %d %q", got.status, got.body)
		}
		if ct := got.header.Get("Content-Type"); ct != "text/plain; charset=utf-8" {
			t.Fatalf("payload content type %q", ct)
		}

		// Tampered and expired links are refused.
		u, _ := url.Parse(payloadURL)
		q := u.Query()
		q.Set("expires", "4102444800")
		u.RawQuery = q.Encode()
		if r := env.do(http.MethodGet, u.String(), nil, nil); r.status != http.StatusForbidden {
			t.Fatalf("tampered payload link: %d", r.status)
		}
		other := strings.Replace(payloadURL, lr.RunID, "00000000-0000-0000-0000-000000000000", 1)
		if r := env.do(http.MethodGet, other, nil, nil); r.status != http.StatusForbidden {
			t.Fatalf("payload link for another run: %d", r.status)
		}
	})

	t.Run("JSON types reach Valohai: numbers stay numbers", func(t *testing.T) {
		last, params := launchGitHubJSON(t, env, []byte(`{"ref":"refs/heads/main","epochs":7}`))
		if n, ok := params["epochs"].(json.Number); !ok || n.String() != "7" {
			t.Fatalf("epochs = %#v, want the JSON number 7", params["epochs"])
		}
		if n, ok := params["learning_rate"].(json.Number); !ok || n.String() != "0.5" {
			t.Fatalf("learning_rate = %#v, want the JSON number 0.5", params["learning_rate"])
		}
		if params["dry_run"] != false {
			t.Fatalf("dry_run = %#v, want the JSON bool false", params["dry_run"])
		}
		if params["branch"] != "refs/heads/main" || last["title"] != "Push refs/heads/main" {
			t.Fatalf("placeholders: params %v title %v", params, last["title"])
		}
		// The trigger's tag, then webhook:<trigger> and the run marker.
		if tags := last["tags"].([]any); len(tags) != 3 || tags[0] != "webhook" || tags[1] != "webhook:github-push" ||
			!strings.HasPrefix(tags[2].(string), "webhook-run:") {
			t.Fatalf("tags %v", tags)
		}
		if ev := last["environment_variables"].(map[string]any); ev["SOURCE"] != "github" {
			t.Fatalf("environment_variables %v", ev)
		}
	})

	t.Run("a large push: placeholders read the members after its commits", func(t *testing.T) {
		// GitHub puts head_commit after the commits; the scan every JSON
		// body gets indexes the top-level members of a body this large,
		// and the placeholders look their member up there.
		var commits strings.Builder
		for i := 0; commits.Len() < 256<<10; i++ {
			if i > 0 {
				commits.WriteByte(',')
			}
			fmt.Fprintf(&commits, `{"id":"%040d","message":"commit %d","ref":"refs/heads/decoy"}`, i, i)
		}
		body := []byte(`{"commits":[` + commits.String() + `],"ref":"refs/heads/late","epochs":11}`)
		last, params := launchGitHubJSON(t, env, body)
		if n, ok := params["epochs"].(json.Number); !ok || n.String() != "11" || params["branch"] != "refs/heads/late" ||
			last["title"] != "Push refs/heads/late" {
			t.Fatalf("placeholders: params %v title %v", params, last["title"])
		}

		// The same body repeating a member is refused, large or not.
		dup := append(body[:len(body)-1:len(body)-1], `,"ref":"refs/heads/main"}`...)
		before := len(env.executionCalls())
		r := env.post("/github", dup, map[string]string{"X-Hub-Signature-256": githubSign(dup), "Content-Type": "application/json"})
		if r.status != http.StatusBadRequest || len(env.executionCalls()) != before {
			t.Fatalf("duplicate member: status %d %q, %d new executions", r.status, r.body, len(env.executionCalls())-before)
		}
		mustContain(t, r.body, "duplicate key")
	})

	t.Run("payloads keep their bytes and content type, short, long or absent", func(t *testing.T) {
		// The body is read with room for the payload record's header in
		// front of it (up to a 244-byte content type); with a longer one it
		// is copied instead. Both are served back exactly, with the stored
		// type's charset, the one parameter served.
		body := []byte("id,label\n1,cat\n2,\x00dog\xff\n")
		long := func(n int) string { return "text/plain; " + strings.Repeat("x", n) + "=1; charset=iso-8859-1" }
		for _, ct := range []string{"", "text/plain; charset=utf-8", long(210), long(211)} {
			headers := map[string]string{"Authorization": "Bearer labels-token"}
			if ct != "" {
				headers["Content-Type"] = ct
			}
			r := env.post("/labels", body, headers)
			if r.status != http.StatusOK {
				t.Fatalf("content type %d bytes: status %d %q", len(ct), r.status, r.body)
			}
			calls := env.executionCalls()
			payloadURL := calls[len(calls)-1]["inputs"].(map[string]any)["annotations"].([]any)[0].(string)
			got := env.do(http.MethodGet, payloadURL, nil, nil)
			want := map[string]string{"": "application/octet-stream", long(210): "text/plain; charset=iso-8859-1",
				long(211): "text/plain; charset=iso-8859-1"}[ct]
			if want == "" {
				want = ct
			}
			if got.status != http.StatusOK || got.body != string(body) || got.header.Get("Content-Type") != want {
				t.Fatalf("content type %d bytes: payload %d %q served as %q", len(ct), got.status, got.body, got.header.Get("Content-Type"))
			}
		}
	})

	t.Run("bad signatures are rejected and launch nothing", func(t *testing.T) {
		before := len(env.calls())
		cases := []struct {
			name    string
			headers map[string]string
			reason  string
		}{
			{"wrong", map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("0", 64)}, "webhook_hmac: signature mismatch"},
			{"missing", nil, "webhook_hmac: missing signature"},
			{"other body's signature", map[string]string{"X-Hub-Signature-256": githubSign([]byte("Hello, World"))}, "webhook_hmac: signature mismatch"},
		}
		for _, c := range cases {
			r := env.post("/github", []byte(githubBody), c.headers)
			if r.status != http.StatusBadRequest {
				t.Fatalf("%s: status %d, want 400", c.name, r.status)
			}
			mustContain(t, r.body, c.reason)
			if strings.Contains(r.body, "757107ea") {
				t.Fatalf("%s: the response reveals the expected signature: %q", c.name, r.body)
			}
		}
		// A signature over the re-serialized JSON does not pass for the raw bytes.
		sent := []byte(`{"ref": "refs/heads/main"}`)
		r := env.post("/github", sent, map[string]string{"X-Hub-Signature-256": githubSign([]byte(`{"ref":"refs/heads/main"}`))})
		if r.status != http.StatusBadRequest {
			t.Fatalf("re-serialized body signature: %d", r.status)
		}
		if n := len(env.calls()); n != before {
			t.Fatalf("rejected requests reached Valohai: %d calls, want %d", n, before)
		}
	})

	t.Run("only POST", func(t *testing.T) {
		r := env.do(http.MethodGet, env.hook+"/github", nil, nil)
		if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
			t.Fatalf("GET: %d Allow=%q", r.status, r.header.Get("Allow"))
		}
	})

	t.Run("oversized bodies get 413", func(t *testing.T) {
		before := len(env.calls())
		big := []byte(strings.Repeat("x", 65))
		r := env.post("/small", big, map[string]string{"Authorization": "Bearer small-token"})
		if r.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("announced oversized body: %d", r.status)
		}
		// Without Content-Length (chunked), the cap applies while reading.
		req, _ := http.NewRequest(http.MethodPost, env.hook+"/small", strings.NewReader(strings.Repeat("y", 1000)))
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer small-token")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Fatalf("chunked oversized body: %d", res.StatusCode)
		}
		if n := len(env.calls()); n != before {
			t.Fatalf("oversized requests reached Valohai")
		}
		ok := env.post("/small", []byte(strings.Repeat("x", 64)), map[string]string{"Authorization": "Bearer small-token"})
		if ok.status != http.StatusOK {
			t.Fatalf("body at the cap: %d %q", ok.status, ok.body)
		}
	})

	t.Run("static token trigger", func(t *testing.T) {
		body := []byte(`{"action":"ANNOTATION_CREATED","task":{"id":12}}`)
		for _, auth := range []string{"Bearer labels-token", "labels-token"} {
			r := env.post("/labels", body, map[string]string{"Authorization": auth, "Content-Type": "application/json"})
			if r.status != http.StatusOK {
				t.Fatalf("%q: %d %q", auth, r.status, r.body)
			}
		}
		calls := env.executionCalls()
		last := calls[len(calls)-1]
		if last["step"] != "label-import" {
			t.Fatalf("step %v", last["step"])
		}
		before := len(env.calls())
		for _, auth := range []string{"Bearer labels-token2", "", "Bearer "} {
			r := env.post("/labels", body, map[string]string{"Authorization": auth})
			if r.status != http.StatusBadRequest {
				t.Fatalf("%q: %d, want 400", auth, r.status)
			}
			mustContain(t, r.body, "webhook_token:")
			if strings.Contains(r.body, "labels-token") && auth != "Bearer labels-token2" {
				t.Fatalf("token leaked: %q", r.body)
			}
		}
		if n := len(env.calls()); n != before {
			t.Fatalf("rejected token requests reached Valohai")
		}
	})

	t.Run("Valohai's permanent error answers 502 with its message", func(t *testing.T) {
		env.simControl("fail", `{"count":1,"status":400}`)
		r := env.post("/small", []byte("{}"), map[string]string{"Authorization": "Bearer small-token"})
		if r.status != http.StatusBadGateway {
			t.Fatalf("status %d %q", r.status, r.body)
		}
		lr := decodeLaunch(t, r)
		if lr.Status != "error" || len(lr.Result) != 1 || !strings.Contains(lr.Result[0].Error, "400") {
			t.Fatalf("response %q", r.body)
		}
	})

	t.Run("Valohai down: 202 pending, then retried until launched once", func(t *testing.T) {
		env.simControl("fail", `{"count":2,"status":503}`)
		before := len(env.executionCalls())
		r := env.post("/slow", []byte(`{"n":1}`), map[string]string{"Authorization": "Bearer slow-token"})
		if r.status != http.StatusAccepted {
			t.Fatalf("status %d %q", r.status, r.body)
		}
		lr := decodeLaunch(t, r)
		if lr.Status != "pending" || lr.RunID == "" {
			t.Fatalf("response %q", r.body)
		}
		waitFor(t, "the retried launch", 30*time.Second, func() bool { return len(env.executionCalls()) == before+1 })
		time.Sleep(300 * time.Millisecond)
		if n := len(env.executionCalls()); n != before+1 {
			t.Fatalf("launched %d times, want once", n-before)
		}
	})

	t.Run("run ids are time-ordered UUIDv7 (README.md, Security)", func(t *testing.T) {
		var ids []string
		for i := range 3 {
			r := env.post("/slow", []byte(fmt.Sprintf(`{"n":%d}`, i)), map[string]string{"Authorization": "Bearer slow-token"})
			lr := decodeLaunch(t, r)
			id, err := uuid.Parse(lr.RunID)
			if err != nil || id.Version() != 7 || id.Variant() != uuid.RFC4122 {
				t.Fatalf("run_id %q is not a UUIDv7 (%v); response %d %q", lr.RunID, err, r.status, r.body)
			}
			if len(ids) > 0 && lr.RunID <= ids[len(ids)-1] {
				t.Fatalf("run ids %q then %q: not in the order they were received", ids[len(ids)-1], lr.RunID)
			}
			ids = append(ids, lr.RunID)
		}
	})

	t.Run("a valid link to a payload that is gone is 404", func(t *testing.T) {
		ctx := caddy.ActiveContext()
		v, err := ctx.App("valohai")
		if err != nil {
			t.Fatal(err)
		}
		app := v.(*App)
		link := app.signer.URL("5f0c0b7e-0000-4000-8000-000000000000", time.Now().Add(time.Hour))
		if r := env.do(http.MethodGet, link, nil, nil); r.status != http.StatusNotFound {
			t.Fatalf("gone payload: %d %q", r.status, r.body)
		}
	})
}

func TestConfigErrorsNameTheDirective(t *testing.T) {
	cases := []struct {
		name, site, global string
		want               []string
	}{
		{
			name: "empty hmac secret",
			site: `webhook_hmac github {env.VALOHAI_TEST_UNSET_SECRET}
	respond ok`,
			want: []string{"webhook_hmac", "secret #1 ({env.VALOHAI_TEST_UNSET_SECRET}) is empty"},
		},
		{
			name: "empty token secret",
			site: `webhook_token {env.VALOHAI_TEST_UNSET_SECRET}
	respond ok`,
			want: []string{"webhook_token", "is empty"},
		},
		{
			name: "unknown preset",
			site: `webhook_hmac gitbub secret
	respond ok`,
			want: []string{"webhook_hmac", "unknown preset", "github"},
		},
		{
			name:   "empty api token",
			global: "api_token {env.VALOHAI_TEST_UNSET_SECRET}",
			site: `valohai_launch t {
		project p
		execution train {
			commit main
		}
	}`,
			want: []string{"api_token", "empty"},
		},
		{
			name:   "payload input without payload_url",
			global: "api_token tok",
			site: `valohai_launch t {
		project p
		execution train {
			commit main
			payload_input data
		}
	}`,
			want: []string{"payload_url"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cf := "{\n\tadmin off\n\tvalohai {\n\t\tstore file " + dir + "\n\t\t" + c.global + "\n\t}\n}\nhttp://127.0.0.1:0 {\n\t" + c.site + "\n}\n"
			err := loadCaddyfile(cf)
			if err == nil {
				_ = caddy.Stop()
				t.Fatalf("config loaded, want an error")
			}
			for _, w := range c.want {
				mustContain(t, err.Error(), w)
			}
		})
	}
}
