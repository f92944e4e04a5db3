// Package jsontest holds the test helpers launch and launch/convert share:
// reading valohai.yaml fixtures and comparing decoded JSON documents.
package jsontest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"
	"testing"

	"github.com/hooklaunch/caddy-valohai/launch/simulator"
)

// The project and commit of the golden bodies in launch/testdata
// (pipeline-*.json, parity/, execparity/).
const (
	GoldenProject = "0b7e7c2a-5f6d-4f59-9a43-2f8c1f5b9d01"
	GoldenCommit  = "0123abcd0123abcd0123abcd0123abcd0123abcd"
)

// Diff lists the paths (from path, e.g. "$") where two decoded JSON
// documents differ: missing and unexpected keys, and differing values.
func Diff(path string, got, want any) []string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: got %s, want an object", path, compact(got))}
		}
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		sorted := make([]string, 0, len(keys))
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		var diffs []string
		for _, k := range sorted {
			gv, gok := g[k]
			wv, wok := w[k]
			switch {
			case !gok:
				diffs = append(diffs, fmt.Sprintf("%s.%s: missing, want %s", path, k, compact(wv)))
			case !wok:
				diffs = append(diffs, fmt.Sprintf("%s.%s: unexpected %s", path, k, compact(gv)))
			default:
				diffs = append(diffs, Diff(path+"."+k, gv, wv)...)
			}
		}
		return diffs
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return []string{fmt.Sprintf("%s: got %s, want %s", path, compact(got), compact(want))}
		}
		var diffs []string
		for i := range w {
			diffs = append(diffs, Diff(fmt.Sprintf("%s[%d]", path, i), g[i], w[i])...)
		}
		return diffs
	}
	if !reflect.DeepEqual(got, want) {
		return []string{fmt.Sprintf("%s: got %s, want %s", path, compact(got), compact(want))}
	}
	return nil
}

func compact(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// LoadConfig parses the valohai.yaml at path the way the simulator serves
// it (a list of entries, numbers as the YAML gives them).
func LoadConfig(t testing.TB, path string) []any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	config, err := simulator.ParseConfigYAML(data)
	if err != nil {
		t.Fatal(err)
	}
	return config
}

// Plain decodes JSON into plain values (float64 numbers) so that two
// documents compare by meaning, not by spelling or key order.
func Plain(t testing.TB, data []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("invalid JSON: %v\n%s", err, data)
	}
	return v
}

// DecodeNumbers decodes JSON keeping numbers as json.Number, as the
// launch client decodes Valohai's answers.
func DecodeNumbers(data []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(out); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}
