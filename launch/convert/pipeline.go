package convert

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// This file is a Go port of valohai-yaml's PipelineConverter
// (valohai_yaml/pipelines/conversion.py), the code `vh pipeline run` uses to
// turn a pipeline of valohai.yaml into the body of POST /api/v0/pipelines/.
// Valohai has no endpoint that starts a pipeline by name, so the gateway
// reads the commit's valohai.yaml through the API (?include=config) and
// converts it here, exactly as the CLI would, so that a pipeline launched
// from a webhook is the pipeline a user gets from the CLI or the UI.
//
// Where the port departs from the Python code it says so at the spot; the
// departures either make a body the API can take where Python would build
// one it cannot, or turn a Python crash into a clear error.

// Node types of a pipeline, as valohai-yaml names them.
const (
	nodeExecution  = "execution"
	nodeTask       = "task"
	nodeDeployment = "deployment"
	nodeMimic      = "mimic"
)

// edgeEndpointTypes are the edge socket types valohai-yaml accepts
// (valohai_yaml/objs/pipelines/types.py).
var edgeEndpointTypes = map[string]bool{
	"dependency": true, "deployment": true, "environment-variable": true, "file": true,
	"input": true, "metadata": true, "output": true, "parameter": true,
}

// onErrorValues are a node's on-error choices; "stop-all" is the default.
var onErrorValues = map[string]bool{"stop-all": true, "stop-next": true, "continue": true, "retry": true}

// edgeMergeModes are a node's edge-merge-mode choices; "replace" is the default.
var edgeMergeModes = map[string]bool{"replace": true, "append": true}

// taskTypes are the task types a task blueprint may name.
var taskTypes = map[string]bool{
	"bayesian_tpe": true, "grid_search": true, "distributed": true, "random_search": true, "manual_search": true,
}

// onChildErrorValues are a task blueprint's on-child-error choices.
var onChildErrorValues = map[string]bool{
	"continue-and-complete": true, "continue-and-error": true, "stop-all-and-error": true,
}

// variantStyles are the styles of a task's variant parameter.
var variantStyles = map[string]bool{"logspace": true, "multiple": true, "linear": true, "single": true, "random": true}

// PipelineError is a problem with a pipeline definition or with an override
// applied to it: a pipeline, step, task, node, input or parameter that does
// not exist, or a malformed valohai.yaml entry. Sending the same action again
// cannot help, so Retryable reports false for it.
type PipelineError struct {
	// Pipeline is the pipeline's name in valohai.yaml (or the title of a
	// copied pipeline); empty when not known yet.
	Pipeline string
	// Reason says what is wrong and, where it can, what exists instead.
	Reason string
}

// Error reads like `pipeline "train": node "fit": step "fit" is not defined ...`.
func (e *PipelineError) Error() string {
	if e.Pipeline == "" {
		return "pipeline: " + e.Reason
	}
	return fmt.Sprintf("pipeline %q: %s", e.Pipeline, e.Reason)
}

// PipelineBody is the body of POST /api/v0/pipelines/: the converted graph
// plus project, title and tags. Marshal it with encoding/json.
type PipelineBody struct {
	// Project is the Valohai project id; ConvertPipeline leaves it empty.
	Project string `json:"project"`
	// Title defaults to the pipeline's name (a copy: the source's title).
	Title string `json:"title"`
	// Tags are sent as a list, empty when nil.
	Tags []string `json:"tags"`
	// Nodes in valohai.yaml order.
	Nodes []*PipelineNode `json:"nodes"`
	// Edges in valohai.yaml order.
	Edges []PipelineEdge `json:"edges"`
	// Parameters are the pipeline parameters by name.
	Parameters map[string]*PipelineParameter `json:"parameters"`

	// name is the pipeline's name, for error messages.
	name string
}

// MarshalJSON sends nil lists and maps as empty ones, which the API expects.
func (b PipelineBody) MarshalJSON() ([]byte, error) {
	type plain PipelineBody
	p := plain(b)
	if p.Tags == nil {
		p.Tags = []string{}
	}
	if p.Nodes == nil {
		p.Nodes = []*PipelineNode{}
	}
	if p.Edges == nil {
		p.Edges = []PipelineEdge{}
	}
	if p.Parameters == nil {
		p.Parameters = map[string]*PipelineParameter{}
	}
	return json.Marshal(p)
}

// PipelineNode is one node of a pipeline body.
type PipelineNode struct {
	// Name is unique within the pipeline.
	Name string
	// Type is execution, task, deployment or mimic.
	Type string
	// Template is the execution (or task) body the node runs, without
	// "project": commit, step, name, image, command, parameters (name to
	// value), inputs (name to a list of URIs), environment-variables,
	// runtime_config, and for task nodes the task fields (type,
	// maximum_queued_executions, on_child_error, variant parameters...).
	// Nil for deployment and mimic nodes.
	Template map[string]any
	// OnError is what the pipeline does when the node fails; empty means
	// Valohai's default, stop-all.
	OnError string
	// inputsUnknown marks a template rebuilt from an execution, which does
	// not list the step's inputs.
	inputsUnknown bool
	// Fields are the node's other fields, sent as they are: actions and
	// edge-merge-mode; deployment, commit, aliases, endpoints and
	// endpoint_configurations of a deployment node; source of a mimic node.
	Fields map[string]any
}

// MarshalJSON flattens the node into one JSON object.
func (n PipelineNode) MarshalJSON() ([]byte, error) {
	out := make(map[string]any, len(n.Fields)+4)
	for k, v := range n.Fields {
		out[k] = v
	}
	out["name"] = n.Name
	out["type"] = n.Type
	if n.Template != nil {
		out["template"] = n.Template
	}
	if n.OnError != "" {
		out["on-error"] = n.OnError
	}
	return json.Marshal(out)
}

// step is the name of the step the node's template runs, "" for nodes
// without a template.
func (n *PipelineNode) step() string {
	s, _ := n.Template["step"].(string)
	return s
}

// PipelineEdge connects a socket of one node to a socket of another, e.g.
// the *.csv outputs of "preprocess" to the "data" input of "train".
type PipelineEdge struct {
	// SourceNode, SourceType and SourceKey are the node, socket type
	// (output, parameter, metadata, ...) and key (a file glob, a parameter
	// or metadata name) the value comes from.
	SourceNode string `json:"source_node"`
	SourceType string `json:"source_type"`
	SourceKey  string `json:"source_key"`
	// TargetNode, TargetType and TargetKey are where it goes (input,
	// parameter, file, ...); a deployment file key reads "endpoint.file".
	TargetNode string `json:"target_node"`
	TargetType string `json:"target_type"`
	TargetKey  string `json:"target_key"`
	// Configuration is sent only when set in valohai.yaml.
	Configuration map[string]any `json:"configuration,omitempty"`
}

// PipelineParameter is a pipeline parameter as the API takes it.
type PipelineParameter struct {
	// Config is {"name", "default" (when set), "targets": ["node.parameters.x", ...]}.
	Config map[string]any `json:"config"`
	// Expression is the value the pipeline runs with: the default, an
	// override, or "" when neither is set. A list becomes a variant
	// {"style":"single","rules":{"value":[...]}}.
	Expression any `json:"expression"`
}

