package caddymodule

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// Tests of the claims the stateful conditions hand to valohai_launch
// (README.md, "The durable write path"): a request rejected after the
// condition let it through takes nothing, and routes without a launch
// count their quota in memory, flushed to the store.

const admitRoutes = `
	handle /rl-first {
		route {
			# The quota comes before authentication on purpose: a forged
			# request is rejected by the token after the rate limit let it
			# through, and must not spend the quota.
			webhook_rate_limit 2 1h
			webhook_token admit-token
			%[1]s
		}
	}
	handle /rl-hostile {
		webhook_rate_limit 1 1h
		%[2]s
	}
	handle /dedupe-hostile {
		webhook_dedupe {http.request.header.X-Delivery}
		%[3]s
	}
	handle /rl-respond {
		webhook_rate_limit 2 1h
		respond "passed" 200
	}
`

func TestClaimsTakeNothingForRejectedRequests(t *testing.T) {
	avoidWindowEdge(t, time.Hour, 30*time.Second)
	env := startEnv(t, fmt.Sprintf(admitRoutes,
		stateLaunch("rl-first", ""), stateLaunch("rl-hostile", ""), stateLaunch("dedupe-hostile", "")), "")
	good := map[string]string{"Authorization": "Bearer admit-token"}
	launched := 0

	t.Run("a request rejected after the rate limit spends no quota", func(t *testing.T) {
		for i := range 5 {
			r := env.post("/rl-first", []byte(`{}`), map[string]string{"Authorization": "Bearer forged-" + strconv.Itoa(i)})
			if r.status != http.StatusBadRequest || !strings.HasPrefix(r.body, "webhook_token:") || r.header.Get("Retry-After") != "" {
				t.Fatalf("forged %d: %d %q", i, r.status, r.body)
			}
		}
		for i := range 2 {
			if r := env.post("/rl-first", []byte(`{}`), good); r.status != http.StatusOK {
				t.Fatalf("good request %d after 5 forged ones: %d %q, want the quota of 2 untouched", i, r.status, r.body)
			}
		}
		r := env.post("/rl-first", []byte(`{}`), good)
		if r.status != http.StatusBadRequest || r.body != "webhook_rate_limit: quota exceeded" {
			t.Fatalf("3rd good request: %d %q, want the quota exceeded", r.status, r.body)
		}
		checkRetryAfter(t, r, time.Hour)
		launched += 2
		settledLaunches(t, env, launched)
	})

	t.Run("a body valohai_launch refuses spends no quota", func(t *testing.T) {
		hostile := []byte(`{"ref":"main","ref":"evil"}`) // duplicate key
		for range 3 {
			if r := env.post("/rl-hostile", hostile, nil); r.status != http.StatusBadRequest || r.header.Get("Retry-After") != "" {
				t.Fatalf("hostile body: %d %q, want valohai_launch's 400", r.status, r.body)
			}
		}
		if r := env.post("/rl-hostile", []byte(`{"ref":"main"}`), nil); r.status != http.StatusOK {
			t.Fatalf("good body after hostile ones: %d %q", r.status, r.body)
		}
		if r := env.post("/rl-hostile", []byte(`{"ref":"main"}`), nil); r.status != http.StatusBadRequest || r.body != "webhook_rate_limit: quota exceeded" {
			t.Fatalf("second good body: %d %q, want the quota of 1 spent", r.status, r.body)
		}
		launched++
		settledLaunches(t, env, launched)
	})

	t.Run("a delivery valohai_launch refuses leaves its key free", func(t *testing.T) {
		h := map[string]string{"X-Delivery": "evt-9"}
		if r := env.post("/dedupe-hostile", []byte(`{"a":1,"a":2}`), h); r.status != http.StatusBadRequest || r.header.Get(duplicateHeader) != "" {
			t.Fatalf("hostile delivery: %d %q", r.status, r.body)
		}
		first := env.post("/dedupe-hostile", []byte(`{"a":1}`), h)
		if first.status != http.StatusOK || first.header.Get(duplicateHeader) != "" {
			t.Fatalf("redelivery with a good body: %d %q dup=%q, want a launch", first.status, first.body, first.header.Get(duplicateHeader))
		}
		again := env.post("/dedupe-hostile", []byte(`{"a":1}`), h)
		if again.header.Get(duplicateHeader) != "true" || decodeLaunch(t, again).RunID != decodeLaunch(t, first).RunID {
			t.Fatalf("third delivery: %d %q, want a duplicate of %s", again.status, again.body, decodeLaunch(t, first).RunID)
		}
		launched++
		settledLaunches(t, env, launched)
	})

	t.Run("a route without a launch counts its quota exactly", func(t *testing.T) {
		rs := postAll(t, env.hook+"/rl-respond", 10, func(int) ([]byte, map[string]string) { return []byte(`{}`), nil })
		passed := 0
		for _, r := range rs {
			switch {
			case r.status == http.StatusOK && r.body == "passed":
				passed++
			case r.status == http.StatusBadRequest && r.body == "webhook_rate_limit: quota exceeded":
				checkRetryAfter(t, r, time.Hour)
			default:
				t.Fatalf("answer %d %q", r.status, r.body)
			}
		}
		if passed != 2 {
			t.Fatalf("%d of 10 concurrent requests passed a quota of 2", passed)
		}
	})
}

