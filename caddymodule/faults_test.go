package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hooklaunch/caddy-valohai/launch/store/redistest"
)

// The fault tests run the built binary (what users run) as separate
// processes: a simulator process standing in for Valohai, and a gateway
// process that can be killed with SIGKILL mid-work.

type caddyProc struct {
	cmd  *exec.Cmd
	logs *strings.Builder
	mu   sync.Mutex
}

// startCaddyProc runs `caddy run` on caddyfile and waits until addr listens.
func startCaddyProc(t *testing.T, caddyfile, addr string) *caddyProc {
	t.Helper()
	bin := buildCaddy(t)
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(cfgPath, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &caddyProc{logs: &strings.Builder{}}
	p.cmd = exec.Command(bin, "run", "--config", cfgPath, "--adapter", "caddyfile")
	p.cmd.Env = []string{"HOME=" + dir, "XDG_DATA_HOME=" + filepath.Join(dir, "data"), "XDG_CONFIG_HOME=" + filepath.Join(dir, "config"), "PATH=" + os.Getenv("PATH")}
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("caddy (%s) output:\n%s", addr, p.output())
		}
	})
	waitListening(t, addr, 30*time.Second)
	return p
}

func (p *caddyProc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.Write(b)
}

func (p *caddyProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// kill sends SIGKILL: no shutdown, no flushing, as in a crash.
func (p *caddyProc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

type faultEnv struct {
	t        *testing.T
	hookAddr string
	simAddr  string
	storeDir string
	engine   string   // the embedded store's engine ("" for the default)
	env      *testEnv // for do(), calls(), simControl()
}

// embeddedEngines are the engines of `store file`: the crash tests run on
// each (README.md, "The durable write path").
var embeddedEngines = []string{"pebble", "bbolt"}

func newFaultEnv(t *testing.T, engine string) *faultEnv {
	t.Helper()
	f := &faultEnv{
		t:        t,
		hookAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		simAddr:  fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		storeDir: t.TempDir(),
		engine:   engine,
	}
	f.env = &testEnv{t: t, hook: "http://" + f.hookAddr, sim: "http://" + f.simAddr}
	yaml, err := filepath.Abs("../examples/valohai.yaml")
	if err != nil {
		t.Fatal(err)
	}
	startCaddyProc(t, fmt.Sprintf(`{
	admin off
}
http://%s {
	valohai_simulator {
		token %s
		project %s acme/demo {
			commit %s main %s
		}
	}
}
`, f.simAddr, testToken, testProject, testCommit, yaml), f.simAddr)
	return f
}

// startGateway starts (or restarts, on the same store) the webhook gateway.
func (f *faultEnv) startGateway() *caddyProc {
	f.t.Helper()
	return startCaddyProc(f.t, fmt.Sprintf(`{
	admin off
	valohai {
		api_url   http://%[2]s
		api_token %[3]s
		store     file %[4]s %[6]s
		retry     200 100ms 400ms
	}
}
http://%[1]s {
	handle_errors {
		respond "{err.message}" {err.status_code}
	}
	handle /hook {
		webhook_token fault-token
		valohai_launch faults {
			project %[5]s
			execution train {
				commit main
				title  "{run_id}"
			}
			wait 0s
		}
	}
	handle /claims {
		webhook_token fault-token
		webhook_dedupe {http.request.header.X-Delivery}
		webhook_rate_limit 100 1h
		valohai_launch claims {
			project %[5]s
			execution train {
				commit main
				title  "{run_id}"
			}
			wait 0s
		}
	}
}
`, f.hookAddr, f.simAddr, testToken, f.storeDir, testProject, f.engine), f.hookAddr)
}

// sendAll posts n webhooks concurrently and returns the acknowledged run ids.
func (f *faultEnv) sendAll(n int) []string {
	f.t.Helper()
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := f.env.post("/hook", []byte(fmt.Sprintf(`{"n":%d}`, i)), map[string]string{"Authorization": "Bearer fault-token"})
			if r.status != http.StatusAccepted {
				f.t.Errorf("webhook %d: %d %s", i, r.status, r.body)
				return
			}
			var lr launchResponse
			_ = json.Unmarshal([]byte(r.body), &lr)
			ids[i] = lr.RunID
		})
	}
	wg.Wait()
	if f.t.Failed() {
		f.t.FailNow()
	}
	return ids
}