// valohaiConfig is a parsed valohai.yaml reduced to what the converter looks up.
type valohaiConfig struct {
	steps         map[string]map[string]any
	tasks         map[string]map[string]any
	endpoints     map[string]bool
	pipelines     map[string]map[string]any
	pipelineNames []string // in valohai.yaml order, for error messages
	stepNames     []string
}

// parseConfig sorts the top-level entries of a valohai.yaml by kind. Entries
// that are not mappings or of another kind are skipped, as valohai-yaml does
// with a warning; a later definition of the same name wins, as it does in
// valohai-yaml's name-keyed dictionaries.
func parseConfig(config []any) *valohaiConfig {
	c := &valohaiConfig{
		steps:     map[string]map[string]any{},
		tasks:     map[string]map[string]any{},
		endpoints: map[string]bool{},
		pipelines: map[string]map[string]any{},
	}
	named := func(v any) (map[string]any, string) {
		m, ok := asMap(v)
		if !ok {
			return nil, ""
		}
		name, _ := m["name"].(string)
		return m, name
	}
	for _, item := range config {
		entry, ok := asMap(item)
		if !ok {
			continue
		}
		// The first kind present wins, in valohai-yaml's order of parsers.
		switch {
		case entry["step"] != nil:
			if m, name := named(entry["step"]); name != "" {
				if c.steps[name] == nil {
					c.stepNames = append(c.stepNames, name)
				}
				c.steps[name] = m
			}
		case entry["endpoint"] != nil:
			if _, name := named(entry["endpoint"]); name != "" {
				c.endpoints[name] = true
			}
		case entry["pipeline"] != nil || entry["blueprint"] != nil: // "blueprint" is a legacy alias
			v := entry["pipeline"]
			if v == nil {
				v = entry["blueprint"]
			}
			if m, name := named(v); name != "" {
				if c.pipelines[name] == nil {
					c.pipelineNames = append(c.pipelineNames, name)
				}
				c.pipelines[name] = m
			}
		case entry["task"] != nil:
			if m, name := named(entry["task"]); name != "" {
				c.tasks[name] = m
			}
		}
	}
	return c
}

// converter converts one pipeline of a config at one commit.
type converter struct {
	cfg      *valohaiConfig
	commit   string
	pipeline string
}

func (cv *converter) errorf(format string, args ...any) error {
	return &PipelineError{Pipeline: cv.pipeline, Reason: fmt.Sprintf(format, args...)}
}

// ConvertPipeline builds the POST /api/v0/pipelines/ body of the pipeline
// called name in config, the parsed valohai.yaml of a commit as Valohai
// returns it with ?include=config (a list of {step: ...}, {pipeline: ...},
// {task: ...}, {endpoint: ...} maps). commit is the commit identifier the
// nodes run; pass the resolved sha rather than a branch name, so that the
// pipeline runs the very valohai.yaml that was converted.
//
// The body's Title is the pipeline's name, Tags are empty and Project is
// left for the caller. The conversion follows valohai-yaml's converter:
//
//   - An execution or task node's template is its step serialized (name,
//     image, command as written: a string or a list of commands, which the
//     API joins), with "parameters" mapping every step parameter to its
//     default (null when it has none; a list for multiple-valued
//     parameters), "inputs" mapping every input to the list of its default
//     URIs (empty when none), "environment-variables" when the step has any,
//     and "runtime_config" ({} plus no_output_timeout and autorestart when
//     the step sets them). Other step fields (environment, mounts,
//     time-limit, ...) are carried as valohai-yaml serializes them. A node's
//     override replaces the image, command, environment and the defaults of
//     the parameters and inputs it names.
//   - A task node that names a task blueprint also gets the blueprint's
//     fields (type, maximum_queued_executions, on_child_error,
//     stop_expression, allow_reuse, configuration) and its variant
//     parameters in "parameters". A task node that names a step gets the
//     step's template only, as with the CLI.
//   - A node with its own commit other than commit (a library step) gets a
//     template of that commit, the step and its override only.
//   - on-error is sent when it is not the default stop-all; actions and
//     edge-merge-mode (when not replace) are sent as well, with the
//     converter's hyphenated keys.
//   - Edges, written [a.output.*.csv, b.input.data] or {source, target,
//     configuration}, become the six source_/target_ fields, plus
//     configuration when set.
//   - Pipeline parameters become {"config": {name, default, targets},
//     "expression": default}; a list default becomes a single-style
//     variant; no default gives the expression "".
//
// The error is a *PipelineError when the pipeline is not defined (it lists
// those that are), a node names an unknown step or task, an edge or a
// parameter target names an unknown node, or an entry is malformed.
func ConvertPipeline(config []any, commit, name string) (*PipelineBody, error) {
	if err := ValidateConfig(config); err != nil {
		return nil, err
	}
	return convertPipeline(config, commit, name)
}

// convertPipeline is ConvertPipeline without the schema check: the
// converter's own checks still refuse what it cannot convert.
func convertPipeline(config []any, commit, name string) (*PipelineBody, error) {
	if name == "" {
		return nil, &PipelineError{Reason: "no pipeline name given"}
	}
	cv := &converter{cfg: parseConfig(config), commit: commit, pipeline: name}
	if commit == "" {
		return nil, cv.errorf("no commit given")
	}
	p, ok := cv.cfg.pipelines[name]
	if !ok {
		if len(cv.cfg.pipelineNames) == 0 {
			return nil, cv.errorf("not defined in valohai.yaml at commit %s, which defines no pipelines", commit)
		}
		return nil, cv.errorf("not defined in valohai.yaml at commit %s (pipelines: %s)", commit, quoteList(cv.cfg.pipelineNames))
	}

	body := &PipelineBody{
		Title:      name,
		Tags:       []string{},
		Parameters: map[string]*PipelineParameter{},
		name:       name,
	}
	rawNodes, err := cv.list(p, "nodes", "pipeline")
	if err != nil {
		return nil, err
	}
	if len(rawNodes) == 0 {
		return nil, cv.errorf("has no nodes")
	}
	names := map[string]bool{}
	for i, raw := range rawNodes {
		node, err := cv.node(raw, i)
		if err != nil {
			return nil, err
		}
		if names[node.Name] {
			return nil, cv.errorf("more than one node is named %q", node.Name)
		}
		names[node.Name] = true
		body.Nodes = append(body.Nodes, node)
	}

	rawEdges, err := cv.list(p, "edges", "pipeline")
	if err != nil {
		return nil, err
	}
	body.Edges = []PipelineEdge{}
	for i, raw := range rawEdges {
		edge, err := cv.edge(raw, i, names)
		if err != nil {
			return nil, err
		}
		body.Edges = append(body.Edges, edge)
	}

	rawParams, err := cv.list(p, "parameters", "pipeline")
	if err != nil {
		return nil, err
	}
	for i, raw := range rawParams {
		pname, param, err := cv.parameter(raw, i, names)
		if err != nil {
			return nil, err
		}
		body.Parameters[pname] = param
	}
	return body, nil
}

