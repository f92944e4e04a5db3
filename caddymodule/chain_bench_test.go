package caddymodule

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// The chain benchmarks run the handler chains of bench/caddyfiles/ inside a
// real Caddy (caddy.Load of the adapted Caddyfile) and call its HTTP server's
// ServeHTTP directly, so they measure Caddy's own request path plus our
// handlers, without the network and HTTP parsing that the whole-server
// benchmark (bench/run.sh) adds on both sides. Each reports against its
// baseline in the same run, bare-respond: bench/README.md, "CPU of the
// condition chain".
//
//	go test -run '^$' -bench 'ChainServe' -benchmem -count 3 ./caddymodule

const benchChainSecret = "bench-chain-secret"

// benchChainRoutes are the site bodies of the scenarios, as in
// bench/caddyfiles/*.caddyfile.
var benchChainRoutes = []struct{ name, route string }{
	{"bare-respond", `respond "ok" 200`},
	{"bare", "vars bench_body {http.request.body}\n\trespond \"ok\" 200"},
	// Caddy's own cost of a route block around the handlers (compiled
	// per request), which the chains below pay too.
	{"route-respond", `route /hook {
		respond "ok" 200
	}`},
	{"hmac", `route /hook {
		webhook_hmac github ` + benchChainSecret + `
		respond "ok" 200
	}`},
	{"chain-nolimit", "route /hook {" + benchChainConditions + `
		respond "ok" 200
	}`},
	// bench/caddyfiles/chain.caddyfile: the chain above and a rate limit
	// whose quota is never reached, on the app's embedded store.
	{"chain", "route /hook {" + benchChainConditions + `
		webhook_rate_limit 1000000000 1h
		respond "ok" 200
	}`},
}

// benchChainConditions are the conditions of the chain scenarios
// (bench/caddyfiles/chain-nolimit.caddyfile).
const benchChainConditions = `
		webhook_hmac slack ` + benchChainSecret + `
		webhook_timestamp {
			header    X-Slack-Request-Timestamp
			format    unix
			tolerance 5m
		}
		webhook_filter ` + "`" + `body.ref == "refs/heads/main" && headers["X-Github-Event"] == "push"` + "`"

// benchServer loads a Caddyfile whose only site answers with route and
// returns that site's server (Valohai unreachable: nothing launches).
func benchServer(b *testing.B, route string) *caddyhttp.Server {
	return benchSite(b, "http://127.0.0.1:1", "", route)
}

// benchSite loads a Caddyfile whose only site answers with route, the
// valohai app on Valohai at apiURL with a fresh file store of the given
// engine ("": the default), and returns that site's server.
func benchSite(b *testing.B, apiURL, engine, route string) *caddyhttp.Server {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := b.TempDir()
	cf := fmt.Sprintf(`{
	admin off
	persist_config off
	storage file_system %[1]s/caddy
	log {
		level WARN
	}
	valohai {
		api_url     %[4]s
		api_token   bench
		store       file %[1]s/valohai %[5]s
		payload_url http://127.0.0.1:%[2]d/_valohai/payloads
	}
}

http://127.0.0.1:%[2]d {
	%[3]s
}
`, dir, port, route, apiURL, engine)
	if err := loadCaddyfile(cf); err != nil {
		b.Fatalf("loading config: %v\n%s", err, cf)
	}
	b.Cleanup(func() { _ = caddy.Stop() })
	app, err := caddy.ActiveContext().App("http")
	if err != nil {
		b.Fatal(err)
	}
	for _, srv := range app.(*caddyhttp.App).Servers {
		return srv
	}
	b.Fatal("no server")
	return nil
}

// discardWriter is the cheapest http.ResponseWriter: it keeps the status
// and drops the body.
type discardWriter struct {
	h      http.Header
	status int
	// conn, when set, takes the read and write deadlines, as the
	// server's connection does (each one a timer of Go's netpoller).
	conn net.Conn
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }

