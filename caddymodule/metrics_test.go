package caddymodule

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// counterValue reads one series from the registry, as /metrics shows it.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// The cached counters count what the vectors would, and a flood of distinct
// rejection reasons grows neither the cache nor the label set past the
// bound.
func TestMetricsCountersCachedAndBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, func() float64 { return 0 }, true)
	for range 3 {
		m.request("github-push", "pending")
		m.rejected("webhook_hmac", "signature mismatch")
	}
	if got := counterValue(t, reg, "caddy_valohai_requests_total", map[string]string{"trigger": "github-push", "outcome": "pending"}); got != 3 {
		t.Fatalf("requests counted %v, want 3", got)
	}
	if got := counterValue(t, reg, "caddy_valohai_rejections_total", map[string]string{"directive": "webhook_hmac", "reason": "signature mismatch"}); got != 3 {
		t.Fatalf("rejections counted %v, want 3", got)
	}
	for i := range 500 {
		m.rejected("webhook_hmac", fmt.Sprintf("reason %d", i))
	}
	if n := len(m.rejectCounters); n > maxLabelValues {
		t.Fatalf("%d cached rejection counters, want at most %d", n, maxLabelValues)
	}
	if got := counterValue(t, reg, "caddy_valohai_rejections_total", map[string]string{"directive": "webhook_hmac", "reason": "other"}); got < 500-maxLabelValues {
		t.Fatalf("rejections past the bound counted as other: %v", got)
	}
}

// scrapeValue reads one unlabelled sample from a /metrics text body
// (-1 when absent).
func scrapeValue(body, name string) float64 {
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// commitRoutes accept every signed-in POST and answer once the run is
// stored (wait 0s), so that each request is one accepted write.
const commitRoutes = `
	handle /commit {
		webhook_token commit-token
		valohai_launch commit {
			project ` + testProject + `
			execution train {
				commit main
			}
			wait 0s
		}
	}
`

// The embedded store's group commits show on Caddy's /metrics: every
// accepted webhook is a write of some commit, the duration histogram
// counts the same commits, and after a config reload (the store shared
// with the config replaced) the new config's metrics hear of them.
func TestStoreCommitMetricsThroughCaddy(t *testing.T) {
	for _, engine := range embeddedEngines {
		t.Run(engine, func(t *testing.T) {
			adminAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			env := newTestEnv(t, "http")
			storeLine := "store file " + env.dataDir + "/valohai " + engine
			env.load("admin "+adminAddr, "", storeLine, commitRoutes, "")
			scrape := func() string {
				t.Helper()
				res, err := http.Get("http://" + adminAddr + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				defer res.Body.Close()
				b, _ := io.ReadAll(res.Body)
				return string(b)
			}
			// Each burst has its own connections: a keep-alive connection
			// of the config replaced by a reload is closed under the client.
			burst := func(n int) {
				t.Helper()
				client := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
				defer client.CloseIdleConnections()
				var wg sync.WaitGroup
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						req, _ := http.NewRequest(http.MethodPost, env.hook+"/commit", strings.NewReader(fmt.Sprintf(`{"n":%d}`, i)))
						req.Header.Set("Authorization", "Bearer commit-token")
						res, err := client.Do(req)
						if err != nil {
							t.Errorf("request %d: %v", i, err)
							return
						}
						b, _ := io.ReadAll(res.Body)
						res.Body.Close()
						if res.StatusCode/100 != 2 {
							t.Errorf("request %d: %d %s", i, res.StatusCode, b)
						}
					}()
				}
				wg.Wait()
			}
			// The runs' launches commit too: read the metrics once the
			// queue is empty and two scrapes agree.
			settled := func() string {
				t.Helper()
				var m, prev string
				waitFor(t, "the launches to end", 10*time.Second, func() bool {
					m = scrape()
					var now string
					for _, name := range []string{"caddy_valohai_queue_depth", "caddy_valohai_store_commit_writes_sum",
						"caddy_valohai_store_commit_writes_count", "caddy_valohai_store_commit_duration_seconds_count"} {
						now += fmt.Sprint(scrapeValue(m, name), " ")
					}
					same := now == prev
					prev = now
					return same && scrapeValue(m, "caddy_valohai_queue_depth") == 0
				})
				return m
			}
			check := func(m string, accepted int) {
				t.Helper()
				writes := scrapeValue(m, "caddy_valohai_store_commit_writes_sum")
				commits := scrapeValue(m, "caddy_valohai_store_commit_writes_count")
				timed := scrapeValue(m, "caddy_valohai_store_commit_duration_seconds_count")
				took := scrapeValue(m, "caddy_valohai_store_commit_duration_seconds_sum")
				if writes < float64(accepted) {
					t.Fatalf("%v writes committed, want at least the %d accepted webhooks\n%s", writes, accepted, m)
				}
				if commits < 1 || commits > writes {
					t.Fatalf("%v commits for %v writes", commits, writes)
				}
				if timed != commits || took <= 0 {
					t.Fatalf("duration histogram: %v commits taking %vs, want the %v commits", timed, took, commits)
				}
			}
			burst(24)
			check(settled(), 24)
			if strings.Contains(scrape(), "commit-token") {
				t.Fatal("a secret reached the metrics")
			}

			// A reload keeps the store open; the new config's metrics
			// start from zero and count the commits made after it.
			env.load("admin "+adminAddr, "", storeLine, strings.Replace(commitRoutes, "valohai_launch commit", "valohai_launch commit-reloaded", 1), "")
			burst(10)
			check(settled(), 10)
		})
	}
}

// A redis store has no group commits: its config exports no commit
// histograms rather than histograms that never move.
func TestStoreCommitMetricsOnlyForEmbeddedStores(t *testing.T) {
	for _, embedded := range []bool{true, false} {
		reg := prometheus.NewRegistry()
		m := newMetrics(reg, func() float64 { return 0 }, embedded)
		if embedded {
			m.commit(3, time.Millisecond)
		}
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var found int
		for _, f := range families {
			if strings.HasPrefix(f.GetName(), "caddy_valohai_store_commit_") {
				found++
			}
		}
		if want := map[bool]int{true: 2, false: 0}[embedded]; found != want {
			t.Fatalf("embedded=%v: %d store commit metrics, want %d", embedded, found, want)
		}
	}
}