// launchedTitles counts the executions Valohai accepted, by title (= run id).
func (f *faultEnv) launchedTitles() map[string]int {
	f.t.Helper()
	out := map[string]int{}
	for _, body := range f.env.executionCalls() {
		out[fmt.Sprint(body["title"])]++
	}
	return out
}

// assertEachOnce waits until every acknowledged run was launched, then
// checks that none was launched twice and nothing else was launched.
func (f *faultEnv) assertEachOnce(ids []string, timeout time.Duration) {
	f.t.Helper()
	waitFor(f.t, "every acknowledged run launched", timeout, func() bool {
		return len(f.launchedTitles()) >= len(ids)
	})
	time.Sleep(time.Second) // a duplicate would show up now
	got := f.launchedTitles()
	for _, id := range ids {
		if got[id] != 1 {
			f.t.Errorf("run %s launched %d times, want exactly once", id, got[id])
		}
	}
	if len(got) != len(ids) {
		f.t.Errorf("%d distinct runs launched, want %d", len(got), len(ids))
	}
}

func TestFaultValohaiDownThenRecovers(t *testing.T) {
	f := newFaultEnv(t, "")
	f.startGateway()
	f.env.simControl("fail", `{"count":60,"status":503}`)
	ids := f.sendAll(20)
	f.assertEachOnce(ids, 60*time.Second)
	var failed int
	for _, c := range f.env.calls() {
		if c.Status == http.StatusServiceUnavailable {
			failed++
		}
	}
	if failed != 60 {
		t.Fatalf("the simulator failed %d calls, want all 60 injected failures used", failed)
	}
}

func TestFaultRetryAfterHonoured(t *testing.T) {
	f := newFaultEnv(t, "")
	f.startGateway()
	f.env.simControl("fail", `{"count":1,"status":429,"retry_after_seconds":2}`)
	ids := f.sendAll(1)
	f.assertEachOnce(ids, 20*time.Second)
	r := f.env.do(http.MethodGet, f.env.sim+"/__simulator/calls", nil, nil)
	var calls []struct {
		Status int       `json:"status"`
		At     time.Time `json:"at"`
	}
	// The first call (the commit lookup) is throttled; the retry comes after
	// Retry-After and goes on to the one create.
	if err := json.Unmarshal([]byte(r.body), &calls); err != nil || len(calls) < 2 {
		t.Fatalf("calls: %v %s", err, r.body)
	}
	if calls[0].Status != http.StatusTooManyRequests || calls[len(calls)-1].Status != http.StatusCreated {
		t.Fatalf("statuses %d ... %d", calls[0].Status, calls[len(calls)-1].Status)
	}
	if gap := calls[1].At.Sub(calls[0].At); gap < 2*time.Second {
		t.Fatalf("retried after %v, before Retry-After's 2s", gap)
	}
}

func TestFaultKill9WithPendingRuns(t *testing.T) {
	for _, engine := range embeddedEngines {
		t.Run(engine, func(t *testing.T) { faultKill9WithPendingRuns(t, engine) })
	}
}

func faultKill9WithPendingRuns(t *testing.T, engine string) {
	f := newFaultEnv(t, engine)
	gw := f.startGateway()
	// Valohai is slow: every launch is still in flight when the gateway dies.
	f.env.simControl("delay", `{"delay":"3s"}`)
	ids := f.sendAll(20)
	time.Sleep(200 * time.Millisecond)
	gw.kill()
	f.env.simControl("reset", `{}`)
	if n := len(f.launchedTitles()); n != 0 {
		t.Fatalf("%d runs launched before the kill; the test needs them in flight", n)
	}
	f.startGateway()
	f.assertEachOnce(ids, 30*time.Second)
}

