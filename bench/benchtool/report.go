package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// trial is one measured wrk run of one scenario at one body size, with
// the server pinned to one core or left to the scheduler.
type trial struct {
	Round    int
	Pin      string // "pinned" or "unpinned"
	Size     string
	Scenario string
	OK       int
	Non2xx   int
	SockErr  int
	DurUS    float64
	P50US    float64
	P99US    float64
	CPUS     float64 // server process user+system seconds (with reaped children)
	HWMKB    float64 // server VmHWM at the end of the trial
	AuxCPUS  float64 // redis-server seconds, for the redis store
	// The embedded store's group commits over the trial, from the
	// gateway's caddy_valohai_store_commit_* metrics (0 for other
	// scenarios); HasCommits is false for a trials.tsv written before
	// run.sh recorded them.
	Commits      float64
	CommitWrites float64
	CommitS      float64
	HasCommits   bool
}

// RPS is the rate of 2xx answers: rejected requests do not count as work done.
func (t trial) RPS() float64 {
	if t.DurUS <= 0 {
		return 0
	}
	return float64(t.OK) / (t.DurUS / 1e6)
}

// CPUPer1k is server CPU seconds per 1,000 answered requests.
func (t trial) CPUPer1k() float64 {
	n := t.OK + t.Non2xx
	if n == 0 {
		return math.NaN()
	}
	return t.CPUS / (float64(n) / 1000)
}

// Busy is the server's CPU time over the measured window, as a share of
// one core: below 1 on a core of its own, it waited (for a commit, a
// lock, the network) instead of working.
func (t trial) Busy() float64 {
	if t.DurUS <= 0 {
		return math.NaN()
	}
	return t.CPUS / (t.DurUS / 1e6)
}

// Scenario kinds: what a scenario is compared with and which goals it
// carries (bench/README.md, "Goals").
const (
	kindBaseline       = "baseline"        // bare, bare-respond, webhook: the denominators
	kindInfo           = "info"            // hmac, chain-nolimit: shown, no goal
	kindChain          = "chain"           // the condition chain: ≥ 0.85× bare respond
	kindLaunchEmbedded = "launch-embedded" // full trigger on an embedded store: ≥ 2× webhook
	kindLaunchRemote   = "launch-remote"   // full trigger on a store elsewhere (redis): shown
)

// scenarioDef names a scenario in report order.
type scenarioDef struct{ key, kind, label string }

// defaultScenarios are run.sh's scenarios; run.sh passes its own table
// with -scenarios, so a scenario added there needs no change here.
var defaultScenarios = []scenarioDef{
	{"bare", kindBaseline, "bare Caddy `respond` (body read)"},
	{"bare-respond", kindBaseline, "bare Caddy `respond`, body left unread"},
	{"hmac", kindInfo, "`webhook_hmac github` → respond"},
	{"chain", kindChain, "hmac slack + timestamp + filter + rate_limit → respond"},
	{"chain-nolimit", kindInfo, "the chain without rate_limit (diagnostic)"},
	{"launch-bbolt", kindLaunchEmbedded, "chain + `valohai_launch` wait 0s, bbolt store"},
	{"launch-redis", kindLaunchRemote, "chain + `valohai_launch` wait 0s, redis store"},
	{"launch-sentinel", kindLaunchRemote, "the same on Redis Sentinel, `min_replicas_ack 1`"},
	{"launch-cluster", kindLaunchRemote, "the same on a 3-master Redis Cluster"},
	{"webhook", kindBaseline, "adnanh/webhook payload-hmac-sha256 → /bin/true"},
}

// readScenarios parses run.sh's scenarios.tsv: name, kind, label per line.
func readScenarios(path string) ([]scenarioDef, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []scenarioDef
	for i, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, "\t", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("%s:%d: want name<TAB>kind<TAB>label", path, i+1)
		}
		switch f[1] {
		case kindBaseline, kindInfo, kindChain, kindLaunchEmbedded, kindLaunchRemote:
		default:
			return nil, fmt.Errorf("%s:%d: unknown kind %q", path, i+1, f[1])
		}
		out = append(out, scenarioDef{f[0], f[1], f[2]})
	}
	return out, nil
}

var sizeOrder = []string{"1k", "1m"}

// pinOrder is the order modes are reported in.
var pinOrder = []string{"pinned", "unpinned"}

func sizeLabel(s string) string {
	switch s {
	case "1k":
		return "1 KiB"
	case "1m":
		return "1 MiB"
	}
	return s
}

