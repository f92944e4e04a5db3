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
	"sort"
	"strconv"
	"strings"
)

// trial is one measured wrk run of one scenario at one body size.
type trial struct {
	Round    int
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

// scenarioInfo names the scenarios in report order.
var scenarioInfo = []struct{ key, label string }{
	{"bare", "bare Caddy `respond` (body read)"},
	{"bare-respond", "bare Caddy `respond`, body left unread"},
	{"hmac", "`webhook_hmac github` → respond"},
	{"chain", "hmac slack + timestamp + filter + rate_limit → respond"},
	{"chain-nolimit", "the chain without rate_limit (diagnostic)"},
	{"launch-bbolt", "chain + `valohai_launch` wait 0s, bbolt store"},
	{"launch-redis", "chain + `valohai_launch` wait 0s, redis store"},
	{"launch-sentinel", "the same on Redis Sentinel, `min_replicas_ack 1`"},
	{"launch-cluster", "the same on a 3-master Redis Cluster"},
	{"webhook", "adnanh/webhook payload-hmac-sha256 → /bin/true"},
}

var sizeOrder = []string{"1k", "1m"}

func sizeLabel(s string) string {
	switch s {
	case "1k":
		return "1 KiB"
	case "1m":
		return "1 MiB"
	}
	return s
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
		if len(fields) != 12 {
			return nil, fmt.Errorf("%s:%d: %d fields, want 12", path, line, len(fields))
		}
		num := make([]float64, 12)
		for i, s := range fields {
			if i == 1 || i == 2 {
				continue
			}
			if num[i], err = strconv.ParseFloat(s, 64); err != nil {
				return nil, fmt.Errorf("%s:%d: field %d: %v", path, line, i+1, err)
			}
		}
		out = append(out, trial{
			Round: int(num[0]), Size: fields[1], Scenario: fields[2],
			OK: int(num[3]), Non2xx: int(num[4]), SockErr: int(num[5]),
			DurUS: num[6], P50US: num[7], P99US: num[8], CPUS: num[9], HWMKB: num[10], AuxCPUS: num[11],
		})
	}
	return out, sc.Err()
}

// summary is the medians of one scenario at one size over the rounds.
type summary struct {
	trials                    int
	rps, p50, p99, cpu1k, hwm float64
	aux1k                     float64
	non2xx, sockErr           int
	silent                    int // trials in which no request completed
	// ratios to the baselines: median over rounds of the same-round ratio
	// of 2xx req/s, and of the baseline's CPU per request to this one's
	// (what the throughput ratio would be on a core of one's own).
	vsBare, vsWebhook       float64
	vsBareCPU, vsWebhookCPU float64
	// the same against bare-respond (the body left unread), 1 KiB only
	vsRespond, vsRespondCPU float64
	rounds                  int
}

// valid is false when any trial saw a non-2xx answer, a socket error, or
// no answer at all: such a figure measures rejections or a stall, not work.
func (s summary) valid() bool {
	return s.trials > 0 && s.non2xx == 0 && s.sockErr == 0 && s.silent == 0
}

