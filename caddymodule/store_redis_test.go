package caddymodule

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/launch"
	"github.com/hooklaunch/caddy-valohai/launch/store"
	"github.com/hooklaunch/caddy-valohai/launch/store/redistest"
)

// startRedisEnv is startEnv with the valohai app on a redis store, its URL
// given the way production configs give it: through {env.*}.
func startRedisEnv(t *testing.T, routes, redisURL string) *testEnv {
	t.Helper()
	t.Setenv("VALOHAI_TEST_STORE_REDIS_URL", redisURL)
	env := newTestEnv(t, "http")
	env.load("admin off", "", "store redis {env.VALOHAI_TEST_STORE_REDIS_URL}", routes, "")
	return env
}

const redisRoutes = `
	handle /github {
		webhook_hmac github "It's a Secret to Everybody"
		valohai_launch github-push {
			project ` + testProject + `
			execution train {
				commit        main
				payload_input dataset
				parameter     branch {webhook.json.ref}
			}
		}
	}
`

// A signed GitHub webhook through a Caddy on the redis store: the run, its
// payload and the signing key are in redis, where every other instance
// sharing it would find them.
func TestRedisStoreThroughCaddy(t *testing.T) {
	redisURL := redistest.Start(t)
	env := startRedisEnv(t, redisRoutes, redisURL)

	body := []byte(`{"ref":"refs/heads/main"}`)
	r := env.post("/github", body, map[string]string{"X-Hub-Signature-256": githubSign(body), "Content-Type": "application/json"})
	if r.status != http.StatusOK {
		t.Fatalf("status %d, body %q", r.status, r.body)
	}
	lr := decodeLaunch(t, r)
	if lr.RunID == "" || lr.Status != "completed" || len(lr.Result) != 1 || lr.Result[0].ExecutionID == "" {
		t.Fatalf("unexpected response %q", r.body)
	}

	// Another client on the same redis: what a second Caddy instance sees.
	s, err := store.OpenRedis(redisURL, store.RedisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var run *launch.Run
	waitFor(t, "the completed run in redis", 5*time.Second, func() bool {
		run, err = s.GetRun(ctx, lr.RunID)
		return err == nil && run.Status == launch.StatusCompleted
	})
	if run.Trigger != "github-push" || run.Path != "/github" || len(run.Actions) != 1 ||
		run.Actions[0].Result == nil || run.Actions[0].Result.ID != lr.Result[0].ExecutionID {
		t.Fatalf("run in redis = %+v", run)
	}
	p, err := s.GetPayload(ctx, lr.RunID)
	if err != nil || !bytes.Equal(p.Body, body) || p.ContentType != "application/json" {
		t.Fatalf("payload in redis = %+v, %v", p, err)
	}
	if _, err := s.Secret(ctx, payloadKeyName, func() ([]byte, error) {
		return nil, errors.New("the payload signing key is not in redis")
	}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.QueueDepth(ctx); err != nil || n != 0 {
		t.Fatalf("queue depth %d, %v after the launch completed", n, err)
	}

	// Valohai's worker downloads the body, served from redis.
	calls := env.executionCalls()
	inputs := calls[len(calls)-1]["inputs"].(map[string]any)
	got := env.do(http.MethodGet, inputs["dataset"].([]any)[0].(string), nil, nil)
	if got.status != http.StatusOK || got.body != string(body) {
		t.Fatalf("payload download: %d %q", got.status, got.body)
	}

	// A forged request is turned away and launches nothing.
	before := len(env.executionCalls())
	if r := env.post("/github", body, map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("0", 64)}); r.status != http.StatusBadRequest {
		t.Fatalf("forged request: %d %q", r.status, r.body)
	}
	if after := len(env.executionCalls()); after != before {
		t.Fatalf("a forged request launched %d executions", after-before)
	}
}

// rawRedis talks to the test redis directly, for what no store method does.
func rawRedis(t *testing.T, redisURL string) *redis.Client {
	t.Helper()
	o, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(o)
	t.Cleanup(func() { c.Close() })
	return c
}

func unreachableRedis(t *testing.T) string {
	return fmt.Sprintf("127.0.0.1:%d", freePort(t))
}

func TestRedisStoreConfigErrors(t *testing.T) {
	const pw = "Hunter2-redis-pw"
	addr := unreachableRedis(t)
	cases := []struct {
		name, store string
		want        []string
	}{
		{"unreachable", "store redis redis://app:" + pw + "@" + addr + "/0",
			[]string{"valohai: store redis", "redis://app:xxxxx@" + addr + "/0", "does not answer", "start redis"}},
		{"malformed", "store redis redis://app:" + pw + "@127.0.0.1:63x79/0",
			[]string{"valohai: store redis", "bad redis URL", "invalid port", "redis://[user:password@]host:port/db"}},
		{"unencoded password", "store redis redis://app:" + pw + "/x@127.0.0.1:6379/0",
			[]string{"valohai: store redis", "percent-encoded"}},
		{"unset variable", "store redis {env.VALOHAI_TEST_UNSET_REDIS_URL}",
			[]string{"valohai: store redis", "{env.VALOHAI_TEST_UNSET_REDIS_URL}", "expands to nothing"}},
		{"no url", "store redis",
			[]string{"valohai: store takes", "redis <url>"}},
		{"unknown backend", "store etcd http://127.0.0.1:2379",
			[]string{"valohai: store takes", "file <dir>", "redis <url>"}},
		{"sentinel without master", "store redis {\n\t\t\tsentinel 127.0.0.1:26379\n\t\t}",
			[]string{"valohai: store redis: sentinel needs `master <name>`"}},
		{"master without sentinel", "store redis {\n\t\t\tcluster 127.0.0.1:7000\n\t\t\tmaster m\n\t\t}",
			[]string{"master goes with sentinel"}},
		{"sentinel and cluster", "store redis {\n\t\t\tsentinel 127.0.0.1:26379\n\t\t\tmaster m\n\t\t\tcluster 127.0.0.1:7000\n\t\t}",
			[]string{"sentinel and cluster exclude each other", "keep the one you run"}},
		{"url and cluster", "store redis redis://127.0.0.1:6379/0 {\n\t\t\tcluster 127.0.0.1:7000\n\t\t}",
			[]string{"a URL and sentinel/cluster addresses exclude each other"}},
		{"password beside a url", "store redis redis://127.0.0.1:6379/0 {\n\t\t\tpassword " + pw + "\n\t\t}",
			[]string{"put the user and password in it"}},
		{"empty block", "store redis {\n\t\t}",
			[]string{"valohai: store takes", "sentinel and master, or cluster"}},
		{"unknown sub-directive", "store redis {\n\t\t\tsentinels 127.0.0.1:26379\n\t\t}",
			[]string{`unknown sub-directive "sentinels"`, "this block takes cluster, master, min_replicas_ack, password, prefix, sentinel, tls, username"}},
		{"bad address", "store redis {\n\t\t\tcluster 127.0.0.1\n\t\t}",
			[]string{`"127.0.0.1" is not host:port`}},
		{"bad min_replicas_ack", "store redis {\n\t\t\tsentinel 127.0.0.1:26379\n\t\t\tmaster m\n\t\t\tmin_replicas_ack one\n\t\t}",
			[]string{"min_replicas_ack must be a number of replicas"}},
		{"braces in a cluster prefix", "store redis {\n\t\t\tcluster 127.0.0.1:7000\n\t\t\tprefix {x}:\n\t\t}",
			[]string{"hash tag", "may not contain { or }"}},
		{"unset password variable", "store redis {\n\t\t\tcluster 127.0.0.1:7000\n\t\t\tpassword {env.VALOHAI_TEST_UNSET_REDIS_PW}\n\t\t}",
			[]string{"password {env.VALOHAI_TEST_UNSET_REDIS_PW} expands to nothing"}},
		{"sentinels unreachable", "store redis {\n\t\t\tsentinel " + addr + "\n\t\t\tmaster m\n\t\t\tusername app\n\t\t\tpassword " + pw + "\n\t\t}",
			[]string{"valohai: store redis: sentinel " + addr + " master m does not answer", "start redis", "fix the sentinel/master"}},
		{"cluster unreachable", "store redis {\n\t\t\tcluster " + addr + "\n\t\t\tpassword " + pw + "\n\t\t\ttls\n\t\t}",
			[]string{"valohai: store redis: cluster " + addr + " does not answer", "start redis"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cf := "{\n\tadmin off\n\tvalohai {\n\t\t" + c.store + "\n\t}\n}\nhttp://127.0.0.1:0 {\n\trespond ok\n}\n"
			err := loadCaddyfile(cf)
			if err == nil {
				_ = caddy.Stop()
				t.Fatal("config loaded, want an error")
			}
			if strings.Contains(err.Error(), pw) {
				t.Fatalf("the config error reveals the redis password: %v", err)
			}
			t.Logf("config error: %v", err)
			for _, w := range c.want {
				mustContain(t, err.Error(), w)
			}
		})
	}
}

// The redis client is shared across config reloads by URL, but two URLs
// that differ only by password are two clients (two identities on redis),
// and the pool key shows no password.
func TestRedisStorePoolKey(t *testing.T) {
	redisURL := redistest.Start(t)
	o, _ := url.Parse(redisURL)
	// One ACL user with two valid passwords.
	user := fmt.Sprintf("caddy-%d", time.Now().UnixNano())
	c := rawRedis(t, redisURL)
	if err := c.Do(context.Background(), "ACL", "SETUSER", user, "on", ">pass-one-1", ">pass-two-2", "~*", "+@all").Err(); err != nil {
		t.Fatalf("ACL SETUSER: %v", err)
	}
	t.Cleanup(func() { c.Do(context.Background(), "ACL", "DELUSER", user) })
	withPassword := func(pw string) string {
		u := *o
		u.User = url.UserPassword(user, pw)
		return u.String()
	}
	open := func(raw string) *App {
		t.Helper()
		a := &App{logger: zap.NewNop(), Store: &StoreConfig{Type: "redis", URL: raw}}
		if err := a.openStore(caddy.NewReplacer()); err != nil {
			t.Fatalf("openStore: %v", err)
		}
		t.Cleanup(func() { a.Cleanup() })
		return a
	}
	one, two, oneAgain := open(withPassword("pass-one-1")), open(withPassword("pass-two-2")), open(withPassword("pass-one-1"))
	if one.storeKey == two.storeKey || one.store == two.store {
		t.Fatalf("URLs differing only by password share a client (key %q)", one.storeKey)
	}
	if oneAgain.storeKey != one.storeKey || oneAgain.store != one.store {
		t.Fatal("the same URL opened a second client instead of sharing the first")
	}
	for _, a := range []*App{one, two} {
		if strings.Contains(a.storeKey, "pass-one") || strings.Contains(a.storeKey, "pass-two") {
			t.Fatalf("pool key %q contains the password", a.storeKey)
		}
	}
	// Both clients are the same store: a run made through one is seen by the other.
	ctx, now := context.Background(), time.Now()
	if err := one.store.CreateRun(ctx, &launch.Run{ID: "shared", CreatedAt: now, Status: launch.StatusPending}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := two.store.GetRun(ctx, "shared"); err != nil {
		t.Fatalf("the other client does not see the run: %v", err)
	}
}

// The store redis block adapts to the JSON its README section documents,
// placeholders left for provisioning to expand.
func TestStoreRedisBlockAdapts(t *testing.T) {
	for _, c := range []struct{ block, want string }{
		{`store redis {
			sentinel 10.0.0.1:26379 10.0.0.2:26379
			master mymaster
			username {env.REDIS_USER}
			password {env.REDIS_PASSWORD}
			tls
			min_replicas_ack 1 2s
			prefix prod:
		}`, `{"type":"redis","prefix":"prod:","sentinel":["10.0.0.1:26379","10.0.0.2:26379"],"master":"mymaster","username":"{env.REDIS_USER}","password":"{env.REDIS_PASSWORD}","tls":true,"min_replicas_ack":1,"ack_timeout":2000000000}`},
		{`store redis {
			cluster 10.0.0.1:7000
		}`, `{"type":"redis","cluster":["10.0.0.1:7000"]}`},
		{`store redis {env.REDIS_URL} staging: {
			min_replicas_ack 2
		}`, `{"type":"redis","url":"{env.REDIS_URL}","prefix":"staging:","min_replicas_ack":2}`},
		{`store redis {env.REDIS_URL}`, `{"type":"redis","url":"{env.REDIS_URL}"}`},
	} {
		cfg, err := adapt("{\n\tvalohai {\n\t\t" + c.block + "\n\t}\n}\n")
		if err != nil {
			t.Fatalf("%s: %v", c.block, err)
		}
		var got struct {
			Apps struct {
				Valohai struct {
					Store json.RawMessage `json:"store"`
				} `json:"valohai"`
			} `json:"apps"`
		}
		if err := json.Unmarshal(cfg, &got); err != nil {
			t.Fatal(err)
		}
		if string(got.Apps.Valohai.Store) != c.want {
			t.Errorf("%s\nadapts to %s\nwant       %s", c.block, got.Apps.Valohai.Store, c.want)
		}
	}
}
