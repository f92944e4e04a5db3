package caddymodule

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// metrics are the app's Prometheus collectors on Caddy's registry (served by
// Caddy's `metrics` handler and the admin /metrics endpoint). Every label
// takes values from a bounded set: trigger names from the config, directive
// names, the validators' fixed reasons, action kinds and outcomes.
type metrics struct {
	requests       *prometheus.CounterVec
	rejections     *prometheus.CounterVec
	launches       *prometheus.CounterVec
	launchDuration prometheus.Histogram
	// The embedded store's group commits (nil for redis): how long each
	// took until durable, and how many writes shared it.
	commitDuration prometheus.Histogram
	commitWrites   prometheus.Histogram
	labels         boundedLabels

	// The counters already looked up, by their two label values: a
	// request then costs a read-locked map lookup instead of hashing its
	// labels into the vector and, for rejections, the bound's mutex.
	mu              sync.RWMutex
	requestCounters map[[2]string]prometheus.Counter
	rejectCounters  map[[2]string]prometheus.Counter
}

// request counts a webhook that reached valohai_launch (or was answered as
// a duplicate of one) under its trigger and outcome: both from bounded
// sets (trigger names from the config, fixed outcomes).
func (m *metrics) request(trigger, outcome string) {
	key := [2]string{trigger, outcome}
	if c, ok := m.cached(&m.requestCounters, key); ok {
		c.Inc()
		return
	}
	c := m.requests.WithLabelValues(trigger, outcome)
	m.cache(&m.requestCounters, key, c)
	c.Inc()
}

// rejected counts a rejection by directive and reason, each bounded: past
// maxLabelValues distinct values a label reads "other", and such a
// rejection is counted without being cached, so the cache stays bounded.
func (m *metrics) rejected(directive, reason string) {
	key := [2]string{directive, reason}
	if c, ok := m.cached(&m.rejectCounters, key); ok {
		c.Inc()
		return
	}
	d, r := m.labels.get(directive), m.labels.get(reason)
	c := m.rejections.WithLabelValues(d, r)
	if d == directive && r == reason {
		m.cache(&m.rejectCounters, key, c)
	}
	c.Inc()
}

func (m *metrics) cached(cache *map[[2]string]prometheus.Counter, key [2]string) (prometheus.Counter, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, ok := (*cache)[key]
	return c, ok
}

func (m *metrics) cache(cache *map[[2]string]prometheus.Counter, key [2]string, c prometheus.Counter) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if *cache == nil {
		*cache = map[[2]string]prometheus.Counter{}
	}
	(*cache)[key] = c
}

// commit records one durable commit of the embedded store
// (store.CommitObserver).
func (m *metrics) commit(writes int, took time.Duration) {
	m.commitDuration.Observe(took.Seconds())
	m.commitWrites.Observe(float64(writes))
}

// newMetrics registers the app's collectors on reg; the store commit
// histograms only for an embedded store (embedded), whose writes share
// group commits.
func newMetrics(reg *prometheus.Registry, queueDepth func() float64, embedded bool) *metrics {
	f := promauto.With(reg)
	m := &metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "valohai", Name: "requests_total",
			Help: "Webhooks that reached valohai_launch, by trigger and outcome (completed, pending, error, complete_with_error, duplicate, store_error).",
		}, []string{"trigger", "outcome"}),
		rejections: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "valohai", Name: "rejections_total",
			Help: "Webhooks rejected by a condition, by directive and reason.",
		}, []string{"directive", "reason"}),
		launches: f.NewCounterVec(prometheus.CounterOpts{
			Namespace: "caddy", Subsystem: "valohai", Name: "launches_total",
			Help: "Valohai calls by action kind and result (ok, retry, failed).",
		}, []string{"action", "result"}),
		launchDuration: f.NewHistogram(prometheus.HistogramOpts{
			Namespace: "caddy", Subsystem: "valohai", Name: "launch_duration_seconds",
			Help:    "Duration of one Valohai API call of an action.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
	}
	if embedded {
		m.commitDuration = f.NewHistogram(prometheus.HistogramOpts{
			Namespace: "caddy", Subsystem: "valohai", Name: "store_commit_duration_seconds",
			Help:    "Duration of one group commit of the embedded store, from the start of its transaction until it is durable (fsync included).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		})
		m.commitWrites = f.NewHistogram(prometheus.HistogramOpts{
			Namespace: "caddy", Subsystem: "valohai", Name: "store_commit_writes",
			Help:    "Writes (accepted webhooks, claims and results of launches) that shared one group commit of the embedded store.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		})
	}
	f.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "caddy", Subsystem: "valohai", Name: "queue_depth",
		Help: "Runs waiting in the launch queue (including runs being launched).",
	}, queueDepth)
	return m
}

// boundedLabels caps the distinct values a label may take: directive and
// reason values come from fixed sets in the validators, but the cap makes
// the bound hold whatever a future condition reports.
type boundedLabels struct {
	mu   sync.Mutex
	seen map[string]bool
}

const maxLabelValues = 64

func (b *boundedLabels) get(v string) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.seen == nil {
		b.seen = map[string]bool{}
	}
	if b.seen[v] {
		return v
	}
	if len(b.seen) >= maxLabelValues {
		return "other"
	}
	b.seen[v] = true
	return v
}

func queueDepthFunc(a *App) func() float64 {
	return func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := a.store.QueueDepth(ctx)
		if err != nil {
			return -1
		}
		return float64(n)
	}
}