// summarize groups trials by size and scenario. A ratio is taken within a
// round, between trials run minutes apart at most, so that a slow phase of
// the shared machine slows both sides; the median of those ratios is robust
// to a round disturbed by someone else's build.
func summarize(trials []trial) map[string]map[string]summary {
	by := map[string]map[string]map[int]trial{}
	for _, t := range trials {
		if by[t.Size] == nil {
			by[t.Size] = map[string]map[int]trial{}
		}
		if by[t.Size][t.Scenario] == nil {
			by[t.Size][t.Scenario] = map[int]trial{}
		}
		by[t.Size][t.Scenario][t.Round] = t
	}
	out := map[string]map[string]summary{}
	for size, scen := range by {
		out[size] = map[string]summary{}
		for name, rounds := range scen {
			var s summary
			var rps, p50, p99, cpu, hwm, aux, vb, vw, vbc, vwc, vr, vrc []float64
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
				if t.OK+t.Non2xx > 0 {
					aux = append(aux, t.AuxCPUS/(float64(t.OK+t.Non2xx)/1000))
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
			}
			s.rps, s.p50, s.p99, s.cpu1k, s.hwm = median(rps), median(p50), median(p99), median(cpu), median(hwm)
			s.aux1k = median(aux)
			s.vsBare, s.vsWebhook, s.rounds = median(vb), median(vw), len(vb)
			s.vsBareCPU, s.vsWebhookCPU = median(vbc), median(vwc)
			s.vsRespond, s.vsRespondCPU = median(vr), median(vrc)
			out[size][name] = s
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
		if len(f) != 13 {
			return nil, fmt.Errorf("%s:%d: %d fields, want 13", path, i+1, len(f))
		}
		n := make([]float64, 13)
		for j := 1; j < 13; j++ {
			if n[j], err = strconv.ParseFloat(f[j], 64); err != nil {
				return nil, fmt.Errorf("%s:%d: field %d: %v", path, i+1, j+1, err)
			}
		}
		out = append(out, memRow{f[0], n[1], n[2], n[3], n[4], n[5], n[6], n[7], n[8], n[9], n[10], n[11], n[12]})
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

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

func cmdReport(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	trialsPath := fs.String("trials", "", "trials.tsv written by run.sh")
	memPath := fs.String("mem", "", "mem.tsv written by run.sh (optional)")
	gobenchDir := fs.String("gobench", "", "folder of go test -bench outputs (optional)")
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
	sum := summarize(trials)
	return writeReport(w, sum, *memPath, *gobenchDir)
}

func writeReport(w io.Writer, sum map[string]map[string]summary, memPath, gobenchDir string) error {
	for _, size := range sizeOrder {
		scen, ok := sum[size]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "\n### %s bodies\n\n", sizeLabel(size))
		fmt.Fprintln(w, "| scenario | req/s | p50 ms | p99 ms | server CPU s / 1k req | peak RSS MiB | non-2xx / socket errors | × bare req/s | × bare CPU | × webhook req/s | × webhook CPU |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, si := range scenarioInfo {
			s, ok := scen[si.key]
			if !ok {
				continue
			}
			cpu := f2(s.cpu1k)
			if si.key == "launch-redis" && !math.IsNaN(s.aux1k) {
				cpu += " (+" + f2(s.aux1k) + " redis)"
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
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				si.label, f0(s.rps), f2(s.p50/1000), f2(s.p99/1000), cpu, f0(s.hwm/1024), bad,
				vsBare, vsBareCPU, vsWebhook, vsWebhookCPU)
		}
	}

	fmt.Fprintln(w, "\n### Goals")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| goal | measured (req/s ratio) | CPU-per-request ratio | target | verdict (on req/s) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---|")
	goal := func(name string, got, cpu float64, okFn func(float64) bool, target string, valid bool) {
		v := "not measured"
		if !math.IsNaN(got) {
			v = verdict(okFn(got))
			if !valid {
				v = "**invalid (non-2xx answers)**"
			}
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", name, ratio(got), ratio(cpu), target, v)
	}
	atLeast := func(t float64) func(float64) bool { return func(x float64) bool { return x >= t } }
	if s, ok := sum["1k"]["chain"]; ok {
		// Judged against the lightest bare Caddy measured: `respond` alone
		// when it ran, else `respond` after reading the body.
		if _, ok := sum["1k"]["bare-respond"]; ok {
			goal("issue 4: chain vs bare Caddy `respond`, 1 KiB", s.vsRespond, s.vsRespondCPU, atLeast(0.85), "≥ 0.85×", s.valid())
			fmt.Fprintf(w, "| chain vs bare Caddy reading the body, 1 KiB | %s | %s | (informational) | – |\n", ratio(s.vsBare), ratio(s.vsBareCPU))
		} else {
			goal("issue 4: chain vs bare Caddy (body read), 1 KiB", s.vsBare, s.vsBareCPU, atLeast(0.85), "≥ 0.85×", s.valid())
		}
	}
	if s, ok := sum["1m"]["chain"]; ok {
		fmt.Fprintf(w, "| chain vs bare Caddy, 1 MiB | %s | %s | (informational) | – |\n", ratio(s.vsBare), ratio(s.vsBareCPU))
	}
	for _, size := range sizeOrder {
		for _, st := range []string{"bbolt", "redis"} {
			if s, ok := sum[size]["launch-"+st]; ok {
				goal("issues 6/7: full trigger ("+st+") vs adnanh/webhook, "+sizeLabel(size), s.vsWebhook, s.vsWebhookCPU, atLeast(1.5), "≥ 1.5×", s.valid())
			}
		}
	}
	if gobenchDir != "" {
		gb, err := readGoBench(gobenchDir)
		if err != nil {
			return err
		}
		for _, sz := range []string{"1KiB", "1MiB"} {
			v, r := gb["VerifyGitHub/"+sz], gb["RawHMAC/"+sz]
			if len(v) == 0 || len(r) == 0 {
				continue
			}
			got := pairedRatio(v, r)
			target := "≤ 1.1× (1 MiB)"
			if sz == "1KiB" {
				target = "(informational)"
			}
			v2 := "–"
			if sz == "1MiB" && !math.IsNaN(got) {
				v2 = verdict(got <= 1.1)
			}
			fmt.Fprintf(w, "| HMAC verify time vs raw crypto/hmac, %s (%s vs %s ns/op, medians of %d) | %s | – | %s | %s |\n",
				sz, f0(median(v)), f0(median(r)), len(v), ratio(got), target, v2)
		}
	}

	if memPath != "" {
		rows, err := readMem(memPath)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return nil
		}
		fmt.Fprintln(w, "\n### Memory per 10,000 queued runs (1 KiB bodies, Valohai stalled)")
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| store | runs sent | queue depth after | gateway RSS growth / 10k | of which anonymous / 10k | live heap growth / 10k | store growth / 10k | redis-server RSS growth / 10k |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
		for _, m := range rows {
			per := 10000 / m.Sent
			mib := func(kib float64) string { return f2(kib / 1024 * per) }
			aux := "–"
			if m.AuxRSSAfter > 0 {
				aux = mib(m.AuxRSSAfter-m.AuxRSSBefore) + " MiB"
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s MiB | %s MiB | %s MiB | %s MiB | %s |\n", m.Store, f0(m.Sent), f0(m.Queued),
				mib(m.RSSAfter-m.RSSBefore), mib(m.AnonAfter-m.AnonBefore),
				mib((m.HeapAfter-m.HeapBefore)/1024), mib((m.StoreAfter-m.StoreBefore)/1024), aux)
		}
	}
	return nil
}