// list reads an optional list field; absent or null is an empty list.
func (cv *converter) list(m map[string]any, key, owner string) ([]any, error) {
	v, ok := field(m, key)
	if !ok {
		return nil, nil
	}
	l, ok := v.([]any)
	if !ok {
		return nil, cv.errorf("%s: %s must be a list, not %s", owner, key, kindOf(v))
	}
	return l, nil
}

// node converts the i-th node of the pipeline.
func (cv *converter) node(raw any, i int) (*PipelineNode, error) {
	m, ok := asMap(raw)
	if !ok {
		return nil, cv.errorf("node #%d must be a mapping, not %s", i+1, kindOf(raw))
	}
	name, _ := m["name"].(string)
	if name == "" {
		return nil, cv.errorf("node #%d has no name", i+1)
	}
	typ, _ := m["type"].(string)
	node := &PipelineNode{Name: name, Type: typ, Fields: map[string]any{}}
	var err error
	switch typ {
	case nodeExecution, nodeTask:
		err = cv.executionNode(node, m)
	case nodeDeployment:
		err = cv.deploymentNode(node, m)
	case "":
		return nil, cv.errorf("node %q has no type (execution, task or deployment)", name)
	default:
		return nil, cv.errorf("node %q: type %q cannot be converted (execution, task or deployment)", name, typ)
	}
	if err != nil {
		return nil, err
	}
	if err := cv.nodeCommon(node, m); err != nil {
		return nil, err
	}
	return node, nil
}

// nodeCommon reads the fields every node type shares: on-error, actions and
// edge-merge-mode, sent with the hyphenated keys valohai-yaml's converter
// sends (a default on-error or edge-merge-mode is left out, as it does).
func (cv *converter) nodeCommon(node *PipelineNode, m map[string]any) error {
	if v, ok := field(m, "on-error", "on_error"); ok {
		s, ok := v.(string)
		s = strings.ToLower(s)
		if s == "none" {
			s = "stop-all"
		}
		if !ok || !onErrorValues[s] {
			return cv.errorf("node %q: on-error %v is not one of stop-all, stop-next, continue, retry", node.Name, v)
		}
		if s != "stop-all" {
			node.OnError = s
		}
	}
	if v, ok := field(m, "edge-merge-mode", "edge_merge_mode"); ok {
		s, ok := v.(string)
		s = strings.ToLower(s)
		if !ok || !edgeMergeModes[s] {
			return cv.errorf("node %q: edge-merge-mode %v is not one of replace, append", node.Name, v)
		}
		if s != "replace" {
			node.Fields["edge-merge-mode"] = s
		}
	}
	rawActions, err := cv.list(m, "actions", fmt.Sprintf("node %q", node.Name))
	if err != nil {
		return err
	}
	var actions []any
	for i, raw := range rawActions {
		a, ok := asMap(raw)
		if !ok {
			return cv.errorf("node %q: action #%d must be a mapping, not %s", node.Name, i+1, kindOf(raw))
		}
		when, ok := field(a, "when")
		if !ok {
			return cv.errorf("node %q: action #%d has no when", node.Name, i+1)
		}
		// "when" is a set in valohai-yaml: lowercased, deduplicated, sorted.
		set := map[string]bool{}
		for _, w := range listify(when) {
			set[strings.ToLower(pyStr(w))] = true
		}
		whens := make([]string, 0, len(set))
		for w := range set {
			whens = append(whens, w)
		}
		sort.Strings(whens)
		ifs, _ := field(a, "if")
		then, _ := field(a, "then")
		actions = append(actions, map[string]any{
			"when": toAnyList(whens),
			"if":   listify(ifs),
			"then": listify(then),
		})
	}
	if len(actions) > 0 {
		node.Fields["actions"] = actions
	}
	return nil
}

// executionNode builds the template of an execution or task node.
func (cv *converter) executionNode(node *PipelineNode, m map[string]any) error {
	stepName, err := cv.optionalString(m, "step", node.Name)
	if err != nil {
		return err
	}
	taskName, err := cv.optionalString(m, "task", node.Name)
	if err != nil {
		return err
	}
	nodeCommit, err := cv.optionalString(m, "commit", node.Name)
	if err != nil {
		return err
	}
	var override map[string]any
	if v, ok := field(m, "override"); ok {
		if override, ok = asMap(v); !ok {
			return cv.errorf("node %q: override must be a mapping, not %s", node.Name, kindOf(v))
		}
	}

	var blueprint map[string]any
	if taskName != "" && stepName == "" {
		if node.Type != nodeTask {
			return cv.errorf("node %q: only task nodes can name a task; name a step instead", node.Name)
		}
		if blueprint = cv.cfg.tasks[taskName]; blueprint == nil {
			return cv.errorf("node %q: task %q is not defined in valohai.yaml", node.Name, taskName)
		}
		if stepName, _ = blueprint["step"].(string); stepName == "" {
			return cv.errorf("node %q: task %q names no step", node.Name, taskName)
		}
	}
	if stepName == "" {
		return cv.errorf("node %q names no step", node.Name)
	}

	var tmpl map[string]any
	if nodeCommit == "" || nodeCommit == cv.commit {
		step := cv.cfg.steps[stepName]
		if step == nil {
			return cv.errorf("node %q: step %q is not defined in valohai.yaml at commit %s (steps: %s)",
				node.Name, stepName, cv.commit, quoteList(cv.cfg.stepNames))
		}
		if tmpl, err = cv.stepTemplate(node.Name, step, override); err != nil {
			return err
		}
	} else {
		// A step of another commit (a library step): its definition is not
		// here, so only the override goes in. Python serializes the
		// override's parameter and input definitions as lists here; the port
		// sends the name-to-value maps an execution body needs.
		if tmpl, err = cv.remoteTemplate(node.Name, override); err != nil {
			return err
		}
	}
	// Folded in after the override, so a node can override the step's
	// value; an explicit false is kept.
	if v, ok := tmpl["autorestart"]; ok {
		delete(tmpl, "autorestart")
		rc, _ := tmpl["runtime_config"].(map[string]any)
		if rc == nil {
			rc = map[string]any{}
			tmpl["runtime_config"] = rc
		}
		rc["autorestart"] = v
	}
	commit := nodeCommit
	if commit == "" {
		commit = cv.commit
	}
	tmpl["commit"] = commit
	tmpl["step"] = stepName

	if blueprint != nil {
		taskFields, variants, err := cv.taskTemplate(node.Name, taskName, blueprint)
		if err != nil {
			return err
		}
		for k, v := range taskFields {
			tmpl[k] = v
		}
		if len(variants) > 0 {
			params, _ := tmpl["parameters"].(map[string]any)
			if params == nil {
				params = map[string]any{}
				tmpl["parameters"] = params
			}
			for k, v := range variants {
				params[k] = v
			}
		}
	}
	node.Template = tmpl
	return nil
}