func pinLabel(p string) string {
	switch p {
	case "pinned":
		return "server pinned to one core"
	case "unpinned":
		return "unpinned (the scheduler places everything)"
	}
	return p
}

func median(xs []float64) float64 {
	var v []float64
	for _, x := range xs {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return math.NaN()
	}
	sort.Float64s(v)
	m := len(v) / 2
	if len(v)%2 == 1 {
		return v[m]
	}
	return (v[m-1] + v[m]) / 2
}

// trialFields is the number of columns of trials.tsv; trialFieldsOld
// that of one written before the commit columns.
const trialFields, trialFieldsOld = 16, 13

// readTrials parses run.sh's trials.tsv (a header line, then one line per
// trial, tab-separated in the order of the trial struct).
func readTrials(path string) ([]trial, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []trial
	sc := bufio.NewScanner(f)
	line := 0
	for sc.Scan() {
		line++
		fields := strings.Split(strings.TrimSpace(sc.Text()), "\t")
		if line == 1 || len(fields) == 1 && fields[0] == "" {
			continue
		}
		if len(fields) != trialFields && len(fields) != trialFieldsOld {
			return nil, fmt.Errorf("%s:%d: %d fields, want %d", path, line, len(fields), trialFields)
		}
		num := make([]float64, trialFields) // an old line leaves the commit columns 0
		for i, s := range fields {
			if i >= 1 && i <= 3 {
				continue
			}
			if num[i], err = strconv.ParseFloat(s, 64); err != nil {
				return nil, fmt.Errorf("%s:%d: field %d: %v", path, line, i+1, err)
			}
		}
		out = append(out, trial{
			Round: int(num[0]), Pin: fields[1], Size: fields[2], Scenario: fields[3],
			OK: int(num[4]), Non2xx: int(num[5]), SockErr: int(num[6]),
			DurUS: num[7], P50US: num[8], P99US: num[9], CPUS: num[10], HWMKB: num[11], AuxCPUS: num[12],
			Commits: num[13], CommitWrites: num[14], CommitS: num[15], HasCommits: len(fields) == trialFields,
		})
	}
	return out, sc.Err()
}

// summary is the medians of one scenario at one size in one pin mode over
// the rounds.
type summary struct {
	trials                          int
	rps, p50, p99, cpu1k, hwm, busy float64
	aux1k                           float64
	non2xx, sockErr                 int
	silent                          int // trials in which no request completed
	// ratios to the baselines: median over rounds of the same-round ratio
	// of 2xx req/s, and of the baseline's CPU per request to this one's
	// (what the throughput ratio would be on a core of one's own).
	vsBare, vsWebhook       float64
	vsBareCPU, vsWebhookCPU float64
	// the same against bare-respond (the body left unread), 1 KiB only
	vsRespond, vsRespondCPU float64
	// the same-round req/s ratios the medians above are taken of, one per
	// round: the goals table shows their spread next to the median
	roundsVsBare, roundsVsWebhook, roundsVsRespond []float64
	rounds                                         int
	// For a scenario run on the build it is compared with ("name@rev",
	// run.sh --compare): the same-round ratios of the scenario on this
	// build to it, req/s and CPU per request (above 1: this build is
	// faster, or cheaper), their medians and the rounds they came from.
	vsCompared, vsComparedCPU float64
	roundsVsCompared          []float64
	comparedRounds            int
	// The embedded store's group commits, medians over the rounds that
	// recorded any: commits a second, accepted requests and writes per
	// commit, and a commit's mean duration until durable (ms).
	commitsPerS, requestsPerCommit, writesPerCommit, commitMS float64
	commitRounds                                              int
}

// valid is false when any trial saw a non-2xx answer, a socket error, or
// no answer at all: such a figure measures rejections or a stall, not work.
func (s summary) valid() bool {
	return s.trials > 0 && s.non2xx == 0 && s.sockErr == 0 && s.silent == 0
}

// summaries are by pin mode, size and scenario.
type summaries map[string]map[string]map[string]summary

func (ss summaries) get(pin, size, scen string) (summary, bool) {
	s, ok := ss[pin][size][scen]
	return s, ok
}

