package simulator

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// projectField resolves the required "project" field. An unknown project is
// a 404, as the real API answers for an unknown UUID; the other problems
// are field errors.
func (s *Simulator) projectField(obj map[string]any, errs fieldErrors) (*project, *reply) {
	v, ok := obj["project"]
	switch {
	case !ok:
		errs.add("project", msgRequired)
	case v == nil:
		errs.add("project", msgNull)
	default:
		id, ok := v.(string)
		if !ok {
			errs.add("project", fmt.Sprintf("Incorrect type. Expected pk value, received %s.", pyType(v)))
			return nil, nil
		}
		p := s.projects[id]
		if p == nil {
			return nil, ptr(notFound())
		}
		return p, nil
	}
	return nil, nil
}

// lookupCommit finds a commit by map key, full identifier, then branch or
// tag. An abbreviated sha matches nothing: the API does not expand one on
// create (valohai-cli expands it from the commit list first).
func (p *project) lookupCommit(ref string) *commitInfo {
	if c := p.byKey[ref]; c != nil {
		return c
	}
	if c := p.byIdent[ref]; c != nil {
		return c
	}
	return p.byRef[ref]
}

// validateRun checks the fields an execution body and a pipeline node
// template share. p may be nil when the project itself was invalid; then
// the commit cannot be looked up. It returns the commit when found.
//
// Unknown keys are ignored, as Django REST framework does. "environment" is
// accepted as any string: the simulator has no environment catalog.
func validateRun(obj map[string]any, p *project, task bool, errs fieldErrors) *commitInfo {
	var c *commitInfo
	if ref, ok := requiredString(obj, "commit", errs); ok && p != nil {
		if c = p.lookupCommit(ref); c == nil {
			errs.add("commit", coded(fmt.Sprintf("Object with identifier or ref %s does not exist.", ref), "does_not_exist"))
		}
	}
	if step, ok := requiredString(obj, "step", errs); ok && c != nil && c.steps != nil && !c.steps[step] {
		errs.add("step", coded(fmt.Sprintf("Step %q does not exist in the valohai.yaml of commit %s.", step, c.identifier), "does_not_exist"))
	}
	validateInputs(obj, errs)
	validateParameters(obj, task, errs)
	for _, f := range []string{"title", "environment", "image", "runtime_config_preset"} {
		optionalString(obj, f, errs)
	}
	optionalStringList(obj, "tags", errs)
	optionalStringList(obj, "environment_variable_groups", errs)
	optionalStringMap(obj, "environment_variables", errs)
	optionalObject(obj, "runtime_config", errs)
	optionalInt(obj, "priority", -1<<31, errs)
	optionalInt(obj, "time_limit", 0, errs)
	optionalBool(obj, "inherit_environment_variables", errs)
	validateCommand(obj, errs)
	return c
}

// validateCommand checks "command": a string or a list of strings.
func validateCommand(obj map[string]any, errs fieldErrors) {
	v, ok := present(obj, "command")
	if !ok {
		return
	}
	if list, ok := v.([]any); ok {
		for _, e := range list {
			if _, ok := e.(string); !ok {
				errs.add("command", msgString)
				return
			}
		}
		return
	}
	if _, ok := v.(string); !ok {
		errs.add("command", msgString)
	}
}

// createExecution answers POST /api/v0/executions/.
func (s *Simulator) createExecution(r *http.Request, base, _ string, body []byte) reply {
	obj, rep := decodeObject(r, body)
	if rep != nil {
		return *rep
	}
	errs := fieldErrors{}
	p, rep := s.projectField(obj, errs)
	if rep != nil {
		return *rep
	}
	c := validateRun(obj, p, false, errs)
	if len(errs) > 0 {
		return reply{status: http.StatusBadRequest, body: errs}
	}

	id := uuid.NewString()
	now := time.Now().UTC()
	exec := map[string]any{
		"id":         id,
		"status":     "created",
		"step":       obj["step"],
		"title":      valueOr(obj, "title", nil),
		"url":        base + apiPrefix + "executions/" + id + "/",
		"project":    projectJSON(base, p),
		"commit":     commitJSON(base, p, c, false),
		"parameters": valueOr(obj, "parameters", map[string]any{}),
		"inputs":     valueOr(obj, "inputs", map[string]any{}),
		"environment": func() any {
			if env, ok := present(obj, "environment"); ok {
				return environmentJSON(env.(string))
			}
			return nil
		}(),
		"environment_variables": valueOr(obj, "environment_variables", map[string]any{}),
		"tags":                  valueOr(obj, "tags", []any{}),
		"image":                 valueOr(obj, "image", nil),
		"command":               valueOr(obj, "command", nil),
		"runtime_config":        valueOr(obj, "runtime_config", map[string]any{}),
		"priority":              valueOr(obj, "priority", nil),
		"time_limit":            valueOr(obj, "time_limit", nil),
		"outputs":               []any{},
		"task":                  nil,
		"pipeline":              nil,
		"ctime":                 isoTime(now),
		"duration":              nil,
	}

	s.mu.Lock()
	s.execCounter[p.id]++
	counter := s.execCounter[p.id]
	exec["counter"] = counter
	exec["urls"] = map[string]any{
		"display": base + "/p/" + escapeName(p.name) + "/execution/" + strconv.Itoa(counter) + "/",
		"stop":    base + apiPrefix + "executions/" + id + "/stop/",
	}
	s.executions[id] = exec
	s.execByCounter[p.id+":"+strconv.Itoa(counter)] = id
	s.mu.Unlock()
	return reply{status: http.StatusCreated, body: exec}
}

