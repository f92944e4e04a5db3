package caddymodule

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const operationsRoutes = `
	handle /ops {
		webhook_token ops-token
		valohai_launch ops {
			project ` + testProject + `
			execution train {
				commit main
			}
			wait 5s
		}
	}
`

// TestTriggerLogMetricsNotify covers the operations side through a real
// Caddy: the admin API's trigger log (runs and rejections, no secrets),
// retrying a failed run, the metrics on Caddy's registry, and the failure
// note sent to `notify`.
func TestTriggerLogMetricsNotify(t *testing.T) {
	var (
		mu    sync.Mutex
		notes []map[string]any
	)
	notifySrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var note map[string]any
		_ = json.NewDecoder(r.Body).Decode(&note)
		mu.Lock()
		notes = append(notes, note)
		mu.Unlock()
	}))
	defer notifySrv.Close()

	adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	env := startEnvAdmin(t, operationsRoutes, "notify "+notifySrv.URL+"\n\t\tretry 2 50ms 100ms", adminAddr)
	admin := "http://" + adminAddr

	// One accepted run, one rejection, one run failing for good.
	ok := env.post("/ops", []byte(`{"a":1}`), map[string]string{"Authorization": "Bearer ops-token"})
	if ok.status != http.StatusOK {
		t.Fatalf("ok run: %d %s", ok.status, ok.body)
	}
	bad := env.post("/ops", []byte(`{}`), map[string]string{"Authorization": "Bearer not-the-token"})
	if bad.status != http.StatusBadRequest {
		t.Fatalf("bad token: %d", bad.status)
	}
	env.simControl("fail", `{"count":1,"status":400}`)
	failed := env.post("/ops", []byte(`{"b":2}`), map[string]string{"Authorization": "Bearer ops-token"})
	if failed.status != http.StatusBadGateway {
		t.Fatalf("failing run: %d %s", failed.status, failed.body)
	}
	failedID := decodeLaunch(t, failed).RunID

	var log struct {
		Runs []struct {
			ID      string `json:"run_id"`
			Trigger string `json:"trigger"`
			Status  string `json:"status"`
			Actions []struct {
				State     string `json:"state"`
				LastError string `json:"last_error"`
			} `json:"actions"`
		} `json:"runs"`
		Rejections []struct {
			Path      string `json:"path"`
			Directive string `json:"directive"`
			Reason    string `json:"reason"`
		} `json:"rejections"`
	}
	var raw string
	waitFor(t, "the rejection in the trigger log", 5*time.Second, func() bool {
		r := env.do(http.MethodGet, admin+"/valohai/runs?path=/ops", nil, nil)
		raw = r.body
		_ = json.Unmarshal([]byte(r.body), &log)
		return r.status == http.StatusOK && len(log.Rejections) == 1
	})
	if len(log.Runs) != 2 || log.Runs[0].ID != failedID || log.Runs[0].Status != "error" || log.Runs[1].Status != "completed" {
		t.Fatalf("trigger log runs: %s", raw)
	}
	if !strings.Contains(log.Runs[0].Actions[0].LastError, "400") {
		t.Fatalf("failed run's Valohai error not recorded: %s", raw)
	}
	if rj := log.Rejections[0]; rj.Directive != "webhook_token" || rj.Reason != "token mismatch" || rj.Path != "/ops" {
		t.Fatalf("rejection %+v", rj)
	}
	for _, secret := range []string{"ops-token", testToken, "signature="} {
		if strings.Contains(raw, secret) {
			t.Fatalf("the trigger log shows %q: %s", secret, raw)
		}
	}
	if r := env.do(http.MethodGet, admin+"/valohai/runs?status=error", nil, nil); !strings.Contains(r.body, failedID) || strings.Contains(r.body, `"completed"`) {
		t.Fatalf("status filter: %s", r.body)
	}
	// A bad filter is a 400 naming the field, its echo of the value kept
	// short whatever bytes it holds.
	ctrl := strings.Repeat("%19", 200)
	for _, q := range []string{"status=" + ctrl, "limit=" + ctrl} {
		r := env.do(http.MethodGet, admin+"/valohai/runs?"+q, nil, nil)
		if r.status != http.StatusBadRequest || len(r.body) > 300 || !strings.Contains(r.body, `\\x19\\x19`) {
			t.Fatalf("%.10s…: %d %s", q, r.status, r.body)
		}
	}

	// The failure note reached the notify URL, once.
	waitFor(t, "the failure note", 5*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(notes) == 1
	})
	mu.Lock()
	note := notes[0]
	mu.Unlock()
	if note["event"] != "run_failed" || note["run_id"] != failedID || note["trigger"] != "ops" || note["status"] != "error" {
		t.Fatalf("note %v", note)
	}

	// Retrying the failed run launches it now that Valohai accepts.
	before := len(env.executionCalls())
	r := env.do(http.MethodPost, admin+"/valohai/runs/"+failedID+"/retry", nil, nil)
	if r.status != http.StatusAccepted {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	waitFor(t, "the retried run", 10*time.Second, func() bool {
		r := env.do(http.MethodGet, admin+"/valohai/runs/"+failedID, nil, nil)
		return strings.Contains(r.body, `"status": "completed"`)
	})
	if n := len(env.executionCalls()); n != before+1 {
		t.Fatalf("retry launched %d executions, want 1", n-before)
	}
	if r := env.do(http.MethodPost, admin+"/valohai/runs/no-such-run/retry", nil, nil); r.status != http.StatusNotFound {
		t.Fatalf("retry of an unknown run: %d", r.status)
	}

	// The CLI reads the same trigger log through the admin API.
	var out strings.Builder
	cli := runsCommand()
	cli.SetOut(&out)
	cli.SetArgs([]string{"--address", adminAddr, "--status", "completed", "--trigger", "ops"})
	if err := cli.Execute(); err != nil {
		t.Fatalf("caddy valohai runs: %v", err)
	}
	if !strings.Contains(out.String(), failedID) || !strings.Contains(out.String(), ok.body[strings.Index(ok.body, `"run_id":"`)+10:][:36]) {
		t.Fatalf("caddy valohai runs printed:\n%s", out.String())
	}
	cli = retryCommand()
	cli.SetOut(&out)
	cli.SetArgs([]string{"--address", adminAddr, "no-such-run"})
	if err := cli.Execute(); err == nil {
		t.Fatal("caddy valohai retry of an unknown run succeeded")
	}

	// Metrics on Caddy's registry, with bounded labels.
	// A run is stored final a moment before it leaves the queue: wait for
	// the gauge to catch up rather than racing it.
	var m string
	waitFor(t, "an empty queue in the metrics", 5*time.Second, func() bool {
		res, err := http.Get(admin + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		m = string(body)
		return strings.Contains(m, "caddy_valohai_queue_depth 0")
	})
	for _, want := range []string{
		`caddy_valohai_requests_total{outcome="completed",trigger="ops"}`,
		`caddy_valohai_requests_total{outcome="error",trigger="ops"} 1`,
		`caddy_valohai_rejections_total{directive="webhook_token",reason="token mismatch"} 1`,
		`caddy_valohai_launches_total{action="run_execution",result="ok"}`,
		`caddy_valohai_launches_total{action="run_execution",result="failed"} 1`,
		`caddy_valohai_queue_depth 0`,
		`caddy_valohai_launch_duration_seconds_count`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(m, "ops-token") {
		t.Fatal("a secret reached the metrics")
	}
}

// The admin API's run listing is newest first on each embedded engine,
// with and without a limit. On bbolt it reads the runs the gateway makes
// (UUIDv7 ids) from the runs table itself, without a listing index
// (README.md, "The durable write path").
func TestTriggerLogListsNewestFirstOnEachEngine(t *testing.T) {
	for _, engine := range embeddedEngines {
		t.Run(engine, func(t *testing.T) {
			adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			env := newTestEnv(t, "http")
			env.load("admin "+adminAddr, "", "store file "+env.dataDir+"/valohai "+engine, operationsRoutes, "")
			var sent []string
			for i := range 6 {
				r := env.post("/ops", []byte(fmt.Sprintf(`{"n":%d}`, i)), map[string]string{"Authorization": "Bearer ops-token"})
				if r.status != http.StatusOK {
					t.Fatalf("webhook %d: %d %s", i, r.status, r.body)
				}
				sent = append(sent, decodeLaunch(t, r).RunID)
			}
			list := func(query string) []string {
				t.Helper()
				r := env.do(http.MethodGet, "http://"+adminAddr+"/valohai/runs?"+query, nil, nil)
				var log struct {
					Runs []struct {
						ID string `json:"run_id"`
					} `json:"runs"`
				}
				if err := json.Unmarshal([]byte(r.body), &log); err != nil || r.status != http.StatusOK {
					t.Fatalf("GET /valohai/runs?%s: %d %s", query, r.status, r.body)
				}
				var ids []string
				for _, run := range log.Runs {
					ids = append(ids, run.ID)
				}
				return ids
			}
			newestFirst := slices.Clone(sent)
			slices.Reverse(newestFirst)
			if got := list("path=/ops"); !slices.Equal(got, newestFirst) {
				t.Fatalf("runs listed %v, want newest first %v", got, newestFirst)
			}
			if got := list("path=/ops&limit=2"); !slices.Equal(got, newestFirst[:2]) {
				t.Fatalf("runs listed with limit 2: %v, want %v", got, newestFirst[:2])
			}
		})
	}
}
