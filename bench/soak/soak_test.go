package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hooklaunch/caddy-valohai/validators"
)

func testSenders() []*sender {
	return newSenders("http://127.0.0.1:1", []byte("gh-secret"), []byte("sl-secret"))
}

func testPlanner(seed uint64) *planner {
	now := time.Unix(1_800_000_000, 0)
	return &planner{
		rng: mrand.New(mrand.NewPCG(seed, 1)), maxBody: 64 << 10, acked: newAckLog(8),
		now: func() time.Time { return now },
	}
}

// verifier returns the gateway's own verification for a sender, so the
// soak's signing is checked against the code it exercises.
func verifier(t *testing.T, s *sender) *validators.HMAC {
	t.Helper()
	h, err := validators.Preset(s.name)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.AddSecret(string(s.secret)); err != nil {
		t.Fatal(err)
	}
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	return &h
}

// TestSigningMatchesGateway: a request the soak signs as valid passes the
// gateway's preset, and each hostile kind fails it with the reason the soak
// expects.
func TestSigningMatchesGateway(t *testing.T) {
	for _, s := range testSenders() {
		v := verifier(t, s)
		pl := testPlanner(7)
		for _, k := range []kind{kindValid, kindInvalidJSON, kindForged, kindNoSignature, kindGarbageSignature, kindStale} {
			for i := 0; i < 20; i++ {
				p := pl.plan(k, s)
				req := &validators.Request{Method: p.method, Header: p.header, Body: p.body, Now: pl.now}
				err := v.Verify(req)
				switch {
				case k == kindValid || k == kindInvalidJSON || (k == kindStale && s.scheme == schemeGitHub):
					// GitHub's timestamp is a separate condition.
					if err != nil {
						t.Fatalf("%s %s: gateway rejects a request the soak expects through: %v", s.name, k, err)
					}
				default:
					if err == nil {
						t.Fatalf("%s %s: gateway accepts it", s.name, k)
					}
					if got, want := err.Error(), p.expect.message; got != want {
						t.Fatalf("%s %s: gateway says %q, soak expects %q", s.name, k, got, want)
					}
				}
			}
		}
	}
}

// TestGitHubStaleTimestamp: the GitHub trigger's stale requests are outside
// webhook_timestamp's 60s tolerance, as the gateway's Caddyfile sets it.
func TestGitHubStaleTimestamp(t *testing.T) {
	s := testSenders()[0]
	pl := testPlanner(3)
	ts := validators.Timestamp{Source: validators.Source{Kind: validators.SourceHeader, Name: "X-Webhook-Timestamp"}, Format: validators.TimestampUnix, Tolerance: 60 * time.Second}
	for i := 0; i < 10; i++ {
		p := pl.plan(kindStale, s)
		err := ts.Verify(&validators.Request{Header: p.header, Body: p.body, Now: pl.now})
		if err == nil || err.Error() != p.expect.message {
			t.Fatalf("stale request: gateway says %v, soak expects %q", err, p.expect.message)
		}
		p = pl.plan(kindValid, s)
		if err := ts.Verify(&validators.Request{Header: p.header, Body: p.body, Now: pl.now}); err != nil {
			t.Fatalf("fresh request rejected: %v", err)
		}
	}
}

