package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/hooklaunch/caddy-valohai/launch/store/redistest"
)

// The multi-instance tests run what a scaled-out deployment runs: two
// separate Caddy processes (the built binary) behind one public host name,
// sharing one redis store, launching against one simulator process. Quotas
// and delivery keys must hold across both exactly as on one instance.

const multiHost = "hooks.example.com"

// multiGateway is one Caddy process of the pair.
type multiGateway struct {
	addr string // 127.0.0.1:<port>
}

// startMultiInstance starts the simulator and two gateways on the store
// option storeOpt (e.g. "redis redis://…" or a `redis { … }` block) and
// returns the gateways and a testEnv pointing at the simulator.
func startMultiInstance(t *testing.T, storeOpt string) ([2]multiGateway, *testEnv) {
	t.Helper()
	simAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
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
`, simAddr, testToken, testProject, testCommit, yaml), simAddr)

	var gws [2]multiGateway
	for i := range gws {
		port := freePort(t)
		gws[i].addr = fmt.Sprintf("127.0.0.1:%d", port)
		// The site is addressed by the public host name only, as behind a
		// load balancer: both instances see the same trigger URL.
		startCaddyProc(t, fmt.Sprintf(`{
	admin off
	valohai {
		api_url   http://%[2]s
		api_token %[3]s
		store     %[4]s
	}
}
http://%[5]s:%[1]d {
	handle_errors {
		respond "{err.message}" {err.status_code}
	}
	handle /limited {
		webhook_token multi-token
		webhook_rate_limit {
			limit 5 1h
			key   {http.request.header.X-Round}
		}
		%[6]s
	}
	handle /deliveries {
		webhook_token multi-token
		webhook_dedupe {http.request.header.X-GitHub-Delivery}
		%[7]s
	}
	handle /accepted {
		webhook_token multi-token
		webhook_dedupe {http.request.header.X-GitHub-Delivery}
		%[8]s
	}
	handle /plain {
		webhook_token multi-token
		%[9]s
	}
	handle /runs {
		valohai_run_info
	}
}
`, port, simAddr, testToken, storeOpt, multiHost,
			stateLaunch("multi-limited", "wait 0s"), stateLaunch("multi-dedupe", ""), stateLaunch("multi-accepted", "wait 0s"),
			stateLaunch("multi-plain", "wait 0s")), gws[i].addr)
	}
	return gws, &testEnv{t: t, sim: "http://" + simAddr}
}

// multiPost is one request of a burst: which gateway, which headers.
type multiPost struct {
	gw      multiGateway
	path    string
	headers map[string]string
}

// postBurst sends every request at once, each to its gateway with the
// public Host, and returns the answers in order.
func postBurst(t *testing.T, posts []multiPost) []response {
	t.Helper()
	client := &http.Client{Timeout: 20 * time.Second}
	out := make([]response, len(posts))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, p := range posts {
		wg.Go(func() {
			<-start
			req, err := http.NewRequest(http.MethodPost, "http://"+p.gw.addr+p.path, bytes.NewReader([]byte(`{"multi":true}`)))
			if err != nil {
				t.Error(err)
				return
			}
			req.Host = multiHost
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer multi-token")
			for k, v := range p.headers {
				req.Header.Set(k, v)
			}
			res, err := client.Do(req)
			if err != nil {
				t.Errorf("request %d to %s: %v", i, p.gw.addr, err)
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

func TestMultiInstanceSharedRedis(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Caddy processes")
	}
	gws, sim := startMultiInstance(t, "redis "+redistest.Start(t))
	checkSharedState(t, gws, sim)
}

// checkSharedState checks what two gateways on one store must agree on: an
// exact quota and one launch per delivery, whichever instance each request
// reaches.
func checkSharedState(t *testing.T, gws [2]multiGateway, sim *testEnv) {
	avoidWindowEdge(t, time.Hour, time.Minute)
	launched := 0

	t.Run("a quota of 5 is exact across two instances", func(t *testing.T) {
		const quota, perRound, rounds = 5, 24, 4
		for round := range rounds {
			posts := make([]multiPost, perRound)
			for i := range posts {
				posts[i] = multiPost{gws[i%2], "/limited", map[string]string{"X-Round": "round-" + strconv.Itoa(round)}}
			}
			accepted, perGateway := map[string]bool{}, [2]int{}
			for i, r := range postBurst(t, posts) {
				switch r.status {
				case http.StatusAccepted, http.StatusOK:
					accepted[decodeLaunch(t, r).RunID] = true
					perGateway[i%2]++
				case http.StatusBadRequest:
					if r.body != "webhook_rate_limit: quota exceeded" {
						t.Fatalf("round %d: rejection %q", round, r.body)
					}
					checkRetryAfter(t, r, time.Hour)
				default:
					t.Fatalf("round %d: answer %d %q", round, r.status, r.body)
				}
			}
			if len(accepted) != quota {
				t.Fatalf("round %d: %d requests accepted across both instances (%v per instance), want exactly %d", round, len(accepted), perGateway, quota)
			}
			launched += quota
			runs := settledLaunches(t, sim, launched)
			for id := range accepted {
				if runs[id] != 1 {
					t.Fatalf("round %d: run %s launched %d times", round, id, runs[id])
				}
			}
		}
	})

	t.Run("one delivery sent to both instances at once launches once", func(t *testing.T) {
		const deliveries, copies = 5, 6
		var posts []multiPost
		for d := range deliveries {
			for c := range copies {
				posts = append(posts, multiPost{gws[c%2], "/deliveries", map[string]string{"X-GitHub-Delivery": fmt.Sprintf("multi-delivery-%d", d)}})
			}
		}
		rs := postBurst(t, posts)
		for d := range deliveries {
			runID, originals := "", 0
			for c := range copies {
				r := rs[d*copies+c]
				if r.status != http.StatusOK && r.status != http.StatusAccepted {
					t.Fatalf("delivery %d copy %d: %d %q", d, c, r.status, r.body)
				}
				var lr launchResponse
				if err := json.Unmarshal([]byte(r.body), &lr); err != nil || lr.RunID == "" {
					t.Fatalf("delivery %d copy %d: %q", d, c, r.body)
				}
				if runID == "" {
					runID = lr.RunID
				}
				if lr.RunID != runID {
					t.Fatalf("delivery %d: copies name runs %s and %s", d, runID, lr.RunID)
				}
				if r.header.Get(duplicateHeader) == "" {
					originals++
				}
			}
			if originals != 1 {
				t.Fatalf("delivery %d: %d copies answered as the original, want exactly 1", d, originals)
			}
		}
		launched += deliveries
		settledLaunches(t, sim, launched)
	})
}
