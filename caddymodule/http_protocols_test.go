package caddymodule

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// h2Env is Caddy serving the webhook site over HTTPS with its internal CA,
// and a client that trusts that CA and keeps one connection to it: HTTP/2
// (Caddy's default for TLS) or HTTP/3 (QUIC, which Caddy also serves by
// default).
type h2Env struct {
	*testEnv
	client *http.Client
	proto  string // what every answer must come over: "HTTP/2.0", "HTTP/3.0"
}

// startH2Env starts Caddy with routes on https://127.0.0.1:<port> (tls
// internal) speaking HTTP/1.1 and proto's protocol ("HTTP/2.0" or
// "HTTP/3.0"), the simulator on plain HTTP, with extraGlobal in the valohai
// block, and a client of that protocol.
func startH2Env(t *testing.T, proto, routes, extraGlobal string) *h2Env {
	protocols := map[string]string{"HTTP/2.0": "h1 h2", "HTTP/3.0": "h1 h3"}[proto]
	t.Helper()
	env := newTestEnv(t, "https")
	env.load("admin off\n\tskip_install_trust\n\tauto_https disable_redirects\n\tservers {\n\t\tprotocols "+protocols+"\n\t}",
		"tls internal", "", routes, extraGlobal)

	root, err := os.ReadFile(filepath.Join(env.dataDir, "caddy", "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatalf("Caddy's internal root: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(root) {
		t.Fatal("Caddy's internal root does not parse")
	}
	tlsConfig := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	var tr http.RoundTripper
	if proto == "HTTP/3.0" {
		h3 := &http3.Transport{TLSClientConfig: tlsConfig}
		t.Cleanup(func() { h3.Close() })
		tr = h3
	} else {
		h2 := &http.Transport{TLSClientConfig: tlsConfig, ForceAttemptHTTP2: true}
		t.Cleanup(h2.CloseIdleConnections)
		tr = h2
	}
	e := &h2Env{testEnv: env, client: &http.Client{Transport: tr, Timeout: 20 * time.Second}, proto: proto}
	// Caddy obtains the site's certificate from its CA in the background.
	waitFor(t, "the site's certificate", 15*time.Second, func() bool {
		res, err := e.client.Get(env.hook + "/")
		if err != nil {
			return false
		}
		res.Body.Close()
		return true
	})
	return e
}

// h2Result is an answer, whether its request went on a connection the
// client had used before (HTTP/2 only: the HTTP/3 client does not say), and
// how long its status line took to come.
type h2Result struct {
	response
	proto  string
	reused bool
	waited time.Duration
}

// send posts body (its length announced as size; -1: unannounced, sent
// as it comes) to path over the shared connection.
func (e *h2Env) send(path string, body io.Reader, size int64, headers map[string]string) (h2Result, error) {
	var reused bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodPost, e.hook+path, body)
	if err != nil {
		return h2Result{}, err
	}
	req.ContentLength = size
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	start := time.Now()
	res, err := e.client.Do(req)
	waited := time.Since(start)
	if s, ok := body.(*stallingBody); ok {
		// Go's client finishes a stream only once its body reader returns:
		// let a stalled one go now that the answer is in.
		s.let()
	}
	if err != nil {
		return h2Result{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return h2Result{}, err
	}
	return h2Result{response{res.StatusCode, res.Header, string(b)}, res.Proto, reused, waited}, nil
}

func (e *h2Env) mustSend(t *testing.T, path string, body []byte, headers map[string]string) h2Result {
	t.Helper()
	r, err := e.send(path, bytes.NewReader(body), int64(len(body)), headers)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	if r.proto != e.proto {
		t.Fatalf("POST %s went over %s, want %s", path, r.proto, e.proto)
	}
	return r
}

// lastPayload fetches the payload of the last execution Valohai received
// (its dataset input) over the environment's protocol.
func (e *h2Env) lastPayload(t *testing.T) string {
	t.Helper()
	calls := e.executionCalls()
	payloadURL := calls[len(calls)-1]["inputs"].(map[string]any)["dataset"].([]any)[0].(string)
	res, err := e.client.Get(payloadURL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Proto != e.proto {
		t.Fatalf("payload over %s: %d %q", res.Proto, res.StatusCode, got)
	}
	return string(got)
}

// stallingBody yields head, then blocks until let is called, then yields
// tail.
type stallingBody struct {
	head, tail []byte
	release    chan struct{}
	once       sync.Once
	stage      int
}

func newStallingBody(head, tail []byte) *stallingBody {
	return &stallingBody{head: head, tail: tail, release: make(chan struct{})}
}

func (s *stallingBody) let() { s.once.Do(func() { close(s.release) }) }

func (s *stallingBody) Read(p []byte) (int, error) {
	switch s.stage {
	case 0:
		s.stage = 1
		return copy(p, s.head), nil
	case 1:
		<-s.release
		s.stage = 2
		return copy(p, s.tail), nil
	}
	return 0, io.EOF
}

const h2Routes = `
	handle /github {
		webhook_hmac github "It's a Secret to Everybody"
		valohai_launch h2-push {
			project ` + testProject + `
			execution train {
				commit        main
				payload_input dataset
			}
		}
	}
	handle /small {
		webhook_token {
			secret small-token
			max_body 64
		}
		valohai_launch h2-small {
			project ` + testProject + `
			execution train {
				commit main
			}
		}
	}
`

// Webhooks over HTTP/2 (Caddy's protocol for every HTTPS site unless told
// otherwise) and HTTP/3: launches, refusals, bodies without a length,
// bodies over the cap and bodies that stall are handled per stream, and the
// connection, which a proxy in front of Caddy may share between many
// senders, stays usable for the next request (README.md, "Hostile input").
func TestWebhooksOverHTTP2(t *testing.T) {
	testWebhooksOver(t, startH2Env(t, "HTTP/2.0", h2Routes, "body_timeout 1s"))
}

func TestWebhooksOverHTTP3(t *testing.T) {
	testWebhooksOver(t, startH2Env(t, "HTTP/3.0", h2Routes, "body_timeout 1s"))
}

func testWebhooksOver(t *testing.T, env *h2Env) {
	h2 := env.proto == "HTTP/2.0"

	t.Run("GitHub's published example launches an execution", func(t *testing.T) {
		before := len(env.executionCalls())
		r := env.mustSend(t, "/github", []byte(githubBody), map[string]string{
			"X-Hub-Signature-256": githubSignature,
			"Content-Type":        "text/plain; charset=utf-8",
		})
		if r.status != http.StatusOK {
			t.Fatalf("status %d, body %q", r.status, r.body)
		}
		if lr := decodeLaunch(t, r.response); lr.Status != "completed" || len(lr.Result) != 1 {
			t.Fatalf("unexpected response %q", r.body)
		}
		calls := env.executionCalls()
		if len(calls) != before+1 {
			t.Fatalf("simulator got %d executions, want %d", len(calls), before+1)
		}
		if got := env.lastPayload(t); got != githubBody {
			t.Fatalf("payload %q", got)
		}
	})

	t.Run("a wrong signature is refused with its reason", func(t *testing.T) {
		r := env.mustSend(t, "/github", []byte(githubBody), map[string]string{"X-Hub-Signature-256": "sha256=" + strings.Repeat("0", 64)})
		if r.status != http.StatusBadRequest {
			t.Fatalf("status %d %q, want 400", r.status, r.body)
		}
		mustContain(t, r.body, "webhook_hmac: signature mismatch")
		if strings.Contains(r.body, "757107ea") {
			t.Fatalf("the answer reveals the expected signature: %q", r.body)
		}
	})

	t.Run("a body sent without a length is read whole and signed", func(t *testing.T) {
		body := []byte(`{"ref":"refs/heads/main","commits":[` + strings.Repeat(`{"id":"x"},`, 500) + `{"id":"y"}]}`)
		r, err := env.send("/github", io.MultiReader(bytes.NewReader(body[:100]), bytes.NewReader(body[100:])), -1,
			map[string]string{"X-Hub-Signature-256": githubSign(body)})
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusOK || r.proto != env.proto {
			t.Fatalf("%s: status %d %q", r.proto, r.status, r.body)
		}
		if got := env.lastPayload(t); got != string(body) {
			t.Fatalf("payload is %d bytes, want the %d sent", len(got), len(body))
		}
	})

	t.Run("a body over the cap is refused, announced or not, and the connection serves on", func(t *testing.T) {
		auth := map[string]string{"Authorization": "Bearer small-token"}
		// Unannounced: refused once the 65th byte arrives.
		r, err := env.send("/small", bytes.NewReader(bytes.Repeat([]byte("a"), 4096)), -1, auth)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("unannounced: status %d %q", r.status, r.body)
		}
		mustContain(t, r.body, "body larger than 64 bytes")
		// Announced: refused before a byte of it is read; the client is
		// still holding the rest back when the answer comes.
		stall := newStallingBody([]byte("a"), bytes.Repeat([]byte("a"), 1<<20-1))
		defer stall.let()
		r, err = env.send("/small", stall, 1<<20, auth)
		if err != nil {
			t.Fatal(err)
		}
		if r.status != http.StatusRequestEntityTooLarge || r.waited > 5*time.Second {
			t.Fatalf("announced: status %d after %s: %q", r.status, r.waited, r.body)
		}
		// The same connection takes the next webhook.
		next := env.mustSend(t, "/small", []byte(`{}`), auth)
		if next.status != http.StatusOK || (h2 && !next.reused) {
			t.Fatalf("after the 413s: status %d, connection reused %v: %q", next.status, next.reused, next.body)
		}
	})

	t.Run("a stalled body times out alone: other streams and the connection go on", func(t *testing.T) {
		auth := map[string]string{"Authorization": "Bearer small-token"}
		// Open the connection first, so the stalled request and the one
		// beside it share it.
		if r := env.mustSend(t, "/small", []byte(`{}`), auth); r.status != http.StatusOK {
			t.Fatalf("warm-up: %d %q", r.status, r.body)
		}
		stall := newStallingBody([]byte(`{"a":`), []byte(`1}`))
		defer stall.let()
		var stalled h2Result
		var stalledErr error
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			stalled, stalledErr = env.send("/small", stall, 7, auth)
		}()
		// While it stalls, another webhook on the same connection is answered.
		time.Sleep(200 * time.Millisecond)
		beside := env.mustSend(t, "/small", []byte(`{}`), auth)
		if beside.status != http.StatusOK || (h2 && !beside.reused) {
			t.Errorf("beside the stalled body: status %d, connection reused %v: %q", beside.status, beside.reused, beside.body)
		}
		wg.Wait()
		if stalledErr != nil {
			t.Fatalf("stalled request: %v", stalledErr)
		}
		if stalled.status != http.StatusRequestTimeout || stalled.waited > 5*time.Second {
			t.Fatalf("stalled body: status %d after %s: %q", stalled.status, stalled.waited, stalled.body)
		}
		mustContain(t, stalled.body, "did not arrive within body_timeout")
		// The connection was not torn down for it: the next request reuses it.
		after := env.mustSend(t, "/small", []byte(`{}`), auth)
		if after.status != http.StatusOK || (h2 && !after.reused) {
			t.Fatalf("after the timeout: status %d, connection reused %v: %q", after.status, after.reused, after.body)
		}
	})
}
