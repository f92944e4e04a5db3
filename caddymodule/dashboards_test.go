package caddymodule

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"gopkg.in/yaml.v3"
)

// docs/grafana-dashboard.json and docs/prometheus-rules.yml are read by
// Grafana and Prometheus, not by Go: these tests keep them honest. Every
// metric and label they query is one the plugin exports, every expression
// parses (promtool), and every alert fires in its scenario and stays quiet
// otherwise (promtool test rules, docs/prometheus-rules.test.yml).

// exportedSeries returns the series names the plugin exports, with their
// label names (a histogram's _bucket, _sum and _count included).
func exportedSeries(t *testing.T) map[string][]string {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := newMetrics(reg, func() float64 { return 0 }, true)
	// A vector is gathered once it has a child.
	m.requests.WithLabelValues("t", "completed").Inc()
	m.rejected("webhook_hmac", "signature mismatch")
	m.launches.WithLabelValues("run_execution", "ok").Inc()
	m.launchDuration.Observe(0.1)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, mf := range families {
		var labels []string
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			labels = append(labels, lp.GetName())
		}
		name := mf.GetName()
		if mf.GetType() == dto.MetricType_HISTOGRAM {
			out[name+"_bucket"] = append(slices.Clone(labels), "le")
			out[name+"_sum"] = labels
			out[name+"_count"] = labels
			continue
		}
		out[name] = labels
	}
	return out
}

// Grafana's variables, replaced by values PromQL accepts.
var (
	grafanaIntervalRe = regexp.MustCompile(`\$__(rate_interval|interval|range)\b`)
	grafanaVarRe      = regexp.MustCompile(`\$\{?[A-Za-z_]\w*\}?`)
	promStringRe      = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'`)
	promMatchersRe    = regexp.MustCompile(`\{([^}]*)\}`)
	promMatcherNameRe = regexp.MustCompile(`([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)`)
	promRangeRe       = regexp.MustCompile(`\[[^\]]*\]`)
	promGroupingRe    = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
	promTokenRe       = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*|\d[\w.]*`)
)

func grafanaToPromQL(expr string) string {
	expr = grafanaIntervalRe.ReplaceAllString(expr, "5m")
	return grafanaVarRe.ReplaceAllString(expr, "x")
}

// The PromQL functions, aggregations and keywords these files may use; any
// other word followed by "(" is reported, any other word is a metric name.
var (
	promFunctions = []string{"sum", "min", "max", "avg", "count", "rate", "irate", "increase", "deriv", "delta",
		"histogram_quantile", "vector", "clamp_min", "clamp_max", "abs", "min_over_time", "max_over_time", "avg_over_time", "absent", "label_values"}
	promKeywords = []string{"and", "or", "unless", "offset", "bool"}
)

// promRefs lists the metric names and label names a PromQL expression (or
// Grafana's label_values(metric, label)) references.
func promRefs(expr string) (metrics, labels, unknownFuncs []string) {
	if m := regexp.MustCompile(`^label_values\(\s*([A-Za-z_:]\w*)\s*,\s*([A-Za-z_]\w*)\s*\)$`).FindStringSubmatch(strings.TrimSpace(expr)); m != nil {
		return []string{m[1]}, []string{m[2]}, nil
	}
	e := promStringRe.ReplaceAllString(expr, `""`)
	for _, m := range promMatchersRe.FindAllStringSubmatch(e, -1) {
		for _, l := range promMatcherNameRe.FindAllStringSubmatch(m[1], -1) {
			labels = append(labels, l[1])
		}
	}
	e = promMatchersRe.ReplaceAllString(e, " ")
	e = promRangeRe.ReplaceAllString(e, " ")
	for _, m := range promGroupingRe.FindAllStringSubmatch(e, -1) {
		for _, l := range strings.Split(m[2], ",") {
			if l = strings.TrimSpace(l); l != "" {
				labels = append(labels, l)
			}
		}
	}
	e = promGroupingRe.ReplaceAllString(e, " ")
	for _, loc := range promTokenRe.FindAllStringIndex(e, -1) {
		tok := e[loc[0]:loc[1]]
		if tok[0] >= '0' && tok[0] <= '9' || slices.Contains(promKeywords, tok) {
			continue
		}
		if rest := strings.TrimLeft(e[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			if !slices.Contains(promFunctions, tok) {
				unknownFuncs = append(unknownFuncs, tok)
			}
			continue
		}
		metrics = append(metrics, tok)
	}
	return metrics, labels, unknownFuncs
}

// refProblems lists the metrics of expr the plugin does not export, the
// labels none of its metrics carry and the functions this check does not
// know.
func refProblems(expr string, exported map[string][]string) []string {
	metrics, labels, unknown := promRefs(expr)
	var out []string
	for _, f := range unknown {
		out = append(out, fmt.Sprintf("%q calls %s, a function this check does not know", expr, f))
	}
	if len(metrics) == 0 {
		out = append(out, fmt.Sprintf("%q queries no metric", expr))
	}
	have := []string{"instance", "job"} // added by Prometheus at scrape time
	for _, m := range metrics {
		l, ok := exported[m]
		if !ok {
			out = append(out, fmt.Sprintf("%q queries %s, which the plugin does not export", expr, m))
		}
		have = append(have, l...)
	}
	for _, l := range labels {
		if !slices.Contains(have, l) {
			out = append(out, fmt.Sprintf("%q uses the label %s, which %v do not have", expr, l, metrics))
		}
	}
	return out
}

func checkRefs(t *testing.T, where, expr string, exported map[string][]string) {
	t.Helper()
	for _, p := range refProblems(expr, exported) {
		t.Errorf("%s: %s", where, p)
	}
}

// dashboardQueries returns every query of the dashboard: panel targets'
// expr and templating variables' queries.
func dashboardQueries(t *testing.T) (exprs, variables []string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "docs", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("docs/grafana-dashboard.json: %v", err)
	}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs = append(exprs, tg.Expr)
		}
	}
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("templating query: %v", err)
		}
		variables = append(variables, q.Query)
	}
	return exprs, variables
}

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert string `yaml:"alert"`
			Expr  string `yaml:"expr"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func alertRules(t *testing.T) ruleFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "docs", "prometheus-rules.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var rf ruleFile
	if err := yaml.Unmarshal(raw, &rf); err != nil {
		t.Fatalf("docs/prometheus-rules.yml: %v", err)
	}
	return rf
}