// getExecution answers GET /api/v0/executions/{id}/, where id may also be
// {project}:{counter} or {project}:latest.
func (s *Simulator) getExecution(_ *http.Request, _, id string, _ []byte) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	if exec := s.executions[s.resolveCounter(id, s.execCounter, s.execByCounter)]; exec != nil {
		return reply{status: http.StatusOK, body: exec}
	}
	return notFound()
}

// resolveCounter turns {project}:{counter} or {project}:latest into an id;
// any other string is returned as is. Callers hold s.mu.
func (s *Simulator) resolveCounter(id string, last map[string]int, byCounter map[string]string) string {
	pid, counter, ok := strings.Cut(id, ":")
	if !ok {
		return id
	}
	if counter == "latest" {
		counter = strconv.Itoa(last[pid])
	}
	return byCounter[pid+":"+counter]
}

// valueOr is obj[field], or def when the field is absent or null.
func valueOr(obj map[string]any, field string, def any) any {
	if v, ok := present(obj, field); ok {
		return v
	}
	return def
}

func projectJSON(base string, p *project) map[string]any {
	return map[string]any{
		"id":   p.id,
		"name": p.name,
		"url":  base + apiPrefix + "projects/" + url.PathEscape(p.id) + "/",
	}
}

// environmentJSON describes an environment given by UUID or slug. There is
// no catalog, so the name is the value given and a slug gets a stable id.
func environmentJSON(v string) map[string]any {
	if id, err := uuid.Parse(v); err == nil {
		return map[string]any{"id": id.String(), "slug": nil, "name": v}
	}
	return map[string]any{"id": uuid.NewSHA1(uuid.NameSpaceURL, []byte("valohai-environment:"+v)).String(), "slug": v, "name": v}
}

// escapeName escapes each segment of an owner/name project name.
func escapeName(name string) string {
	seg := strings.Split(name, "/")
	for i, x := range seg {
		seg[i] = url.PathEscape(x)
	}
	return strings.Join(seg, "/")
}

// isoTime formats like Django REST framework's DateTimeField.
func isoTime(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

// listExecutions answers GET /api/v0/executions/?project=<id>: the
// project's executions, newest first (ordering=-counter, the order
// valohai-cli asks for), in the paginated shape {"count", "next",
// "previous", "results"}; limit (default 100) caps the page.
func (s *Simulator) listExecutions(r *http.Request, _, _ string, _ []byte) reply {
	return s.listObjects(r, s.executions)
}

// listObjects lists executions or pipelines of the ?project= project.
func (s *Simulator) listObjects(r *http.Request, objects map[string]map[string]any) reply {
	q := r.URL.Query()
	pid := q.Get("project")
	limit := 100
	if l, err := strconv.Atoi(q.Get("limit")); err == nil && l > 0 {
		limit = l
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, obj := range objects {
		proj, _ := obj["project"].(map[string]any)
		if pid != "" && (proj == nil || proj["id"] != pid) {
			continue
		}
		out = append(out, obj)
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["counter"].(int) > out[j]["counter"].(int) })
	count := len(out)
	if len(out) > limit {
		out = out[:limit]
	}
	results := make([]any, len(out))
	for i, o := range out {
		results[i] = o
	}
	return reply{status: http.StatusOK, body: map[string]any{"count": count, "next": nil, "previous": nil, "results": results}}
}