// optionalString reads a string field of a node; absent is "".
func (cv *converter) optionalString(m map[string]any, key, node string) (string, error) {
	v, ok := field(m, key)
	if !ok {
		return "", nil
	}
	s, ok := v.(string)
	if !ok {
		return "", cv.errorf("node %q: %s must be a string, not %s", node, key, kindOf(v))
	}
	return s, nil
}

// namedValue is a parameter, input or environment variable of a step or an
// override: its name and the value it contributes to a template.
type namedValue struct {
	name  string
	value any
}

// orderedValues keeps named values in definition order; a later definition
// of a name replaces the earlier one's value in place, as valohai-yaml's
// ordered dictionaries do.
type orderedValues struct {
	list  []namedValue
	index map[string]int
}

func (o *orderedValues) set(name string, value any) {
	if o.index == nil {
		o.index = map[string]int{}
	}
	if i, ok := o.index[name]; ok {
		o.list[i].value = value
		return
	}
	o.index[name] = len(o.list)
	o.list = append(o.list, namedValue{name, value})
}

func (o *orderedValues) merge(other orderedValues) {
	for _, nv := range other.list {
		o.set(nv.name, nv.value)
	}
}

func (o *orderedValues) asMap() map[string]any {
	out := make(map[string]any, len(o.list))
	for _, nv := range o.list {
		out[nv.name] = nv.value
	}
	return out
}

// namedItems reads a list of {name: ..., ...} definitions (a step's
// parameters, inputs or environment-variables) and the template value of
// each.
func (cv *converter) namedItems(m map[string]any, key, owner string, value func(map[string]any) any) (orderedValues, error) {
	var out orderedValues
	list, err := cv.list(m, key, owner)
	if err != nil {
		return out, err
	}
	for i, raw := range list {
		item, ok := asMap(raw)
		if !ok {
			return out, cv.errorf("%s: %s #%d must be a mapping, not %s", owner, key, i+1, kindOf(raw))
		}
		name, _ := item["name"].(string)
		if name == "" {
			return out, cv.errorf("%s: %s #%d has no name", owner, key, i+1)
		}
		out.set(name, value(item))
	}
	return out, nil
}

// parameterValue is a parameter's default as a template value: a list for a
// multiple-valued parameter (valohai-yaml listifies it, null becoming []).
// Any "multiple" other than false or "none" counts as multiple.
func parameterValue(p map[string]any) any {
	def := p["default"]
	if mult, ok := field(p, "multiple"); ok && truthy(mult) && !strings.EqualFold(pyStr(mult), "none") {
		return listify(def)
	}
	return deepCopy(def)
}

// inputValue is an input's default as a template value: always a list.
func inputValue(in map[string]any) any { return listify(in["default"]) }

// envValue is an environment variable's default.
func envValue(e map[string]any) any { return deepCopy(e["default"]) }

// stepTemplate serializes a step and merges a node's override into it, the
// way valohai-yaml's Step.serialize, Override.merge_with_step and
// Override.serialize_to_template do together.
func (cv *converter) stepTemplate(node string, step, override map[string]any) (map[string]any, error) {
	stepName, _ := step["name"].(string)
	owner := fmt.Sprintf("node %q: step %q", node, stepName)
	t := map[string]any{"name": stepName}
	for _, k := range []string{"image", "command"} {
		if v, ok := step[k]; ok {
			t[k] = deepCopy(v)
		}
	}
	mounts, err := cv.mounts(step, owner)
	if err != nil {
		return nil, err
	}
	if len(mounts) > 0 {
		t["mounts"] = mounts
	}
	if v, ok := field(step, "cache-volumes", "cache_volumes"); ok {
		var vols []any
		for _, x := range listify(v) {
			if truthy(x) {
				vols = append(vols, pyStr(x))
			}
		}
		if len(vols) > 0 {
			t["cache-volumes"] = vols
		}
	}
	if v, ok := field(step, "outputs"); ok {
		if l := listify(v); len(l) > 0 {
			t["outputs"] = l
		}
	}
	// String fields valohai-yaml drops when empty.
	for _, k := range [][2]string{
		{"environment", "environment"},
		{"runtime-config-preset", "runtime_config_preset"},
		{"icon", "icon"},
		{"category", "category"},
		{"upload-store", "upload_store"},
	} {
		if v, ok := field(step, k[0], k[1]); ok && truthy(v) {
			t[k[0]] = pyStr(v)
		}
	}
	// Fields valohai-yaml keeps as written.
	for _, k := range [][2]string{
		{"description", "description"},
		{"source-path", "source_path"},
		{"stop-condition", "stop_condition"},
	} {
		if v, ok := field(step, k[0], k[1]); ok {
			t[k[0]] = deepCopy(v)
		}
	}
	if v, ok := field(step, "autorestart"); ok {
		b, ok := v.(bool)
		if !ok {
			return nil, cv.errorf("%s: autorestart must be true or false, not %s", owner, kindOf(v))
		}
		t["autorestart"] = b
	}
	if v, ok := field(step, "environment-variable-groups", "environment_variable_groups"); ok {
		var groups []any
		for _, x := range listify(v) {
			if truthy(x) {
				groups = append(groups, pyStr(x))
			}
		}
		if len(groups) > 0 {
			t["environment-variable-groups"] = groups
		}
	}
	if v, ok := field(step, "resources"); ok {
		if r, ok := asMap(v); ok && len(r) > 0 {
			t["resources"] = deepCopy(r)
		}
	}
	if v, ok := field(step, "time-limit", "time_limit"); ok {
		secs, set, err := durationSeconds(v)
		if err != nil {
			return nil, cv.errorf("%s: time-limit: %v", owner, err)
		}
		if set {
			t["time-limit"] = secs
		}
	}
	runtimeConfig := map[string]any{}
	if v, ok := field(step, "no-output-timeout", "no_output_timeout"); ok {
		secs, set, err := durationSeconds(v)
		if err != nil {
			return nil, cv.errorf("%s: no-output-timeout: %v", owner, err)
		}
		if set {
			runtimeConfig["no_output_timeout"] = secs
		}
	}
	t["runtime_config"] = runtimeConfig

	params, err := cv.namedItems(step, "parameters", owner, parameterValue)
	if err != nil {
		return nil, err
	}
	inputs, err := cv.namedItems(step, "inputs", owner, inputValue)
	if err != nil {
		return nil, err
	}
	envs, err := cv.namedItems(step, "environment-variables", owner, envValue)
	if err != nil {
		return nil, err
	}
	if override != nil {
		o, err := cv.overrideFields(node, override)
		if err != nil {
			return nil, err
		}
		for k, v := range o.fields {
			t[k] = v
		}
		// An override's parameter or input replaces the step's whole
		// definition (valohai-yaml's merge_simple), so its value is the
		// override's default even when the override gives none.
		params.merge(o.params)
		inputs.merge(o.inputs)
		envs.merge(o.envs)
	}
	t["parameters"] = params.asMap()
	t["inputs"] = inputs.asMap()
	if len(envs.list) > 0 {
		t["environment-variables"] = envs.asMap()
	}
	return t, nil
}

