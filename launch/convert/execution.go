package convert

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// NamedValue is a named value: a parameter setting of a pipeline run or
// an execution, an input URL, an environment variable.
type NamedValue struct {
	// Name is a pipeline parameter, or "<node>.<parameter>" for a node's
	// own parameter (see PipelineBody.SetParameter).
	Name string `json:"name"`
	// Value is sent with its JSON type: a number stays a number; a list
	// given for a pipeline parameter becomes a single-style variant.
	Value any `json:"value"`
}

// ExecutionSpec is what a run_execution action stores (launch.Action.Body):
// run Step of valohai.yaml at Commit. Stored as JSON:
//
//	{"project":"<uuid>","commit":"main","step":"train","title":"Push abc",
//	 "parameters":[{"name":"epochs","value":"5"}],
//	 "inputs":[{"name":"dataset","value":"https://..."}],
//	 "environment_variables":[{"name":"MODE","value":"fast"}],
//	 "tags":["webhook:github-push"],"time_limit":600}
//
// The launch client resolves Commit to a full identifier, reads that
// commit's valohai.yaml and builds the body `vh execution run <step>` would
// send (BuildExecutionBody), then POSTs /api/v0/executions/.
type ExecutionSpec struct {
	// Project is the Valohai project id; empty means the action's project.
	Project string `json:"project"`
	// Commit is a branch, a tag, a full or an abbreviated sha.
	Commit string `json:"commit"`
	// Step is the step's name in valohai.yaml.
	Step string `json:"step"`
	// Title of the execution; empty is left out.
	Title string `json:"title,omitempty"`
	// Parameters override the step's defaults; a name given several times
	// (or a list value) sets a multiple-valued parameter.
	Parameters []NamedValue `json:"parameters,omitempty"`
	// Inputs override the step's input defaults: the URLs given for an
	// input replace its defaults.
	Inputs []NamedValue `json:"inputs,omitempty"`
	// Environment is the environment slug or id; empty is left out.
	Environment string `json:"environment,omitempty"`
	// Image overrides the step's image; empty is left out.
	Image string `json:"image,omitempty"`
	// EnvironmentVariables are set before the step's defaults are added.
	EnvironmentVariables []NamedValue `json:"environment_variables,omitempty"`
	// EnvironmentVariableGroups are ids of environment variable groups.
	EnvironmentVariableGroups []string `json:"environment_variable_groups,omitempty"`
	// Tags of the execution.
	Tags []string `json:"tags,omitempty"`
	// RuntimeConfigPreset is a runtime config preset id.
	RuntimeConfigPreset string `json:"runtime_config_preset,omitempty"`
	// Priority of the job; nil is left out (0 is sent).
	Priority *int64 `json:"priority,omitempty"`
	// TimeLimit in whole seconds; 0 means the step's time-limit.
	TimeLimit int64 `json:"time_limit,omitempty"`
}

// ExecutionBody is the body of POST /api/v0/executions/, with the fields
// and the emptiness rules of valohai-cli's `vh execution run`: commit,
// inputs, parameters, project, step, environment_variables, tags and
// runtime_config are always sent (possibly empty); the other fields only
// when set.
type ExecutionBody struct {
	Commit                    string              `json:"commit"`
	Inputs                    map[string][]string `json:"inputs"`
	Parameters                map[string]any      `json:"parameters"`
	Project                   string              `json:"project"`
	Step                      string              `json:"step"`
	Environment               string              `json:"environment,omitempty"`
	Image                     string              `json:"image,omitempty"`
	Title                     string              `json:"title,omitempty"`
	EnvironmentVariables      map[string]string   `json:"environment_variables"`
	EnvironmentVariableGroups []string            `json:"environment_variable_groups,omitempty"`
	Tags                      []string            `json:"tags"`
	RuntimeConfig             map[string]any      `json:"runtime_config"`
	RuntimeConfigPreset       string              `json:"runtime_config_preset,omitempty"`
	Priority                  *int64              `json:"priority,omitempty"`
	TimeLimit                 *int64              `json:"time_limit,omitempty"`
}

// StepError is a run_execution that cannot be built from the commit's
// valohai.yaml: an unknown step, parameter or input, a value that cannot
// take its parameter's declared type, a required input not given. It is
// permanent: retrying sends the same values.
type StepError struct {
	Step   string
	Reason string
}

func (e *StepError) Error() string {
	return fmt.Sprintf("valohai: step %q: %s", e.Step, e.Reason)
}

