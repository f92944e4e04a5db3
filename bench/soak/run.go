package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// options are the flags of `soak run`.
type options struct {
	gateway, admin, sim string
	pid                 int
	storePath           string
	duration            time.Duration
	workers             int
	rate                float64
	maxRequests         int64
	sampleEvery         time.Duration
	outageCount         int
	outageStatus        int
	drainTimeout        time.Duration
	flatPct             float64
	payloadSamples      int
	maxBody             int
	jsonOut             string
	heapDir             string
	seed                uint64
}

func parseOptions(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("soak run", flag.ContinueOnError)
	fs.StringVar(&o.gateway, "gateway", "", "gateway base URL, e.g. http://127.0.0.1:8080 (required)")
	fs.StringVar(&o.admin, "admin", "", "gateway admin API base URL, e.g. http://127.0.0.1:2019 (required)")
	fs.StringVar(&o.sim, "sim", "", "simulator base URL (required)")
	fs.IntVar(&o.pid, "pid", 0, "gateway process id, for /proc/<pid>/status (required)")
	fs.StringVar(&o.storePath, "store", "", "the gateway's bbolt file, whose memory map is reported apart from the rest of the RSS")
	fs.DurationVar(&o.duration, "d", 3*time.Minute, "load duration (at most 2h)")
	fs.IntVar(&o.workers, "workers", 16, "concurrent senders")
	fs.Float64Var(&o.rate, "rate", 200, "requests per second over all workers; 0: as fast as the gateway answers")
	fs.Int64Var(&o.maxRequests, "max-requests", 2_000_000, "stop the load after this many requests even if time is left")
	fs.DurationVar(&o.sampleEvery, "sample", 5*time.Second, "memory sampling interval")
	fs.IntVar(&o.outageCount, "outage-count", 200, "Valohai calls failed by the outage injected halfway (0: no outage)")
	fs.IntVar(&o.outageStatus, "outage-status", http.StatusServiceUnavailable, "status of the injected outage")
	fs.DurationVar(&o.drainTimeout, "drain-timeout", 3*time.Minute, "how long the queue may take to drain after the load")
	fs.Float64Var(&o.flatPct, "flat", 10, "memory is flat when the RSS without the store's map grows less than this many percent over the last half of the load")
	fs.IntVar(&o.payloadSamples, "payloads", 300, "acknowledged runs whose payload is fetched back and compared")
	fs.IntVar(&o.maxBody, "max-body", 64<<10, "the gateway's max_body in bytes (must match its Caddyfile)")
	fs.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&o.heapDir, "heap-dir", "", "save the gateway's heap profile (admin API /debug/pprof/heap?gc=1) at the middle of the load (heap-mid.pb.gz) and after the drain (heap-end.pb.gz) into this folder")
	fs.Uint64Var(&o.seed, "seed", 0, "random seed (0: from the clock)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	switch {
	case fs.NArg() != 0:
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	case o.gateway == "" || o.admin == "" || o.sim == "" || o.pid <= 0:
		return nil, errors.New("-gateway, -admin, -sim and -pid are required")
	case o.duration <= 0 || o.duration > 2*time.Hour:
		return nil, fmt.Errorf("-d must be between 1s and 2h, got %s", o.duration)
	case o.workers < 1 || o.workers > 256:
		return nil, fmt.Errorf("-workers must be 1-256, got %d", o.workers)
	case o.rate < 0 || o.rate > 100000:
		return nil, fmt.Errorf("-rate must be 0-100000, got %g", o.rate)
	case o.maxRequests < 1:
		return nil, errors.New("-max-requests must be positive")
	case o.sampleEvery < 100*time.Millisecond:
		return nil, errors.New("-sample must be at least 100ms")
	case o.outageCount < 0 || o.outageStatus < 400 || o.outageStatus > 599:
		return nil, errors.New("-outage-count must be >= 0 and -outage-status 400-599")
	case o.drainTimeout <= 0 || o.drainTimeout > time.Hour:
		return nil, errors.New("-drain-timeout must be between 1s and 1h")
	case o.maxBody < 4096:
		return nil, errors.New("-max-body must be at least 4096")
	}
	for _, u := range []string{o.gateway, o.admin, o.sim} {
		if err := loopbackOnly(u); err != nil {
			return nil, err
		}
	}
	o.gateway = strings.TrimSuffix(o.gateway, "/")
	o.admin = strings.TrimSuffix(o.admin, "/")
	o.sim = strings.TrimSuffix(o.sim, "/")
	if o.storePath != "" {
		// /proc shows mappings by their resolved path.
		p, err := filepath.EvalSymlinks(o.storePath)
		if err != nil {
			return nil, fmt.Errorf("-store: %w", err)
		}
		if o.storePath, err = filepath.Abs(p); err != nil {
			return nil, fmt.Errorf("-store: %w", err)
		}
	}
	if o.seed == 0 {
		o.seed = uint64(time.Now().UnixNano())
	}
	return o, nil
}

