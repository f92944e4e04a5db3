package convert

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// execCase is one case of testdata/execparity/cases.json.
type execCase struct {
	Name       string     `json:"name"`
	Step       string     `json:"step"`
	Parameters [][2]any   `json:"parameters"`
	Inputs     [][2]any   `json:"inputs"`
	Options    execOption `json:"options"`
}

type execOption struct {
	Title                     string            `json:"title"`
	Environment               string            `json:"environment"`
	Image                     string            `json:"image"`
	Tags                      []string          `json:"tags"`
	EnvironmentVariables      map[string]string `json:"environment_variables"`
	EnvironmentVariableGroups []string          `json:"environment_variable_groups"`
	RuntimeConfigPreset       string            `json:"runtime_config_preset"`
	Priority                  *int64            `json:"priority"`
	TimeLimit                 int64             `json:"time_limit"`
}

// TestExecutionParityWithValohaiCLI builds the execution body of every
// case in testdata/execparity/cases.json and compares it with what
// valohai-cli's `vh execution run` built for the same valohai.yaml and
// overrides (expected.json; see testdata/README.md), key by key. A case
// the CLI refuses must fail for good here too, naming the parameter.
func TestExecutionParityWithValohaiCLI(t *testing.T) {
	dir := filepath.Join(testdataDir, "execparity")
	config := loadConfig(t, filepath.Join("execparity", "valohai.yaml"))
	var cases []execCase
	readJSON(t, filepath.Join(dir, "cases.json"), &cases)
	var expected struct {
		Commit  string `json:"commit"`
		Project string `json:"project"`
		Cases   map[string]struct {
			Body  json.RawMessage `json:"body"`
			Error string          `json:"error"`
		} `json:"cases"`
	}
	readJSON(t, filepath.Join(dir, "expected.json"), &expected)
	if len(cases) < 10 {
		t.Fatalf("%d cases, want at least 10", len(cases))
	}
	for _, tc := range cases {
		want, ok := expected.Cases[tc.Name]
		if !ok {
			t.Fatalf("case %s has no expected result: regenerate expected.json", tc.Name)
		}
		spec := &ExecutionSpec{
			Project: expected.Project, Commit: "ignored: the resolved commit is passed", Step: tc.Step,
			Title: tc.Options.Title, Environment: tc.Options.Environment, Image: tc.Options.Image,
			Tags: tc.Options.Tags, EnvironmentVariableGroups: tc.Options.EnvironmentVariableGroups,
			RuntimeConfigPreset: tc.Options.RuntimeConfigPreset, Priority: tc.Options.Priority,
			TimeLimit: tc.Options.TimeLimit,
		}
		for _, p := range tc.Parameters {
			spec.Parameters = append(spec.Parameters, NamedValue{Name: p[0].(string), Value: p[1]})
		}
		for _, in := range tc.Inputs {
			spec.Inputs = append(spec.Inputs, NamedValue{Name: in[0].(string), Value: in[1]})
		}
		for _, name := range sortedMapKeys(tc.Options.EnvironmentVariables) {
			spec.EnvironmentVariables = append(spec.EnvironmentVariables, NamedValue{Name: name, Value: tc.Options.EnvironmentVariables[name]})
		}
		for source, cfg := range map[string][]any{"yaml": config, "api": viaAPI(t, config)} {
			t.Run(tc.Name+"/"+source, func(t *testing.T) {
				body, err := BuildExecutionBody(cfg, expected.Commit, spec)
				if want.Error != "" {
					var se *StepError
					if !errors.As(err, &se) || !strings.Contains(err.Error(), "parameter \"") {
						t.Fatalf("err = %v; valohai-cli refused with %q, want a *StepError naming the parameter", err, want.Error)
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				assertJSONEqual(t, marshalPlain(t, body), plainJSON(t, want.Body))
			})
		}
	}
}

func readJSON(t *testing.T, path string, out any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := decodeNumbers(data, out); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