// SetReadDeadline and SetWriteDeadline succeed, as they do on a real
// connection (http.ResponseController calls them), and cost what they
// cost there when conn is set.
func (w *discardWriter) SetReadDeadline(t time.Time) error {
	if w.conn != nil {
		return w.conn.SetReadDeadline(t)
	}
	return nil
}

func (w *discardWriter) SetWriteDeadline(t time.Time) error {
	if w.conn != nil {
		return w.conn.SetWriteDeadline(t)
	}
	return nil
}

// benchConn is one end of a loopback TCP connection, for the deadlines a
// server sets on its connection.
func benchConn(b *testing.B) net.Conn {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	peer := <-accepted
	b.Cleanup(func() {
		c.Close()
		if peer != nil {
			peer.Close()
		}
	})
	return c
}

func benchPushBody(b *testing.B) []byte {
	b.Helper()
	body, err := os.ReadFile("../validators/testdata/push-1k.json")
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// benchSignedHeader is what a sender of both schemes sends for body: the
// GitHub and Slack signatures and the event name the filter reads.
func benchSignedHeader(body []byte) http.Header {
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	gh := hmac.New(sha256.New, []byte(benchChainSecret))
	gh.Write(body)
	sl := hmac.New(sha256.New, []byte(benchChainSecret))
	sl.Write([]byte("v0:" + ts + ":"))
	sl.Write(body)
	return http.Header{
		"Content-Type":              {"application/json"},
		"X-Github-Event":            {"push"},
		"X-Hub-Signature-256":       {"sha256=" + hex.EncodeToString(gh.Sum(nil))},
		"X-Slack-Request-Timestamp": {ts},
		"X-Slack-Signature":         {"v0=" + hex.EncodeToString(sl.Sum(nil))},
	}
}

// benchHeaders hands out benchSignedHeader(body), signed afresh once the
// signature is a minute old. The chains check the signed timestamp
// within 5 minutes and answer 400 after that (README.md, "Every answer,
// by status"), which a long -benchtime would reach: 40,000 1 MiB pushes
// (BenchmarkLaunchServeLarge) took 9 minutes on the 2-core bench host.
type benchHeaders struct {
	body []byte
	cur  atomic.Pointer[benchSignature]
}

type benchSignature struct {
	header http.Header
	at     time.Time
}

// get is the current signed header; callers must not change it.
func (s *benchHeaders) get() http.Header {
	c := s.cur.Load()
	if c == nil || time.Since(c.at) > time.Minute {
		c = &benchSignature{header: benchSignedHeader(s.body), at: time.Now()}
		s.cur.Store(c)
	}
	return c.header
}

// BenchmarkChainServe is one valid 1 KiB GitHub push through each chain.
// The request and its body reader are rebuilt per iteration the same way
// for every scenario, so the difference to bare-respond is the chain's.
// The read and write deadlines Caddy and the handlers set go to a real
// loopback connection, where their cost is that of the whole server.
func BenchmarkChainServe(b *testing.B) {
	body := benchPushBody(b)
	for _, sc := range benchChainRoutes {
		b.Run(sc.name, func(b *testing.B) {
			srv := benchServer(b, sc.route)
			headers := &benchHeaders{body: body}
			tmpl, err := http.NewRequest(http.MethodPost, "http://127.0.0.1/hook", nil)
			if err != nil {
				b.Fatal(err)
			}
			tmpl.ContentLength = int64(len(body))
			tmpl.RemoteAddr = "127.0.0.1:40000"
			w := &discardWriter{h: http.Header{}, conn: benchConn(b)}
			rd := bytes.NewReader(body)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				req := *tmpl
				req.Header = headers.get()
				rd.Reset(body)
				req.Body = io.NopCloser(eofReader{rd})
				clear(w.h)
				w.status = 0
				srv.ServeHTTP(w, &req)
				if w.status != 0 && w.status != http.StatusOK {
					b.Fatalf("status %d", w.status)
				}
			}
		})
	}
}

