package simulator

import (
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// nodeTypes are the pipeline node types valohai-yaml knows.
var nodeTypes = map[string]bool{"execution": true, "task": true, "deployment": true, "mimic": true}

// edgeTypes are the edge endpoint types valohai-yaml knows.
var edgeTypes = map[string]bool{
	"input": true, "output": true, "parameter": true, "metadata": true, "file": true,
	"deployment": true, "dependency": true, "environment-variable": true,
}

// edgeFields are the fields every edge needs.
var edgeFields = []string{"source_node", "source_type", "source_key", "target_node", "target_type", "target_key"}

// createPipeline answers POST /api/v0/pipelines/.
func (s *Simulator) createPipeline(r *http.Request, base, _ string, body []byte) reply {
	obj, rep := decodeObject(r, body)
	if rep != nil {
		return *rep
	}
	errs := fieldErrors{}
	p, rep := s.projectField(obj, errs)
	if rep != nil {
		return *rep
	}
	requiredString(obj, "title", errs)
	optionalStringList(obj, "tags", errs)
	nodes, names := s.validateNodes(obj, p, errs)
	validateEdges(obj, names, errs)
	validatePipelineParameters(obj, names, errs)
	if len(errs) > 0 {
		return reply{status: http.StatusBadRequest, body: errs}
	}

	id := uuid.NewString()
	nodesOut := make([]any, len(nodes))
	nodeIDs := make([]string, len(nodes))
	idByName := map[string]string{}
	for i, n := range nodes {
		// The shape valohai-cli's fixture (PIPELINE_DATA) records: a node
		// carries no template, only its name, type and run state.
		nodeIDs[i] = uuid.NewString()
		out := map[string]any{
			"id": nodeIDs[i], "name": n["name"], "type": n["type"], "pipeline": id,
			"status": "created", "execution": nil, "log": []any{},
		}
		if name, ok := n["name"].(string); ok {
			idByName[name] = nodeIDs[i]
		}
		nodesOut[i] = out
	}
	var edgesOut []any
	if list, ok := valueOr(obj, "edges", []any{}).([]any); ok {
		for _, e := range list {
			out := maps.Clone(e.(map[string]any))
			out["id"] = uuid.NewString()
			out["pipeline"] = id
			// Edges name their nodes by node id, as in PIPELINE_DATA.
			for _, k := range []string{"source_node", "target_node"} {
				if name, ok := out[k].(string); ok && idByName[name] != "" {
					out[k] = idByName[name]
				}
			}
			edgesOut = append(edgesOut, out)
		}
	}
	if edgesOut == nil {
		edgesOut = []any{}
	}
	pipe := map[string]any{
		"id":         id,
		"status":     "started",
		"title":      obj["title"],
		"project":    projectJSON(base, p),
		"tags":       valueOr(obj, "tags", []any{}),
		"nodes":      nodesOut,
		"edges":      edgesOut,
		"parameters": valueOr(obj, "parameters", map[string]any{}),
		"url":        base + apiPrefix + "pipelines/" + id + "/",
		"ctime":      isoTime(time.Now()),
	}

	s.mu.Lock()
	s.pipeCounter[p.id]++
	counter := s.pipeCounter[p.id]
	pipe["counter"] = counter
	pipe["urls"] = map[string]any{
		"display": base + "/p/" + escapeName(p.name) + "/pipeline/" + strconv.Itoa(counter) + "/",
	}
	s.pipelines[id] = pipe
	s.pipeByCounter[p.id+":"+strconv.Itoa(counter)] = id
	for _, nid := range nodeIDs {
		s.nodeProject[nid] = p.id
	}
	// Every execution node starts at once: its execution is created and
	// embedded in the node, as Valohai's answer embeds a started node's
	// execution (PIPELINE_DATA's "preprocess" node).
	for i, n := range nodes {
		tmpl, _ := n["template"].(map[string]any)
		if n["type"] != "execution" || tmpl == nil {
			continue
		}
		ref, _ := tmpl["commit"].(string)
		c := p.lookupCommit(ref)
		if c == nil {
			continue
		}
		eid := uuid.NewString()
		s.execCounter[p.id]++
		ecounter := s.execCounter[p.id]
		exec := map[string]any{
			"id": eid, "counter": ecounter, "status": "created", "step": tmpl["step"],
			"title": nil, "project": projectJSON(base, p), "commit": commitJSON(base, p, c, false),
			"parameters": valueOr(tmpl, "parameters", map[string]any{}),
			"inputs":     valueOr(tmpl, "inputs", map[string]any{}),
			"tags":       valueOr(obj, "tags", []any{}),
			"url":        base + apiPrefix + "executions/" + eid + "/",
			"pipeline":   id, "ctime": isoTime(time.Now()),
		}
		if env, ok := tmpl["environment"].(string); ok && env != "" {
			exec["environment"] = environmentJSON(env)
		}
		s.executions[eid] = exec
		s.execByCounter[p.id+":"+strconv.Itoa(ecounter)] = eid
		nodesOut[i].(map[string]any)["execution"] = exec
		nodesOut[i].(map[string]any)["status"] = "started"
	}
	s.mu.Unlock()
	return reply{status: http.StatusCreated, body: pipe}
}

// getPipeline answers GET /api/v0/pipelines/{id}/, where id may also be
// {project}:{counter} or {project}:latest.
func (s *Simulator) getPipeline(_ *http.Request, _, id string, _ []byte) reply {
	s.mu.Lock()
	defer s.mu.Unlock()
	if pipe := s.pipelines[s.resolveCounter(id, s.pipeCounter, s.pipeByCounter)]; pipe != nil {
		return reply{status: http.StatusOK, body: pipe}
	}
	return notFound()
}

// validateNodes checks "nodes" and returns them with the set of valid node
// names. Errors are a list aligned with the nodes, {} for a good node, as
// Django REST framework reports nested lists.
func (s *Simulator) validateNodes(obj map[string]any, p *project, errs fieldErrors) ([]map[string]any, map[string]bool) {
	names := map[string]bool{}
	v, ok := obj["nodes"]
	switch {
	case !ok:
		errs.add("nodes", msgRequired)
		return nil, names
	case v == nil:
		errs.add("nodes", msgNull)
		return nil, names
	}
	list, ok := v.([]any)
	if !ok {
		errs.add("nodes", fmt.Sprintf("Expected a list of items but got type %q.", pyType(v)))
		return nil, names
	}
	if len(list) == 0 {
		errs.add("nodes", msgEmpty)
		return nil, names
	}
	nodes := make([]map[string]any, len(list))
	nodeErrs := make([]any, len(list))
	failed := false
	for i, x := range list {
		ne := fieldErrors{}
		if node, ok := x.(map[string]any); ok {
			nodes[i] = node
			s.validateNode(node, p, names, ne)
		} else {
			ne.add("non_field_errors", fmt.Sprintf("Invalid data. Expected a dictionary, but got %s.", pyType(x)))
		}
		nodeErrs[i] = ne
		failed = failed || len(ne) > 0
	}
	if failed {
		errs["nodes"] = nodeErrs
	}
	return nodes, names
}

// validateNode checks one node; names collects node names seen so far.
func (s *Simulator) validateNode(node map[string]any, p *project, names map[string]bool, ne fieldErrors) {
	if name, ok := requiredString(node, "name", ne); ok {
		if names[name] {
			ne.add("name", fmt.Sprintf("Node name %q is used by more than one node.", name))
		}
		names[name] = true
	}
	typ, ok := requiredString(node, "type", ne)
	if ok && !nodeTypes[typ] {
		ne.add("type", fmt.Sprintf("%q is not a valid choice.", typ))
	}
	switch typ {
	case "execution", "task":
		tv, ok := node["template"]
		if !ok || tv == nil {
			ne.add("template", msgRequired)
			return
		}
		tmpl, ok := tv.(map[string]any)
		if !ok {
			ne["template"] = fieldErrors{"non_field_errors": []any{
				fmt.Sprintf("Invalid data. Expected a dictionary, but got %s.", pyType(tv)),
			}}
			return
		}
		te := fieldErrors{}
		validateRun(tmpl, p, typ == "task", te)
		if len(te) > 0 {
			ne["template"] = te
		}
	case "mimic":
		src, ok := requiredString(node, "source", ne)
		if !ok || p == nil {
			return
		}
		s.mu.Lock()
		known := s.nodeProject[src] == p.id
		s.mu.Unlock()
		if !known {
			ne.add("source", coded(fmt.Sprintf("Pipeline node %s does not exist in this project.", src), "does_not_exist"))
		}
	}
}

// validateEdges checks "edges": each names existing nodes and known types.
func validateEdges(obj map[string]any, names map[string]bool, errs fieldErrors) {
	v, ok := present(obj, "edges")
	if !ok {
		return
	}
	list, ok := v.([]any)
	if !ok {
		errs.add("edges", fmt.Sprintf("Expected a list of items but got type %q.", pyType(v)))
		return
	}
	edgeErrs := make([]any, len(list))
	failed := false
	for i, x := range list {
		ee := fieldErrors{}
		if edge, ok := x.(map[string]any); ok {
			for _, f := range edgeFields {
				val, ok := requiredString(edge, f, ee)
				switch {
				case !ok:
				case strings.HasSuffix(f, "_node") && !names[val]:
					ee.add(f, coded(fmt.Sprintf("Node %q does not exist in this pipeline.", val), "does_not_exist"))
				case strings.HasSuffix(f, "_type") && !edgeTypes[val]:
					ee.add(f, fmt.Sprintf("%q is not a valid choice.", val))
				}
			}
		} else {
			ee.add("non_field_errors", fmt.Sprintf("Invalid data. Expected a dictionary, but got %s.", pyType(x)))
		}
		edgeErrs[i] = ee
		failed = failed || len(ee) > 0
	}
	if failed {
		errs["edges"] = edgeErrs
	}
}

// validatePipelineParameters checks "parameters": each is an object like
// {"config": {"name", "default", "targets": ["node.parameters.x"]},
// "expression": ...}, and each target starts with the name of a node.
func validatePipelineParameters(obj map[string]any, names map[string]bool, errs fieldErrors) {
	m := optionalObject(obj, "parameters", errs)
	bad := map[string]any{}
	for _, name := range sortedKeys(m) {
		param, ok := m[name].(map[string]any)
		if !ok {
			bad[name] = []any{fmt.Sprintf("Expected a dictionary of items but got type %q.", pyType(m[name]))}
			continue
		}
		cv, ok := present(param, "config")
		if !ok {
			continue
		}
		config, ok := cv.(map[string]any)
		if !ok {
			bad[name] = []any{fmt.Sprintf("config: expected a dictionary of items but got type %q.", pyType(cv))}
			continue
		}
		tv, ok := present(config, "targets")
		if !ok {
			continue
		}
		targets, ok := tv.([]any)
		if !ok {
			bad[name] = []any{fmt.Sprintf("config.targets: expected a list of items but got type %q.", pyType(tv))}
			continue
		}
		var msgs []any
		for _, t := range targets {
			target, ok := t.(string)
			if !ok {
				msgs = append(msgs, "config.targets: "+msgString)
				continue
			}
			node, _, _ := strings.Cut(target, ".")
			if !names[node] {
				msgs = append(msgs, fmt.Sprintf("Target %q names no node of this pipeline.", target))
			}
		}
		if len(msgs) > 0 {
			bad[name] = msgs
		}
	}
	if len(bad) > 0 {
		errs["parameters"] = bad
	}
}

// listPipelines answers GET /api/v0/pipelines/?project=<id> like
// listExecutions.
func (s *Simulator) listPipelines(r *http.Request, _, _ string, _ []byte) reply {
	return s.listObjects(r, s.pipelines)
}
