package convert

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// ConfigError is a valohai.yaml that valohai-yaml refuses: each problem
// names the field by its path in the file, as `vh lint` does
// ("2.pipeline.parameters.1").
type ConfigError struct {
	Problems []string
}

func (e *ConfigError) Error() string {
	return "valohai.yaml is invalid (valohai-yaml refuses it; see `vh lint`): " + strings.Join(e.Problems, "; ")
}

// objectSchema is what valohai-yaml's schema allows in one kind of
// mapping: its keys, the required ones, and how to check nested values.
type objectSchema struct {
	allowed  []string
	required []string
	// lists maps a key to the schema of each item of its list value.
	lists map[string]*objectSchema
	// objects maps a key to the schema of its mapping value.
	objects map[string]*objectSchema
}

var (
	paramSchema  = &objectSchema{allowed: []string{"category", "choices", "default", "description", "max", "min", "multiple", "multiple-separator", "name", "optional", "pass-as", "pass-false-as", "pass-true-as", "type", "widget"}, required: []string{"name"}}
	inputSchema  = &objectSchema{allowed: []string{"default", "description", "download", "filename", "keep-directories", "name", "optional"}, required: []string{"name"}}
	outputSchema = &objectSchema{allowed: []string{"description", "name"}, required: []string{"name"}}
	envSchema    = &objectSchema{allowed: []string{"default", "description", "name", "optional"}, required: []string{"name"}}
	minMax       = &objectSchema{allowed: []string{"max", "min"}}
	stepSchema   = &objectSchema{
		allowed: []string{"cache-volumes", "category", "command", "description", "environment", "environment-variable-groups",
			"environment-variables", "icon", "image", "inputs", "mounts", "name", "no-output-timeout", "outputs", "parameters",
			"resources", "runtime-config-preset", "source-path", "stop-condition", "time-limit", "upload-store"},
		required: []string{"command", "name", "image"},
		lists:    map[string]*objectSchema{"parameters": paramSchema, "inputs": inputSchema, "outputs": outputSchema, "environment-variables": envSchema},
		objects: map[string]*objectSchema{"resources": {
			allowed: []string{"cpu", "memory", "devices", "ephemeral-storage"},
			objects: map[string]*objectSchema{"cpu": minMax, "memory": minMax, "ephemeral-storage": minMax},
		}},
	}
	overrideSchema = &objectSchema{
		allowed: []string{"command", "environment", "environment-variables", "image", "inputs", "mounts", "parameters", "runtime-config-preset"},
		lists:   map[string]*objectSchema{"parameters": paramSchema, "inputs": inputSchema, "environment-variables": envSchema},
	}
	actionSchema = &objectSchema{allowed: []string{"if", "then", "when"}, required: []string{"when", "then"}}
	nodeSchemas  = map[string]*objectSchema{
		"execution": {allowed: []string{"actions", "commit", "edge-merge-mode", "name", "on-error", "override", "step", "type"},
			required: []string{"name", "step", "type"}, lists: map[string]*objectSchema{"actions": actionSchema},
			objects: map[string]*objectSchema{"override": overrideSchema}},
		"task": {allowed: []string{"actions", "commit", "edge-merge-mode", "name", "on-error", "override", "step", "task", "type"},
			required: []string{"name", "type"}, lists: map[string]*objectSchema{"actions": actionSchema},
			objects: map[string]*objectSchema{"override": overrideSchema}},
		"deployment": {allowed: []string{"actions", "aliases", "deployment", "endpoints", "name", "on-error", "type"},
			required: []string{"name", "deployment", "type"}, lists: map[string]*objectSchema{"actions": actionSchema}},
	}
	pipelineSchema = &objectSchema{
		allowed:  []string{"edges", "name", "nodes", "parameters", "reuse-executions"},
		required: []string{"edges", "name", "nodes"},
		lists: map[string]*objectSchema{"parameters": {
			allowed: []string{"category", "default", "description", "name", "target", "targets"}}},
	}
	taskSchema = &objectSchema{
		allowed: []string{"description", "engine", "execution-batch-size", "execution-count", "maximum-queued-executions", "name",
			"on-child-error", "optimization-target-metric", "optimization-target-value", "parameter-sets", "parameters",
			"reuse-children", "step", "stop-condition", "type"},
		required: []string{"name", "step"},
		lists: map[string]*objectSchema{"parameters": {allowed: []string{"name", "rules", "style"}, required: []string{"name", "rules", "style"},
			objects: map[string]*objectSchema{"rules": {allowed: []string{"base", "count", "distribution", "end", "integerify", "items",
				"max", "min", "numberify", "seed", "start", "step", "value"}}}}},
	}
	endpointSchema = &objectSchema{
		allowed:  []string{"description", "files", "image", "name", "node-selector", "port", "resources", "server-command", "tolerations", "wsgi"},
		required: []string{"name", "image"},
		lists:    map[string]*objectSchema{"files": {allowed: []string{"description", "name", "path"}, required: []string{"name", "path"}}},
	}
	deploymentSchema = &objectSchema{allowed: []string{"defaults", "name"}, required: []string{"name"}}
	topLevel         = map[string]*objectSchema{
		"step": stepSchema, "pipeline": pipelineSchema, "task": taskSchema, "endpoint": endpointSchema, "deployment": deploymentSchema,
	}
)

