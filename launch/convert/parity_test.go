package convert

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// parityFixture is one launch/testdata/parity/<name>.json file: what
// valohai-yaml's PipelineConverter produced for <name>.yaml (see the
// README.md in that folder for how it was made).
type parityFixture struct {
	Version   string                     `json:"valohai_yaml"`
	Commit    string                     `json:"commit"`
	Errors    []string                   `json:"errors"`
	Pipelines map[string]json.RawMessage `json:"pipelines"`
}

func loadParity(t *testing.T) map[string]parityFixture {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testdataDir, "parity", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no parity inputs: %v", err)
	}
	out := map[string]parityFixture{}
	for _, f := range files {
		data, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".json")
		if err != nil {
			t.Fatalf("%s has no expected output: %v", f, err)
		}
		var fx parityFixture
		if err := json.Unmarshal(data, &fx); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = fx
	}
	return out
}

// TestPipelineParityWithValohaiYAML converts every pipeline of every
// valohai.yaml under testdata/parity and compares the nodes, edges and
// parameters with valohai-yaml's PipelineConverter output for the same
// file and commit, key by key (key spelling included), both for the config
// as parsed from YAML and as the API sends it (JSON numbers).
func TestPipelineParityWithValohaiYAML(t *testing.T) {
	total := 0
	for file, fx := range loadParity(t) {
		if len(fx.Errors) > 0 {
			continue // refused files are TestValidateConfigParity's
		}
		config := loadConfig(t, strings.TrimPrefix(file, testdataDir+string(filepath.Separator)))
		names := make([]string, 0, len(fx.Pipelines))
		for name := range fx.Pipelines {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			total++
			want := plainJSON(t, fx.Pipelines[name])
			for source, cfg := range map[string][]any{"yaml": config, "api": viaAPI(t, config)} {
				t.Run(filepath.Base(file)+"/"+name+"/"+source, func(t *testing.T) {
					body, err := ConvertPipeline(cfg, fx.Commit, name)
					if err != nil {
						t.Fatal(err)
					}
					got := marshalPlain(t, body).(map[string]any)
					for _, k := range []string{"project", "title", "tags"} {
						delete(got, k) // set by the action, not the converter
					}
					assertJSONEqual(t, got, want)
				})
			}
		}
	}
	if total < 20 {
		t.Errorf("only %d pipelines compared; the parity set promises at least 20", total)
	}
}

// TestValidateConfigParity: every valohai.yaml under testdata/parity that
// valohai-yaml refuses is refused here too, with a problem at each path
// valohai-yaml's lint names; the accepted ones are accepted.
func TestValidateConfigParity(t *testing.T) {
	refused := 0
	for file, fx := range loadParity(t) {
		config := loadConfig(t, strings.TrimPrefix(file, testdataDir+string(filepath.Separator)))
		err := ValidateConfig(config)
		if len(fx.Errors) == 0 {
			if err != nil {
				t.Errorf("%s: valohai-yaml accepts it, we refuse: %v", file, err)
			}
			continue
		}
		refused++
		var ce *ConfigError
		if !errors.As(err, &ce) {
			t.Errorf("%s: valohai-yaml refuses it (%v), we accept it", file, fx.Errors)
			continue
		}
		for _, e := range fx.Errors {
			path := e[strings.LastIndex(e, "(")+1 : len(e)-1]
			if !strings.Contains(err.Error(), path+": ") {
				t.Errorf("%s: valohai-yaml names %s (%s); our error does not: %v", file, path, e, err)
			}
		}
		// A launch from such a file fails for good before any request.
		if _, err := ConvertPipeline(config, fx.Commit, "p"); !errors.As(err, &ce) {
			t.Errorf("%s: ConvertPipeline err = %v, want a *ConfigError", file, err)
		}
	}
	if refused < 4 {
		t.Errorf("%d refused files, want at least 4", refused)
	}
}