// TestQuotaWithoutLaunchSurvivesRestart: the units of a route without a
// launch are kept in memory and written to the store in batches; a clean
// stop writes them, so a restart finds the quota spent.
func TestQuotaWithoutLaunchSurvivesRestart(t *testing.T) {
	avoidWindowEdge(t, time.Hour, 30*time.Second)
	routes := `
	handle /rl-respond {
		webhook_rate_limit 2 1h
		respond "passed" 200
	}
`
	dir := t.TempDir()
	hookPort, simPort := freePort(t), freePort(t)
	env := startEnvAt(t, dir, hookPort, simPort, routes)
	for i := range 2 {
		if r := env.post("/rl-respond", []byte(`{}`), nil); r.status != http.StatusOK {
			t.Fatalf("request %d: %d %q", i, r.status, r.body)
		}
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	env = startEnvAt(t, dir, hookPort, simPort, routes)
	r := env.post("/rl-respond", []byte(`{}`), nil)
	if r.status != http.StatusBadRequest || r.body != "webhook_rate_limit: quota exceeded" {
		t.Fatalf("after the restart: %d %q, want the quota of 2 still spent", r.status, r.body)
	}
}

// TestStoreFileEngine: `store file <dir>` is pebble, `store file <dir>
// bbolt` bbolt, and another engine name is a config error that names both.
func TestStoreFileEngine(t *testing.T) {
	for _, tc := range []struct{ engine, file string }{{"", "pebble"}, {"pebble", "pebble"}, {"bbolt", "valohai.db"}} {
		dir := t.TempDir()
		cf := "{\n\tadmin off\n\tvalohai {\n\t\tstore file " + dir + " " + tc.engine + "\n\t}\n}\nhttp://127.0.0.1:0 {\n\trespond ok\n}\n"
		if err := loadCaddyfile(cf); err != nil {
			t.Fatalf("engine %q: %v", tc.engine, err)
		}
		_ = caddy.Stop()
		if _, err := os.Stat(filepath.Join(dir, tc.file)); err != nil {
			t.Fatalf("engine %q: %v, want the store in %s", tc.engine, err, tc.file)
		}
	}
	cf := "{\n\tadmin off\n\tvalohai {\n\t\tstore file " + t.TempDir() + " leveldb\n\t}\n}\nhttp://127.0.0.1:0 {\n\trespond ok\n}\n"
	err := loadCaddyfile(cf)
	if err == nil {
		_ = caddy.Stop()
		t.Fatal("engine leveldb loaded")
	}
	for _, want := range []string{"store file", "leveldb", "pebble", "bbolt"} {
		mustContain(t, err.Error(), want)
	}
}
