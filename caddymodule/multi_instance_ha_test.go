package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hooklaunch/caddy-valohai/launch/store/redistest"
)

// The high-availability tests of docs/redis.md: two Caddy processes on a
// Sentinel deployment whose master is killed under load, and two on a
// Redis Cluster.

// sentinelStore is the store option of a gateway on dep.
func sentinelStore(sentinels []string, master string, extra string) string {
	return fmt.Sprintf(`redis {
			sentinel %s
			master   %s
			%s
		}`, strings.Join(sentinels, " "), master, extra)
}

// An answer to one attempt of one delivery.
type attempt struct {
	delivery int
	status   int
	runID    string
	dup      bool
	err      string
	at       time.Duration
}

// Two gateways on Sentinel with min_replicas_ack 1, 50 deliveries in
// flight, kill -9 of the master: every 2xx is launched exactly once (the
// simulator counts the executions), no 2xx is lost, the requests caught in
// the failover get 5xx, and their senders' retries (same delivery id) are
// answered once the new master is in place, as duplicates of a run that
// exists when the first attempt's run was stored.
func TestMultiInstanceSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a failover under two Caddy processes")
	}
	dep := redistest.StartSentinel(t)
	gws, sim := startMultiInstance(t, sentinelStore(dep.Sentinels, dep.Master, "min_replicas_ack 1 1s"))

	const deliveries = 50
	client := &http.Client{Timeout: 30 * time.Second}
	post := func(d, n int) attempt {
		gw := gws[(d+n)%2] // a retry may reach the other instance
		req, _ := http.NewRequest(http.MethodPost, "http://"+gw.addr+"/accepted", bytes.NewReader([]byte(`{"multi":true}`)))
		req.Host = multiHost
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer multi-token")
		req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("failover-%d", d))
		a := attempt{delivery: d}
		res, err := client.Do(req)
		if err != nil {
			a.err = err.Error()
			return a
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		a.status = res.StatusCode
		a.dup = res.Header.Get(duplicateHeader) != ""
		if a.status/100 == 2 {
			var lr launchResponse
			if err := json.Unmarshal(body, &lr); err != nil || lr.RunID == "" {
				a.err = fmt.Sprintf("2xx without a run id: %q", body)
			}
			a.runID = lr.RunID
		} else {
			a.err = string(body)
		}
		return a
	}

	// Deliveries start 40ms apart over two seconds; the master dies half a
	// second in. Each sender retries a 5xx or a broken connection after
	// 300ms, as senders do, until it gets a 2xx or 45s pass.
	var (
		mu       sync.Mutex
		attempts []attempt
		wg       sync.WaitGroup
	)
	start := time.Now()
	for d := range deliveries {
		wg.Go(func() {
			time.Sleep(time.Duration(d) * 40 * time.Millisecond)
			for n := 0; ; n++ {
				a := post(d, n)
				a.at = time.Since(start)
				mu.Lock()
				attempts = append(attempts, a)
				mu.Unlock()
				if a.status/100 == 2 || a.status/100 == 4 || time.Since(start) > 45*time.Second {
					return
				}
				time.Sleep(300 * time.Millisecond)
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	killedAt := time.Since(start)
	dep.Servers[0].Kill()
	wg.Wait()
	if newMaster, err := dep.MasterAddr(context.Background()); err != nil || newMaster == dep.Servers[0].Addr {
		t.Fatalf("no failover: master %q, %v", newMaster, err)
	}

	// What the senders saw.
	accepted := map[string]int{} // run id → delivery
	byDelivery := map[int]string{}
	var failed, dups, during int
	reasons := map[string]int{}
	for _, a := range attempts {
		switch {
		case a.status/100 == 2:
			if a.err != "" {
				t.Fatal(a.err)
			}
			if prev, ok := byDelivery[a.delivery]; ok && prev != a.runID {
				t.Fatalf("delivery %d answered with runs %s and %s", a.delivery, prev, a.runID)
			}
			byDelivery[a.delivery] = a.runID
			accepted[a.runID] = a.delivery
			if a.dup {
				dups++
			}
		case a.status == 0 || a.status/100 == 5:
			failed++
			reasons[fmt.Sprintf("%d %s", a.status, a.err)]++
			if a.at > killedAt {
				during++
			}
		default:
			t.Fatalf("delivery %d: answer %d %q", a.delivery, a.status, a.err)
		}
	}
	t.Logf("%d attempts: %d accepted deliveries (%d answered as duplicates of a stored run), %d 5xx or broken (%d after the kill at %s)",
		len(attempts), len(byDelivery), dups, failed, during, killedAt)
	t.Logf("failures: %v", reasons)
	if during == 0 {
		t.Fatal("no request failed during the failover: the test did not catch requests in flight")
	}
	if len(byDelivery) < deliveries*9/10 {
		t.Fatalf("only %d of %d deliveries accepted after 45s of retries", len(byDelivery), deliveries)
	}

	// Every 2xx launched exactly once: the runs a failed worker held come
	// back when their lease (15s) runs out.
	var got map[string]int
	waitFor(t, "every accepted run launched", 60*time.Second, func() bool {
		got = launchedRuns(sim)
		for id := range accepted {
			if got[id] == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * time.Second) // a second launch of any run would show now
	got = launchedRuns(sim)
	for id, d := range accepted {
		if got[id] != 1 {
			t.Errorf("run %s (delivery %d, answered 2xx) launched %d times", id, d, got[id])
		}
	}
	for id, n := range got {
		if _, ok := accepted[id]; !ok {
			// Written but not acknowledged: stored, and launched once
			// (docs/redis.md, "min_replicas_ack"); its delivery's
			// retry is then answered with this run.
			t.Logf("run %s launched %d time(s) without a 2xx naming it", id, n)
			if n != 1 {
				t.Errorf("run %s launched %d times", id, n)
			}
		}
	}
}

// Two gateways on a Redis Cluster: an exact quota and one launch per
// delivery across both, and a run accepted by one answers run info on
// either.
func TestMultiInstanceCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Caddy processes")
	}
	nodes := redistest.SharedCluster(t)
	prefix := redistest.UniquePrefix(t)
	gws, sim := startMultiInstance(t, fmt.Sprintf(`redis {
			cluster %s
			prefix  %s
		}`, strings.Join(nodes, " "), prefix))
	checkSharedState(t, gws, sim)

	t.Run("run info through either gateway", func(t *testing.T) {
		rs := postBurst(t, []multiPost{{gws[0], "/accepted", map[string]string{"X-GitHub-Delivery": "cluster-info"}}})
		if rs[0].status != http.StatusAccepted {
			t.Fatalf("answer %d %q", rs[0].status, rs[0].body)
		}
		id := decodeLaunch(t, rs[0]).RunID
		for _, gw := range gws {
			var lr launchResponse
			waitFor(t, "the run completed, seen through "+gw.addr, 15*time.Second, func() bool {
				req, _ := http.NewRequest(http.MethodGet, "http://"+gw.addr+"/runs?run_id="+url.QueryEscape(id), nil)
				req.Host = multiHost
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					return false
				}
				defer res.Body.Close()
				lr = launchResponse{}
				return res.StatusCode == http.StatusOK && json.NewDecoder(res.Body).Decode(&lr) == nil && lr.Status == "completed"
			})
			if len(lr.Result) != 1 || lr.Result[0].ExecutionID == "" {
				t.Fatalf("run info through %s: %+v", gw.addr, lr)
			}
		}
	})
}

// min_replicas_ack's rule (docs/redis.md): with no replica answering, a
// request is refused 503, never 2xx. The run and its delivery key, written
// together in one script, stay queued though not acknowledged: the
// sender's retry is answered as a duplicate of that run once the replicas
// hold it, and each run is launched exactly once when its lease runs out.
func TestMinReplicasAckRefusesWithoutReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Caddy processes")
	}
	dep := redistest.StartSentinel(t)
	gws, sim := startMultiInstance(t, sentinelStore(dep.Sentinels, dep.Master, "min_replicas_ack 1 300ms"))
	send := func(path, delivery string) response {
		t.Helper()
		h := map[string]string{}
		if delivery != "" {
			h["X-GitHub-Delivery"] = delivery
		}
		return postBurst(t, []multiPost{{gws[0], path, h}})[0]
	}
	for _, r := range dep.Servers[1:] {
		r.Pause()
	}
	deduped := send("/accepted", "unacked-delivery")
	plain := send("/plain", "")
	for _, r := range dep.Servers[1:] {
		r.Resume()
	}
	if deduped.status != http.StatusServiceUnavailable || plain.status != http.StatusServiceUnavailable {
		t.Fatalf("without replicas: %d %q and %d %q, want 503 for both", deduped.status, deduped.body, plain.status, plain.body)
	}
	if len(sim.executionCalls()) != 0 {
		t.Fatal("a refused request launched at once")
	}
	// The retry of the deduplicated delivery is answered with the run its
	// refused attempt wrote (after the store made the replicas hold it).
	var retry response
	waitFor(t, "the retry accepted", 10*time.Second, func() bool {
		retry = send("/accepted", "unacked-delivery")
		return retry.status == http.StatusAccepted || retry.status == http.StatusOK
	})
	if retry.header.Get(duplicateHeader) != "true" {
		t.Fatalf("the retry was launched anew instead of answered with the stored run: %d %q", retry.status, retry.body)
	}
	retried := decodeLaunch(t, retry).RunID
	// Two launches in all: the deduplicated run and the plain one, each
	// once its 15s lease ran out. Nothing twice.
	waitFor(t, "two launches", 40*time.Second, func() bool { return len(sim.executionCalls()) >= 2 })
	time.Sleep(time.Second)
	got := launchedRuns(sim)
	if len(sim.executionCalls()) != 2 || got[retried] != 1 {
		t.Fatalf("launches %v, want the deduplicated run %s and the plain run once each", got, retried)
	}
}
