package caddymodule

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Integration tests of the conditions that keep shared state in the valohai
// app's store (webhook_rate_limit, webhook_dedupe) and of webhook_filter,
// through a real Caddy on the embedded store and the simulator.

// stateLaunch is a trigger whose execution title is its run id, so that the
// simulator's calls tell which run launched.
func stateLaunch(name, extra string) string {
	return `valohai_launch ` + name + ` {
			project ` + testProject + `
			execution train {
				commit main
				title  "{run_id}"
			}
			` + extra + `
		}`
}

// startEnvAt is startEnv on fixed ports and a given data directory, so that
// a test can stop Caddy and start it again on the same store, addressed by
// the same URLs (a quota belongs to host + path, and the host has the port).
func startEnvAt(t *testing.T, dataDir string, hookPort, simPort int, routes string) *testEnv {
	t.Helper()
	env := &testEnv{t: t, dataDir: dataDir}
	env.hook = fmt.Sprintf("http://127.0.0.1:%d", hookPort)
	env.sim = fmt.Sprintf("http://127.0.0.1:%d", simPort)
	cf := fmt.Sprintf(`{
	admin off
	storage file_system %[1]s/caddy
	valohai {
		api_url     %[3]s
		api_token   %[5]s
		store       file %[1]s/valohai
		payload_url %[2]s/_valohai/payloads
	}
}

%[2]s {
	handle_errors {
		respond "{err.message}" {err.status_code}
	}
	%[4]s
}

%[3]s {
	valohai_simulator {
		token %[5]s
		project %[6]s acme/demo {
			commit %[7]s main ../examples/valohai.yaml
		}
	}
}
`, dataDir, env.hook, env.sim, routes, testToken, testProject, testCommit)
	if err := loadCaddyfile(cf); err != nil {
		t.Fatalf("loading config: %v\n%s", err, cf)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return env
}

// avoidWindowEdge waits, when needed, until at least margin is left of the
// current fixed quota window of period, so that a test's requests all fall
// into one window (windows are aligned to multiples of the period).
func avoidWindowEdge(t *testing.T, period, margin time.Duration) {
	t.Helper()
	left := period - time.Duration(time.Now().UnixNano()%int64(period))
	if left < margin {
		t.Logf("waiting %s for the next %s quota window", left, period)
		time.Sleep(left + 50*time.Millisecond)
	}
}

// postAll sends n requests at once and returns the responses in order.
// Unlike testEnv.post it can run off the test goroutine.
func postAll(t *testing.T, url string, n int, req func(i int) ([]byte, map[string]string)) []response {
	t.Helper()
	out := make([]response, n)
	client := &http.Client{Timeout: 20 * time.Second}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		body, headers := req(i)
		wg.Go(func() {
			<-start
			r, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
			if err != nil {
				t.Error(err)
				return
			}
			for k, v := range headers {
				r.Header.Set(k, v)
			}
			res, err := client.Do(r)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			out[i] = response{res.StatusCode, res.Header, string(b)}
		})
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// launchedRuns counts the executions the simulator accepted, by title (the
// run id, see stateLaunch).
func launchedRuns(env *testEnv) map[string]int {
	out := map[string]int{}
	for _, body := range env.executionCalls() {
		out[fmt.Sprint(body["title"])]++
	}
	return out
}

// settledLaunches waits until want runs launched, then a little longer so
// that an extra launch would show, and returns the launched runs.
func settledLaunches(t *testing.T, env *testEnv, want int) map[string]int {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d launches", want), 15*time.Second, func() bool { return len(env.executionCalls()) >= want })
	time.Sleep(300 * time.Millisecond)
	got := launchedRuns(env)
	n := 0
	for _, c := range got {
		n += c
	}
	if n != want {
		t.Fatalf("%d executions launched, want exactly %d: %v", n, want, got)
	}
	return got
}

// checkRetryAfter asserts the Retry-After of a quota rejection: whole
// seconds, at least 1, at most the period.
func checkRetryAfter(t *testing.T, r response, period time.Duration) {
	t.Helper()
	v := r.header.Get("Retry-After")
	secs, err := strconv.Atoi(v)
	if err != nil || secs < 1 || time.Duration(secs)*time.Second > period {
		t.Fatalf("Retry-After %q: want whole seconds in 1..%d (status %d, body %q)", v, int(period.Seconds()), r.status, r.body)
	}
}

const rateLimitRoutes = `
	handle /rl {
		webhook_token rl-token
		webhook_rate_limit 4 1h
		` + "%[1]s" + `
	}
	handle /rl429 {
		webhook_token rl-token
		webhook_rate_limit {
			limit 4 1h
			status 429
		}
		` + "%[2]s" + `
	}
	handle /rl-auth {
		# Written before the token on purpose: outside route, the registered
		# directive order still runs authentication first.
		webhook_rate_limit 3 1h
		webhook_token rl-token
		` + "%[3]s" + `
	}
	handle /rl-keyed {
		webhook_rate_limit {
			limit 1 1h
			key {http.request.header.X-Slack-Team-Id}
		}
		` + "%[4]s" + `
	}
	handle /rl-two {
		webhook_rate_limit 2 1h
		webhook_rate_limit 100 24h
		` + "%[5]s" + `
	}
	handle_path /team-a/* {
		webhook_rate_limit 1 1h
		` + "%[6]s" + `
	}
	handle_path /team-b/* {
		webhook_rate_limit 1 1h
		` + "%[7]s" + `
	}
`

func TestRateLimitThroughCaddy(t *testing.T) {
	avoidWindowEdge(t, time.Hour, 30*time.Second)
	env := startEnv(t, fmt.Sprintf(rateLimitRoutes,
		stateLaunch("rl", ""), stateLaunch("rl429", ""), stateLaunch("rl-auth", ""),
		stateLaunch("rl-keyed", ""), stateLaunch("rl-two", ""),
		stateLaunch("team-a", ""), stateLaunch("team-b", "")), "")
	auth := map[string]string{"Authorization": "Bearer rl-token", "Content-Type": "application/json"}
	launched := 0

	for _, tc := range []struct {
		path   string
		status int
	}{{"/rl", http.StatusBadRequest}, {"/rl429", http.StatusTooManyRequests}} {
		t.Run("quota of 4 against 12 concurrent requests "+tc.path, func(t *testing.T) {
			const quota = 4
			rs := postAll(t, env.hook+tc.path, 3*quota, func(i int) ([]byte, map[string]string) {
				return []byte(fmt.Sprintf(`{"n":%d}`, i)), auth
			})
			accepted := map[string]bool{}
			rejected := 0
			for _, r := range rs {
				switch r.status {
				case http.StatusOK:
					accepted[decodeLaunch(t, r).RunID] = true
				case tc.status:
					rejected++
					if r.body != "webhook_rate_limit: quota exceeded" {
						t.Fatalf("rejection body %q", r.body)
					}
					checkRetryAfter(t, r, time.Hour)
				default:
					t.Fatalf("unexpected answer %d %q", r.status, r.body)
				}
			}
			if len(accepted) != quota || rejected != 2*quota {
				t.Fatalf("%d accepted, %d rejected; want %d and %d", len(accepted), rejected, quota, 2*quota)
			}
			launched += quota
			runs := settledLaunches(t, env, launched)
			for id := range accepted {
				if runs[id] != 1 {
					t.Fatalf("accepted run %s launched %d times", id, runs[id])
				}
			}
		})
	}

	t.Run("rejected authentication consumes no quota", func(t *testing.T) {
		for i := range 10 {
			r := env.post("/rl-auth", []byte(`{}`), map[string]string{"Authorization": "Bearer wrong-" + strconv.Itoa(i)})
			if r.status != http.StatusBadRequest || !strings.HasPrefix(r.body, "webhook_token:") {
				t.Fatalf("bad token %d: %d %q, want a webhook_token rejection", i, r.status, r.body)
			}
			if r.header.Get("Retry-After") != "" {
				t.Fatalf("a token rejection carries Retry-After: the quota was consulted first")
			}
		}
		for i := range 3 {
			if r := env.post("/rl-auth", []byte(`{}`), auth); r.status != http.StatusOK {
				t.Fatalf("good request %d after the bad ones: %d %q", i, r.status, r.body)
			}
		}
		r := env.post("/rl-auth", []byte(`{}`), auth)
		if r.status != http.StatusBadRequest {
			t.Fatalf("4th good request: %d %q, want the quota of 3 exhausted", r.status, r.body)
		}
		checkRetryAfter(t, r, time.Hour)
		launched += 3
		settledLaunches(t, env, launched)
	})

	t.Run("separate keys have separate quotas", func(t *testing.T) {
		team := func(id string) map[string]string {
			if id == "" {
				return map[string]string{}
			}
			return map[string]string{"X-Slack-Team-Id": id}
		}
		for _, step := range []struct {
			team string
			want int
		}{
			{"T1", 200}, {"T2", 200}, {"T1", 400}, {"T3", 200}, {"T2", 400},
			{"", 200}, {"", 400}, // requests without the key share one quota
		} {
			r := env.post("/rl-keyed", []byte(`{}`), team(step.team))
			if r.status != step.want {
				t.Fatalf("team %q: %d %q, want %d", step.team, r.status, r.body, step.want)
			}
		}
		launched += 4
		settledLaunches(t, env, launched)
	})

	t.Run("the quota belongs to the URL the sender used", func(t *testing.T) {
		// Both routes see /hook after handle_path strips their prefix; the
		// quota still belongs to /team-a/hook and /team-b/hook. A variant
		// of the URL that Caddy routes to the same handler shares it.
		for _, step := range []struct {
			path string
			want int
		}{{"/team-a/hook", 200}, {"/team-a/hook", 400}, {"/team-b/hook", 200}, {"/TEAM-A/hook", 400}, {"/team-b//hook", 400}} {
			r := env.post(step.path, []byte(`{}`), nil)
			if r.status != step.want {
				t.Fatalf("%s: %d %q, want %d", step.path, r.status, r.body, step.want)
			}
		}
		launched += 2
		settledLaunches(t, env, launched)
	})

	t.Run("repeated short form: every limit applies", func(t *testing.T) {
		for i, want := range []int{200, 200, 400, 400} {
			r := env.post("/rl-two", []byte(`{}`), nil)
			if r.status != want {
				t.Fatalf("request %d: %d %q, want %d", i+1, r.status, r.body, want)
			}
		}
		launched += 2
		settledLaunches(t, env, launched)
	})
}

const filterRoutes = `
	handle /gh-filter {
		webhook_hmac github "It's a Secret to Everybody"
		webhook_filter ` + "`" + `body.ref == "refs/heads/main" && headers["X-Github-Event"] == "push"` + "`" + `
		` + "%[1]s" + `
	}
	handle /slack-filter {
		webhook_filter {
			expression ` + "`" + `body.user_id in ["U123"]` + "`" + `
			status 200
		}
		` + "%[2]s" + `
	}
	handle /v7-filter {
		webhook_filter {
			expression ` + "`" + `body.dataset.name.startsWith("cars-")` + "`" + `
			status 204
		}
		` + "%[3]s" + `
	}
`

func TestFilterThroughCaddy(t *testing.T) {
	env := startEnv(t, fmt.Sprintf(filterRoutes,
		stateLaunch("gh-filter", ""), stateLaunch("slack-filter", ""), stateLaunch("v7-filter", "")), "")
	launched := 0
	github := func(event, body string) response {
		return env.post("/gh-filter", []byte(body), map[string]string{
			"X-Hub-Signature-256": githubSign([]byte(body)),
			"X-GitHub-Event":      event,
			"Content-Type":        "application/json",
		})
	}
	ignored := func(t *testing.T, r response, status int) {
		t.Helper()
		if r.status != status || r.body != `{"status":"ignored","reason":"filtered"}`+"\n" || r.header.Get("Content-Type") != "application/json" {
			t.Fatalf("got %d %q (%s), want %d with the ignored body", r.status, r.body, r.header.Get("Content-Type"), status)
		}
	}

	t.Run("github push to main launches", func(t *testing.T) {
		r := github("push", `{"ref":"refs/heads/main","after":"abc"}`)
		if r.status != http.StatusOK {
			t.Fatalf("%d %q", r.status, r.body)
		}
		launched++
		settledLaunches(t, env, launched)
	})
	t.Run("github push to another branch is ignored", func(t *testing.T) {
		ignored(t, github("push", `{"ref":"refs/heads/dev"}`), http.StatusAccepted)
	})
	t.Run("another github event is ignored", func(t *testing.T) {
		ignored(t, github("ping", `{"ref":"refs/heads/main","zen":"Design for failure."}`), http.StatusAccepted)
	})
	t.Run("missing field is no match, not an error", func(t *testing.T) {
		ignored(t, github("push", `{"zen":"Keep it logically awesome."}`), http.StatusAccepted)
		ignored(t, github("push", `not json at all`), http.StatusAccepted)
	})
	t.Run("the filter runs after authentication", func(t *testing.T) {
		r := env.post("/gh-filter", []byte(`{"ref":"refs/heads/dev"}`), map[string]string{"X-Hub-Signature-256": "sha256=00", "X-GitHub-Event": "push"})
		if r.status != http.StatusBadRequest || !strings.HasPrefix(r.body, "webhook_hmac:") {
			t.Fatalf("forged request: %d %q, want the hmac rejection (not 'ignored')", r.status, r.body)
		}
	})
	t.Run("slack form body", func(t *testing.T) {
		form := url.Values{"user_id": {"U123"}, "team_id": {"T1"}, "command": {"/train"}}
		r := env.post("/slack-filter", []byte(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
		if r.status != http.StatusOK || decodeLaunch(t, r).Status != "completed" {
			t.Fatalf("allowed user: %d %q", r.status, r.body)
		}
		launched++
		form.Set("user_id", "U999")
		ignored(t, env.post("/slack-filter", []byte(form.Encode()), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}), http.StatusOK)
	})
	t.Run("status 204 answers without a body", func(t *testing.T) {
		r := env.post("/v7-filter", []byte(`{"dataset":{"name":"bikes-1"}}`), map[string]string{"Content-Type": "application/json"})
		if r.status != http.StatusNoContent || r.body != "" {
			t.Fatalf("%d %q", r.status, r.body)
		}
		r = env.post("/v7-filter", []byte(`{"dataset":{"name":"cars-2026"}}`), map[string]string{"Content-Type": "application/json"})
		if r.status != http.StatusOK {
			t.Fatalf("matching dataset: %d %q", r.status, r.body)
		}
		launched++
	})
	// Nothing filtered out launched.
	settledLaunches(t, env, launched)
}

func TestStateConditionConfigErrors(t *testing.T) {
	cases := []struct {
		name, site string
		want       []string
	}{
		{"filter does not compile", "webhook_filter `bdy.ref == \"x\"`", []string{"webhook_filter", "does not compile", "undeclared reference to 'bdy'"}},
		{"filter is not a bool", "webhook_filter `raw`", []string{"webhook_filter", "gives string, not a bool"}},
		{"filter header case", "webhook_filter `headers[\"X-GitHub-Event\"] == \"push\"`", []string{"webhook_filter", `write "X-Github-Event"`}},
		{"filter without expression", "webhook_filter {\n\t\tstatus 204\n\t}", []string{"webhook_filter", "expression is required"}},
		{"filter status", "webhook_filter {\n\t\texpression `true`\n\t\tstatus 302\n\t}", []string{"webhook_filter", "status"}},
		{"rate limit quota", "webhook_rate_limit 0 1h", []string{"webhook_rate_limit", "quota \"0\""}},
		{"rate limit period", "webhook_rate_limit 10 soon", []string{"webhook_rate_limit", "period \"soon\""}},
		{"rate limit arguments", "webhook_rate_limit 10", []string{"webhook_rate_limit", "<quota> <period>"}},
		{"rate limit without limit", "webhook_rate_limit {\n\t\tkey {http.request.header.X-Team}\n\t}", []string{"webhook_rate_limit", "no limit"}},
		{"dedupe literal key", "webhook_dedupe same-for-all", []string{"webhook_dedupe", "same for every request"}},
		{"dedupe window", "webhook_dedupe {http.request.header.X-GitHub-Delivery} 10ms", []string{"webhook_dedupe", "window"}},
		{"dedupe without key", "webhook_dedupe {\n\t\twindow 1h\n\t}", []string{"webhook_dedupe", "key is required"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			cf := "{\n\tadmin off\n\tvalohai {\n\t\tstore file " + dir + "\n\t}\n}\nhttp://127.0.0.1:0 {\n\t" + c.site + "\n\trespond ok\n}\n"
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

const dedupeRoutes = `
	handle /dedupe {
		webhook_hmac github "It's a Secret to Everybody"
		webhook_dedupe {http.request.header.X-GitHub-Delivery}
		` + "%[1]s" + `
	}
	handle /dedupe-limited {
		webhook_dedupe {http.request.header.Webhook-Id} 1h
		webhook_rate_limit 1 2s
		` + "%[2]s" + `
	}
	handle /dedupe-stripe {
		webhook_dedupe {webhook.json.id} 72h {
			status 409
		}
		` + "%[4]s" + `
	}
	handle /dedupe-pending {
		webhook_dedupe {
			key    {http.request.header.X-Shopify-Event-Id}
			window 10m
		}
		` + "%[3]s" + `
	}
`

func TestDedupeThroughCaddy(t *testing.T) {
	env := startEnv(t, fmt.Sprintf(dedupeRoutes,
		stateLaunch("dedupe", ""), stateLaunch("dedupe-limited", ""), stateLaunch("dedupe-pending", "wait 0s"), stateLaunch("dedupe-stripe", "")), "")
	launched := 0
	delivery := func(id, body string) response {
		h := map[string]string{"X-Hub-Signature-256": githubSign([]byte(body)), "Content-Type": "application/json"}
		if id != "" {
			h["X-GitHub-Delivery"] = id
		}
		return env.post("/dedupe", []byte(body), h)
	}

	t.Run("a redelivery gets the first run's answer", func(t *testing.T) {
		first := delivery("d-1", `{"ref":"refs/heads/main"}`)
		if first.status != http.StatusOK || first.header.Get(duplicateHeader) != "" {
			t.Fatalf("first delivery: %d %q %v", first.status, first.body, first.header)
		}
		lr := decodeLaunch(t, first)
		launched++
		settledLaunches(t, env, launched)

		again := delivery("d-1", `{"ref":"refs/heads/main"}`)
		if again.status != http.StatusOK || again.header.Get(duplicateHeader) != "true" {
			t.Fatalf("redelivery: %d %q, %s=%q", again.status, again.body, duplicateHeader, again.header.Get(duplicateHeader))
		}
		lr2 := decodeLaunch(t, again)
		if lr2.RunID != lr.RunID || lr2.Status != "completed" || len(lr2.Result) != 1 || lr2.Result[0].ExecutionID != lr.Result[0].ExecutionID {
			t.Fatalf("redelivery answer %q differs from the first %q", again.body, first.body)
		}
		settledLaunches(t, env, launched)
	})

	t.Run("a forged redelivery is rejected before dedupe answers", func(t *testing.T) {
		r := env.post("/dedupe", []byte(`{}`), map[string]string{"X-GitHub-Delivery": "d-1", "X-Hub-Signature-256": "sha256=00"})
		if r.status != http.StatusBadRequest || r.header.Get(duplicateHeader) != "" {
			t.Fatalf("forged redelivery: %d %q: it must not learn the run", r.status, r.body)
		}
	})

	t.Run("without a delivery id nothing is deduplicated", func(t *testing.T) {
		for range 2 {
			if r := delivery("", `{"ref":"x"}`); r.status != http.StatusOK || r.header.Get(duplicateHeader) != "" {
				t.Fatalf("%d %q", r.status, r.body)
			}
		}
		launched += 2
		settledLaunches(t, env, launched)
	})

	t.Run("a key from the body (Stripe event id), repeats answered with dedupe's status", func(t *testing.T) {
		send := func(body string) response {
			return env.post("/dedupe-stripe", []byte(body), map[string]string{"Content-Type": "application/json"})
		}
		first := send(`{"id":"evt_1","type":"checkout.session.completed"}`)
		again := send(`{"id":"evt_1","type":"checkout.session.completed"}`)
		other := send(`{"id":"evt_2","type":"checkout.session.completed"}`)
		if first.status != http.StatusOK || again.status != http.StatusConflict || again.header.Get(duplicateHeader) != "true" || decodeLaunch(t, again).RunID != decodeLaunch(t, first).RunID {
			t.Fatalf("evt_1 twice: %d %q then %d %q", first.status, first.body, again.status, again.body)
		}
		if other.status != http.StatusOK || other.header.Get(duplicateHeader) != "" {
			t.Fatalf("evt_2: %d %q", other.status, other.body)
		}
		// No id in the body: not deduplicated.
		for range 2 {
			if r := send(`{"type":"ping"}`); r.status != http.StatusOK || r.header.Get(duplicateHeader) != "" {
				t.Fatalf("body without id: %d %q", r.status, r.body)
			}
		}
		launched += 4
		settledLaunches(t, env, launched)
	})

	t.Run("10 concurrent identical deliveries launch once", func(t *testing.T) {
		body := []byte(`{"ref":"refs/heads/main","n":10}`)
		rs := postAll(t, env.hook+"/dedupe", 10, func(int) ([]byte, map[string]string) {
			return body, map[string]string{"X-GitHub-Delivery": "d-concurrent", "X-Hub-Signature-256": githubSign(body), "Content-Type": "application/json"}
		})
		runID, originals := "", 0
		for _, r := range rs {
			if r.status != http.StatusOK && r.status != http.StatusAccepted {
				t.Fatalf("answer %d %q", r.status, r.body)
			}
			lr := decodeLaunch(t, r)
			if runID == "" {
				runID = lr.RunID
			}
			if lr.RunID != runID {
				t.Fatalf("answers name runs %s and %s", runID, lr.RunID)
			}
			if r.header.Get(duplicateHeader) == "" {
				originals++
			}
		}
		if originals != 1 {
			t.Fatalf("%d answers without %s, want exactly the first", originals, duplicateHeader)
		}
		launched++
		if runs := settledLaunches(t, env, launched); runs[runID] != 1 {
			t.Fatalf("run %s launched %d times", runID, runs[runID])
		}
	})

	t.Run("a delivery rejected by a later rate limit releases its key", func(t *testing.T) {
		avoidWindowEdge(t, 2*time.Second, 1500*time.Millisecond)
		send := func(id string) response {
			return env.post("/dedupe-limited", []byte(`{}`), map[string]string{"Webhook-Id": id})
		}
		if r := send("msg-a"); r.status != http.StatusOK {
			t.Fatalf("msg-a: %d %q", r.status, r.body)
		}
		launched++
		r := send("msg-b")
		if r.status != http.StatusBadRequest || r.body != "webhook_rate_limit: quota exceeded" {
			t.Fatalf("msg-b within the window: %d %q, want the rate limit", r.status, r.body)
		}
		checkRetryAfter(t, r, 2*time.Second)
		// Had msg-b kept its key, this would be a "duplicate" of a run
		// that does not exist.
		if r := send("msg-b"); r.status != http.StatusBadRequest || r.header.Get(duplicateHeader) != "" {
			t.Fatalf("msg-b again in the window: %d %q, dup=%q", r.status, r.body, r.header.Get(duplicateHeader))
		}
		retry, _ := strconv.Atoi(r.header.Get("Retry-After"))
		time.Sleep(time.Duration(retry) * time.Second)
		avoidWindowEdge(t, 2*time.Second, 500*time.Millisecond)
		r = send("msg-b")
		if r.status != http.StatusOK || r.header.Get(duplicateHeader) != "" {
			t.Fatalf("msg-b after the window: %d %q, want a launch", r.status, r.body)
		}
		launched++
		// And msg-a stays a duplicate: it launched.
		if r := send("msg-a"); r.header.Get(duplicateHeader) != "true" {
			t.Fatalf("msg-a redelivered: %d %q, want a duplicate", r.status, r.body)
		}
		settledLaunches(t, env, launched)
	})

	t.Run("a redelivery while the run is pending answers pending", func(t *testing.T) {
		env.simControl("delay", `{"delay":"1500ms"}`)
		defer env.simControl("reset", `{}`)
		h := map[string]string{"X-Shopify-Event-Id": "evt-1"}
		first := env.post("/dedupe-pending", []byte(`{}`), h)
		if first.status != http.StatusAccepted {
			t.Fatalf("first: %d %q", first.status, first.body)
		}
		lr := decodeLaunch(t, first)
		again := env.post("/dedupe-pending", []byte(`{}`), h)
		lr2 := decodeLaunch(t, again)
		if again.status != http.StatusAccepted || lr2.Status != "pending" || lr2.RunID != lr.RunID || again.header.Get(duplicateHeader) != "true" {
			t.Fatalf("redelivery while pending: %d %q", again.status, again.body)
		}
		// Once launched, the redelivery's answer is the completed run.
		waitFor(t, "the pending run to complete", 15*time.Second, func() bool {
			r := env.post("/dedupe-pending", []byte(`{}`), h)
			return r.status == http.StatusOK && decodeLaunch(t, r).Status == "completed" && r.header.Get(duplicateHeader) == "true"
		})
	})
}

// TestStatePersistsAcrossRestart stops Caddy and starts it again on the
// same store directory and addresses: quota counters and delivery keys
// survive, as they must for a gateway that restarts on deploys.
func TestStatePersistsAcrossRestart(t *testing.T) {
	avoidWindowEdge(t, time.Hour, 30*time.Second)
	routes := `
	handle /persist {
		webhook_dedupe {http.request.header.Linear-Delivery}
		webhook_rate_limit 2 1h
		` + stateLaunch("persist", "") + `
	}
`
	dir := t.TempDir()
	hookPort, simPort := freePort(t), freePort(t)
	env := startEnvAt(t, dir, hookPort, simPort, routes)
	send := func(env *testEnv, id string) response {
		return env.post("/persist", []byte(`{"action":"create"}`), map[string]string{"Linear-Delivery": id})
	}
	first := send(env, "lin-1")
	if first.status != http.StatusOK {
		t.Fatalf("lin-1: %d %q", first.status, first.body)
	}
	if r := send(env, "lin-2"); r.status != http.StatusOK {
		t.Fatalf("lin-2: %d %q", r.status, r.body)
	}
	settledLaunches(t, env, 2)

	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	env = startEnvAt(t, dir, hookPort, simPort, routes) // a fresh simulator too

	r := send(env, "lin-1")
	if r.status != http.StatusOK || r.header.Get(duplicateHeader) != "true" || decodeLaunch(t, r).RunID != decodeLaunch(t, first).RunID {
		t.Fatalf("lin-1 after restart: %d %q, want the stored run as a duplicate", r.status, r.body)
	}
	r = send(env, "lin-3")
	if r.status != http.StatusBadRequest || r.body != "webhook_rate_limit: quota exceeded" {
		t.Fatalf("lin-3 after restart: %d %q, want the quota of 2 still exhausted", r.status, r.body)
	}
	checkRetryAfter(t, r, time.Hour)
	time.Sleep(300 * time.Millisecond)
	if n := len(env.executionCalls()); n != 0 {
		t.Fatalf("%d executions launched after the restart, want none", n)
	}
}