// ValidateConfig checks a parsed valohai.yaml the way valohai-yaml's
// schema does before it parses a file: every top-level entry is one step,
// pipeline, task, endpoint or deployment; each mapping carries only the
// keys the schema allows and the keys it requires; pipeline nodes are of
// type execution, task or deployment. The problems are listed with their
// paths, at most ten.
func ValidateConfig(config []any) error {
	v := &validator{}
	for i, raw := range config {
		entry, ok := asMap(raw)
		if !ok {
			v.add(fmt.Sprint(i), "must be a mapping such as `- step: {...}`, not %s", kindOf(raw))
			continue
		}
		if len(entry) != 1 {
			v.add(fmt.Sprint(i), "must hold exactly one of step, pipeline, task, endpoint, deployment (has %s)", strings.Join(sortedMapKeys(entry), ", "))
			continue
		}
		for kind, val := range entry {
			schema, ok := topLevel[kind]
			if !ok {
				v.add(fmt.Sprint(i), "%q is not a valohai.yaml entry (step, pipeline, task, endpoint or deployment)", kind)
				continue
			}
			path := fmt.Sprintf("%d.%s", i, kind)
			v.object(path, val, schema)
			if kind == "pipeline" {
				v.nodes(path, val)
			}
		}
	}
	if len(v.problems) > 0 {
		return &ConfigError{Problems: v.problems}
	}
	return nil
}

type validator struct {
	problems []string
}

const maxProblems = 10

func (v *validator) add(path, format string, args ...any) {
	if len(v.problems) < maxProblems {
		v.problems = append(v.problems, path+": "+fmt.Sprintf(format, args...))
	}
}

func (v *validator) object(path string, raw any, s *objectSchema) {
	m, ok := asMap(raw)
	if !ok {
		v.add(path, "must be a mapping, not %s", kindOf(raw))
		return
	}
	var unexpected []string
	for k := range m {
		if !slices.Contains(s.allowed, k) {
			unexpected = append(unexpected, k)
		}
	}
	sort.Strings(unexpected)
	for _, k := range unexpected {
		v.add(path, "%q is not allowed here (allowed: %s)", k, strings.Join(s.allowed, ", "))
	}
	for _, k := range s.required {
		if _, ok := m[k]; !ok {
			v.add(path, "%q is required", k)
		}
	}
	for k, item := range s.lists {
		val, ok := m[k]
		if !ok || val == nil {
			continue
		}
		list, ok := asSlice(val)
		if !ok {
			if _, isMap := asMap(val); k == "parameters" && isMap {
				continue // a pipeline's parameters may also be a mapping in old files; the converter reports it
			}
			v.add(path+"."+k, "must be a list, not %s", kindOf(val))
			continue
		}
		for j, el := range list {
			v.object(fmt.Sprintf("%s.%s.%d", path, k, j), el, item)
		}
	}
	for k, item := range s.objects {
		if val, ok := m[k]; ok && val != nil {
			v.object(path+"."+k, val, item)
		}
	}
}

// nodes checks a pipeline's nodes against the schema of their type.
func (v *validator) nodes(path string, raw any) {
	m, _ := asMap(raw)
	list, ok := asSlice(m["nodes"])
	if !ok {
		return
	}
	for j, el := range list {
		np := fmt.Sprintf("%s.nodes.%d", path, j)
		node, ok := asMap(el)
		if !ok {
			v.add(np, "must be a mapping, not %s", kindOf(el))
			continue
		}
		typ, _ := node["type"].(string)
		schema, ok := nodeSchemas[typ]
		if !ok {
			v.add(np, "type %q is not one of execution, task, deployment", pyStrOrNull(node["type"]))
			continue
		}
		v.object(np, node, schema)
	}
}
