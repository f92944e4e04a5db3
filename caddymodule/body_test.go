package caddymodule

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

const bodyLimitsRoutes = `
	handle /hook {
		webhook_token body-token
		respond "passed" 200
	}
`

// rawPost opens a connection and sends a request head announcing length
// bytes, then first of them; the caller sends the rest (or not).
func rawPost(t *testing.T, hook string, length int, first string) net.Conn {
	t.Helper()
	addr := strings.TrimPrefix(hook, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /hook HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer body-token\r\nContent-Length: %d\r\n\r\n%s", addr, length, first)
	return c
}

func readStatus(t *testing.T, c net.Conn) (*http.Response, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer res.Body.Close()
	b := new(strings.Builder)
	_, _ = fmt.Fprint(b, readAll(res))
	return res, b.String()
}

func readAll(res *http.Response) string {
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String()
		}
	}
}

// TestBodyBudgetAndDeadline: bodies in flight share the app's budget (a
// request past it gets 503 with Retry-After, and gets through once the
// budget is back), and a body that stalls gets 408 at body_timeout whatever
// the server's own timeouts.
func TestBodyBudgetAndDeadline(t *testing.T) {
	env := startEnv(t, bodyLimitsRoutes, "max_body 1MiB\n\t\tmax_body_in_flight 1MiB\n\t\tbody_timeout 2s")

	// One slow sender holds 512 KiB of buffer: it sent 400 KiB of 1 MiB.
	slow := rawPost(t, env.hook, 1<<20, strings.Repeat("a", 400<<10))
	time.Sleep(300 * time.Millisecond)
	r := env.post("/hook", []byte(strings.Repeat("b", 600<<10)), map[string]string{"Authorization": "Bearer body-token"})
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("past the budget: %d %q (Retry-After %q), want 503 with Retry-After", r.status, r.body, r.header.Get("Retry-After"))
	}
	mustContain(t, r.body, "too many request bodies in flight")
	if r := env.post("/hook", []byte("small"), map[string]string{"Authorization": "Bearer body-token"}); r.status != http.StatusOK {
		t.Fatalf("a small body within the budget: %d %q", r.status, r.body)
	}

	// The slow sender never finishes: 408 at body_timeout, and its buffer
	// goes back to the budget.
	res, body := readStatus(t, slow)
	if res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("stalled body: %d %q, want 408", res.StatusCode, body)
	}
	// On HTTP/1 the rest of the body could still come, read as the next
	// request: the connection ends. (Go's server ends it too once a body
	// read failed; bodyError says so explicitly. HTTP/2 and 3 end the
	// stream alone: TestWebhooksOverHTTP2.)
	if !res.Close {
		t.Fatalf("stalled body: the 408 keeps the HTTP/1 connection open (Connection %q)", res.Header.Get("Connection"))
	}
	waitFor(t, "the budget to come back", 5*time.Second, func() bool {
		return env.post("/hook", []byte(strings.Repeat("b", 600<<10)), map[string]string{"Authorization": "Bearer body-token"}).status == http.StatusOK
	})
}

// TestBodyHoldsNoMoreThanItAnnounced: a body's buffer doubles as bytes
// arrive but stops at its Content-Length (+1 to see its end), so the
// budget it holds is about its size, not the next doubling. A sender that
// announced 600 KiB and sent 599 KiB holds 600 KiB of a 1 MiB budget, and
// a 300 KiB body still fits beside it (with doubling past the announced
// length it held 1 MiB, and the second body got 503).
func TestBodyHoldsNoMoreThanItAnnounced(t *testing.T) {
	env := startEnv(t, bodyLimitsRoutes, "max_body 1MiB\n\t\tmax_body_in_flight 1MiB\n\t\tbody_timeout 3s")
	slow := rawPost(t, env.hook, 600<<10, strings.Repeat("a", 599<<10))
	v, err := caddy.ActiveContext().App("valohai")
	if err != nil {
		t.Fatal(err)
	}
	app := v.(*App)
	// The body, one byte to see its end, and the room kept in front of it
	// for the payload record's header (no Content-Type: the default one).
	want := int64(600<<10 + 1 + 12 + len("application/octet-stream"))
	// The buffer grows in steps as the bytes arrive (a step of 512 KiB
	// comes before the last): wait for it to reach the announced size,
	// then check it went no further.
	waitFor(t, "the slow body to be buffered", 5*time.Second, func() bool { return app.bodies.inFlight.Load() >= want })
	if held := app.bodies.inFlight.Load(); held != want {
		t.Fatalf("the slow body holds %d bytes of the budget, want %d", held, want)
	}
	r := env.post("/hook", []byte(strings.Repeat("b", 300<<10)), map[string]string{"Authorization": "Bearer body-token"})
	if r.status != http.StatusOK {
		t.Fatalf("a 300 KiB body beside it: %d %q, want 200", r.status, r.body)
	}
	if res, _ := readStatus(t, slow); res.StatusCode != http.StatusRequestTimeout {
		t.Fatalf("the stalled body: %d, want 408", res.StatusCode)
	}
}