// remoteTemplate is the template of a node whose step lives in another
// commit: only what its override says.
func (cv *converter) remoteTemplate(node string, override map[string]any) (map[string]any, error) {
	t := map[string]any{}
	if override == nil {
		return t, nil
	}
	o, err := cv.overrideFields(node, override)
	if err != nil {
		return nil, err
	}
	for k, v := range o.fields {
		t[k] = v
	}
	// The converter cannot merge with a step it does not have: it sends
	// the override's items as valohai-yaml serializes them (lists of
	// items with their defaults filled in), not as name-to-value maps.
	for _, k := range []struct{ key, kind string }{{"parameters", "parameter"}, {"inputs", "input"}, {"environment-variables", "env"}} {
		list, _ := asSlice(field2(override, k.key, strings.ReplaceAll(k.key, "-", "_")))
		if len(list) == 0 {
			continue
		}
		items := make([]any, 0, len(list))
		for _, raw := range list {
			if m, ok := asMap(raw); ok {
				items = append(items, serializeItem(k.kind, m))
			}
		}
		t[k.key] = items
	}
	return t, nil
}

// serializeItem is a parameter, input or environment variable as
// valohai-yaml serializes it: the keys given (null ones dropped) plus the
// defaults its constructor fills in (a parameter's type "string" and
// optional false, an input's optional false, an environment variable's
// optional true; a flag has no optional or choices; multiple-separator
// only with multiple).
func serializeItem(kind string, m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if v != nil {
			out[strings.ReplaceAll(k, "_", "-")] = deepCopy(v)
		}
	}
	switch kind {
	case "parameter":
		if _, ok := out["type"]; !ok {
			out["type"] = "string"
		}
		out["optional"] = truthy(out["optional"])
		if out["type"] == "flag" {
			delete(out, "optional")
			delete(out, "choices")
		}
		if out["multiple"] != nil {
			if _, ok := out["multiple-separator"]; !ok {
				out["multiple-separator"] = ","
			}
		} else {
			delete(out, "multiple-separator")
		}
	case "input":
		out["optional"] = truthy(out["optional"])
	case "env":
		if v, ok := out["optional"]; ok {
			out["optional"] = truthy(v)
		} else {
			out["optional"] = true
		}
	}
	return out
}

// overrideParts is a node's override, read.
type overrideParts struct {
	fields               map[string]any // image, command, mounts, environment, autorestart, runtime-config-preset
	params, inputs, envs orderedValues
}

// overrideFields reads a node override. valohai-yaml serializes a field of
// it only when it is truthy (or a boolean), so an empty image does not
// blank the step's.
func (cv *converter) overrideFields(node string, o map[string]any) (*overrideParts, error) {
	owner := fmt.Sprintf("node %q: override", node)
	out := &overrideParts{fields: map[string]any{}}
	for _, k := range []string{"image", "command"} {
		if v, ok := field(o, k); ok && truthy(v) {
			out.fields[k] = deepCopy(v)
		}
	}
	mounts, err := cv.mounts(o, owner)
	if err != nil {
		return nil, err
	}
	if len(mounts) > 0 {
		out.fields["mounts"] = mounts
	}
	if v, ok := field(o, "environment"); ok && truthy(v) {
		out.fields["environment"] = pyStr(v)
	}
	if v, ok := field(o, "runtime-config-preset", "runtime_config_preset"); ok && truthy(v) {
		out.fields["runtime-config-preset"] = pyStr(v)
	}
	if v, ok := field(o, "autorestart"); ok {
		b, ok := v.(bool)
		if !ok {
			return nil, cv.errorf("%s: autorestart must be true or false, not %s", owner, kindOf(v))
		}
		out.fields["autorestart"] = b
	}
	if out.params, err = cv.namedItems(o, "parameters", owner, parameterValue); err != nil {
		return nil, err
	}
	if out.inputs, err = cv.namedItems(o, "inputs", owner, inputValue); err != nil {
		return nil, err
	}
	if out.envs, err = cv.namedItems(o, "environment-variables", owner, envValue); err != nil {
		return nil, err
	}
	return out, nil
}

// mounts reads a mounts list: "source:destination" strings or mappings,
// serialized as valohai-yaml's Mount does.
func (cv *converter) mounts(m map[string]any, owner string) ([]any, error) {
	list, err := cv.list(m, "mounts", owner)
	if err != nil {
		return nil, err
	}
	var out []any
	for i, raw := range list {
		var mount map[string]any
		switch x := raw.(type) {
		case string:
			src, dst, ok := strings.Cut(x, ":")
			if !ok {
				return nil, cv.errorf("%s: mount %q is not source:destination", owner, x)
			}
			mount = map[string]any{"source": src, "destination": dst}
		default:
			mm, ok := asMap(raw)
			if !ok {
				return nil, cv.errorf("%s: mount #%d must be a string or a mapping, not %s", owner, i+1, kindOf(raw))
			}
			mount = mm
		}
		src, srcOK := field(mount, "source")
		dst, dstOK := field(mount, "destination")
		if !srcOK || !dstOK {
			return nil, cv.errorf("%s: mount #%d needs a source and a destination", owner, i+1)
		}
		ser := map[string]any{
			"source":      deepCopy(src),
			"destination": deepCopy(dst),
			"readonly":    truthy(mount["readonly"]),
		}
		if v, ok := field(mount, "type"); ok && truthy(v) {
			ser["type"] = strings.ToLower(pyStr(v))
		}
		if v, ok := field(mount, "options"); ok {
			if opts, ok := asMap(v); ok {
				kept := map[string]any{}
				for k, x := range opts {
					if x != nil {
						kept[k] = deepCopy(x)
					}
				}
				if len(kept) > 0 {
					ser["options"] = kept
				}
			}
		}
		out = append(out, ser)
	}
	return out, nil
}

// taskFieldPaths maps task blueprint fields to where a task node template
// takes them (valohai-yaml's PIPELINE_TEMPLATE_FIELD_MAPPING).
var taskFieldPaths = []struct {
	field string
	path  []string
}{
	{"maximum_queued_executions", []string{"maximum_queued_executions"}},
	{"on_child_error", []string{"on_child_error"}},
	{"stop_condition", []string{"stop_expression"}},
	{"reuse_children", []string{"allow_reuse"}},
	{"engine", []string{"configuration", "engine"}},
	{"execution_count", []string{"configuration", "execution_count"}},
	{"execution_batch_size", []string{"configuration", "execution_batch_size"}},
	{"optimization_target_metric", []string{"configuration", "optimization_target_metric"}},
	{"optimization_target_value", []string{"configuration", "optimization_target_value"}},
}