// eofReader returns io.EOF with the body's last bytes, as net/http's
// request body does when Content-Length is known.
type eofReader struct{ *bytes.Reader }

func (r eofReader) Read(p []byte) (int, error) {
	n, err := r.Reader.Read(p)
	if err == nil && r.Len() == 0 {
		err = io.EOF
	}
	return n, err
}

// readDeadlineRouter is what Caddy's server puts in front of a handler
// when read_body_idle is on: read deadlines set through
// http.ResponseController go to the idle-timeout reader of the body.
type readDeadlineRouter struct {
	*discardWriter
	reader *caddyhttp.IdleTimeoutReader
}

func (w readDeadlineRouter) SetReadDeadline(t time.Time) error { return w.reader.SetReadDeadline(t) }

// BenchmarkBodyRead is one 1 KiB body read by the first condition of a
// route as in Caddy's default server (read_body_idle 1m, body_timeout
// 60s): through Caddy's idle-timeout reader, whose deadlines and ours go
// to a real loopback connection. It isolates the body read's deadline
// work, which BenchmarkChainServe's whole-request figures drown.
//
//	go test -run '^$' -bench 'BodyRead' -benchmem ./caddymodule
func BenchmarkBodyRead(b *testing.B) {
	body := benchPushBody(b)
	dw := &discardWriter{h: http.Header{}, conn: benchConn(b)}
	bodies := &bodyReader{budget: defaultMaxBodyInFlight, timeout: defaultBodyTimeout}
	rd := bytes.NewReader(body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		idle := &caddyhttp.IdleTimeoutReader{
			ReadCloser:    io.NopCloser(eofReader{rd}),
			Ctrl:          http.NewResponseController(dw),
			Deadline:      caddyhttp.IdleDeadline{Start: time.Now(), Timeout: time.Minute},
			DrainDeadline: true,
		}
		req := &http.Request{Method: http.MethodPost, Body: idle, ContentLength: int64(len(body)), ProtoMajor: 1}
		got, _, held, err := bodies.read(readDeadlineRouter{dw, idle}, req, 25<<20, 0)
		if err != nil || len(got) != len(body) {
			b.Fatalf("read %d bytes, %v", len(got), err)
		}
		bodies.release(held)
		idle.HandlerDone()
	}
}

// launchTrigger is bench/caddyfiles/launch.caddyfile's valohai_launch on
// project, its title ending in titleTail: one execution with the body as
// its payload input and placeholders from the JSON body, answered 202 once
// the run and its payload are stored (wait 0s).
func launchTrigger(name, project, titleTail string) string {
	return `
		valohai_launch ` + name + ` {
			project ` + project + `
			execution train {
				commit        main
				payload_input dataset
				title         "Push {webhook.json.head_commit.id} to {webhook.json.ref}` + titleTail + `"
				parameter     epochs 10
				parameter     branch {webhook.json.ref}
				tag           webhook
			}
			wait 0s
		}`
}

// benchLaunchRoute is bench/caddyfiles/launch.caddyfile's route: the chain
// in front of its valohai_launch.
var benchLaunchRoute = "route /hook {" + benchChainConditions + `
		webhook_rate_limit 1000000000 1h` + launchTrigger("bench-push", "0190a8e3-5b8e-7a4c-9d1f-3c2b1a0e9f7d", "") + `
	}`