func TestPlanShapes(t *testing.T) {
	pl := testPlanner(11)
	s := testSenders()[1]
	for i := 0; i < 200; i++ {
		p := pl.plan(kindOversizedLength, s)
		if len(p.body) <= pl.maxBody || p.chunked {
			t.Fatalf("oversized_length: %d bytes, chunked %v", len(p.body), p.chunked)
		}
		req, err := p.request()
		if err != nil || req.ContentLength != int64(len(p.body)) {
			t.Fatalf("oversized_length must announce its length: %v %d", err, req.ContentLength)
		}
		p = pl.plan(kindOversizedChunked, s)
		req, err = p.request()
		if err != nil || req.ContentLength != -1 || len(p.body) <= pl.maxBody {
			t.Fatalf("oversized_chunked: length %d, %d bytes, %v", req.ContentLength, len(p.body), err)
		}
		if b, _ := io.ReadAll(req.Body); string(b) != string(p.body) {
			t.Fatal("chunked request body differs from the planned body")
		}
		p = pl.plan(kindValid, s)
		if len(p.body) > pl.maxBody || !json.Valid(p.body) || !p.expect.launch {
			t.Fatalf("valid: %d bytes, JSON %v, launch %v", len(p.body), json.Valid(p.body), p.expect.launch)
		}
		p = pl.plan(kindInvalidJSON, s)
		if json.Valid(p.body) || !p.expect.launch {
			t.Fatalf("invalid_json: %q must be invalid JSON and still launch", p.body)
		}
		p = pl.plan(kindWrongMethod, s)
		if p.method == http.MethodPost || p.expect.allow != "POST" || p.expect.statuses[0] != 405 {
			t.Fatalf("wrong_method: %s %+v", p.method, p.expect)
		}
	}
}

func TestJSONBodyExactSize(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(1, 2))
	for _, size := range []int{80, 200, 4096, 65536, 65537} {
		b := jsonBody("ABCDEF", size, rng)
		if len(b) != size || !json.Valid(b) {
			t.Errorf("jsonBody(%d) = %d bytes, valid %v", size, len(b), json.Valid(b))
		}
	}
}

func TestDuplicateRepeatsAnAcknowledgedDelivery(t *testing.T) {
	pl := testPlanner(5)
	senders := testSenders()
	// Nothing acknowledged yet: a duplicate becomes a first delivery.
	if p := pl.plan(kindDuplicate, senders[0]); p.kind != kindValid {
		t.Fatalf("duplicate with nothing to repeat planned as %s", p.kind)
	}
	first := pl.plan(kindValid, senders[0])
	if !pl.acked.add(first, "run-1") {
		t.Fatal("first ack refused")
	}
	if pl.acked.add(pl.plan(kindValid, senders[0]), "run-1") {
		t.Fatal("a run id acknowledged for two deliveries must be refused")
	}
	// The other sender has nothing to repeat.
	if p := pl.plan(kindDuplicate, senders[1]); p.kind != kindValid {
		t.Fatal("a duplicate must repeat a delivery of its own sender")
	}
	p := pl.plan(kindDuplicate, senders[0])
	if p.kind != kindDuplicate || p.deliveryID != first.deliveryID || string(p.body) != string(first.body) || p.expect.duplicateOf != "run-1" {
		t.Fatalf("duplicate = %+v", p)
	}
	if err := verifier(t, senders[0]).Verify(&validators.Request{Header: p.header, Body: p.body, Now: pl.now}); err != nil {
		t.Fatalf("a duplicate must be signed afresh: %v", err)
	}
}

func TestAckLogWindowIsBounded(t *testing.T) {
	l := newAckLog(3)
	s := testSenders()[0]
	for i := range 10 {
		l.add(&planned{kind: kindValid, sender: s, deliveryID: fmt.Sprint(i), body: []byte("b")}, fmt.Sprint("run-", i))
	}
	if n := len(l.recent[s]); n != 3 {
		t.Fatalf("recent window holds %d deliveries, want 3", n)
	}
	if n := len(l.snapshot()); n != 10 {
		t.Fatalf("acknowledged runs = %d, want all 10", n)
	}
}