// loopbackOnly refuses anything but http://127.0.0.1: the soak floods its
// target and must never be pointed at someone else's server.
func loopbackOnly(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" {
		return fmt.Errorf("%q: only http://127.0.0.1:<port> is allowed", raw)
	}
	return nil
}

// summary is everything the run measured, for -json.
type summary struct {
	Started      time.Time                 `json:"started"`
	Duration     string                    `json:"duration"`
	Workers      int                       `json:"workers"`
	Rate         float64                   `json:"rate"`
	Seed         uint64                    `json:"seed"`
	Kinds        map[string]kindStats      `json:"kinds"`
	Examples     []string                  `json:"mismatch_examples"`
	Outage       string                    `json:"outage"`
	Launches     *launchReport             `json:"launches"`
	Memory       memVerdict                `json:"memory"`
	Samples      []memSample               `json:"samples"`
	AfterDrain   memSample                 `json:"after_drain"`
	Checks       []checkResult             `json:"checks"`
	RequestsSent int64                     `json:"requests_sent"`
	PerSecond    float64                   `json:"requests_per_second"`
	Senders      map[string]map[string]int `json:"acknowledged_by_sender"`
}

type checkResult struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail"`
}

// cmdRun runs the soak and prints the report. failed is true when any
// check failed; err is for runs that could not be carried out at all.
func cmdRun(args []string, out io.Writer) (failed bool, err error) {
	o, err := parseOptions(args)
	if err != nil {
		return false, err
	}
	ghSecret, slSecret := os.Getenv("SOAK_GITHUB_SECRET"), os.Getenv("SOAK_SLACK_SECRET")
	if ghSecret == "" || slSecret == "" {
		return false, errors.New("SOAK_GITHUB_SECRET and SOAK_SLACK_SECRET must be set (the gateway's trigger secrets)")
	}
	if _, err := readMem(o.pid, o.storePath); err != nil {
		return false, fmt.Errorf("cannot read the gateway's memory: %w", err)
	}
	senders := newSenders(o.gateway, []byte(ghSecret), []byte(slSecret))

	// An interrupt ends the load early; the checks still run on what was
	// sent, so a run stopped by hand still says whether it lost anything.
	sigCtx, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()

	tr := &http.Transport{
		MaxIdleConns:        2 * o.workers,
		MaxIdleConnsPerHost: 2 * o.workers,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctlClient := &http.Client{Timeout: 2 * time.Minute}

	s := summary{
		Started: time.Now().UTC(), Duration: o.duration.String(), Workers: o.workers,
		Rate: o.rate, Seed: o.seed, Kinds: map[string]kindStats{},
	}
	fmt.Fprintf(out, "soak: %s of load, %d workers, rate %g/s (0 = unpaced), seed %d, gateway pid %d\n",
		o.duration, o.workers, o.rate, o.seed, o.pid)

	loadCtx, stopLoad := context.WithTimeout(sigCtx, o.duration)
	defer stopLoad()
	start := time.Now()
	acked := newAckLog(4096)
	var t tally
	var sent atomic.Int64

	// Memory sampler: from the start of the load to its end.
	var samplesMu sync.Mutex
	var samples []memSample
	sampleDone := make(chan struct{})
	go func() {
		defer close(sampleDone)
		tick := time.NewTicker(o.sampleEvery)
		defer tick.Stop()
		for {
			if m, err := readMem(o.pid, o.storePath); err == nil {
				m.At = time.Since(start)
				samplesMu.Lock()
				samples = append(samples, m)
				samplesMu.Unlock()
			}
			select {
			case <-loadCtx.Done():
				return
			case <-tick.C:
			}
		}
	}()

	// The Valohai outage, halfway through the load.
	outageDone := make(chan struct{})
	go func() {
		defer close(outageDone)
		if o.outageCount == 0 {
			s.Outage = "none"
			return
		}
		select {
		case <-loadCtx.Done():
			s.Outage = "not injected: the load ended first"
			return
		case <-time.After(o.duration / 2):
		}
		body := fmt.Sprintf(`{"count":%d,"status":%d}`, o.outageCount, o.outageStatus)
		resp, err := ctlClient.Post(o.sim+"/__simulator/fail", "application/json", strings.NewReader(body))
		if err != nil {
			s.Outage = "injection failed: " + err.Error()
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			s.Outage = fmt.Sprintf("injection failed: simulator answered %d", resp.StatusCode)
			return
		}
		s.Outage = fmt.Sprintf("%d Valohai calls answered %d from %s into the load",
			o.outageCount, o.outageStatus, time.Since(start).Round(time.Second))
	}()

	// Heap profile halfway, to compare with the one after the drain.
	heapDone := make(chan struct{})
	go func() {
		defer close(heapDone)
		if o.heapDir == "" {
			return
		}
		select {
		case <-loadCtx.Done():
			return
		case <-time.After(o.duration / 2):
		}
		if err := saveHeap(ctlClient, o.admin, filepath.Join(o.heapDir, "heap-mid.pb.gz")); err != nil {
			fmt.Fprintln(out, "soak: heap profile:", err)
		}
	}()

	// Pacing: one token per request, shared by all workers.
	var tokens chan struct{}
	if o.rate > 0 {
		tokens = make(chan struct{}, o.workers)
		go func() {
			interval := time.Duration(float64(time.Second) / o.rate)
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-loadCtx.Done():
					return
				case <-tick.C:
					select {
					case tokens <- struct{}{}:
					default: // workers are behind: do not bank a burst
					}
				}
			}
		}()
	}

	var wg sync.WaitGroup
	for i := range o.workers {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(o.seed, uint64(i)))
			pl := &planner{rng: rng, maxBody: o.maxBody, acked: acked, now: time.Now}
			for {
				if tokens != nil {
					select {
					case <-loadCtx.Done():
						return
					case <-tokens:
					}
				} else if loadCtx.Err() != nil {
					return
				}
				if sent.Add(1) > o.maxRequests {
					return
				}
				p := pl.plan(pickKind(rng), senders[rng.IntN(len(senders))])
				sendOne(client, p, acked, &t)
			}
		}(i)
	}
	wg.Wait()
	loadTime := time.Since(start)
	stopLoad()
	<-sampleDone
	// The last tick may have lost the race with the deadline: the 100 %
	// point is read now.
	if m, err := readMem(o.pid, o.storePath); err == nil {
		m.At = loadTime
		samples = append(samples, m)
	}
	<-outageDone
	<-heapDone
	s.RequestsSent = min(sent.Load(), o.maxRequests)
	s.PerSecond = float64(s.RequestsSent) / loadTime.Seconds()
	fmt.Fprintf(out, "soak: load done: %d requests in %s (%.0f/s); waiting for the queue to drain\n",
		s.RequestsSent, loadTime.Round(time.Second), s.PerSecond)

	// Drain and verify. These use a context of their own: an interrupt
	// during the load must not skip the checks.
	vctx, cancel := context.WithTimeout(context.Background(), o.drainTimeout+5*time.Minute)
	defer cancel()
	drained, drainErr := waitDrained(vctx, ctlClient, o.admin, o.drainTimeout)
	finalErrors, errsErr := countFinalErrors(vctx, ctlClient, o.admin)
	var calls []simCall
	callsErr := getJSON(vctx, ctlClient, o.sim+"/__simulator/calls", &calls)
	ackSnap := acked.snapshot()
	rep := compareLaunches(ackSnap, calls, o.outageStatus)
	calls = nil
	rep.FinalErrors = finalErrors
	rep.DrainSeconds = drained.Seconds()
	checkPayloads(vctx, client, ackSnap, rep, o.payloadSamples)
	s.Launches = rep
	if o.heapDir != "" {
		if err := saveHeap(ctlClient, o.admin, filepath.Join(o.heapDir, "heap-end.pb.gz")); err != nil {
			fmt.Fprintln(out, "soak: heap profile:", err)
		}
	}
	if m, err := readMem(o.pid, o.storePath); err == nil {
		m.At = time.Since(start)
		s.AfterDrain = m
	}
	s.Senders = map[string]map[string]int{}
	for _, a := range ackSnap {
		if s.Senders[a.sender] == nil {
			s.Senders[a.sender] = map[string]int{}
		}
		s.Senders[a.sender][a.kind.String()]++
	}

	kinds, examples := t.snapshot()
	for k, ks := range kinds {
		s.Kinds[kind(k).String()] = ks
	}
	s.Examples = examples
	samplesMu.Lock()
	s.Samples = samples
	samplesMu.Unlock()
	mem, memErr := judgeMemory(s.Samples, loadTime, o.flatPct)
	s.Memory = mem

	// The verdict.
	add := func(name string, pass bool, detail string) {
		s.Checks = append(s.Checks, checkResult{Name: name, Pass: pass, Detail: detail})
	}
	var mismatches, transport int64
	for _, ks := range kinds {
		mismatches += ks.Mismatch
		transport += ks.Transport
	}
	add("every answer as expected", mismatches == 0 && transport == 0,
		fmt.Sprintf("%d mismatches, %d transport errors", mismatches, transport))
	add("every kind exercised", allKindsSent(kinds), "each kind sent at least once")
	add("queue drained", drainErr == nil, errString(drainErr, fmt.Sprintf("in %.1fs", drained.Seconds())))
	add("no run failed for good", errsErr == nil && finalErrors == 0,
		errString(errsErr, fmt.Sprintf("%d runs in error / complete_with_error", finalErrors)))
	add("simulator call log read", callsErr == nil, errString(callsErr, fmt.Sprintf("%d calls", rep.SimulatorCalls)))
	missingNote := ""
	if drainErr != nil && len(rep.Missing) > 0 {
		missingNote = " (the queue did not drain: missing runs may still be pending)"
	}
	add("every acknowledged run launched exactly once", callsErr == nil && rep.ok(),
		fmt.Sprintf("%d acknowledged, %d launched once, %d missing%s, %d more than once, %d extra, %d payload problems",
			rep.Acknowledged, rep.Launched, len(rep.Missing), missingNote, len(rep.Twice), len(rep.Extra), len(rep.PayloadProblems)))
	if o.outageCount > 0 {
		add("outage injected and retried through", strings.HasPrefix(s.Outage, fmt.Sprint(o.outageCount)) && rep.OutageServed == o.outageCount,
			fmt.Sprintf("%s; %d calls got %d", s.Outage, rep.OutageServed, o.outageStatus))
	}
	add(fmt.Sprintf("memory flat (RSS without the store's map: last-half growth < %g%%)", o.flatPct), memErr == nil && mem.Flat,
		errString(memErr, fmt.Sprintf("net %+.1f%% (%+.2f MiB/min); VmRSS %+.1f%%, RssAnon %+.1f%%",
			mem.NetGrowthPct, mem.NetSlopeMiBPerMin, mem.GrowthPct, mem.AnonGrowthPct)))
	add("gateway still running", s.AfterDrain.VmRSS > 0, fmt.Sprintf("pid %d", o.pid))

	printReport(out, &s, o)
	for _, c := range s.Checks {
		if !c.Pass {
			failed = true
		}
	}
	if o.jsonOut != "" {
		b, err := json.MarshalIndent(&s, "", "  ")
		if err == nil {
			err = os.WriteFile(o.jsonOut, append(b, '\n'), 0o644)
		}
		if err != nil {
			return failed, fmt.Errorf("writing %s: %w", o.jsonOut, err)
		}
	}
	return failed, nil
}

