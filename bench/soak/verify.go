package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// simCall is one call the simulator recorded (GET /__simulator/calls); the
// response it sent is not needed and not decoded.
type simCall struct {
	Method string          `json:"method"`
	Path   string          `json:"path"`
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

// executionBody is the part of a create-execution body the soak reads.
type executionBody struct {
	Title  string              `json:"title"`
	Inputs map[string][]string `json:"inputs"`
}

// launchReport is the end-of-run comparison of what the gateway
// acknowledged with what reached Valohai.
type launchReport struct {
	Acknowledged int `json:"acknowledged"`
	// Launched counts distinct acknowledged runs with exactly one created
	// execution.
	Launched int `json:"launched_once"`
	// Missing: acknowledged, never created.
	Missing []string `json:"missing"`
	// Twice: created more than once (run id -> times).
	Twice map[string]int `json:"twice"`
	// Extra: created, never acknowledged.
	Extra []string `json:"extra"`
	// ExecutionCalls counts POST /api/v0/executions/ by the status the
	// simulator answered (503s are the injected outage).
	ExecutionCalls map[int]int `json:"execution_calls"`
	// OutageServed is how many calls got the injected outage status.
	OutageServed int `json:"outage_served"`
	// FinalErrors counts runs the gateway gave up on (error or
	// complete_with_error).
	FinalErrors int `json:"final_errors"`
	// Payloads checked byte-for-byte through valohai_payloads.
	PayloadsChecked  int      `json:"payloads_checked"`
	PayloadProblems  []string `json:"payload_problems"`
	DrainSeconds     float64  `json:"drain_seconds"`
	SimulatorCalls   int      `json:"simulator_calls"`
	SimulatorOther   int      `json:"simulator_other_calls"`
	executionByTitle map[string]executionBody
}

// ok reports whether every acknowledged run was launched exactly once and
// nothing else was.
func (r *launchReport) ok() bool {
	return len(r.Missing) == 0 && len(r.Twice) == 0 && len(r.Extra) == 0 && r.FinalErrors == 0 &&
		len(r.PayloadProblems) == 0 && r.Launched == r.Acknowledged
}

// runsPage is the admin API's GET /valohai/runs answer.
type runsPage struct {
	Runs []struct {
		ID     string `json:"run_id"`
		Status string `json:"status"`
	} `json:"runs"`
}

func getJSON(ctx context.Context, c *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// waitDrained polls the admin API until no run is pending, for at most
// timeout. It returns how long that took.
func waitDrained(ctx context.Context, c *http.Client, admin string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		var page runsPage
		if err := getJSON(ctx, c, admin+"/valohai/runs?status=pending&limit=1", &page); err != nil {
			return time.Since(start), fmt.Errorf("polling the queue: %w", err)
		}
		if len(page.Runs) == 0 {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(start), fmt.Errorf("runs still pending after %s (e.g. %s)", timeout, page.Runs[0].ID)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// countFinalErrors counts the runs the gateway gave up on.
func countFinalErrors(ctx context.Context, c *http.Client, admin string) (int, error) {
	n := 0
	for _, st := range []string{"error", "complete_with_error"} {
		var page runsPage
		if err := getJSON(ctx, c, admin+"/valohai/runs?status="+st+"&limit=10000", &page); err != nil {
			return 0, err
		}
		n += len(page.Runs)
	}
	return n, nil
}

// compareLaunches matches the simulator's created executions (their titles
// are run ids) against the acknowledged runs.
func compareLaunches(acked map[string]ack, calls []simCall, outageStatus int) *launchReport {
	r := &launchReport{
		Acknowledged:     len(acked),
		Twice:            map[string]int{},
		ExecutionCalls:   map[int]int{},
		SimulatorCalls:   len(calls),
		executionByTitle: map[string]executionBody{},
	}
	created := map[string]int{}
	for _, c := range calls {
		if c.Status == outageStatus {
			r.OutageServed++
		}
		if c.Method != http.MethodPost || !strings.HasSuffix(c.Path, "/api/v0/executions/") {
			r.SimulatorOther++
			continue
		}
		r.ExecutionCalls[c.Status]++
		if c.Status != http.StatusCreated {
			continue
		}
		var b executionBody
		if err := json.Unmarshal(c.Body, &b); err != nil || b.Title == "" {
			r.Extra = append(r.Extra, fmt.Sprintf("(execution without a title: %s)", excerpt(c.Body)))
			continue
		}
		created[b.Title]++
		r.executionByTitle[b.Title] = b
	}
	for id := range acked {
		switch n := created[id]; {
		case n == 0:
			r.Missing = append(r.Missing, id)
		case n == 1:
			r.Launched++
		default:
			r.Twice[id] = n
		}
	}
	for title := range created {
		if _, ok := acked[title]; !ok {
			r.Extra = append(r.Extra, title)
		}
	}
	slices.Sort(r.Missing)
	slices.Sort(r.Extra)
	return r
}

// checkPayloads fetches up to n acknowledged runs' payloads through the
// signed URL the execution received, and compares them with what was sent.
func checkPayloads(ctx context.Context, c *http.Client, acked map[string]ack, r *launchReport, n int) {
	ids := make([]string, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	// A spread over the whole run, not only its start.
	step := 1
	if n > 0 && len(ids) > n {
		step = len(ids) / n
	}
	for i := 0; i < len(ids) && r.PayloadsChecked < n; i += step {
		id := ids[i]
		exec, ok := r.executionByTitle[id]
		if !ok {
			continue // reported as missing already
		}
		urls := exec.Inputs["dataset"]
		if len(urls) != 1 {
			r.PayloadProblems = append(r.PayloadProblems, fmt.Sprintf("%s: dataset input %v, want one URL", id, urls))
			continue
		}
		r.PayloadsChecked++
		if problem := fetchPayload(ctx, c, urls[0], acked[id]); problem != "" {
			r.PayloadProblems = append(r.PayloadProblems, id+": "+problem)
		}
	}
}

func fetchPayload(ctx context.Context, c *http.Client, url string, a ack) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err.Error()
	}
	resp, err := c.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err.Error()
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("status %d: %s", resp.StatusCode, excerpt(body))
	}
	if sha256.Sum256(body) != a.bodySum {
		return fmt.Sprintf("payload of %d bytes differs from the body sent", len(body))
	}
	if ct := resp.Header.Get("Content-Type"); ct != a.contentType {
		return fmt.Sprintf("Content-Type %q, sent %q", ct, a.contentType)
	}
	return ""
}
