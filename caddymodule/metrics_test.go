package caddymodule

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// counterValue reads one series from the registry, as /metrics shows it.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// The cached counters count what the vectors would, and a flood of distinct
// rejection reasons grows neither the cache nor the label set past the
// bound.
func TestMetricsCountersCachedAndBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, func() float64 { return 0 })
	for range 3 {
		m.request("github-push", "pending")
		m.rejected("webhook_hmac", "signature mismatch")
	}
	if got := counterValue(t, reg, "caddy_valohai_requests_total", map[string]string{"trigger": "github-push", "outcome": "pending"}); got != 3 {
		t.Fatalf("requests counted %v, want 3", got)
	}
	if got := counterValue(t, reg, "caddy_valohai_rejections_total", map[string]string{"directive": "webhook_hmac", "reason": "signature mismatch"}); got != 3 {
		t.Fatalf("rejections counted %v, want 3", got)
	}
	for i := range 500 {
		m.rejected("webhook_hmac", fmt.Sprintf("reason %d", i))
	}
	if n := len(m.rejectCounters); n > maxLabelValues {
		t.Fatalf("%d cached rejection counters, want at most %d", n, maxLabelValues)
	}
	if got := counterValue(t, reg, "caddy_valohai_rejections_total", map[string]string{"directive": "webhook_hmac", "reason": "other"}); got < 500-maxLabelValues {
		t.Fatalf("rejections past the bound counted as other: %v", got)
	}
}