// taskTemplate serializes a task blueprint for a task node template
// (valohai-yaml's Task.serialize_to_template): the task fields, and the
// variant parameters that go into the template's parameters.
func (cv *converter) taskTemplate(node, taskName string, bp map[string]any) (fields, variants map[string]any, err error) {
	owner := fmt.Sprintf("node %q: task %q", node, taskName)
	// Task.parse reads "maximum-queued-executions" as maximum_queued_executions.
	get := func(key string) (any, bool) {
		return field(bp, key, strings.ReplaceAll(key, "_", "-"))
	}
	typ := "grid_search"
	if v, ok := get("type"); ok && truthy(v) {
		typ = strings.ReplaceAll(strings.ToLower(pyStr(v)), "-", "_")
		if !taskTypes[typ] {
			return nil, nil, cv.errorf("%s: type %v is not one of bayesian_tpe, grid_search, distributed, random_search, manual_search", owner, v)
		}
	}
	fields = map[string]any{"type": typ}
	for _, f := range taskFieldPaths {
		v, ok := get(f.field)
		switch {
		case f.field == "reuse_children" && !ok:
			v = false // the blueprint's default, always sent
		case !ok:
			continue
		case f.field == "on_child_error":
			if !truthy(v) {
				continue
			}
			s := strings.ReplaceAll(strings.ToLower(pyStr(v)), "_", "-")
			if !onChildErrorValues[s] {
				return nil, nil, cv.errorf("%s: on-child-error %v is not one of continue-and-complete, continue-and-error, stop-all-and-error", owner, v)
			}
			v = s
		default:
			if l, isList := v.([]any); isList && len(l) == 0 {
				continue
			}
			v = deepCopy(v)
		}
		target := fields
		for _, k := range f.path[:len(f.path)-1] {
			next, _ := target[k].(map[string]any)
			if next == nil {
				next = map[string]any{}
				target[k] = next
			}
			target = next
		}
		target[f.path[len(f.path)-1]] = v
	}

	variants = map[string]any{}
	rawParams, err := cv.list(bp, "parameters", owner)
	if err != nil {
		return nil, nil, err
	}
	for i, raw := range rawParams {
		vp, ok := asMap(raw)
		if !ok {
			return nil, nil, cv.errorf("%s: parameter #%d must be a mapping, not %s", owner, i+1, kindOf(raw))
		}
		name, _ := vp["name"].(string)
		if name == "" {
			return nil, nil, cv.errorf("%s: parameter #%d has no name", owner, i+1)
		}
		style := "single"
		if v, ok := field(vp, "style"); ok && truthy(v) {
			style = strings.ToLower(pyStr(v))
			if !variantStyles[style] {
				return nil, nil, cv.errorf("%s: parameter %q: style %v is not one of single, multiple, linear, logspace, random", owner, name, v)
			}
		}
		rules, ok := field(vp, "rules")
		if !ok {
			return nil, nil, cv.errorf("%s: parameter %q has no rules", owner, name)
		}
		variants[name] = map[string]any{"style": style, "rules": deepCopy(rules)}
	}
	if v, ok := get("parameter_sets"); ok {
		sets, ok := v.([]any)
		if !ok {
			return nil, nil, cv.errorf("%s: parameter-sets must be a list, not %s", owner, kindOf(v))
		}
		var order []string
		items := map[string][]any{}
		for i, raw := range sets {
			set, ok := asMap(raw)
			if !ok {
				return nil, nil, cv.errorf("%s: parameter set #%d must be a mapping, not %s", owner, i+1, kindOf(raw))
			}
			// Sorted so the collected lists do not depend on map order;
			// each list keeps the order of the sets.
			for _, name := range sortedMapKeys(set) {
				if _, seen := items[name]; !seen {
					order = append(order, name)
				}
				items[name] = append(items[name], deepCopy(set[name]))
			}
		}
		for _, name := range order {
			variants[name] = map[string]any{"style": "multiple", "rules": map[string]any{"items": items[name]}}
		}
	}
	return fields, variants, nil
}

// deploymentNode converts a deployment node: its deployment, aliases and
// endpoints, the pipeline's commit, and an enabled configuration for each of
// its endpoints that valohai.yaml defines.
func (cv *converter) deploymentNode(node *PipelineNode, m map[string]any) error {
	dep, ok := field(m, "deployment")
	if !ok {
		return cv.errorf("node %q: a deployment node needs a deployment", node.Name)
	}
	node.Fields["deployment"] = deepCopy(dep)
	node.Fields["commit"] = cv.commit
	endpoints, _ := field(m, "endpoints")
	aliases, _ := field(m, "aliases")
	node.Fields["endpoints"] = listify(endpoints)
	node.Fields["aliases"] = listify(aliases)
	configs := map[string]any{}
	for _, e := range listify(endpoints) {
		if name, ok := e.(string); ok && cv.cfg.endpoints[name] {
			configs[name] = map[string]any{"files": map[string]any{}, "enabled": true}
		}
	}
	node.Fields["endpoint_configurations"] = configs
	return nil
}

// edge converts the i-th edge: [source, target] or {source, target, configuration}.
func (cv *converter) edge(raw any, i int, nodes map[string]bool) (PipelineEdge, error) {
	var src, dst any
	var conf any
	switch x := raw.(type) {
	case []any:
		if len(x) != 2 {
			return PipelineEdge{}, cv.errorf("edge #%d must be [source, target], not a list of %d", i+1, len(x))
		}
		src, dst = x[0], x[1]
	default:
		m, ok := asMap(raw)
		if !ok {
			return PipelineEdge{}, cv.errorf("edge #%d must be [source, target] or a mapping, not %s", i+1, kindOf(raw))
		}
		src, dst, conf = m["source"], m["target"], m["configuration"]
	}
	var e PipelineEdge
	var err error
	if e.SourceNode, e.SourceType, e.SourceKey, err = cv.socket(src, "source", i, nodes); err != nil {
		return e, err
	}
	if e.TargetNode, e.TargetType, e.TargetKey, err = cv.socket(dst, "target", i, nodes); err != nil {
		return e, err
	}
	if conf != nil {
		c, ok := asMap(conf)
		if !ok {
			return e, cv.errorf("edge #%d: configuration must be a mapping, not %s", i+1, kindOf(conf))
		}
		if len(c) > 0 {
			e.Configuration = deepCopy(c).(map[string]any)
		}
	}
	return e, nil
}

// socket splits "node.type.key" (the key may hold dots) and checks the node
// and the type.
func (cv *converter) socket(v any, role string, i int, nodes map[string]bool) (node, typ, key string, err error) {
	s, ok := v.(string)
	if !ok {
		return "", "", "", cv.errorf("edge #%d: %s must be a string like node.output.key, not %s", i+1, role, kindOf(v))
	}
	parts := strings.SplitN(s, ".", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
		return "", "", "", cv.errorf("edge #%d: %s %q is not node.type.key", i+1, role, s)
	}
	if !nodes[parts[0]] {
		return "", "", "", cv.errorf("edge #%d: %s %q names node %q, which the pipeline does not have", i+1, role, s, parts[0])
	}
	if !edgeEndpointTypes[parts[1]] {
		return "", "", "", cv.errorf("edge #%d: %s %q has type %q (input, output, parameter, metadata, file, deployment, dependency or environment-variable)",
			i+1, role, s, parts[1])
	}
	return parts[0], parts[1], parts[2], nil
}

