package launch

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hooklaunch/caddy-valohai/launch/internal/jsontest"
)

const (
	goldenProject = jsontest.GoldenProject
	goldenCommit  = jsontest.GoldenCommit
)

// loadConfig parses a valohai.yaml from testdata the way the simulator
// serves it.
func loadConfig(t testing.TB, name string) []any {
	t.Helper()
	return jsontest.LoadConfig(t, filepath.Join("testdata", name))
}

func plainJSON(t testing.TB, data []byte) any { t.Helper(); return jsontest.Plain(t, data) }

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