// BenchmarkLaunchServe is one valid 1 KiB GitHub push through the full
// durable trigger of bench/caddyfiles/launch.caddyfile, on each embedded
// engine in a temporary directory (synced writes on the real disk).
// Requests come from 32 goroutines, as from wrk's 32 connections, so the
// store's group commit batches their writes and, on one CPU
// (-test.cpu 1), ns/op is the CPU an accepted request costs the server
// rather than the disk's sync latency; cpu-ns/op is the process's CPU time
// (user and system, every goroutine) per request. Valohai never answers
// (the workers wait on it), so no launch work runs during the benchmark,
// as in the whole-server run with its slowed simulator.
//
//	go test -run '^$' -bench 'LaunchServe' -benchmem -cpu 1 ./caddymodule
func BenchmarkLaunchServe(b *testing.B) {
	body := benchPushBody(b)
	for _, engine := range []string{"pebble", "bbolt"} {
		b.Run(engine, func(b *testing.B) { benchLaunch(b, engine, body, 32) })
	}
}

// BenchmarkLaunchServeLarge is BenchmarkLaunchServe with a 1 MiB push from
// 8 goroutines, as bench/run.sh sends 1 MiB bodies over 8 connections: its
// commits come before its ref and head_commit, as in the whole-server body
// (keys in order) and in GitHub's own pushes.
//
//	go test -run '^$' -bench 'LaunchServeLarge' -benchmem -cpu 1 ./caddymodule
func BenchmarkLaunchServeLarge(b *testing.B) {
	body := benchLargePushBody(b, 1<<20)
	for _, engine := range []string{"pebble", "bbolt"} {
		b.Run(engine, func(b *testing.B) { benchLaunch(b, engine, body, 8) })
	}
}

// benchLargePushBody is the 1 KiB push with commits added until it is
// about size bytes, its keys in order (commits before head_commit and ref).
func benchLargePushBody(b *testing.B, size int) []byte {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(benchPushBody(b), &doc); err != nil {
		b.Fatal(err)
	}
	var commits []json.RawMessage
	for i := 0; len(commits)*200 < size; i++ {
		commits = append(commits, json.RawMessage(fmt.Sprintf(
			`{"id":"%040x","message":"Train on batch %d","author":{"name":"Ada","email":"ada@example.com"},"added":["data/batch-%04d.csv"],"modified":["train.py"]}`, i, i, i)))
	}
	doc["commits"], _ = json.Marshal(commits)
	body, err := json.Marshal(doc)
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// benchLaunch sends body through benchLaunchRoute on engine from
// parallelism goroutines per CPU, each on its own connection.
func benchLaunch(b *testing.B, engine string, body []byte, parallelism int) {
	stall := make(chan struct{})
	valohai := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-stall:
		case <-r.Context().Done():
		}
		http.Error(w, "benchmark over", http.StatusServiceUnavailable)
	}))
	b.Cleanup(valohai.Close)
	srv := benchLaunchServer(b, valohai.URL, engine)
	// Cleanups run last first: the workers' calls end before
	// Caddy stops, and the stand-in closes last.
	b.Cleanup(func() { close(stall) })
	headers := &benchHeaders{body: body}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	// The server's ends of the connections, closed with the listener.
	go func() {
		var peers []net.Conn
		defer func() {
			for _, c := range peers {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			peers = append(peers, c)
		}
	}()
	b.SetParallelism(parallelism)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	cpu0 := processCPU(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		conn, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			b.Error(err)
			return
		}
		defer conn.Close()
		w := &discardWriter{h: http.Header{}, conn: conn}
		rd := bytes.NewReader(body)
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1/hook", nil)
			req.Header = headers.get().Clone()
			req.ContentLength = int64(len(body))
			req.RemoteAddr = "127.0.0.1:40000"
			rd.Reset(body)
			req.Body = io.NopCloser(eofReader{rd})
			clear(w.h)
			w.status = 0
			srv.ServeHTTP(w, req)
			if w.status != http.StatusAccepted {
				b.Errorf("status %d", w.status)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// benchLaunchServer loads benchLaunchRoute with the valohai app on Valohai
// at apiURL and a fresh store of the given engine, and returns the site's
// server.
func benchLaunchServer(b *testing.B, apiURL, engine string) *caddyhttp.Server {
	return benchSite(b, apiURL, engine, benchLaunchRoute)
}

// processCPU is the user and system CPU time this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