// parameter converts the i-th pipeline parameter.
func (cv *converter) parameter(raw any, i int, nodes map[string]bool) (string, *PipelineParameter, error) {
	m, ok := asMap(raw)
	if !ok {
		return "", nil, cv.errorf("parameter #%d must be a mapping, not %s", i+1, kindOf(raw))
	}
	name, _ := m["name"].(string)
	if name == "" {
		return "", nil, cv.errorf("parameter #%d has no name", i+1)
	}
	target, hasTarget := field(m, "target")
	targetsV, hasTargets := field(m, "targets")
	if hasTarget && hasTargets {
		return "", nil, cv.errorf("parameter %q has both target and targets", name)
	}
	if hasTarget {
		targetsV = []any{target}
	}
	var targets []any
	for _, t := range listify(targetsV) {
		s, ok := t.(string)
		if !ok {
			return "", nil, cv.errorf("parameter %q: target %v must be a string like node.parameter.name", name, t)
		}
		parts := strings.SplitN(s, ".", 3)
		if len(parts) != 3 || parts[2] == "" {
			return "", nil, cv.errorf("parameter %q: target %q is not node.parameter.name", name, s)
		}
		if !nodes[parts[0]] {
			return "", nil, cv.errorf("parameter %q: target %q names node %q, which the pipeline does not have", name, s, parts[0])
		}
		if !strings.HasPrefix(parts[1], "parameter") {
			return "", nil, cv.errorf("parameter %q: target %q must point at a node's parameter (node.parameter.name)", name, s)
		}
		targets = append(targets, s)
	}
	if targets == nil {
		targets = []any{}
	}
	// "value" is an alias of "default" that wins over it.
	def, hasDef := field(m, "value")
	if !hasDef {
		def, hasDef = field(m, "default")
	}
	config := map[string]any{"name": name, "targets": targets}
	// category and description are kept when set (as their text), like
	// valohai-yaml's PipelineParameter does.
	for _, k := range []string{"category", "description"} {
		if v, ok := field(m, k); ok && truthy(v) {
			config[k] = pyStr(v)
		}
	}
	expression := any("")
	if hasDef {
		config["default"] = deepCopy(def)
		expression = deepCopy(def)
	}
	return name, &PipelineParameter{Config: config, Expression: convertExpression(expression)}, nil
}

// convertExpression turns a list into the single-style variant the API
// expects for list-valued pipeline parameters.
func convertExpression(v any) any {
	if l, ok := asSlice(v); ok {
		return map[string]any{"style": "single", "rules": map[string]any{"value": l}}
	}
	return v
}

// Node returns the node called name, nil when there is none.
func (b *PipelineBody) Node(name string) *PipelineNode {
	for _, n := range b.Nodes {
		if n.Name == name {
			return n
		}
	}
	return nil
}

// resolveNode finds the node a user means: the node with that name, else
// the one execution or task node that runs a step of that name (Valohai's
// trigger UI asks for "<node/step>.<input>").
func (b *PipelineBody) resolveNode(ref string) (*PipelineNode, error) {
	if n := b.Node(ref); n != nil {
		return n, nil
	}
	var found []*PipelineNode
	for _, n := range b.Nodes {
		if n.Template != nil && n.step() == ref {
			found = append(found, n)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return nil, b.errorf("has no node %q (nodes: %s)", ref, quoteList(b.nodeNames()))
	default:
		names := make([]string, len(found))
		for i, n := range found {
			names[i] = n.Name
		}
		return nil, b.errorf("%q is not a node name, and step %q is run by several nodes (%s): name the node", ref, ref, quoteList(names))
	}
}

func (b *PipelineBody) errorf(format string, args ...any) error {
	name := b.name
	if name == "" {
		name = b.Title
	}
	return &PipelineError{Pipeline: name, Reason: fmt.Sprintf(format, args...)}
}

func (b *PipelineBody) nodeNames() []string {
	names := make([]string, len(b.Nodes))
	for i, n := range b.Nodes {
		names[i] = n.Name
	}
	return names
}

// runnable returns the node a reference names when it runs an execution
// or task, the only nodes with inputs and parameters to set.
func (b *PipelineBody) runnable(ref string) (*PipelineNode, error) {
	n, err := b.resolveNode(ref)
	if err != nil {
		return nil, err
	}
	if (n.Type != nodeExecution && n.Type != nodeTask) || n.Template == nil {
		return nil, b.errorf("node %q is a %s node; only execution and task nodes take inputs and parameters", n.Name, n.Type)
	}
	return n, nil
}

// SetNodeInput makes the input of a node read urls instead of its default,
// as the webhook payload input does. node is a node name, or the name of a
// step exactly one node runs. It fails when there is no such node, the node
// is not an execution or task node, its step has no such input (a pipeline
// input is defined by the step, so an unknown one is a typo), or a URL is
// not a URI (it must contain "://", as the CLI requires).
func (b *PipelineBody) SetNodeInput(node, input string, urls ...string) error {
	n, err := b.runnable(node)
	if err != nil {
		return err
	}
	inputs, _ := n.Template["inputs"].(map[string]any)
	if n.inputsUnknown && inputs == nil {
		// Rebuilt from an execution, whose answer does not list the
		// step's inputs: Valohai checks the name when it creates the node.
		inputs = map[string]any{}
		n.Template["inputs"] = inputs
	}
	if _, ok := inputs[input]; !ok && !n.inputsUnknown {
		if len(inputs) == 0 {
			return b.errorf("node %q (step %q) has no inputs, so it cannot take input %q", n.Name, n.step(), input)
		}
		return b.errorf("node %q (step %q) has no input %q (inputs: %s)", n.Name, n.step(), input, quoteList(sortedMapKeys(inputs)))
	}
	if len(urls) == 0 {
		return b.errorf("no URL given for input %q of node %q", input, n.Name)
	}
	list := make([]any, len(urls))
	for i, u := range urls {
		if !strings.Contains(u, "://") || strings.ContainsFunc(u, isSpaceOrControl) {
			return b.errorf("input %q of node %q: %q is not a URI such as https://host/file, s3://bucket/key or datum://id",
				input, n.Name, redactQuery(u))
		}
		list[i] = u
	}
	inputs[input] = list
	return nil
}

// SetParameter sets a value the pipeline runs with. A name that is a
// pipeline parameter sets its expression (a list becomes a single-style
// variant, as the converter does); "<node>.<parameter>" (split at the last
// dot; the node may also be named by its step) sets that node's template
// parameter, as the CLI's --node.param does. Anything else is an error
// that lists what exists.
func (b *PipelineBody) SetParameter(name string, value any) error {
	if _, err := json.Marshal(value); err != nil {
		return b.errorf("parameter %q: the value cannot be sent as JSON: %v", name, err)
	}
	if p, ok := b.Parameters[name]; ok && p != nil {
		p.Expression = convertExpression(deepCopy(value))
		return nil
	}
	nodeRef, param, ok := SplitNodeRef(name)
	if !ok {
		if len(b.Parameters) == 0 {
			return b.errorf("has no pipeline parameters, so %q cannot be set; use <node>.<parameter> for a node's parameter", name)
		}
		return b.errorf("has no parameter %q (parameters: %s); use <node>.<parameter> for a node's parameter",
			name, quoteList(sortedMapKeys(b.Parameters)))
	}
	n, err := b.runnable(nodeRef)
	if err != nil {
		return err
	}
	params, _ := n.Template["parameters"].(map[string]any)
	if _, ok := params[param]; !ok {
		if inputs, _ := n.Template["inputs"].(map[string]any); inputs != nil {
			if _, isInput := inputs[param]; isInput {
				return b.errorf("%q is an input of node %q, not a parameter; give it as a payload input", param, n.Name)
			}
		}
		return b.errorf("node %q (step %q) has no parameter %q (parameters: %s)", n.Name, n.step(), param, quoteList(sortedMapKeys(params)))
	}
	params[param] = deepCopy(value)
	return nil
}

// SplitNodeRef splits "<node>.<name>" at the last dot, as the CLI does for
// --node.param and Valohai's trigger form for "<node>.<input>". ok is false
// unless both parts are non-empty.
func SplitNodeRef(ref string) (node, name string, ok bool) {
	i := strings.LastIndexByte(ref, '.')
	if i <= 0 || i == len(ref)-1 {
		return "", "", false
	}
	return ref[:i], ref[i+1:], true
}

// durationPart is one "<number><unit>" of a valohai-yaml duration such as
// "1h 30m".
var durationPart = regexp.MustCompile(`([.\d]+)\s*([a-z]*)`)

// durationUnits are the seconds in each duration unit, by first letter.
var durationUnits = map[byte]float64{'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 7 * 86400}

// maxDurationSeconds bounds durations far beyond any real time limit, so
// the conversion to an integer cannot overflow.
const maxDurationSeconds = 1 << 40

// durationSeconds reads a valohai-yaml duration (integer seconds or a
// string like "1h30m") as whole seconds. set is false for values
// valohai-yaml treats as unset: null, "", and zero. Unlike valohai-yaml, a
// unitless number in a string ("600") is taken as seconds instead of
// crashing.
func durationSeconds(v any) (secs int64, set bool, err error) {
	if v == nil {
		return 0, false, nil
	}
	if s, ok := v.(string); ok {
		if strings.TrimSpace(s) == "" {
			return 0, false, nil
		}
		total := 0.0
		for _, m := range durationPart.FindAllStringSubmatch(s, -1) {
			n, err := strconv.ParseFloat(m[1], 64)
			if err != nil {
				return 0, false, fmt.Errorf("%q is not a duration such as 90s, 30m or 1h30m", s)
			}
			unit := 1.0
			if m[2] != "" {
				var ok bool
				if unit, ok = durationUnits[m[2][0]]; !ok {
					return 0, false, fmt.Errorf("%q has an unknown unit %q (s, m, h, d or w)", s, m[2])
				}
			}
			total += n * unit
		}
		if total <= 0 || math.IsNaN(total) {
			return 0, false, fmt.Errorf("%q is not a positive duration", s)
		}
		if total > maxDurationSeconds {
			return 0, false, fmt.Errorf("%q is too long", s)
		}
		return int64(total), true, nil
	}
	n, ok := number(v)
	if !ok || n != math.Trunc(n) {
		return 0, false, fmt.Errorf("%v is not whole seconds or a duration such as 1h30m", v)
	}
	if n < 0 || n > maxDurationSeconds {
		return 0, false, fmt.Errorf("%v seconds is out of range", v)
	}
	return int64(n), n > 0, nil
}

// asMap reads a mapping; YAML decoders may produce non-string keys, which
// become their text.
func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, x := range m {
			out[fmt.Sprint(k)] = x
		}
		return out, true
	}
	return nil, false
}