func TestCheck(t *testing.T) {
	hdr := func(kv ...string) http.Header {
		h := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			h.Set(kv[i], kv[i+1])
		}
		return h
	}
	launch := expectation{statuses: []int{202, 200}, launch: true}
	dup := expectation{statuses: []int{202, 200}, duplicateOf: "r1"}
	forged := expectation{statuses: []int{400}, message: "webhook_hmac: signature mismatch"}
	method := expectation{statuses: []int{405}, message: "webhook_hmac: method GET not allowed", allow: "POST"}
	tests := []struct {
		name    string
		exp     expectation
		a       answer
		wantRun string
		wantBad string // substring of the problem; "" = as expected
	}{
		{"launch pending", launch, answer{202, hdr(), []byte(`{"run_id":"r1","status":"pending"}`)}, "r1", ""},
		{"launch completed", launch, answer{200, hdr(), []byte(`{"run_id":"r1","status":"completed","result":[]}`)}, "r1", ""},
		{"launch 200 but pending", launch, answer{200, hdr(), []byte(`{"run_id":"r1","status":"pending"}`)}, "r1", "run status"},
		{"launch without run id", launch, answer{202, hdr(), []byte(`{"status":"pending"}`)}, "", "no run_id"},
		{"launch rejected", launch, answer{503, hdr(), []byte("store down")}, "", "status 503"},
		{"first delivery marked duplicate", launch, answer{202, hdr("Webhook-Duplicate", "true"), []byte(`{"run_id":"r1","status":"pending"}`)}, "r1", "Webhook-Duplicate"},
		{"duplicate", dup, answer{200, hdr("Webhook-Duplicate", "true"), []byte(`{"run_id":"r1","status":"completed"}`)}, "r1", ""},
		{"duplicate without header", dup, answer{200, hdr(), []byte(`{"run_id":"r1","status":"completed"}`)}, "r1", "Webhook-Duplicate"},
		{"duplicate launched anew", dup, answer{202, hdr("Webhook-Duplicate", "true"), []byte(`{"run_id":"r2","status":"pending"}`)}, "r2", "want the first"},
		{"forged", forged, answer{400, hdr(), []byte("webhook_hmac: signature mismatch\n")}, "", ""},
		{"forged other reason", forged, answer{400, hdr(), []byte("webhook_hmac: missing signature")}, "", "body"},
		{"forged accepted", forged, answer{202, hdr(), []byte(`{"run_id":"x","status":"pending"}`)}, "", "status 202"},
		{"405", method, answer{405, hdr("Allow", "POST"), []byte("webhook_hmac: method GET not allowed")}, "", ""},
		{"405 without Allow", method, answer{405, hdr(), []byte("webhook_hmac: method GET not allowed")}, "", "Allow"},
	}
	for _, tt := range tests {
		run, problem := check(tt.exp, tt.a)
		if run != tt.wantRun {
			t.Errorf("%s: run id %q, want %q", tt.name, run, tt.wantRun)
		}
		if (tt.wantBad == "") != (problem == "") || !strings.Contains(problem, tt.wantBad) {
			t.Errorf("%s: problem %q, want one containing %q", tt.name, problem, tt.wantBad)
		}
	}
}

func TestCompareLaunches(t *testing.T) {
	acked := map[string]ack{"a": {}, "b": {}, "c": {}, "d": {}}
	exec := func(title string, status int) simCall {
		return simCall{Method: "POST", Path: "/api/v0/executions/", Status: status, Body: json.RawMessage(fmt.Sprintf(`{"title":%q}`, title))}
	}
	calls := []simCall{
		exec("a", 503), exec("a", 201), // retried through the outage: once
		exec("b", 201), exec("b", 201), // twice
		exec("c", 400), // never created
		exec("x", 201), // never acknowledged
		exec("d", 201),
		{Method: "GET", Path: "/api/v0/commits/main/", Status: 200},
	}
	r := compareLaunches(acked, calls, 503)
	if r.Launched != 2 || len(r.Missing) != 1 || r.Missing[0] != "c" || r.Twice["b"] != 2 ||
		len(r.Extra) != 1 || r.Extra[0] != "x" || r.OutageServed != 1 || r.SimulatorOther != 1 || r.ok() {
		t.Fatalf("report = %+v", r)
	}
	if r.ExecutionCalls[201] != 5 || r.ExecutionCalls[503] != 1 || r.ExecutionCalls[400] != 1 {
		t.Fatalf("execution calls by status = %v", r.ExecutionCalls)
	}
	clean := compareLaunches(map[string]ack{"a": {}}, []simCall{exec("a", 201)}, 503)
	if !clean.ok() || clean.Launched != 1 {
		t.Fatalf("clean report = %+v", clean)
	}
}

