// Package jsontest compares decoded JSON documents for the tests of
// launch and launch/convert.
package jsontest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
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