// asSlice reads any list ([]any, []string, ...) as []any; a []byte is not a list.
func asSlice(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case []string:
		return toAnyList(x), true
	case nil, []byte, json.RawMessage:
		return nil, false
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array {
		return nil, false
	}
	out := make([]any, rv.Len())
	for i := range out {
		out[i] = rv.Index(i).Interface()
	}
	return out, true
}

func toAnyList(s []string) []any {
	out := make([]any, len(s))
	for i, x := range s {
		out[i] = x
	}
	return out
}

// field returns the value of the first key present with a non-null value:
// valohai-yaml reads "on-error" and "on_error" alike.
func field(m map[string]any, keys ...string) (any, bool) {
	for _, k := range keys {
		if v, ok := m[k]; ok && v != nil {
			return v, true
		}
	}
	return nil, false
}

// listify is valohai-yaml's listify: null is [], a list is copied, anything
// else is wrapped.
func listify(v any) []any {
	if v == nil {
		return []any{}
	}
	if l, ok := asSlice(v); ok {
		out := make([]any, len(l))
		for i, x := range l {
			out[i] = deepCopy(x)
		}
		return out
	}
	return []any{deepCopy(v)}
}

// deepCopy copies maps and lists, so that a body never shares state with
// the config it came from or with another body.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[fmt.Sprint(k)] = deepCopy(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	}
	return v
}

// number reads any numeric value, including json.Number.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint:
		return float64(x), true
	}
	return 0, false
}

// truthy is Python truthiness, which decides what valohai-yaml keeps.
func truthy(v any) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case string:
		return x != ""
	}
	if n, ok := number(v); ok {
		return n != 0
	}
	if l, ok := asSlice(v); ok {
		return len(l) > 0
	}
	if m, ok := asMap(v); ok {
		return len(m) > 0
	}
	return true
}

// pyStr is the text of a scalar, as Python's str() gives it for strings and
// numbers.
func pyStr(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		if x {
			return "True"
		}
		return "False"
	}
	return fmt.Sprint(v)
}

// kindOf names a value's YAML kind for error messages.
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	}
	if _, ok := number(v); ok {
		return "a number"
	}
	if _, ok := asMap(v); ok {
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// quoteList formats names for an error message, at most 20 of them.
func quoteList(names []string) string {
	const most = 20
	if len(names) == 0 {
		return "none"
	}
	parts := make([]string, 0, min(len(names), most)+1)
	for i, n := range names {
		if i == most {
			parts = append(parts, fmt.Sprintf("and %d more", len(names)-most))
			break
		}
		parts = append(parts, strconv.Quote(n))
	}
	return strings.Join(parts, ", ")
}

func sortedMapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// redactQuery cuts a URL's query and fragment for an error message: a
// payload URL's query holds its signature, which must not reach logs.
func redactQuery(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

func isSpaceOrControl(r rune) bool {
	return r <= ' ' || r == 0x7f
}

// Interface guards: bodies and nodes flatten themselves when marshalled.
var (
	_ json.Marshaler = PipelineBody{}
	_ json.Marshaler = PipelineNode{}
)