// TestBodyBudgetBelowMaxBodyIsAConfigError names the option and the fix.
func TestBodyBudgetBelowMaxBodyIsAConfigError(t *testing.T) {
	cf := `{
	admin off
	valohai {
		api_token x
		store file ` + filepath.Join(t.TempDir(), "s") + `
		max_body 10MiB
		max_body_in_flight 1MiB
	}
}
`
	err := loadCaddyfile(cf)
	if err == nil {
		t.Fatal("a budget smaller than max_body loaded")
	}
	mustContain(t, err.Error(), "max_body_in_flight")
	mustContain(t, err.Error(), "raise max_body_in_flight")
}

// TestQueryTokenLogFilter: the README's log filter keeps a token sent as a
// query parameter out of Caddy's access log.
func TestQueryTokenLogFilter(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "access.log")
	env := startEnv(t, `
	log {
		output file `+logFile+`
		format filter {
			request>uri query {
				delete token
			}
			request>headers>Authorization delete
		}
	}
	handle /q {
		webhook_token {
			secret query-secret-value
			query token
		}
		respond "passed" 200
	}
`, "")
	r := env.do(http.MethodPost, env.hook+"/q?token=query-secret-value&keep=1", []byte("{}"), nil)
	if r.status != http.StatusOK {
		t.Fatalf("%d %q", r.status, r.body)
	}
	var logged string
	waitFor(t, "the access log", 5*time.Second, func() bool {
		b, _ := os.ReadFile(logFile)
		logged = string(b)
		return strings.Contains(logged, `"/q?`)
	})
	if strings.Contains(logged, "query-secret-value") {
		t.Fatalf("the token reached the access log:\n%s", logged)
	}
	mustContain(t, logged, "keep=1")
}

// TestBodyBudgetComesBackAfterEachRequest: whichever handler reads the body
// first (a condition, the filter, or the launch), its share of the budget
// is given back when the request ends, answered or refused, so requests
// one after the other each get the whole budget.
func TestBodyBudgetComesBackAfterEachRequest(t *testing.T) {
	env := startEnv(t, `
	handle /condition {
		webhook_token body-token
		respond "passed" 200
	}
	handle /filter {
		webhook_filter `+"`body.ref == \"main\"`"+`
		respond "passed" 200
	}
	handle /launch {
		valohai_launch budget {
			project `+testProject+`
			execution train {
				commit main
			}
			wait 0s
		}
	}
	`, "max_body 1MiB\n\t\tmax_body_in_flight 1MiB")
	big := []byte(`{"ref":"main","pad":"` + strings.Repeat("x", 600<<10) + `"}`)
	auth := map[string]string{"Authorization": "Bearer body-token", "Content-Type": "application/json"}
	v, err := caddy.ActiveContext().App("valohai")
	if err != nil {
		t.Fatal(err)
	}
	app := v.(*App)
	for i := range 4 {
		if r := env.post("/condition", big, auth); r.status != http.StatusOK {
			t.Fatalf("condition, request %d: %d %q", i+1, r.status, r.body)
		}
		if r := env.post("/condition", big, nil); r.status != http.StatusBadRequest {
			t.Fatalf("condition refused, request %d: %d %q, want 400", i+1, r.status, r.body)
		}
		if r := env.post("/filter", big, auth); r.status != http.StatusOK {
			t.Fatalf("filter, request %d: %d %q", i+1, r.status, r.body)
		}
		if r := env.post("/launch", big, auth); r.status != http.StatusAccepted && r.status != http.StatusOK {
			t.Fatalf("launch, request %d: %d %q", i+1, r.status, r.body)
		}
		// The launch gives its share back when the request's context
		// ends (context.AfterFunc, on its own goroutine), which may be
		// just after the client has read the answer: wait for it rather
		// than race it with the next request.
		waitFor(t, "the launch's body budget to come back", 5*time.Second, func() bool { return app.bodies.inFlight.Load() == 0 })
	}
}

