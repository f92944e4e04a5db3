package convert

import (
	"cmp"
	"fmt"
)

// Pipeline is a pipeline as GET /api/v0/pipelines/<id>/ describes it: what
// a copy needs (nodes with their templates, edges, parameters) and what a
// run records. Nodes, edges and parameters keep numbers as json.Number.
type Pipeline struct {
	// ID is the pipeline's UUID.
	ID string
	// Counter is the pipeline's number within its project.
	Counter int64
	// Status is Valohai's pipeline status, such as "started" or "complete".
	Status string
	// Title is the pipeline's title.
	Title string
	// Project is the project id (Valohai sends the project as an object or
	// as its id; both are read).
	Project string
	// Tags are the pipeline's tags.
	Tags []string
	// URL is the pipeline's API address.
	URL string
	// DisplayURL is its web UI address.
	DisplayURL string
	// Nodes are the node objects as sent, including server fields such as
	// id, status and execution.
	Nodes []map[string]any
	// Edges are the edge objects as sent, including id and pipeline.
	Edges []map[string]any
	// Parameters are the pipeline parameters by name, as sent.
	Parameters map[string]any
}

// copiedNodeFields are the node fields a copy keeps besides name, type,
// template and on-error: what defines the node, never the server's record
// of a run (id, status, execution, log, ...).
var copiedNodeFields = []string{
	"actions", "edge_merge_mode", "edge-merge-mode",
	"deployment", "commit", "aliases", "endpoints", "endpoint_configurations",
	"source",
}

// Copy builds the body of a new pipeline with this pipeline's graph: the
// nodes (name, type, template, on-error and the fields in copiedNodeFields),
// the edges (six fields and configuration), the parameters, the tags, the
// title and the project. A template's "project", should the API echo one,
// is dropped: the new pipeline's project applies. It fails when a node has
// no name or an unknown type, an execution or task node has no template
// (the API did not return it, so the graph cannot be rebuilt), or an edge
// names a node the pipeline does not have.
func (p *Pipeline) Copy() (*PipelineBody, error) {
	body := &PipelineBody{
		Project:    p.Project,
		Title:      p.Title,
		Tags:       append([]string{}, p.Tags...),
		Edges:      []PipelineEdge{},
		Parameters: map[string]*PipelineParameter{},
		name:       cmp.Or(p.Title, p.ID),
	}
	fail := func(format string, args ...any) error {
		return &PipelineError{Pipeline: body.name, Reason: fmt.Sprintf(format, args...)}
	}
	if len(p.Nodes) == 0 {
		return nil, fail("has no nodes to copy")
	}
	names := map[string]bool{}
	// Valohai's answer names an edge's nodes by node id (valohai-cli's
	// PIPELINE_DATA fixture); the new pipeline's edges name them by name.
	nameByID := map[string]string{}
	for _, raw := range p.Nodes {
		id, _ := raw["id"].(string)
		name, _ := raw["name"].(string)
		if id != "" && name != "" {
			nameByID[id] = name
		}
	}
	for i, raw := range p.Nodes {
		name, _ := raw["name"].(string)
		typ, _ := raw["type"].(string)
		switch {
		case name == "":
			return nil, fail("node #%d has no name", i+1)
		case names[name]:
			return nil, fail("more than one node is named %q", name)
		case typ != nodeExecution && typ != nodeTask && typ != nodeDeployment && typ != nodeMimic:
			return nil, fail("node %q has type %q, which cannot be copied", name, typ)
		}
		names[name] = true
		node := &PipelineNode{Name: name, Type: typ, Fields: map[string]any{}}
		if typ == nodeExecution || typ == nodeTask {
			tmpl, ok := asMap(raw["template"])
			if !ok {
				tmpl, ok = templateFromExecution(raw["execution"])
				node.inputsUnknown = ok
			}
			if !ok {
				return nil, fail("node %q: Valohai's answer carries no template for it (it holds only the node's name, type and run state), "+
					"so the graph cannot be rebuilt from the pipeline object; launch it from valohai.yaml instead with `pipeline <name> { commit ... }`", name)
			}
			node.Template = deepCopy(tmpl).(map[string]any)
			delete(node.Template, "project")
		}
		if v, ok := field(raw, "on_error", "on-error"); ok {
			s, _ := v.(string)
			node.OnError = s
		}
		for _, k := range copiedNodeFields {
			if v, ok := field(raw, k); ok {
				node.Fields[k] = deepCopy(v)
			}
		}
		// Sent with the converter's spelling, whichever Valohai answered.
		if v, ok := node.Fields["edge_merge_mode"]; ok {
			delete(node.Fields, "edge_merge_mode")
			node.Fields["edge-merge-mode"] = v
		}
		// A deployment given as an object is sent as its id.
		if dep, ok := asMap(node.Fields["deployment"]); ok {
			if id, ok := dep["id"].(string); ok {
				node.Fields["deployment"] = id
			}
		}
		body.Nodes = append(body.Nodes, node)
	}
	for i, raw := range p.Edges {
		var e PipelineEdge
		for _, f := range []struct {
			key string
			dst *string
		}{
			{"source_node", &e.SourceNode}, {"source_type", &e.SourceType}, {"source_key", &e.SourceKey},
			{"target_node", &e.TargetNode}, {"target_type", &e.TargetType}, {"target_key", &e.TargetKey},
		} {
			s, _ := raw[f.key].(string)
			if s == "" {
				return nil, fail("edge #%d has no %s", i+1, f.key)
			}
			if n, ok := nameByID[s]; ok && (f.key == "source_node" || f.key == "target_node") {
				s = n
			}
			*f.dst = s
		}
		if !names[e.SourceNode] || !names[e.TargetNode] {
			return nil, fail("edge #%d connects %q to %q, but the pipeline's nodes are %s",
				i+1, e.SourceNode, e.TargetNode, quoteList(body.nodeNames()))
		}
		if conf, ok := asMap(raw["configuration"]); ok && len(conf) > 0 {
			e.Configuration = deepCopy(conf).(map[string]any)
		}
		body.Edges = append(body.Edges, e)
	}
	for _, name := range sortedMapKeys(p.Parameters) {
		param, ok := asMap(p.Parameters[name])
		if !ok {
			return nil, fail("parameter %q is not an object with config and expression", name)
		}
		config, _ := asMap(param["config"])
		body.Parameters[name] = &PipelineParameter{
			Config:     deepCopy(config).(map[string]any),
			Expression: deepCopy(param["expression"]),
		}
		if body.Parameters[name].Config == nil {
			body.Parameters[name].Config = map[string]any{"name": name}
		}
	}
	return body, nil
}

// templateFromExecution rebuilds a node template from the execution a
// node ran (as Valohai's pipeline answer embeds it): the commit, step,
// parameters, inputs when listed, and the environment's id.
func templateFromExecution(v any) (map[string]any, bool) {
	exec, ok := asMap(v)
	if !ok {
		return nil, false
	}
	step, _ := exec["step"].(string)
	commit, _ := asMap(exec["commit"])
	ident, _ := commit["identifier"].(string)
	if step == "" || ident == "" {
		return nil, false
	}
	tmpl := map[string]any{"commit": ident, "step": step}
	if params, ok := asMap(exec["parameters"]); ok {
		tmpl["parameters"] = deepCopy(params)
	}
	if inputs, ok := asMap(exec["inputs"]); ok {
		tmpl["inputs"] = deepCopy(inputs)
	}
	if env, ok := asMap(exec["environment"]); ok {
		if id, ok := env["id"].(string); ok && id != "" {
			tmpl["environment"] = id
		}
	}
	return tmpl, true
}
