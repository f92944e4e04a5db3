package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	"github.com/hooklaunch/caddy-valohai/internal/freeport"
)

// The integration tests run a real Caddy in this process (caddy.Load of an
// adapted Caddyfile, exactly what `caddy run` does) serving real HTTP on
// loopback ports, with the valohai_simulator standing in for Valohai.

const (
	testProject = "0190a8e3-5b8e-7a4c-9d1f-3c2b1a0e9f7d"
	testCommit  = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	testToken   = "sim-token"
)

type testEnv struct {
	t       *testing.T
	hook    string // base URL of the webhook site
	sim     string // base URL of the simulator site
	dataDir string
}

// freePort is a loopback port nothing listens on, outside the kernel's
// ephemeral range: a server restarted on it finds it free (internal/freeport).
func freePort(t *testing.T) int {
	t.Helper()
	p, err := freeport.Pick(1)
	if err != nil {
		t.Fatal(err)
	}
	return p[0]
}

// adapt turns a Caddyfile into Caddy's JSON config.
func adapt(caddyfile string) ([]byte, error) {
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), map[string]any{"filename": "Caddyfile"})
	return cfg, err
}

// loadCaddyfile adapts and loads a config the way `caddy run` does, and
// returns the error Caddy reports (adapt or provision).
func loadCaddyfile(caddyfile string) error {
	cfg, err := adapt(caddyfile)
	if err != nil {
		return err
	}
	return caddy.Load(cfg, true)
}

// startEnv starts Caddy with a webhook site whose body is `routes`, a
// simulator site, and the valohai app pointed at them. extraGlobal goes into
// the valohai block.
func startEnv(t *testing.T, routes, extraGlobal string) *testEnv {
	t.Helper()
	return startEnvAdmin(t, routes, extraGlobal, "off")
}

// startEnvAdmin is startEnv with Caddy's admin API at admin ("off", or a
// loopback address for tests of the admin API and metrics).
func startEnvAdmin(t *testing.T, routes, extraGlobal, admin string) *testEnv {
	t.Helper()
	env := newTestEnv(t, "http")
	env.load("admin "+admin, "", "", routes, extraGlobal)
	return env
}

// newTestEnv is an environment whose webhook site will be at
// <hookScheme>://127.0.0.1:<free port> and the simulator at a plain HTTP
// one, with a fresh data directory; load starts it.
func newTestEnv(t *testing.T, hookScheme string) *testEnv {
	env := &testEnv{t: t, dataDir: t.TempDir()}
	hookPort, simPort := freePort(t), freePort(t)
	env.hook = fmt.Sprintf("%s://127.0.0.1:%d", hookScheme, hookPort)
	env.sim = fmt.Sprintf("http://127.0.0.1:%d", simPort)
	return env
}

// load starts Caddy with the environment's webhook site (routes, plus
// siteOptions such as "tls internal") on e.hook, the simulator on e.sim
// and the valohai app pointed at them, on storeLine ("" for a file store
// in the data directory), with globalOptions (Caddy's, e.g. "admin off")
// and extraGlobal in the valohai block.
func (e *testEnv) load(globalOptions, siteOptions, storeLine, routes, extraGlobal string) {
	if storeLine == "" {
		storeLine = "store file " + e.dataDir + "/valohai"
	}
	e.t.Helper()
	cf := fmt.Sprintf(`{
	%[9]s
	storage file_system %[1]s/caddy
	valohai {
		api_url     %[3]s
		api_token   %[5]s
		%[11]s
		payload_url %[2]s/_valohai/payloads
		%[7]s
	}
}

%[2]s {
	%[10]s
	handle_errors {
		respond "{err.message}" {err.status_code}
	}
	%[4]s
	handle_path /_valohai/payloads/* {
		valohai_payloads
	}
}

%[3]s {
	valohai_simulator {
		token %[5]s
		project %[6]s acme/demo {
			commit %[8]s main ../examples/valohai.yaml
		}
	}
}
`, e.dataDir, e.hook, e.sim, routes, testToken, testProject, extraGlobal, testCommit, globalOptions, siteOptions, storeLine)
	if err := loadCaddyfile(cf); err != nil {
		e.t.Fatalf("loading config: %v\n%s", err, cf)
	}
	e.t.Cleanup(func() { _ = caddy.Stop() })
}

type response struct {
	status int
	header http.Header
	body   string
}

func (e *testEnv) do(method, url string, body []byte, headers map[string]string) response {
	e.t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	client := &http.Client{Timeout: 20 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, string(b)}
}

func (e *testEnv) post(path string, body []byte, headers map[string]string) response {
	e.t.Helper()
	return e.do(http.MethodPost, e.hook+path, body, headers)
}

// simCall is what the simulator recorded of one API call.
type simCall struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Query  string          `json:"query"`
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

func (e *testEnv) calls() []simCall {
	e.t.Helper()
	r := e.do(http.MethodGet, e.sim+"/__simulator/calls", nil, nil)
	if r.status != http.StatusOK {
		e.t.Fatalf("simulator calls: %d %s", r.status, r.body)
	}
	var calls []simCall
	if err := json.Unmarshal([]byte(r.body), &calls); err != nil {
		e.t.Fatalf("simulator calls: %v: %s", err, r.body)
	}
	return calls
}

// executionCalls returns the bodies of accepted execution creations.
func (e *testEnv) executionCalls() []map[string]any {
	e.t.Helper()
	var out []map[string]any
	for _, c := range e.calls() {
		if c.Method == http.MethodPost && c.Path == "/api/v0/executions/" && c.Status == http.StatusCreated {
			dec := json.NewDecoder(bytes.NewReader(c.Body))
			dec.UseNumber()
			var body map[string]any
			if err := dec.Decode(&body); err != nil {
				e.t.Fatalf("execution body: %v", err)
			}
			out = append(out, body)
		}
	}
	return out
}

// simControl drives the simulator's fault knobs over HTTP.
func (e *testEnv) simControl(knob string, body string) {
	e.t.Helper()
	r := e.do(http.MethodPost, e.sim+"/__simulator/"+knob, []byte(body), map[string]string{"Content-Type": "application/json"})
	if r.status/100 != 2 {
		e.t.Fatalf("simulator %s: %d %s", knob, r.status, r.body)
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func mustContain(t *testing.T, got, want string) {
	t.Helper()
	if !strings.Contains(got, want) {
		t.Fatalf("%q does not contain %q", got, want)
	}
}
