package launch

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hooklaunch/caddy-valohai/launch/internal/jsontest"
	"github.com/hooklaunch/caddy-valohai/launch/simulator"
)

// The golden project and commit of testdata/pipeline-*.json.
const (
	goldenProject = "0b7e7c2a-5f6d-4f59-9a43-2f8c1f5b9d01"
	goldenCommit  = "0123abcd0123abcd0123abcd0123abcd0123abcd"
)

// loadConfig parses a valohai.yaml from testdata the way the simulator
// serves it.
func loadConfig(t testing.TB, name string) []any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	config, err := simulator.ParseConfigYAML(data)
	if err != nil {
		t.Fatal(err)
	}
	return config
}

// plainJSON decodes JSON into plain values (float64 numbers) so that two
// documents compare by meaning, not by spelling or key order.
func plainJSON(t testing.TB, data []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, data)
	}
	return v
}

// assertJSONEqual reports the paths where two decoded documents differ.
func assertJSONEqual(t *testing.T, got, want any) {
	t.Helper()
	if diffs := jsonDiff("$", got, want); len(diffs) > 0 {
		t.Errorf("body differs from the expected one:\n  %s", strings.Join(diffs, "\n  "))
	}
}

// marshalPlain encodes v and decodes it back into plain values.
func marshalPlain(t testing.TB, v any) any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return plainJSON(t, data)
}

func jsonDiff(path string, got, want any) []string { return jsontest.Diff(path, got, want) }