func TestMappedRss(t *testing.T) {
	smaps := `55d0c0000000-55d0c2000000 r-xp 00000000 08:01 123 /usr/bin/caddy
Rss:               30000 kB
7f0000000000-7f0010000000 r--s 00000000 08:01 456 /tmp/x y/valohai.db
Size:             262144 kB
Rss:                4096 kB
Pss:                4096 kB
7f0010000000-7f0020000000 rw-p 00000000 00:00 0
Rss:                1000 kB
7f0030000000-7f0040000000 r--s 00000000 08:01 456 /tmp/x y/valohai.db
Rss:                 100 kB
VmFlags: rd sh mr mw me ms sd
`
	if got := mappedRss([]byte(smaps), "/tmp/x y/valohai.db"); got != 4196 {
		t.Fatalf("mappedRss = %d, want 4196", got)
	}
}

func TestJudgeMemory(t *testing.T) {
	series := func(f func(i int) (rss, store int64)) []memSample {
		var out []memSample
		for i := 0; i <= 20; i++ {
			rss, store := f(i)
			out = append(out, memSample{At: time.Duration(i) * 6 * time.Second, VmRSS: rss, StoreRss: store, RssAnon: rss - store})
		}
		return out
	}
	d := 2 * time.Minute
	// The store's map grows, the rest is flat: flat.
	v, err := judgeMemory(series(func(i int) (int64, int64) { return 50000 + 1000*int64(i), 1000 * int64(i) }), d, 10)
	if err != nil || !v.Flat || v.GrowthPct < 10 || v.NetGrowthPct != 0 {
		t.Fatalf("store growth only: %+v %v", v, err)
	}
	// A leak outside the store: not flat, positive slope.
	v, err = judgeMemory(series(func(i int) (int64, int64) { return 50000 + 2000*int64(i), 0 }), d, 10)
	if err != nil || v.Flat || v.NetSlopeMiBPerMin <= 0 || v.Points[1].At != time.Minute || v.Points[3].At != d {
		t.Fatalf("leak: %+v %v", v, err)
	}
	if _, err := judgeMemory(series(func(int) (int64, int64) { return 1, 0 })[:2], d, 10); err == nil {
		t.Fatal("two samples must not be enough to judge")
	}
}

func TestPickKindFollowsTheMix(t *testing.T) {
	rng := mrand.New(mrand.NewPCG(9, 9))
	var n [numKinds]int
	const draws = 100000
	for range draws {
		n[pickKind(rng)]++
	}
	for k, w := range kindWeights {
		got := 100 * float64(n[k]) / draws
		if got < float64(w)-1 || got > float64(w)+1 {
			t.Errorf("%s drawn %.1f%%, weight %d%%", kind(k), got, w)
		}
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8080", "http://127.0.0.1:1/x"} {
		if err := loopbackOnly(u); err != nil {
			t.Errorf("%s refused: %v", u, err)
		}
	}
	for _, u := range []string{"https://127.0.0.1:8080", "http://example.com", "http://localhost:80", "http://10.0.0.1:1"} {
		if loopbackOnly(u) == nil {
			t.Errorf("%s allowed", u)
		}
	}
}

func TestAckKeepsBodySum(t *testing.T) {
	l := newAckLog(2)
	p := &planned{kind: kindInvalidJSON, sender: testSenders()[0], body: []byte("\xff"), contentType: "application/octet-stream"}
	l.add(p, "r")
	a := l.snapshot()["r"]
	if a.bodySum != sha256.Sum256([]byte("\xff")) || a.contentType != "application/octet-stream" || a.kind != kindInvalidJSON {
		t.Fatalf("ack = %+v", a)
	}
}