// BuildExecutionBody builds what `vh execution run <step>` sends for spec
// against config (the commit's parsed valohai.yaml) at commit (a full
// identifier): every parameter of the step with its default or override,
// typed by its declaration; every input with its default or override;
// the step's environment-variable defaults under the given ones; the
// step's time-limit (unless spec sets one) and resources as Kubernetes
// runtime config.
func BuildExecutionBody(config []any, commit string, spec *ExecutionSpec) (*ExecutionBody, error) {
	if err := ValidateConfig(config); err != nil {
		return nil, err
	}
	cfg := parseConfig(config)
	step, ok := cfg.steps[spec.Step]
	fail := func(format string, args ...any) error {
		return &StepError{Step: spec.Step, Reason: fmt.Sprintf(format, args...)}
	}
	if !ok {
		return nil, fail("valohai.yaml at commit %s has no such step (its steps: %s)", commit, quoteList(cfg.stepNames))
	}
	body := &ExecutionBody{
		Commit: commit, Project: spec.Project, Step: spec.Step,
		Inputs: map[string][]string{}, Parameters: map[string]any{},
		Environment: spec.Environment, Image: spec.Image, Title: spec.Title,
		EnvironmentVariables:      map[string]string{},
		EnvironmentVariableGroups: spec.EnvironmentVariableGroups,
		Tags:                      append([]string{}, spec.Tags...),
		RuntimeConfig:             map[string]any{},
		RuntimeConfigPreset:       spec.RuntimeConfigPreset,
		Priority:                  spec.Priority,
	}
	if len(body.EnvironmentVariableGroups) == 0 {
		body.EnvironmentVariableGroups = nil
	}

	// Parameters: the overrides by name, in order.
	given := map[string][]any{}
	for _, p := range spec.Parameters {
		if l, ok := asSlice(p.Value); ok {
			given[p.Name] = append(given[p.Name], l...)
		} else {
			given[p.Name] = append(given[p.Name], p.Value)
		}
	}
	params, _ := asSlice(step["parameters"])
	declared := map[string]bool{}
	var names []string
	for _, raw := range params {
		p, ok := asMap(raw)
		if !ok {
			continue
		}
		name, _ := p["name"].(string)
		if name == "" {
			continue
		}
		declared[name] = true
		names = append(names, name)
		typ, _ := p["type"].(string)
		multiple := p["multiple"] != nil && p["multiple"] != false
		values, override := given[name]
		if !override {
			if def, ok := p["default"]; ok && def != nil {
				values = listify(def)
			}
		}
		if multiple {
			out := make([]any, 0, len(values))
			for _, v := range values {
				tv, err := typedValue(typ, v)
				if err != nil {
					return nil, fail("parameter %q: %v", name, err)
				}
				out = append(out, tv)
			}
			body.Parameters[name] = out
			continue
		}
		if len(values) == 0 {
			if typ != "flag" { // a flag without default or value is left out
				body.Parameters[name] = nil
			}
			continue
		}
		// Given several times, the last value wins (as a repeated CLI option does).
		tv, err := typedValue(typ, values[len(values)-1])
		if err != nil {
			return nil, fail("parameter %q: %v", name, err)
		}
		body.Parameters[name] = tv
	}
	for _, p := range spec.Parameters {
		if !declared[p.Name] {
			return nil, fail("has no parameter %q (its parameters: %s)", p.Name, quoteList(names))
		}
	}

	// Inputs: given URLs replace the defaults.
	givenInputs := map[string][]string{}
	for _, in := range spec.Inputs {
		s, _ := in.Value.(string)
		givenInputs[in.Name] = append(givenInputs[in.Name], s)
	}
	inputs, _ := asSlice(step["inputs"])
	var inputNames []string
	for _, raw := range inputs {
		in, ok := asMap(raw)
		if !ok {
			continue
		}
		name, _ := in["name"].(string)
		if name == "" {
			continue
		}
		inputNames = append(inputNames, name)
		if urls, ok := givenInputs[name]; ok {
			body.Inputs[name] = urls
			delete(givenInputs, name)
			continue
		}
		urls := []string{}
		for _, v := range listify(in["default"]) {
			urls = append(urls, pyStr(v))
		}
		if in["default"] == nil && !truthy(in["optional"]) {
			return nil, fail("input %q is required (it has no default) and the trigger gives it no URL", name)
		}
		body.Inputs[name] = urls
	}
	for _, in := range spec.Inputs {
		if _, unknown := givenInputs[in.Name]; unknown {
			return nil, fail("has no input %q (its inputs: %s)", in.Name, quoteList(inputNames))
		}
	}

	// Environment variables: given ones, then the step's defaults.
	for _, e := range spec.EnvironmentVariables {
		body.EnvironmentVariables[e.Name] = pyStr(e.Value)
	}
	envs, _ := asSlice(field2(step, "environment-variables", "environment_variables"))
	for _, raw := range envs {
		e, ok := asMap(raw)
		if !ok {
			continue
		}
		name, _ := e["name"].(string)
		if _, set := body.EnvironmentVariables[name]; name == "" || set || e["default"] == nil {
			continue
		}
		body.EnvironmentVariables[name] = pyStr(e["default"])
	}

	// Time limit: the trigger's, else the step's.
	if spec.TimeLimit > 0 {
		tl := spec.TimeLimit
		body.TimeLimit = &tl
	} else if v, ok := field(step, "time-limit", "time_limit"); ok {
		secs, set, err := durationSeconds(v)
		if err != nil {
			return nil, fail("time-limit: %v", err)
		}
		if set {
			body.TimeLimit = &secs
		}
	}

	if kube := kubernetesConfig(step); len(kube) > 0 {
		body.RuntimeConfig["kubernetes"] = kube
	}
	return body, nil
}