// summarize groups trials by pin mode, size and scenario. A ratio is taken
// within a round and a pin mode, between trials run minutes apart at
// most, so that a slow phase of the shared machine slows both sides; the
// median of those ratios is robust to a round disturbed by someone else's
// build.
func summarize(trials []trial) summaries {
	type group struct{ pin, size string }
	by := map[group]map[string]map[int]trial{}
	for _, t := range trials {
		g := group{t.Pin, t.Size}
		if by[g] == nil {
			by[g] = map[string]map[int]trial{}
		}
		if by[g][t.Scenario] == nil {
			by[g][t.Scenario] = map[int]trial{}
		}
		by[g][t.Scenario][t.Round] = t
	}
	out := summaries{}
	for g, scen := range by {
		if out[g.pin] == nil {
			out[g.pin] = map[string]map[string]summary{}
		}
		out[g.pin][g.size] = map[string]summary{}
		for name, rounds := range scen {
			var s summary
			var rps, p50, p99, cpu, hwm, busy, aux, vb, vw, vbc, vwc, vr, vrc []float64
			var cps, rpc, wpc, cms, vc, vcc []float64
			base, _, compared := strings.Cut(name, "@")
			for r, t := range rounds {
				s.trials++
				s.non2xx += t.Non2xx
				s.sockErr += t.SockErr
				if t.OK == 0 {
					s.silent++
				}
				rps = append(rps, t.RPS())
				p50 = append(p50, t.P50US)
				p99 = append(p99, t.P99US)
				cpu = append(cpu, t.CPUPer1k())
				hwm = append(hwm, t.HWMKB)
				busy = append(busy, t.Busy())
				if t.OK+t.Non2xx > 0 {
					aux = append(aux, t.AuxCPUS/(float64(t.OK+t.Non2xx)/1000))
				}
				if t.HasCommits && t.Commits > 0 && t.DurUS > 0 {
					cps = append(cps, t.Commits/(t.DurUS/1e6))
					rpc = append(rpc, float64(t.OK)/t.Commits)
					wpc = append(wpc, t.CommitWrites/t.Commits)
					cms = append(cms, t.CommitS/t.Commits*1000)
				}
				if b, ok := scen["bare"][r]; ok && b.RPS() > 0 {
					vb = append(vb, t.RPS()/b.RPS())
					vbc = append(vbc, b.CPUPer1k()/t.CPUPer1k())
				}
				if b, ok := scen["bare-respond"][r]; ok && b.RPS() > 0 {
					vr = append(vr, t.RPS()/b.RPS())
					vrc = append(vrc, b.CPUPer1k()/t.CPUPer1k())
				}
				if w, ok := scen["webhook"][r]; ok && w.RPS() > 0 {
					vw = append(vw, t.RPS()/w.RPS())
					vwc = append(vwc, w.CPUPer1k()/t.CPUPer1k())
				}
				if b, ok := scen[base][r]; compared && ok && t.RPS() > 0 && b.CPUPer1k() > 0 {
					vc = append(vc, b.RPS()/t.RPS())
					vcc = append(vcc, t.CPUPer1k()/b.CPUPer1k())
				}
			}
			s.vsCompared, s.vsComparedCPU, s.roundsVsCompared, s.comparedRounds = median(vc), median(vcc), vc, len(vc)
			s.rps, s.p50, s.p99, s.cpu1k, s.hwm = median(rps), median(p50), median(p99), median(cpu), median(hwm)
			s.busy, s.aux1k = median(busy), median(aux)
			s.vsBare, s.vsWebhook, s.rounds = median(vb), median(vw), len(rounds)
			s.vsBareCPU, s.vsWebhookCPU = median(vbc), median(vwc)
			s.vsRespond, s.vsRespondCPU = median(vr), median(vrc)
			s.roundsVsBare, s.roundsVsWebhook, s.roundsVsRespond = vb, vw, vr
			s.commitsPerS, s.requestsPerCommit, s.writesPerCommit, s.commitMS = median(cps), median(rpc), median(wpc), median(cms)
			s.commitRounds = len(cps)
			out[g.pin][g.size][name] = s
		}
	}
	return out
}

// memRow is one line of mem.tsv: the gateway before and after 10,000 runs
// were queued behind a stalled Valohai.
type memRow struct {
	Store                     string
	Sent, Queued              float64
	RSSBefore, RSSAfter       float64 // KiB
	AnonBefore, AnonAfter     float64 // KiB
	HeapBefore, HeapAfter     float64 // bytes in use after a forced GC
	StoreBefore, StoreAfter   float64 // bytes: bbolt file size or redis used_memory
	AuxRSSBefore, AuxRSSAfter float64 // KiB: redis-server
	// MapBefore and MapAfter (KiB) are the resident pages of the gateway's
	// memory maps of its store's files (bbolt's), part of RSS; HasMap is
	// false for a mem.tsv written before run.sh measured them.
	MapBefore, MapAfter float64
	HasMap              bool
}