// TestBodyDeadlineLiftedAfterBody: once the body is in, its body_timeout
// no longer applies: a handler after the condition that answers later than
// body_timeout (a slow upstream) still answers, and the connection serves
// the next request. Held for Caddy's default server (its idle-timeout
// reader under the body), with the access log (which wraps that reader)
// and with read_body_idle turned off (no such reader).
func TestBodyDeadlineLiftedAfterBody(t *testing.T) {
	upstream := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(1500 * time.Millisecond) // past body_timeout 1s
		fmt.Fprint(w, "upstream answered")
	})}
	ul, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go upstream.Serve(ul)
	t.Cleanup(func() { upstream.Close() })

	for _, tc := range []struct{ name, servers, site string }{
		{"default", "", ""},
		{"access log", "", "log"},
		{"read_body_idle off", "servers {\n\t\ttimeouts {\n\t\t\tread_body_idle -1s\n\t\t}\n\t}", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := loadBodyTimeoutSite(t, tc.servers, "1s", tc.site, "reverse_proxy "+ul.Addr().String())
			c := rawPost(t, fmt.Sprintf("http://127.0.0.1:%d", port), 5, "hello")
			br := bufio.NewReader(c)
			for i := range 2 {
				if i > 0 {
					fmt.Fprintf(c, "POST /hook HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer body-token\r\nContent-Length: 5\r\n\r\nhello")
				}
				_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
				res, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatalf("request %d: reading the answer: %v", i+1, err)
				}
				body := readAll(res)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || body != "upstream answered" {
					t.Fatalf("request %d: %d %q, want 200 from the slow upstream", i+1, res.StatusCode, body)
				}
			}
		})
	}
}

// TestBodyTimeoutCutsATrickle: a sender that keeps sending a byte now and
// then, never idle long enough for the server's read_body_idle, is still
// cut off at body_timeout with 408, whether the server's idle timeout is
// longer than body_timeout (Caddy's default, 1m) or shorter.
func TestBodyTimeoutCutsATrickle(t *testing.T) {
	for _, tc := range []struct{ name, servers string }{
		{"idle timeout longer", ""},
		{"idle timeout shorter", "servers {\n\t\ttimeouts {\n\t\t\tread_body_idle 1s\n\t\t}\n\t}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := loadBodyTimeoutSite(t, tc.servers, "2s", "", `respond "passed" 200`)
			start := time.Now()
			c := rawPost(t, fmt.Sprintf("http://127.0.0.1:%d", port), 40, "a")
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for range 39 {
					select {
					case <-stop:
						return
					case <-time.After(300 * time.Millisecond):
					}
					if _, err := c.Write([]byte("a")); err != nil {
						return
					}
				}
			}()
			res, body := readStatus(t, c)
			elapsed := time.Since(start)
			if res.StatusCode != http.StatusRequestTimeout {
				t.Fatalf("trickled body: %d %q after %v, want 408 at body_timeout", res.StatusCode, body, elapsed)
			}
			if elapsed < 1500*time.Millisecond || elapsed > 6*time.Second {
				t.Fatalf("trickled body cut after %v, want about body_timeout (2s)", elapsed)
			}
		})
	}
}

// loadBodyTimeoutSite runs a Caddy whose valohai app has body_timeout
// bodyTimeout, with servers (global server options) and site (site-level
// directives), and whose route /hook checks webhook_token body-token, then
// runs handler. It returns the site's port.
func loadBodyTimeoutSite(t *testing.T, servers, bodyTimeout, site, handler string) int {
	t.Helper()
	port := freePort(t)
	dir := t.TempDir()
	cf := fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %[1]s/caddy
	%[3]s
	valohai {
		api_url      http://127.0.0.1:1
		api_token    t
		store        file %[1]s/valohai
		body_timeout %[4]s
	}
}

http://127.0.0.1:%[2]d {
	%[5]s
	route /hook {
		webhook_token body-token
		%[6]s
	}
}
`, dir, port, servers, bodyTimeout, site, handler)
	if err := loadCaddyfile(cf); err != nil {
		t.Fatalf("loading config: %v\n%s", err, cf)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return port
}