// field2 is the value of the first key present.
func field2(m map[string]any, keys ...string) any {
	v, _ := field(m, keys...)
	return v
}

// kubernetesConfig turns a step's resources and cache-volumes into the
// runtime_config.kubernetes object valohai-cli sends: requests (cpu,
// memory min), limits (cpu, memory max, devices), cache_volumes; unset
// values and empty objects are left out, except an explicitly empty
// devices mapping, which is sent as {}.
func kubernetesConfig(step map[string]any) map[string]any {
	res, _ := asMap(step["resources"])
	get := func(group, key string) any {
		g, _ := asMap(res[group])
		return g[key]
	}
	compact := func(m map[string]any) map[string]any {
		for k, v := range m {
			if v == nil {
				delete(m, k)
			} else if mm, ok := v.(map[string]any); ok && len(mm) == 0 {
				delete(m, k)
			}
		}
		return m
	}
	limits := compact(map[string]any{"cpu": get("cpu", "max"), "memory": get("memory", "max")})
	if devices, ok := asMap(res["devices"]); ok {
		limits["devices"] = deepCopy(devices)
	}
	resources := compact(map[string]any{
		"requests": compact(map[string]any{"cpu": get("cpu", "min"), "memory": get("memory", "min")}),
		"limits":   limits,
	})
	kube := map[string]any{}
	if len(resources) > 0 {
		kube["containers"] = map[string]any{"workload": map[string]any{"resources": resources}}
	}
	if vols, ok := asSlice(field2(step, "cache-volumes", "cache_volumes")); ok && len(vols) > 0 {
		list := make([]any, 0, len(vols))
		for _, v := range vols {
			list = append(list, map[string]any{"pvc_name": pyStr(v)})
		}
		kube["cache_volumes"] = list
	}
	return kube
}

// typedValue converts a value to a parameter's declared type the way the
// CLI's option types do: integer and float take numbers or their text,
// flag takes booleans, 0/1 and the words true/false, yes/no, on/off, y/n,
// t/f; anything else becomes text.
func typedValue(typ string, v any) (any, error) {
	switch typ {
	case "integer":
		switch x := v.(type) {
		case string:
			n, err := strconv.ParseInt(strings.TrimSpace(x), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%q is not a valid integer", x)
			}
			return n, nil
		case bool, nil:
			return nil, fmt.Errorf("%v is not a valid integer", pyStrOrNull(v))
		}
		n, ok := number(v)
		if !ok || n != math.Trunc(n) || math.Abs(n) > 1<<53 {
			return nil, fmt.Errorf("%v is not a valid integer", pyStrOrNull(v))
		}
		if num, ok := v.(json.Number); ok {
			if i, err := num.Int64(); err == nil {
				return i, nil
			}
		}
		return int64(n), nil
	case "float":
		switch x := v.(type) {
		case string:
			f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
			if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
				return nil, fmt.Errorf("%q is not a valid float", x)
			}
			return f, nil
		case bool, nil:
			return nil, fmt.Errorf("%v is not a valid float", pyStrOrNull(v))
		}
		n, ok := number(v)
		if !ok {
			return nil, fmt.Errorf("%v is not a valid float", pyStrOrNull(v))
		}
		return n, nil
	case "flag":
		switch x := v.(type) {
		case bool:
			return x, nil
		case nil:
			return nil, errors.New("null is not a valid boolean")
		}
		if n, ok := number(v); ok && (n == 0 || n == 1) {
			return n == 1, nil
		}
		switch strings.ToLower(strings.TrimSpace(pyStr(v))) {
		case "1", "true", "t", "yes", "y", "on":
			return true, nil
		case "0", "false", "f", "no", "n", "off":
			return false, nil
		}
		return nil, fmt.Errorf("%q is not a valid boolean (true/false, yes/no, on/off, 1/0)", pyStr(v))
	}
	if v == nil {
		return nil, nil
	}
	if _, isList := asSlice(v); isList {
		return nil, errors.New("a list is not a valid string")
	}
	if _, isMap := asMap(v); isMap {
		return nil, errors.New("an object is not a valid string")
	}
	return pyStr(v), nil
}

func pyStrOrNull(v any) string {
	if v == nil {
		return "null"
	}
	return pyStr(v)
}