// sendOne sends p and records how the answer compared. In-flight requests
// are not tied to the load's deadline: cutting one off could leave a run
// stored whose answer was never seen, which the launch check would then
// report as an extra launch.
func sendOne(client *http.Client, p *planned, acked *ackLog, t *tally) {
	req, err := p.request()
	if err != nil {
		t.record(p.kind, 0, "building the request: "+err.Error(), true)
		return
	}
	resp, err := client.Do(req)
	if err != nil {
		t.record(p.kind, 0, "transport: "+err.Error(), true)
		return
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		t.record(p.kind, resp.StatusCode, "reading the answer: "+err.Error(), true)
		return
	}
	runID, problem := check(p.expect, answer{status: resp.StatusCode, header: resp.Header, body: body})
	if problem == "" && p.expect.launch && !acked.add(p, runID) {
		problem = "run id " + runID + " was already acknowledged for another delivery"
	}
	t.record(p.kind, resp.StatusCode, problem, false)
}

// saveHeap writes the gateway's heap profile, taken after a GC so that it
// shows live memory, to path.
func saveHeap(c *http.Client, admin, path string) error {
	resp, err := c.Get(admin + "/debug/pprof/heap?gc=1")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /debug/pprof/heap: %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func allKindsSent(kinds [numKinds]kindStats) bool {
	for _, ks := range kinds {
		if ks.Sent == 0 {
			return false
		}
	}
	return true
}

func errString(err error, ok string) string {
	if err != nil {
		return err.Error()
	}
	return ok
}

// printReport writes the Markdown summary tables.
func printReport(w io.Writer, s *summary, o *options) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "\n### Requests by kind (%s, %d workers, %d requests, %.0f/s)\n\n", s.Duration, s.Workers, s.RequestsSent, s.PerSecond)
	fmt.Fprintln(&b, "| kind | sent | as expected | mismatch | transport error | statuses |")
	fmt.Fprintln(&b, "|---|---:|---:|---:|---:|---|")
	var tot kindStats
	for k := range numKinds {
		ks := s.Kinds[k.String()]
		tot.Sent += ks.Sent
		tot.OK += ks.OK
		tot.Mismatch += ks.Mismatch
		tot.Transport += ks.Transport
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %s |\n", k, ks.Sent, ks.OK, ks.Mismatch, ks.Transport, statusList(ks.Statuses))
	}
	fmt.Fprintf(&b, "| **total** | %d | %d | %d | %d | |\n", tot.Sent, tot.OK, tot.Mismatch, tot.Transport)
	if len(s.Examples) > 0 {
		fmt.Fprintln(&b, "\nFirst mismatches:")
		for _, e := range s.Examples {
			fmt.Fprintln(&b, "- "+e)
		}
	}

	r := s.Launches
	fmt.Fprintln(&b, "\n### Launches")
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "| acknowledged | launched once | missing | more than once | extra | failed for good | payloads compared | drain |")
	fmt.Fprintln(&b, "|---:|---:|---:|---:|---:|---:|---:|---:|")
	fmt.Fprintf(&b, "| %d | %d | %d | %d | %d | %d | %d (%d differ) | %.1fs |\n",
		r.Acknowledged, r.Launched, len(r.Missing), len(r.Twice), len(r.Extra), r.FinalErrors,
		r.PayloadsChecked, len(r.PayloadProblems), r.DrainSeconds)
	fmt.Fprintf(&b, "\nAcknowledged by trigger: %s. Create-execution calls by simulator answer: %s. Outage: %s.\n",
		senderList(s.Senders), statusList(intKeys(r.ExecutionCalls)), s.Outage)
	for _, list := range []struct {
		name string
		ids  []string
	}{{"missing", r.Missing}, {"extra", r.Extra}, {"payload problems", r.PayloadProblems}} {
		if len(list.ids) > 0 {
			fmt.Fprintf(&b, "%s (first 10): %s\n", list.name, strings.Join(list.ids[:min(10, len(list.ids))], ", "))
		}
	}
	if len(r.Twice) > 0 {
		fmt.Fprintf(&b, "more than once: %v\n", r.Twice)
	}

	m := s.Memory
	fmt.Fprintf(&b, "\n### Gateway memory (pid %d, sampled every %s)\n\n", o.pid, o.sampleEvery)
	fmt.Fprintln(&b, "| point | at | VmRSS | RssAnon | RssFile | store map (RSS) | net = VmRSS - store map | store file | threads | fds |")
	fmt.Fprintln(&b, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	row := func(name string, p memSample) {
		fmt.Fprintf(&b, "| %s | %s | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %.1f MiB | %d | %d |\n",
			name, p.At.Round(time.Second), mib(p.VmRSS), mib(p.RssAnon), mib(p.RssFile), mib(p.StoreRss), mib(p.Net()),
			mib(p.StoreSize), p.Threads, p.FDs)
	}
	for i, name := range []string{"25%", "50%", "75%", "100%"} {
		row(name, m.Points[i])
	}
	row("after drain", s.AfterDrain)
	fmt.Fprintf(&b, "\nLast half of the load: net RSS %+.1f%% (%+.2f MiB/min), VmRSS %+.1f%% (%+.2f MiB/min), RssAnon %+.1f%%; peak VmHWM %.1f MiB. Flat = net growth < %g%%: %v.\n",
		m.NetGrowthPct, m.NetSlopeMiBPerMin, m.GrowthPct, m.SlopeMiBPerMin, m.AnonGrowthPct, mib(s.AfterDrain.VmHWM), m.Threshold, m.Flat)

	fmt.Fprintln(&b, "\n### Checks")
	fmt.Fprintln(&b)
	fmt.Fprintln(&b, "| check | result | detail |")
	fmt.Fprintln(&b, "|---|---|---|")
	for _, c := range s.Checks {
		res := "PASS"
		if !c.Pass {
			res = "**FAIL**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", c.Name, res, c.Detail)
	}
	w.Write(b.Bytes())
}

func mib(kib int64) float64 { return float64(kib) / 1024 }

func statusList(m map[int]int64) string {
	codes := make([]int, 0, len(m))
	for c := range m {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	parts := make([]string, 0, len(codes))
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", m[c], c))
	}
	return strings.Join(parts, ", ")
}

func intKeys(m map[int]int) map[int]int64 {
	out := make(map[int]int64, len(m))
	for k, v := range m {
		out[k] = int64(v)
	}
	return out
}

func senderList(m map[string]map[string]int) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		ks := make([]string, 0, len(m[n]))
		for k, v := range m[n] {
			ks = append(ks, fmt.Sprintf("%s %d", k, v))
		}
		sort.Strings(ks)
		parts = append(parts, n+" ("+strings.Join(ks, ", ")+")")
	}
	return strings.Join(parts, "; ")
}