// Two gateways share one redis store; the one holding runs is killed while
// Valohai is slow. The survivor takes the runs over when their leases run out
// and launches each exactly once.
func TestFaultRedisSurvivorTakesOver(t *testing.T) {
	f := newFaultEnv(t, "")
	redisURL := redistest.Start(t)
	gateway := func(addr string) *caddyProc {
		return startCaddyProc(t, fmt.Sprintf(`{
	admin off
	valohai {
		api_url   http://%[2]s
		api_token %[3]s
		store     redis %[4]s
		retry     200 100ms 400ms
	}
}
http://%[1]s {
	handle /hook {
		webhook_token fault-token
		valohai_launch faults {
			project %[5]s
			execution train {
				commit main
				title  "{run_id}"
			}
			wait 0s
		}
	}
}
`, addr, f.simAddr, testToken, redisURL, testProject), addr)
	}
	doomed := gateway(f.hookAddr)
	survivorAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	gateway(survivorAddr)

	f.env.simControl("delay", `{"delay":"5s"}`)
	ids := f.sendAll(10) // all to the doomed gateway
	time.Sleep(300 * time.Millisecond)
	doomed.kill()
	f.env.simControl("reset", `{}`)
	if n := len(f.launchedTitles()); n != 0 {
		t.Fatalf("%d runs launched before the kill; the test needs them in flight", n)
	}
	// The leases (15s) run out, then the survivor's workers claim the runs.
	f.assertEachOnce(ids, 45*time.Second)
}

// claimsAnswer is one answer of the /claims route; err is set when the
// connection broke (the gateway was killed).
type claimsAnswer struct {
	status int
	dup    bool
	runID  string
	err    error
}

// postClaims sends one delivery to /claims.
func (f *faultEnv) postClaims(id string) claimsAnswer {
	req, _ := http.NewRequest(http.MethodPost, f.env.hook+"/claims", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer fault-token")
	req.Header.Set("X-Delivery", id)
	res, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		return claimsAnswer{err: err}
	}
	defer res.Body.Close()
	var lr launchResponse
	_ = json.NewDecoder(res.Body).Decode(&lr)
	return claimsAnswer{status: res.StatusCode, dup: res.Header.Get(duplicateHeader) == "true", runID: lr.RunID}
}

// A gateway killed while it commits runs together with their quota units
// and delivery keys loses none of them and keeps none without its run:
// after the restart, every acknowledged delivery is a duplicate of its run,
// the quota counts exactly the runs stored, and each run launches once.
func TestFaultKill9DuringClaimedWrites(t *testing.T) {
	for _, engine := range embeddedEngines {
		t.Run(engine, func(t *testing.T) { faultKill9DuringClaimedWrites(t, engine) })
	}
}

func faultKill9DuringClaimedWrites(t *testing.T, engine string) {
	avoidWindowEdge(t, time.Hour, 2*time.Minute)
	const deliveries, quota = 200, 100
	f := newFaultEnv(t, engine)
	gw := f.startGateway()
	// Valohai is slow, so no launch completes before the kill: what is
	// tested is the store, not a Valohai call cut off mid-way.
	f.env.simControl("delay", `{"delay":"3s"}`)
	answers := make([]claimsAnswer, deliveries)
	acked := make(chan struct{}, deliveries)
	var wg sync.WaitGroup
	for i := range deliveries {
		wg.Go(func() {
			answers[i] = f.postClaims(fmt.Sprintf("d-%d", i))
			if answers[i].status == http.StatusAccepted {
				acked <- struct{}{}
			}
		})
	}
	for range 10 {
		<-acked // kill once some runs are stored and others are on their way
	}
	gw.kill()
	wg.Wait()
	before := map[string]string{} // delivery → run acknowledged before the kill
	for i, a := range answers {
		switch {
		case a.err != nil:
		case a.status == http.StatusAccepted:
			before[fmt.Sprintf("d-%d", i)] = a.runID
		case a.status != http.StatusBadRequest:
			t.Fatalf("delivery %d before the kill: %d", i, a.status)
		}
	}
	t.Logf("%d deliveries acknowledged before the kill", len(before))
	f.env.simControl("reset", `{}`)
	if n := len(f.launchedTitles()); n != 0 {
		t.Fatalf("%d runs launched before the kill; the test needs them in flight", n)
	}

	f.startGateway()
	runs := map[string]bool{}
	for i := range deliveries {
		id := fmt.Sprintf("d-%d", i)
		a := f.postClaims(id)
		if a.err != nil {
			t.Fatalf("%s after the restart: %v", id, a.err)
		}
		if want, ok := before[id]; ok && (a.status != http.StatusAccepted && a.status != http.StatusOK || !a.dup || a.runID != want) {
			t.Fatalf("%s acknowledged as run %s before the kill; after the restart: %d dup=%v run %s", id, want, a.status, a.dup, a.runID)
		}
		switch a.status {
		case http.StatusAccepted, http.StatusOK:
			runs[a.runID] = true
		case http.StatusBadRequest:
		default:
			t.Fatalf("%s after the restart: %d", id, a.status)
		}
	}
	if len(runs) != quota {
		t.Fatalf("%d runs stored for %d deliveries on a quota of %d, want exactly %d", len(runs), deliveries, quota, quota)
	}
	ids := make([]string, 0, len(runs))
	for id := range runs {
		ids = append(ids, id)
	}
	f.assertEachOnce(ids, 60*time.Second)
}