func TestDashboardQueriesUseExportedMetrics(t *testing.T) {
	exported := exportedSeries(t)
	exprs, variables := dashboardQueries(t)
	for _, e := range exprs {
		checkRefs(t, "dashboard", grafanaToPromQL(e), exported)
	}
	for _, v := range variables {
		checkRefs(t, "dashboard variable", v, exported)
	}
	// The views issue 15 asks for: launch rate by trigger, rejections by
	// directive and reason, queue depth, launch latency, failures.
	all := strings.Join(exprs, "\n")
	for what, re := range map[string]string{
		"launch rate by trigger":             `sum by \(trigger\) \(rate\(caddy_valohai_requests_total`,
		"rejections by directive and reason": `sum by \(directive, reason\) \(rate\(caddy_valohai_rejections_total`,
		"queue depth":                        `max\(caddy_valohai_queue_depth\)`,
		"launch latency":                     `histogram_quantile\(0\.95, sum by \(le\) \(rate\(caddy_valohai_launch_duration_seconds_bucket`,
		"failures":                           `caddy_valohai_launches_total\{result="failed"\}`,
	} {
		if !regexp.MustCompile(re).MatchString(all) {
			t.Errorf("the dashboard has no panel for %s", what)
		}
	}
	// Every exported metric is on the dashboard and in README.md's
	// metrics table.
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name := range exported {
		base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
		if !strings.Contains(all, base) {
			t.Errorf("the dashboard does not show %s", base)
		}
		if !strings.Contains(string(readme), "`"+base+"`") {
			t.Errorf("README.md's metrics table lacks %s", base)
		}
	}
}

func TestAlertRulesUseExportedMetrics(t *testing.T) {
	exported := exportedSeries(t)
	rf := alertRules(t)
	var alerts []string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			checkRefs(t, "alert "+r.Alert, r.Expr, exported)
			alerts = append(alerts, r.Alert)
		}
	}
	for _, want := range []string{"ValohaiRunFailedForGood", "ValohaiQueueGrowing", "ValohaiAPIErrors", "ValohaiRejectionSpike"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("docs/prometheus-rules.yml has no %s", want)
		}
	}
}

// The reference check above must catch what it is for.
func TestPromRefsCatchesStrangers(t *testing.T) {
	exported := exportedSeries(t)
	for _, expr := range []string{
		`rate(caddy_valohai_request_total[5m])`,                                    // a typo
		`sum by (host) (rate(caddy_valohai_requests_total[5m]))`,                   // a label it lacks
		`caddy_valohai_queue_depth{trigger="x"}`,                                   // a matcher on a label it lacks
		`rate(caddy_http_requests_total[5m])`,                                      // not the plugin's
		`predict_linear(caddy_valohai_queue_depth[1h], 3600)`,                      // a function the check does not know
		`histogram_quantile(0.9, rate(caddy_valohai_launch_duration_seconds[5m]))`, // no _bucket
	} {
		if len(refProblems(expr, exported)) == 0 {
			t.Errorf("%q passed the reference check", expr)
		}
	}
}

// promtool is Debian's prometheus package; scripts/test.sh installs it.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: run the tests through `make test`, which installs it (Debian: apt-get install prometheus)")
	}
	return p
}

func TestAlertRulesWithPromtool(t *testing.T) {
	pt := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "prometheus-rules.yml"},
		{"test", "rules", "prometheus-rules.test.yml"},
	} {
		cmd := exec.Command(pt, args...)
		cmd.Dir = filepath.Join("..", "docs")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// TestDashboardQueriesParse: every panel query is valid PromQL, checked by
// promtool as recording rules (Grafana's variables replaced).
func TestDashboardQueriesParse(t *testing.T) {
	pt := promtool(t)
	exprs, _ := dashboardQueries(t)
	var b strings.Builder
	b.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	for i, e := range exprs {
		q, _ := json.Marshal(grafanaToPromQL(e)) // a JSON string is a YAML string
		fmt.Fprintf(&b, "      - record: dashboard:query_%d\n        expr: %s\n", i, q)
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(pt, "check", "rules", path).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules on the dashboard's queries: %v\n%s", err, out)
	}
}
