package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The bodies must be exactly the size the report names, valid JSON, and
// carry the fields the chain's filter and the launch's placeholders read.
func TestPushBodyIsExactValidPushEvent(t *testing.T) {
	for _, size := range []int{1024, 4096, 1 << 20} {
		b, err := pushBody(size)
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if len(b) != size {
			t.Fatalf("size %d: got %d bytes", size, len(b))
		}
		var doc struct {
			Ref        string `json:"ref"`
			After      string `json:"after"`
			HeadCommit struct {
				ID string `json:"id"`
			} `json:"head_commit"`
			Commits []json.RawMessage `json:"commits"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("size %d: not JSON: %v", size, err)
		}
		if doc.Ref != "refs/heads/main" || doc.After == "" || doc.HeadCommit.ID != doc.After {
			t.Fatalf("size %d: ref %q after %q head %q", size, doc.Ref, doc.After, doc.HeadCommit.ID)
		}
		if size == 1<<20 && len(doc.Commits) < 1000 {
			t.Fatalf("a 1 MiB body should be many small objects, got %d commits", len(doc.Commits))
		}
	}
	if _, err := pushBody(100); err == nil {
		t.Fatal("a body smaller than an empty push event must be refused")
	}
}

// The signatures are checked against the senders' published examples.
func TestSignHeadersMatchPublishedExamples(t *testing.T) {
	// GitHub's "Validating webhook deliveries" example.
	h, err := signHeaders("github", "It's a Secret to Everybody", []byte("Hello, World!"), 0)
	if err != nil {
		t.Fatal(err)
	}
	want := "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if h[1] != want {
		t.Fatalf("github: %q, want %q", h[1], want)
	}
	// Slack's "Verifying requests from Slack" example.
	body := "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
	h, err = signHeaders("slack", "8f742231b10e8888abcd99yyyzzz85a5", []byte(body), 1531420618)
	if err != nil {
		t.Fatal(err)
	}
	if h[1] != "X-Slack-Request-Timestamp: 1531420618" ||
		h[2] != "X-Slack-Signature: v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503" {
		t.Fatalf("slack: %q", h)
	}
	if _, err := signHeaders("github", "", []byte("x"), 0); err == nil {
		t.Fatal("an empty secret must be refused")
	}
	if _, err := signHeaders("stripe", "s", []byte("x"), 0); err == nil {
		t.Fatal("an unknown scheme must be refused")
	}
}

func TestSendCountsStatusesAndRefusesNonLoopback(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("X-Sig") != "s" || string(b) != "body" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if n.Add(1)%4 == 0 {
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	res, err := send(srv.URL, 20, 3, []byte("body"), http.Header{"X-Sig": {"s"}}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sent != 20 || res.OK != 15 || res.Non2xx != 5 || res.Statuses["202"] != 15 || res.Statuses["429"] != 5 {
		t.Fatalf("%+v", res)
	}
	if _, err := send("http://192.0.2.1:80/", 1, 1, nil, http.Header{}, time.Second); err == nil ||
		!strings.Contains(err.Error(), "only loopback") {
		t.Fatalf("a non-loopback target must be refused, got %v", err)
	}
}

func TestMedianIgnoresNaN(t *testing.T) {
	if m := median([]float64{3, math.NaN(), 1, 2}); m != 2 {
		t.Fatalf("median %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Fatalf("median %v", m)
	}
	if !math.IsNaN(median(nil)) {
		t.Fatal("median of nothing must be NaN")
	}
}

// Ratios are taken within a round and pin mode, then the median over
// rounds: one round where the whole machine was slow must not move the
// figure, and pinned and unpinned trials are never paired.
func TestSummarizePairsRatiosWithinRounds(t *testing.T) {
	tr := func(r int, pin, scen string, ok int, cpu float64) trial {
		return trial{Round: r, Pin: pin, Size: "1k", Scenario: scen, OK: ok, DurUS: 1e6, CPUS: cpu}
	}
	trials := []trial{
		tr(1, "pinned", "bare", 1000, 0.5), tr(1, "pinned", "chain", 900, 0.5),
		tr(2, "pinned", "bare", 100, 0.5), tr(2, "pinned", "chain", 90, 0.05), // a slow round: same ratio
		tr(3, "pinned", "bare", 1000, 0.5), tr(3, "pinned", "chain", 800, 0.5),
		tr(1, "unpinned", "bare", 2000, 1), tr(1, "unpinned", "chain", 1000, 0.8),
	}
	s := summarize(trials)["pinned"]["1k"]["chain"]
	if math.Abs(s.vsBare-0.9) > 1e-9 {
		t.Fatalf("vsBare %v, want 0.9", s.vsBare)
	}
	if !s.valid() {
		t.Fatal("all-2xx trials must be valid")
	}
	// bare CPU/1k: 0.5, 5, 0.5; chain: 0.5556, 0.5556, 0.625
	if math.Abs(s.vsBareCPU-0.9) > 1e-9 {
		t.Fatalf("vsBareCPU %v, want 0.9", s.vsBareCPU)
	}
	// busy: 0.5, 0.05, 0.5 of a core over 1 s
	if math.Abs(s.busy-0.5) > 1e-9 || s.rounds != 3 {
		t.Fatalf("busy %v over %d rounds, want 0.5 over 3", s.busy, s.rounds)
	}
	if u := summarize(trials)["unpinned"]["1k"]["chain"]; math.Abs(u.vsBare-0.5) > 1e-9 || u.rounds != 1 {
		t.Fatalf("unpinned vsBare %v over %d rounds, want 0.5 over 1", u.vsBare, u.rounds)
	}
	trials = append(trials, trial{Round: 4, Pin: "pinned", Size: "1k", Scenario: "chain", OK: 10, Non2xx: 1, DurUS: 1e6})
	if summarize(trials)["pinned"]["1k"]["chain"].valid() {
		t.Fatal("a trial with a non-2xx answer must make the figure invalid")
	}
	trials = []trial{tr(1, "pinned", "chain", 0, 0)}
	if summarize(trials)["pinned"]["1k"]["chain"].valid() {
		t.Fatal("a trial without any answer must make the figure invalid")
	}
}

const trialsHeader = "round\tpin\tsize\tscenario\tok\tnon2xx\tsockerr\tdur_us\tp50_us\tp99_us\tcpu_s\thwm_kb\taux_cpu_s\n"

func TestReportReadsRunShFiles(t *testing.T) {
	dir := t.TempDir()
	var trials string
	for r := 1; r <= 3; r++ {
		for _, pin := range []string{"pinned", "unpinned"} {
			p := fmt.Sprintf("%d\t%s\t1k\t", r, pin)
			trials += p + "bare\t10000\t0\t0\t1000000\t2000\t9000\t0.5\t65536\t0\n" +
				p + "chain\t9000\t0\t0\t1000000\t2500\t9500\t0.9\t66560\t0\n" +
				p + "webhook\t300\t0\t0\t1000000\t45000\t900000\t1\t56320\t0\n"
			// Waits for its commits unpinned: half the rate, 40% busy.
			launch := "launch-bbolt\t700\t0\t0\t1000000\t15000\t19000\t0.85\t204800\t0\n"
			if pin == "unpinned" {
				launch = "launch-bbolt\t500\t0\t0\t1000000\t40000\t25000\t0.4\t204800\t0\n"
			}
			trials += p + launch
		}
	}
	mem := "store\tsent\tqueued\trss_before_kb\trss_after_kb\tanon_before_kb\tanon_after_kb\theap_before\theap_after\tstore_before\tstore_after\taux_rss_before_kb\taux_rss_after_kb\tmap_before_kb\tmap_after_kb\n" +
		"bbolt\t10000\t10500\t100000\t132000\t90000\t95000\t1000000\t11485760\t0\t10485760\t0\t0\t2048\t28672\n"
	write := func(name, text string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	write("trials.tsv", trialsHeader+trials)
	write("mem.tsv", mem)
	gb := filepath.Join(dir, "gobench")
	os.Mkdir(gb, 0o755)
	os.WriteFile(filepath.Join(gb, "run-1.txt"), []byte(
		"BenchmarkVerifyGitHub/1MiB-2   \t 1000\t   540000 ns/op\t1941.7 MB/s\t 0 B/op\t 0 allocs/op\n"+
			"BenchmarkRawHMAC/1MiB-2        \t 1000\t   500000 ns/op\n"), 0o644)
	var out bytes.Buffer
	if err := cmdReport([]string{"-trials", filepath.Join(dir, "trials.tsv"), "-mem", filepath.Join(dir, "mem.tsv"), "-gobench", gb}, &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"### 1 KiB bodies, server pinned to one core",
		"### 1 KiB bodies, unpinned",
		"| the chain (chain) vs bare Caddy (body read; bare-respond not measured), 1 KiB | 0.90× (CPU 0.50×) | 0.90× (CPU 0.50×) | ≥ 0.85× | met |",
		// pinned 2.33×, unpinned 1.67×: the goal holds only when both do.
		"| full durable trigger (launch-bbolt) vs adnanh/webhook, 1 KiB | 2.33× (CPU 2.75×) | 1.67× (CPU 4.17×) | ≥ 2× | **missed** |",
		"| server busy, launch-bbolt 1 KiB (CPU time over the trial, of one core) | 85% | 40% | ≥ 80% pinned | met |",
		"| server busy, chain 1 KiB (CPU time over the trial, of one core) | 90% | 90% | ≥ 80% pinned | met |",
		"| p99 latency, launch-bbolt 1 KiB at 32 connections | 19.00 ms | 25.00 ms | ≤ 20 ms | **missed** |",
		"| p99 latency, chain 1 KiB at 32 connections | 9.50 ms | 9.50 ms | ≤ 20 ms | met |",
		"| gateway RSS growth per 10,000 queued runs (bbolt, measured once) | 31.25 MiB | – | ≤ 45.91 MiB (the bbolt figure of 2026-11-27, +10%) | met |",
		"| bbolt | 10000 | 10500 | 31.25 MiB | 4.88 MiB | 26.00 MiB | 10.00 MiB | 10.00 MiB | – |",
		"| the 10-minute soak stays exact | – | – |",
		"| HMAC verify time vs raw crypto/hmac, 1MiB (540000 vs 500000 ns/op, medians of 1; pinned core) | 1.08× | – | ≤ 1.1× | met |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q\n%s", want, got)
		}
	}

	// With bare-respond measured, the chain is judged against it; with
	// only one round, or one pin mode, no goal can be met.
	one := ""
	for _, pin := range []string{"pinned", "unpinned"} {
		p := "1\t" + pin + "\t1k\t"
		one += p + "bare\t10000\t0\t0\t1000000\t2000\t9000\t0.5\t65536\t0\n" +
			p + "bare-respond\t12000\t0\t0\t1000000\t1500\t8000\t0.48\t65536\t0\n" +
			p + "chain\t11000\t0\t0\t1000000\t2500\t9500\t0.5\t66560\t0\n"
	}
	one += "1\tpinned\t1k\tlaunch-pebble\t700\t0\t0\t1000000\t15000\t19000\t0.85\t204800\t0\n" +
		"1\tpinned\t1k\twebhook\t300\t0\t0\t1000000\t45000\t900000\t1\t56320\t0\n"
	scen := write("scenarios.tsv", "bare\tbaseline\tbare\nbare-respond\tbaseline\tbare respond\nchain\tchain\tthe chain\n"+
		"launch-pebble\tlaunch-embedded\tchain + launch, pebble\nwebhook\tbaseline\tadnanh/webhook\n")
	write("trials.tsv", trialsHeader+one)
	out.Reset()
	if err := cmdReport([]string{"-trials", filepath.Join(dir, "trials.tsv"), "-scenarios", scen}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| the chain (chain) vs bare Caddy `respond`, 1 KiB | 0.92× (CPU 0.88×) | 0.92× (CPU 0.88×) | ≥ 0.85× | **unproven**: 1 round(s), need ≥ 3 |",
		"| the chain (chain) vs bare Caddy reading the body, 1 KiB | 1.10× (CPU 1.10×) | 1.10× (CPU 1.10×) | (informational) | – |",
		"| full durable trigger (launch-pebble) vs adnanh/webhook, 1 KiB | 2.33× (CPU 2.75×) | – | ≥ 2× | **unproven**: not measured unpinned |",
		"| chain + launch, pebble | 700 |",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q\n%s", want, out.String())
		}
	}
}

// The goals table shows the spread of the same-round ratios beside each
// median, and says when the rounds fall on both sides of a goal: the
// verdict of a median that 1 round in 3 contradicts is not settled.
func TestGoalsShowRoundSpread(t *testing.T) {
	var trials []trial
	add := func(r int, pin, scen string, ok int) {
		trials = append(trials, trial{Round: r, Pin: pin, Size: "1k", Scenario: scen, OK: ok, DurUS: 1e6, CPUS: 0.5})
	}
	// launch-bbolt / webhook: pinned 10×, 12×, 11× (all above 2×);
	// unpinned 2.5×, 1.5×, 2.1× (median 2.1×, one round below).
	for r, x := range []struct{ pinned, unpinned int }{{1000, 250}, {1200, 150}, {1100, 210}} {
		add(r+1, "pinned", "webhook", 100)
		add(r+1, "pinned", "launch-bbolt", x.pinned)
		add(r+1, "unpinned", "webhook", 100)
		add(r+1, "unpinned", "launch-bbolt", x.unpinned)
	}
	var out bytes.Buffer
	if err := writeReport(&out, summarize(trials), reportOptions{scenarios: defaultScenarios, conns: goalConns}); err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.HasPrefix(l, "| full durable trigger (launch-bbolt) vs adnanh/webhook, 1 KiB") {
			line = l
		}
	}
	for _, want := range []string{"11.00× (CPU 11.00×) [10.00–12.00×]", "2.10× (CPU 2.10×) [1.50–2.50×]",
		"met; on the line: unpinned 1 of 3 rounds below"} {
		if !strings.Contains(line, want) {
			t.Fatalf("goal row %q lacks %q", line, want)
		}
	}

	// A median under the goal with a round above it says so too.
	trials = trials[:0]
	for r, x := range []int{150, 190, 230} {
		add(r+1, "pinned", "webhook", 100)
		add(r+1, "pinned", "launch-bbolt", 1000)
		add(r+1, "unpinned", "webhook", 100)
		add(r+1, "unpinned", "launch-bbolt", x)
	}
	out.Reset()
	if err := writeReport(&out, summarize(trials), reportOptions{scenarios: defaultScenarios, conns: goalConns}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "**missed**; on the line: unpinned 1 of 3 rounds above") {
		t.Fatalf("report lacks the missed-but-straddling verdict:\n%s", out.String())
	}
	// Rounds all on one side: the verdict stands alone.
	if strings.Contains(out.String(), "pinned 0 of") {
		t.Fatalf("a mode with every round on one side must not be named:\n%s", out.String())
	}
}

// A mem.tsv written before run.sh measured the store's memory map still
// reads; its map column shows as not measured.
func TestReadMemWithoutStoreMap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mem.tsv")
	old := "store\tsent\tqueued\trss_before_kb\trss_after_kb\tanon_before_kb\tanon_after_kb\theap_before\theap_after\tstore_before\tstore_after\taux_rss_before_kb\taux_rss_after_kb\n" +
		"bbolt\t10000\t10500\t100000\t132000\t90000\t95000\t1000000\t11485760\t0\t10485760\t0\t0\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	rows, err := readMem(path)
	if err != nil || len(rows) != 1 || rows[0].HasMap || rows[0].RSSAfter != 132000 {
		t.Fatalf("readMem = %+v, %v", rows, err)
	}
	if err := os.WriteFile(path, []byte(old[:len(old)-1]+"\t1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readMem(path); err == nil {
		t.Fatal("a row of 14 fields was read")
	}
}

// run.sh's commit columns become the group-commit table: per trial, the
// accepted requests and writes over the commits, and a commit's mean
// duration; a trials.tsv without them (or a scenario that has none)
// gets no table.
func TestReportTablesGroupCommits(t *testing.T) {
	dir := t.TempDir()
	header := strings.TrimSuffix(trialsHeader, "\n") + "\tcommits\tcommit_writes\tcommit_s\n"
	var trials string
	for r := 1; r <= 3; r++ {
		p := fmt.Sprintf("%d\tpinned\t1k\t", r)
		// 700 requests in 100 commits of 720 writes over 2 s: 50
		// commits/s; the commit seconds vary by round (median 0.05 s).
		trials += p + fmt.Sprintf("launch-bbolt\t700\t0\t0\t2000000\t15000\t19000\t0.85\t204800\t0\t100\t720\t%.2f\n", 0.04+0.01*float64(r-1)) +
			p + "webhook\t300\t0\t0\t2000000\t45000\t900000\t1\t56320\t0\t0\t0\t0\n"
	}
	path := filepath.Join(dir, "trials.tsv")
	if err := os.WriteFile(path, []byte(header+trials), 0o644); err != nil {
		t.Fatal(err)
	}
	table, report := reportSection(t, "Group commits of the embedded stores", "-trials", path)
	want := "| chain + `valohai_launch` wait 0s, bbolt store | 1 KiB | pinned | 50 | 7.00 | 7.20 | 0.50 |"
	if !strings.Contains(table, want) {
		t.Fatalf("report lacks the group commits table row %q\n%s", want, report)
	}
	if strings.Contains(table, "webhook payload") {
		t.Fatalf("a scenario without commits has a row:\n%s", table)
	}

	// The same trials without the columns, as run.sh wrote them before.
	var old string
	for _, line := range strings.Split(strings.TrimSpace(trials), "\n") {
		f := strings.Split(line, "\t")
		old += strings.Join(f[:13], "\t") + "\n"
	}
	if err := os.WriteFile(path, []byte(trialsHeader+old), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, report := reportSection(t, "", "-trials", path); strings.Contains(report, "Group commits") {
		t.Fatalf("an old trials.tsv got a group commits table\n%s", report)
	}
}

// reportSection runs benchtool report with args and returns the table
// under the heading title ("" when it has none) and the whole report.
func reportSection(t *testing.T, title string, args ...string) (table, report string) {
	t.Helper()
	var out bytes.Buffer
	if err := cmdReport(args, &out); err != nil {
		t.Fatal(err)
	}
	report = out.String()
	if _, after, ok := strings.Cut(report, "### "+title+"\n"); ok && title != "" {
		table, _, _ = strings.Cut(after, "\n### ")
	}
	return table, report
}

// run.sh --compare REV runs each scenario also as "name@REV" on that
// build: the report tables this build against it, as medians of
// same-round ratios, so a slow phase of the host slows both sides.
func TestReportComparesBuildsWithinRounds(t *testing.T) {
	dir := t.TempDir()
	var trials string
	// this build: 1000, 100 (a slow round), 1000 req/s at 0.5 ms CPU per
	// request; the compared build 800, 80, 900 req/s at 0.6 ms: ratios
	// 1.25, 1.25, 1.11 (median 1.25) and a CPU ratio of 1.2 each round.
	for r, rps := range []struct{ this, old int }{{1000, 800}, {100, 80}, {1000, 900}} {
		p := fmt.Sprintf("%d\tpinned\t1k\t", r+1)
		trials += p + fmt.Sprintf("launch-pebble\t%d\t0\t0\t1000000\t1000\t2000\t%g\t1024\t0\n", rps.this, float64(rps.this)*0.0005) +
			p + fmt.Sprintf("launch-pebble@09be731\t%d\t0\t0\t1000000\t1000\t2000\t%g\t1024\t0\n", rps.old, float64(rps.old)*0.0006) +
			p + "webhook\t300\t0\t0\t1000000\t45000\t900000\t1\t56320\t0\n"
	}
	path := filepath.Join(dir, "trials.tsv")
	if err := os.WriteFile(path, []byte(trialsHeader+trials), 0o644); err != nil {
		t.Fatal(err)
	}
	scen := filepath.Join(dir, "scenarios.tsv")
	if err := os.WriteFile(scen, []byte("launch-pebble\tlaunch-embedded\tthe pebble trigger\n"+
		"launch-pebble@09be731\tinfo\tthe pebble trigger (build 09be731)\nwebhook\tbaseline\tadnanh/webhook\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	table, report := reportSection(t, "This build against the compared one", "-trials", path, "-scenarios", scen)
	want := "| launch-pebble vs 09be731 | 1 KiB | pinned | 3 | 1.25× [1.11–1.25×] | 1.20× |"
	if !strings.Contains(table, want) {
		t.Fatalf("report lacks the comparison row %q\n%s", want, report)
	}
	if strings.Contains(table, "webhook |") {
		t.Fatalf("a scenario without a compared build has a row:\n%s", table)
	}

	// Without compared scenarios there is no such table.
	plain := strings.Join(slices.DeleteFunc(strings.Split(trials, "\n"), func(l string) bool { return strings.Contains(l, "@") }), "\n")
	if err := os.WriteFile(path, []byte(trialsHeader+plain), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, report := reportSection(t, "", "-trials", path); strings.Contains(report, "against the compared one") {
		t.Fatalf("a run without --compare got a comparison table\n%s", report)
	}
}