// Valohai takes the creates but the gateway is killed before their answers
// arrive: after the restart each run is looked up by its marker and found,
// never created a second time (README.md, "What Valohai receives").
func TestFaultKill9WhileValohaiCreates(t *testing.T) {
	for _, engine := range embeddedEngines {
		t.Run(engine, func(t *testing.T) { faultKill9WhileValohaiCreates(t, engine) })
	}
}

func faultKill9WhileValohaiCreates(t *testing.T, engine string) {
	const n = 4 // the default workers: every run's create in flight at once
	f := newFaultEnv(t, engine)
	gw := f.startGateway()
	// Every create takes effect at once; its answer takes 30s.
	f.env.simControl("delay", `{"delay":"30s","after_create":true}`)
	ids := f.sendAll(n)
	waitFor(t, "Valohai holding every execution", 20*time.Second, func() bool {
		return len(f.createdExecutions()) >= n
	})
	gw.kill()
	f.env.simControl("delay", `{"delay":"0s"}`)
	f.startGateway()
	// The restarted gateway looks for each run's execution by its marker
	// (the client's listing asks for ordering=-counter; this test's own
	// listings do not).
	waitFor(t, "a marker lookup for every run after the restart", 30*time.Second, func() bool {
		if len(f.createdExecutions()) > n {
			return true // created again: reported below
		}
		lookups := 0
		for _, c := range f.env.calls() {
			if c.Method == http.MethodGet && c.Path == "/api/v0/executions/" && strings.Contains(c.Query, "ordering=-counter") && c.Status == http.StatusOK {
				lookups++
			}
		}
		return lookups >= n
	})
	time.Sleep(time.Second) // a second create would show up now
	got := map[string]int{}
	for _, title := range f.createdExecutions() {
		got[title]++
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("run %s: %d executions in Valohai, want exactly 1", id, got[id])
		}
	}
	if len(got) != n {
		t.Errorf("%d distinct executions in Valohai for %d runs: %v", len(got), n, got)
	}
}

// createdExecutions lists the titles of the executions Valohai holds for
// the test project, through its API (answered or not, a create counts).
func (f *faultEnv) createdExecutions() []string {
	f.t.Helper()
	r := f.env.do(http.MethodGet, f.env.sim+"/api/v0/executions/?project="+testProject+"&limit=1000", nil,
		map[string]string{"Authorization": "Token " + testToken})
	if r.status != http.StatusOK {
		f.t.Fatalf("listing executions: %d %s", r.status, r.body)
	}
	var page struct {
		Results []struct {
			Title string `json:"title"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(r.body), &page); err != nil {
		f.t.Fatalf("listing executions: %v", err)
	}
	titles := make([]string, 0, len(page.Results))
	for _, e := range page.Results {
		titles = append(titles, e.Title)
	}
	return titles
}