func readMem(path string) ([]memRow, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []memRow
	for i, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		if i == 0 || strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 13 && len(f) != 15 {
			return nil, fmt.Errorf("%s:%d: %d fields, want 15 (13 before the store's map was measured)", path, i+1, len(f))
		}
		n := make([]float64, 15)
		for j := 1; j < len(f); j++ {
			if n[j], err = strconv.ParseFloat(f[j], 64); err != nil {
				return nil, fmt.Errorf("%s:%d: field %d: %v", path, i+1, j+1, err)
			}
		}
		out = append(out, memRow{f[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7], n[8], n[9], n[10], n[11], n[12], n[13], n[14], len(f) == 15})
	}
	return out, nil
}

var benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([0-9.]+) ns/op`)

// readGoBench collects ns/op per benchmark name, in file order, from the
// outputs of several go test -bench invocations (one file each, or one
// file with all of them).
func readGoBench(dir string) (map[string][]float64, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	out := map[string][]float64{}
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(raw), "\n") {
			m := benchLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			v, _ := strconv.ParseFloat(m[2], 64)
			out[m[1]] = append(out[m[1]], v)
		}
	}
	return out, nil
}

// pairedRatio is the median of a[i]/b[i]: the i-th values come from the same
// invocation, run back to back.
func pairedRatio(a, b []float64) float64 {
	var r []float64
	for i := 0; i < len(a) && i < len(b); i++ {
		if b[i] > 0 {
			r = append(r, a[i]/b[i])
		}
	}
	return median(r)
}

func f0(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return strconv.FormatFloat(x, 'f', 0, 64)
}

func f2(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return strconv.FormatFloat(x, 'f', 2, 64)
}

func ratio(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return strconv.FormatFloat(x, 'f', 2, 64) + "×"
}

func pct(x float64) string {
	if math.IsNaN(x) {
		return "–"
	}
	return strconv.FormatFloat(100*x, 'f', 0, 64) + "%"
}

// The goals of issue 12 (bench/README.md, "Goals").
const (
	goalChainVsRespond  = 0.85 // chain req/s ≥ 0.85× bare Caddy respond, 1 KiB
	goalTriggerVsPeer   = 2.0  // full durable trigger req/s ≥ 2× adnanh/webhook
	goalBusy            = 0.80 // pinned server busy ≥ 80% of its core
	goalP99MS           = 20.0 // p99 ≤ 20 ms at 32 connections
	goalConns           = 32
	goalRounds          = 3    // medians of at least 3 interleaved rounds
	goalMemTolerance    = 1.10 // memory per 10,000 queued runs: no worse than before, within noise
	goalHMACVsRaw1MiB   = 1.1
	memBaselineDate     = "2026-11-27"
	memBaselineEmbedded = 41.74 // MiB gateway RSS growth per 10,000 queued runs, bbolt
	memBaselineRedis    = 5.94  // the same on redis
)

// reportOptions are the flags of `benchtool report`.
type reportOptions struct {
	memPath, gobenchDir string
	scenarios           []scenarioDef
	conns               int
}

func cmdReport(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	trialsPath := fs.String("trials", "", "trials.tsv written by run.sh")
	memPath := fs.String("mem", "", "mem.tsv written by run.sh (optional)")
	gobenchDir := fs.String("gobench", "", "folder of go test -bench outputs (optional)")
	scenariosPath := fs.String("scenarios", "", "scenarios.tsv written by run.sh: name, kind, label (optional)")
	conns := fs.Int("conns", goalConns, "connections of the 1 KiB trials")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *trialsPath == "" {
		return errors.New("-trials is required")
	}
	trials, err := readTrials(*trialsPath)
	if err != nil {
		return err
	}
	opts := reportOptions{memPath: *memPath, gobenchDir: *gobenchDir, scenarios: defaultScenarios, conns: *conns}
	if *scenariosPath != "" {
		if opts.scenarios, err = readScenarios(*scenariosPath); err != nil {
			return err
		}
	}
	return writeReport(w, summarize(trials), opts)
}

// verdictOf combines the pinned and unpinned checks of one goal: it holds
// only when it holds in both modes, over at least goalRounds rounds, on
// valid trials.
type check struct {
	measured, ok, valid bool
	rounds              int
}

func verdictOf(modes []string, checks map[string]check) string {
	var missing []string
	allOK, minRounds := true, math.MaxInt
	for _, m := range modes {
		c, ok := checks[m]
		if !ok || !c.measured {
			missing = append(missing, m)
			continue
		}
		if !c.valid {
			return "**invalid (non-2xx answers)**"
		}
		allOK = allOK && c.ok
		minRounds = min(minRounds, c.rounds)
	}
	switch {
	case len(missing) == len(modes):
		return "not measured"
	case !allOK:
		return "**missed**"
	case len(missing) > 0:
		return "**unproven**: not measured " + strings.Join(missing, ", ")
	case minRounds < goalRounds:
		return fmt.Sprintf("**unproven**: %d round(s), need ≥ %d", minRounds, goalRounds)
	}
	return "met"
}

// roundSpread is " [lo–hi]", the lowest and highest of the same-round
// ratios a median was taken of, when they differ (as printed).
func roundSpread(rounds []float64) string {
	var v []float64
	for _, x := range rounds {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) < 2 {
		return ""
	}
	lo, hi := ratio(slices.Min(v)), ratio(slices.Max(v))
	if lo == hi {
		return ""
	}
	return " [" + strings.TrimSuffix(lo, "×") + "–" + hi + "]"
}

// straddle names a pin mode whose rounds fall on both sides of target:
// "unpinned 1 of 3 rounds below" when the median meets it, "above" when
// the median misses. On a machine whose rounds spread that wide, the
// verdict would flip with a few more rounds (bench/README.md, "Noise").
func straddle(pin string, median float64, rounds []float64, target float64) string {
	var below, above, n int
	for _, x := range rounds {
		switch {
		case math.IsNaN(x):
			continue
		case x < target:
			below++
		default:
			above++
		}
		n++
	}
	switch {
	case below == 0 || above == 0:
		return ""
	case median >= target:
		return fmt.Sprintf("%s %d of %d rounds below", pin, below, n)
	}
	return fmt.Sprintf("%s %d of %d rounds above", pin, above, n)
}

func writeReport(w io.Writer, sum summaries, o reportOptions) error {
	byKey := map[string]scenarioDef{}
	for _, sc := range o.scenarios {
		byKey[sc.key] = sc
	}
	for _, size := range sizeOrder {
		for _, pin := range pinOrder {
			scen, ok := sum[pin][size]
			if !ok {
				continue
			}
			fmt.Fprintf(w, "\n### %s bodies, %s\n\n", sizeLabel(size), pinLabel(pin))
			fmt.Fprintln(w, "| scenario | req/s | p50 ms | p99 ms | server CPU s / 1k req | server busy (of one core) | peak RSS MiB | non-2xx / socket errors | × bare req/s | × bare CPU | × webhook req/s | × webhook CPU |")
			fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
			for _, si := range o.scenarios {
				s, ok := scen[si.key]
				if !ok {
					continue
				}
				cpu := f2(s.cpu1k)
				if si.kind == kindLaunchRemote && !math.IsNaN(s.aux1k) && s.aux1k > 0 {
					cpu += " (+" + f2(s.aux1k) + " store)"
				}
				bad := fmt.Sprintf("%d / %d", s.non2xx, s.sockErr)
				if s.silent > 0 {
					bad += fmt.Sprintf(", %d trial(s) without any answer", s.silent)
				}
				if !s.valid() {
					bad = "**" + bad + " INVALID**"
				}
				vsBare, vsWebhook := ratio(s.vsBare), ratio(s.vsWebhook)
				vsBareCPU, vsWebhookCPU := ratio(s.vsBareCPU), ratio(s.vsWebhookCPU)
				if si.key == "bare" {
					vsBare, vsBareCPU = "1×", "1×"
				}
				if si.key == "webhook" {
					vsWebhook, vsWebhookCPU = "1×", "1×"
				}
				fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
					si.label, f0(s.rps), f2(s.p50/1000), f2(s.p99/1000), cpu, pct(s.busy), f0(s.hwm/1024), bad,
					vsBare, vsBareCPU, vsWebhook, vsWebhookCPU)
			}
		}
	}

	writeCommits(w, sum, o.scenarios)
	writeComparison(w, sum, o.scenarios)

	heading(w, "Goals",
		"A goal holds only when it holds both pinned and unpinned, as medians of at least 3 interleaved rounds. Ratios are req/s, with the CPU-per-request ratio beside them.",
		"| goal | pinned | unpinned | target | verdict |",
		"|---|---:|---:|---:|---|")
	row := func(goal string, cells map[string]string, target, verdict string) {
		get := func(m string) string {
			if c, ok := cells[m]; ok {
				return c
			}
			return "–"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", goal, get("pinned"), get("unpinned"), target, verdict)
	}
	ratioGoal := func(goal, size, scen string, pick func(summary) (float64, float64, []float64), target float64, modes []string, informational bool) {
		cells, checks := map[string]string{}, map[string]check{}
		var split []string
		for _, pin := range pinOrder {
			s, ok := sum.get(pin, size, scen)
			if !ok {
				continue
			}
			got, cpu, rounds := pick(s)
			if math.IsNaN(got) {
				continue
			}
			cells[pin] = ratio(got) + " (CPU " + ratio(cpu) + ")" + roundSpread(rounds)
			checks[pin] = check{measured: true, ok: got >= target, valid: s.valid(), rounds: s.rounds}
			if note := straddle(pin, got, rounds, target); note != "" {
				split = append(split, note)
			}
		}
		if len(cells) == 0 {
			return
		}
		t, v := fmt.Sprintf("≥ %s×", strconv.FormatFloat(target, 'f', -1, 64)), verdictOf(modes, checks)
		if informational {
			t, v = "(informational)", "–"
		} else if len(split) > 0 && (v == "met" || v == "**missed**") {
			v += "; on the line: " + strings.Join(split, ", ")
		}
		row(goal, cells, t, v)
	}
	vsRespond := func(s summary) (float64, float64, []float64) { return s.vsRespond, s.vsRespondCPU, s.roundsVsRespond }
	vsBare := func(s summary) (float64, float64, []float64) { return s.vsBare, s.vsBareCPU, s.roundsVsBare }
	vsWebhook := func(s summary) (float64, float64, []float64) { return s.vsWebhook, s.vsWebhookCPU, s.roundsVsWebhook }
	measuredAnywhere := func(size, scen string) bool {
		for _, pin := range pinOrder {
			if _, ok := sum.get(pin, size, scen); ok {
				return true
			}
		}
		return false
	}

	var chains, embedded, remote []scenarioDef
	for _, sc := range o.scenarios {
		switch sc.kind {
		case kindChain:
			chains = append(chains, sc)
		case kindLaunchEmbedded:
			embedded = append(embedded, sc)
		case kindLaunchRemote:
			remote = append(remote, sc)
		}
	}
	for _, sc := range chains {
		if measuredAnywhere("1k", "bare-respond") {
			ratioGoal("the chain ("+sc.key+") vs bare Caddy `respond`, 1 KiB", "1k", sc.key, vsRespond, goalChainVsRespond, pinOrder, false)
			ratioGoal("the chain ("+sc.key+") vs bare Caddy reading the body, 1 KiB", "1k", sc.key, vsBare, goalChainVsRespond, pinOrder, true)
		} else {
			ratioGoal("the chain ("+sc.key+") vs bare Caddy (body read; bare-respond not measured), 1 KiB", "1k", sc.key, vsBare, goalChainVsRespond, pinOrder, false)
		}
		ratioGoal("the chain ("+sc.key+") vs bare Caddy, 1 MiB", "1m", sc.key, vsBare, goalChainVsRespond, pinOrder, true)
	}
	if measuredAnywhere("1k", "chain-nolimit") {
		ratioGoal("the chain without rate_limit vs bare Caddy `respond`, 1 KiB (diagnostic)", "1k", "chain-nolimit", vsRespond, goalChainVsRespond, pinOrder, true)
	}
	for _, size := range sizeOrder {
		for _, sc := range embedded {
			ratioGoal("full durable trigger ("+sc.key+") vs adnanh/webhook, "+sizeLabel(size), size, sc.key, vsWebhook, goalTriggerVsPeer, pinOrder, false)
		}
		for _, sc := range remote {
			ratioGoal("full durable trigger ("+sc.key+") vs adnanh/webhook, "+sizeLabel(size), size, sc.key, vsWebhook, goalTriggerVsPeer, pinOrder, true)
		}
	}

	// Busy: judged on the pinned run, where the server has a core of its
	// own; unpinned it shares two cores with wrk, so its share is shown
	// only.
	for _, sc := range append(append([]scenarioDef{}, chains...), embedded...) {
		cells, checks := map[string]string{}, map[string]check{}
		for _, pin := range pinOrder {
			if s, ok := sum.get(pin, "1k", sc.key); ok && !math.IsNaN(s.busy) {
				cells[pin] = pct(s.busy)
				checks[pin] = check{measured: true, ok: s.busy >= goalBusy, valid: s.valid(), rounds: s.rounds}
			}
		}
		if len(cells) > 0 {
			row("server busy, "+sc.key+" 1 KiB (CPU time over the trial, of one core)", cells, "≥ 80% pinned", verdictOf([]string{"pinned"}, checks))
		}
	}

	// p99 at 32 connections, for every scenario with a goal.
	for _, sc := range append(append(append([]scenarioDef{}, chains...), embedded...), remote...) {
		cells, checks := map[string]string{}, map[string]check{}
		for _, pin := range pinOrder {
			if s, ok := sum.get(pin, "1k", sc.key); ok && !math.IsNaN(s.p99) {
				cells[pin] = f2(s.p99/1000) + " ms"
				checks[pin] = check{measured: true, ok: s.p99/1000 <= goalP99MS, valid: s.valid(), rounds: s.rounds}
			}
		}
		if len(cells) == 0 {
			continue
		}
		v := verdictOf(pinOrder, checks)
		if o.conns != goalConns {
			v = fmt.Sprintf("**unproven**: measured at %d connections, the goal is at %d", o.conns, goalConns)
		}
		if sc.kind == kindLaunchRemote {
			v = "– (informational)"
		}
		row(fmt.Sprintf("p99 latency, %s 1 KiB at %d connections", sc.key, o.conns), cells, "≤ 20 ms", v)
	}

	var memRows []memRow
	if o.memPath != "" {
		var err error
		if memRows, err = readMem(o.memPath); err != nil {
			return err
		}
	}
	for _, m := range memRows {
		base, name := memBaselineEmbedded, "the bbolt figure"
		if m.Store == "redis" {
			base, name = memBaselineRedis, "the redis figure"
		}
		growth := (m.RSSAfter - m.RSSBefore) / 1024 * (10000 / m.Sent)
		v := verdict(growth <= base*goalMemTolerance)
		row("gateway RSS growth per 10,000 queued runs ("+m.Store+", measured once)",
			map[string]string{"pinned": f2(growth) + " MiB"},
			fmt.Sprintf("≤ %s MiB (%s of %s, +10%%)", f2(base*goalMemTolerance), name, memBaselineDate), v)
	}
	row("the 10-minute soak stays exact", nil, "0 mismatches, every run launched once",
		"not run by run.sh: `bench/soak.sh -d 10m`, result in bench/README.md, \"Soak run\"")

	if o.gobenchDir != "" {
		gb, err := readGoBench(o.gobenchDir)
		if err != nil {
			return err
		}
		for _, sz := range []string{"1KiB", "1MiB"} {
			v, r := gb["VerifyGitHub/"+sz], gb["RawHMAC/"+sz]
			if len(v) == 0 || len(r) == 0 {
				continue
			}
			got := pairedRatio(v, r)
			target, v2 := "(informational)", "–"
			if sz == "1MiB" && !math.IsNaN(got) {
				target, v2 = "≤ 1.1×", verdict(got <= goalHMACVsRaw1MiB)
			}
			row(fmt.Sprintf("HMAC verify time vs raw crypto/hmac, %s (%s vs %s ns/op, medians of %d; pinned core)", sz, f0(median(v)), f0(median(r)), len(v)),
				map[string]string{"pinned": ratio(got)}, target, v2)
		}
	}

	if len(memRows) > 0 {
		heading(w, "Memory per 10,000 queued runs (1 KiB bodies, Valohai stalled)", "",
			"| store | runs sent | queue depth after | gateway RSS growth / 10k | of which anonymous / 10k | of which the store's memory map / 10k | live heap growth / 10k | store growth / 10k | redis-server RSS growth / 10k |",
			"|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, m := range memRows {
			per := 10000 / m.Sent
			mib := func(kib float64) string { return f2(kib / 1024 * per) }
			aux := "–"
			if m.AuxRSSAfter > 0 {
				aux = mib(m.AuxRSSAfter-m.AuxRSSBefore) + " MiB"
			}
			mapped := "–"
			if m.HasMap {
				mapped = mib(m.MapAfter-m.MapBefore) + " MiB"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s MiB | %s MiB | %s | %s MiB | %s MiB | %s |\n", m.Store, f0(m.Sent), f0(m.Queued),
				mib(m.RSSAfter-m.RSSBefore), mib(m.AnonAfter-m.AnonBefore), mapped,
				mib((m.HeapAfter-m.HeapBefore)/1024), mib((m.StoreAfter-m.StoreBefore)/1024), aux)
		}
	}
	return nil
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// writeCommits tables the embedded stores' group commits (README.md, "The
// durable write path"): how many accepted requests and writes shared one
// fsync, and how long a commit took until durable. Nothing is written for
// a run without them (no embedded store measured, or an old trials.tsv).
func writeCommits(w io.Writer, sum summaries, scenarios []scenarioDef) {
	rows := reportRows(sum, scenarios, func(_ scenarioDef, s summary) bool { return s.commitRounds > 0 })
	if len(rows) == 0 {
		return
	}
	heading(w, "Group commits of the embedded stores",
		"From the gateway's `caddy_valohai_store_commit_*` metrics over each measured trial, medians over rounds. Writes count the launches' claims and results besides the accepted requests.",
		"| scenario | body | placement | commits/s | accepted requests per commit | writes per commit | mean commit ms (until durable) |",
		"|---|---|---|---:|---:|---:|---:|")
	for _, r := range rows {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", r.si.label, sizeLabel(r.size), r.pin,
			f0(r.s.commitsPerS), f2(r.s.requestsPerCommit), f2(r.s.writesPerCommit), f2(r.s.commitMS))
	}
}

// writeComparison tables each scenario against the same scenario on the
// build run.sh --compare named ("name@rev" in scenarios): the medians of
// same-round, same-mode ratios, this build ÷ that one, with their spread.
// Nothing is written for a run without such scenarios.
func writeComparison(w io.Writer, sum summaries, scenarios []scenarioDef) {
	rows := reportRows(sum, scenarios, func(si scenarioDef, s summary) bool {
		return strings.Contains(si.key, "@") && s.comparedRounds > 0
	})
	if len(rows) == 0 {
		return
	}
	heading(w, "This build against the compared one",
		"Each scenario on this build against the same scenario on the build `run.sh --compare` named, within a round and a pin mode: medians of the same-round ratios, with their spread. Above 1 this build answered more requests per second, or spent less CPU per request.",
		"| scenario | body | placement | rounds | req/s, this build ÷ compared | CPU per request, compared ÷ this build |",
		"|---|---|---|---:|---:|---:|")
	for _, r := range rows {
		base, rev, _ := strings.Cut(r.si.key, "@")
		valid := "" // a trial that failed requests measures no work
		if b, ok := sum.get(r.pin, r.size, base); !r.s.valid() || !ok || !b.valid() {
			valid = " (failed requests)"
		}
		fmt.Fprintf(w, "| %s vs %s | %s | %s | %d | %s%s%s | %s |\n", base, rev, sizeLabel(r.size), r.pin, r.s.comparedRounds,
			ratio(r.s.vsCompared), roundSpread(r.s.roundsVsCompared), valid, ratio(r.s.vsComparedCPU))
	}
}

// reportRow is one scenario's summary at one size in one pin mode.
type reportRow struct {
	size, pin string
	si        scenarioDef
	s         summary
}

// reportRows are the measured summaries that keep accepts, by size, then
// pin mode, then the scenarios' order: the rows of a table.
func reportRows(sum summaries, scenarios []scenarioDef, keep func(scenarioDef, summary) bool) []reportRow {
	var rows []reportRow
	for _, size := range sizeOrder {
		for _, pin := range pinOrder {
			for _, si := range scenarios {
				if s, ok := sum.get(pin, size, si.key); ok && keep(si, s) {
					rows = append(rows, reportRow{size, pin, si, s})
				}
			}
		}
	}
	return rows
}

// heading writes a section's title, its introduction (none when empty)
// and its table's header and alignment rows.
func heading(w io.Writer, title, intro, columns, align string) {
	fmt.Fprintf(w, "\n### %s\n\n", title)
	if intro != "" {
		fmt.Fprintf(w, "%s\n\n", intro)
	}
	fmt.Fprintln(w, columns)
	fmt.Fprintln(w, align)
}
