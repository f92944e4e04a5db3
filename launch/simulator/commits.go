package simulator

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
)

// commitJSON describes a commit as the commits endpoints do.
func commitJSON(base string, p *project, c *commitInfo, withConfig bool) map[string]any {
	out := map[string]any{
		"repository":  p.repository,
		"identifier":  c.identifier,
		"ref":         c.ref,
		"commit_time": isoTime(c.time),
		"adhoc":       strings.HasPrefix(c.identifier, "~"),
		"url":         base + apiPrefix + "commits/" + url.PathEscape(c.identifier) + "/",
	}
	if withConfig {
		cfg := c.config
		if cfg == nil {
			cfg = []any{}
		}
		out["config"] = cfg
	}
	return out
}

// listCommits answers GET /api/v0/commits/?project=&adhoc=, the list the
// CLI resolves refs from. Everything fits on one page: next is always null
// and limit/offset are ignored.
func (s *Simulator) listCommits(r *http.Request, base, _ string, _ []byte) reply {
	q := r.URL.Query()
	ids := s.ids
	if pid := q.Get("project"); pid != "" {
		if s.projects[pid] == nil {
			return reply{status: http.StatusBadRequest, body: fieldErrors{"project": []any{
				"Select a valid choice. That choice is not one of the available choices.",
			}}}
		}
		ids = []string{pid}
	}
	adhoc := q.Get("adhoc")
	results := []any{}
	for _, id := range ids {
		p := s.projects[id]
		for _, c := range p.commits {
			isAdhoc := strings.HasPrefix(c.identifier, "~")
			if (adhoc == "false" && isAdhoc) || (adhoc == "true" && !isAdhoc) {
				continue
			}
			results = append(results, commitJSON(base, p, c, false))
		}
	}
	return reply{status: http.StatusOK, body: map[string]any{
		"count": len(results), "next": nil, "previous": nil, "results": results,
	}}
}

// getCommit answers GET /api/v0/commits/{identifier}/. The lookup is by
// identifier only (not by ref), like the real endpoint; ?project= scopes it
// (an identifier shared by several projects otherwise resolves to the
// first project id in sort order) and ?include=config adds the parsed
// valohai.yaml.
func (s *Simulator) getCommit(r *http.Request, base, ident string, _ []byte) reply {
	q := r.URL.Query()
	ids := s.ids
	if pid := q.Get("project"); pid != "" {
		if s.projects[pid] == nil {
			return notFound()
		}
		ids = []string{pid}
	}
	withConfig := false
	for _, inc := range q["include"] {
		for _, part := range strings.Split(inc, ",") {
			withConfig = withConfig || strings.TrimSpace(part) == "config"
		}
	}
	for _, id := range ids {
		p := s.projects[id]
		if c := p.byIdent[ident]; c != nil {
			return reply{status: http.StatusOK, body: commitJSON(base, p, c, withConfig)}
		}
	}
	return notFound()
}

// fetchProject answers POST /api/v0/projects/{id}/fetch/ (no body needed).
// Its commits are the project's commits no earlier fetch has reported: the
// first fetch returns every configured commit (once each, sorted by
// identifier), later fetches return none, as if the repository had not
// moved. errors is always empty.
func (s *Simulator) fetchProject(_ *http.Request, base, pid string, _ []byte) reply {
	p := s.projects[pid]
	if p == nil {
		return notFound()
	}
	s.mu.Lock()
	seen := s.fetched[pid]
	if seen == nil {
		seen = map[string]bool{}
		s.fetched[pid] = seen
	}
	commits := []any{}
	for _, c := range p.commits {
		if !seen[c.identifier] {
			seen[c.identifier] = true
			commits = append(commits, commitJSON(base, p, c, false))
		}
	}
	s.mu.Unlock()
	return reply{status: http.StatusCreated, body: map[string]any{"commits": commits, "errors": []any{}}}
}

// stepNames lists the step names of a valohai.yaml, nil when there is no
// config to check against.
func stepNames(config []any) map[string]bool {
	if len(config) == 0 {
		return nil
	}
	steps := map[string]bool{}
	for _, item := range config {
		m, _ := item.(map[string]any)
		step, _ := m["step"].(map[string]any)
		if name, ok := step["name"].(string); ok {
			steps[name] = true
		}
	}
	return steps
}

// normalizeConfig copies a parsed valohai.yaml into JSON-compatible values:
// maps with non-string keys (as some YAML decoders produce) get string keys,
// and non-finite floats, which JSON cannot hold, are an error (they are
// replaced by their text in the copy, so the simulator still answers).
func normalizeConfig(config []any) ([]any, error) {
	if config == nil {
		return nil, nil
	}
	var firstErr error
	out := normalizeValue(config, "", &firstErr).([]any)
	if firstErr == nil {
		if _, err := json.Marshal(out); err != nil {
			firstErr = err
		}
	}
	return out, firstErr
}

func normalizeValue(v any, path string, firstErr *error) any {
	fail := func(err error) {
		if *firstErr == nil {
			*firstErr = err
		}
	}
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalizeValue(e, fmt.Sprintf("%s[%d]", path, i), firstErr)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalizeValue(e, path+"."+k, firstErr)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			ks := fmt.Sprint(k)
			out[ks] = normalizeValue(e, path+"."+ks, firstErr)
		}
		return out
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			fail(fmt.Errorf("config%s: %v cannot be represented in JSON", path, x))
			return fmt.Sprint(x)
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			fail(fmt.Errorf("config%s: %v cannot be represented in JSON", path, x))
			return fmt.Sprint(x)
		}
	}
	return v
}
