package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// answer is what the gateway sent back, as far as the checks need it.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// runAnswer is the JSON body of a launch (or duplicate) answer.
type runAnswer struct {
	RunID  string `json:"run_id"`
	Status string `json:"status"`
}

// check compares an answer with its expectation. It returns the run id the
// answer carries (for launches and duplicates) or why the answer is wrong.
func check(exp expectation, a answer) (runID string, problem string) {
	if !slices.Contains(exp.statuses, a.status) {
		return "", fmt.Sprintf("status %d, want %v; body %q", a.status, exp.statuses, excerpt(a.body))
	}
	if exp.allow != "" && a.header.Get("Allow") != exp.allow {
		return "", fmt.Sprintf("Allow %q, want %q", a.header.Get("Allow"), exp.allow)
	}
	dup := a.header.Get("Webhook-Duplicate")
	if !exp.launch && exp.duplicateOf == "" {
		if got := strings.TrimSpace(string(a.body)); got != exp.message {
			return "", fmt.Sprintf("body %q, want %q", excerpt(a.body), exp.message)
		}
		if dup != "" {
			return "", "a rejection carries Webhook-Duplicate"
		}
		return "", ""
	}
	var ra runAnswer
	if err := json.Unmarshal(a.body, &ra); err != nil {
		return "", fmt.Sprintf("body is not a run answer (%v): %q", err, excerpt(a.body))
	}
	if ra.RunID == "" {
		return "", fmt.Sprintf("no run_id in %q", excerpt(a.body))
	}
	// The HTTP status follows the run's state: 202 pending, 200 completed.
	want := map[string]int{"pending": http.StatusAccepted, "completed": http.StatusOK}[ra.Status]
	if want != a.status {
		return ra.RunID, fmt.Sprintf("status %d with run status %q", a.status, ra.Status)
	}
	if exp.duplicateOf != "" {
		if dup != "true" {
			return ra.RunID, fmt.Sprintf("Webhook-Duplicate %q, want \"true\"", dup)
		}
		if ra.RunID != exp.duplicateOf {
			return ra.RunID, fmt.Sprintf("duplicate answered run %s, want the first delivery's %s", ra.RunID, exp.duplicateOf)
		}
		return ra.RunID, ""
	}
	if dup != "" {
		return ra.RunID, fmt.Sprintf("a first delivery carries Webhook-Duplicate %q", dup)
	}
	return ra.RunID, ""
}

func excerpt(b []byte) string {
	const max = 160
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}

// ack is an acknowledged run: what must have been launched, once.
type ack struct {
	sender      string
	kind        kind
	bodySum     [sha256.Size]byte
	contentType string
}

// ackLog records acknowledged runs, and keeps a bounded window of recent
// deliveries per sender to redeliver as duplicates.
type ackLog struct {
	mu     sync.Mutex
	runs   map[string]ack
	recent map[*sender][]*delivery
	next   map[*sender]int
	keep   int
}

func newAckLog(keep int) *ackLog {
	return &ackLog{runs: map[string]ack{}, recent: map[*sender][]*delivery{}, next: map[*sender]int{}, keep: keep}
}

// add records the run acknowledged for p. It reports false when the run id
// was already acknowledged for another delivery.
func (l *ackLog) add(p *planned, runID string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, seen := l.runs[runID]; seen {
		return false
	}
	l.runs[runID] = ack{sender: p.sender.name, kind: p.kind, bodySum: sha256.Sum256(p.body), contentType: p.contentType}
	d := &delivery{sender: p.sender, id: p.deliveryID, body: p.body, contentType: p.contentType, runID: runID}
	r := l.recent[p.sender]
	if len(r) < l.keep {
		l.recent[p.sender] = append(r, d)
		return true
	}
	r[l.next[p.sender]] = d
	l.next[p.sender] = (l.next[p.sender] + 1) % l.keep
	return true
}

// pick returns a recent acknowledged delivery of s, or nil.
func (l *ackLog) pick(rng *mrand.Rand, s *sender) *delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	r := l.recent[s]
	if len(r) == 0 {
		return nil
	}
	return r[rng.IntN(len(r))]
}

// snapshot returns a copy of the acknowledged runs.
func (l *ackLog) snapshot() map[string]ack {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]ack, len(l.runs))
	for k, v := range l.runs {
		out[k] = v
	}
	return out
}

// kindStats counts one kind's requests and how they went.
type kindStats struct {
	Sent      int64         `json:"sent"`
	OK        int64         `json:"ok"`
	Mismatch  int64         `json:"mismatch"`
	Transport int64         `json:"transport_errors"`
	Statuses  map[int]int64 `json:"statuses"`
}

// tally holds the counters of the whole run and a few examples of what
// went wrong.
type tally struct {
	mu       sync.Mutex
	kinds    [numKinds]kindStats
	examples []string
}

const maxExamples = 25

func (t *tally) record(k kind, status int, problem string, transport bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &t.kinds[k]
	s.Sent++
	switch {
	case transport:
		s.Transport++
	case problem != "":
		s.Mismatch++
	default:
		s.OK++
	}
	if status != 0 {
		if s.Statuses == nil {
			s.Statuses = map[int]int64{}
		}
		s.Statuses[status]++
	}
	if problem != "" && len(t.examples) < maxExamples {
		t.examples = append(t.examples, k.String()+": "+problem)
	}
}

func (t *tally) snapshot() ([numKinds]kindStats, []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out [numKinds]kindStats
	for i, s := range t.kinds {
		out[i] = s
		out[i].Statuses = make(map[int]int64, len(s.Statuses))
		for c, n := range s.Statuses {
			out[i].Statuses[c] = n
		}
	}
	return out, slices.Clone(t.examples)
}
