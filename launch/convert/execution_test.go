package convert

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestTypedValue(t *testing.T) {
	for _, tt := range []struct {
		typ  string
		in   any
		want any
		err  string
	}{
		{"integer", "42", int64(42), ""},
		{"integer", " -7 ", int64(-7), ""},
		{"integer", json.Number("12"), int64(12), ""},
		{"integer", 3.0, int64(3), ""},
		{"integer", 3.5, nil, "not a valid integer"},
		{"integer", "3.5", nil, "not a valid integer"},
		{"integer", true, nil, "not a valid integer"},
		{"integer", nil, nil, "not a valid integer"},
		{"float", "0.25", 0.25, ""},
		{"float", "1e-3", 0.001, ""},
		{"float", json.Number("2"), 2.0, ""},
		{"float", "NaN", nil, "not a valid float"},
		{"float", "inf", nil, "not a valid float"},
		{"flag", "yes", true, ""},
		{"flag", "Off", false, ""},
		{"flag", 1.0, true, ""},
		{"flag", json.Number("0"), false, ""},
		{"flag", false, false, ""},
		{"flag", "maybe", nil, "not a valid boolean"},
		{"flag", 2.0, nil, "not a valid boolean"},
		{"string", json.Number("5"), "5", ""},
		{"string", "x", "x", ""},
		{"string", true, "True", ""}, // Python's str(), as the CLI sends it
		{"string", []any{"a"}, nil, "a list is not a valid string"},
		{"", map[string]any{}, nil, "an object is not a valid string"},
	} {
		got, err := typedValue(tt.typ, tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s %#v: err = %v, want %q", tt.typ, tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s %#v = %#v, %v; want %#v", tt.typ, tt.in, got, err, tt.want)
		}
	}
}

// TestBuildExecutionBodyRefusals: what `vh execution run` would not send
// fails for good with a *StepError naming the step, parameter or input.
func TestBuildExecutionBodyRefusals(t *testing.T) {
	config := loadConfig(t, "execparity/valohai.yaml")
	for _, tt := range []struct {
		spec ExecutionSpec
		want string
	}{
		{ExecutionSpec{Step: "nope"}, `step "nope": valohai.yaml at commit c has no such step (its steps: "train", "labels", "kube", "required")`},
		{ExecutionSpec{Step: "train", Parameters: []NamedValue{{Name: "momentum", Value: 1}}}, `has no parameter "momentum" (its parameters: "epochs", "learning_rate", "optimizer", "verbose", "note")`},
		{ExecutionSpec{Step: "train", Inputs: []NamedValue{{Name: "weights", Value: "s3://x"}}}, `has no input "weights" (its inputs: "dataset", "extra")`},
		{ExecutionSpec{Step: "required"}, `input "model" is required`},
		{ExecutionSpec{Step: "labels", Parameters: []NamedValue{{Name: "sizes", Value: []any{"1", "x"}}}}, `parameter "sizes": "x" is not a valid integer`},
	} {
		_, err := BuildExecutionBody(config, "c", &tt.spec)
		var se *StepError
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: err = %v, want a permanent error containing %q", tt.spec, err, tt.want)
		} else if !asStepError(err, &se) {
			t.Errorf("%+v: err %T is not a *StepError", tt.spec, err)
		}
	}
}

func asStepError(err error, se **StepError) bool {
	e, ok := err.(*StepError)
	*se = e
	return ok
}

func FuzzTypedValue(f *testing.F) {
	for _, s := range []string{"", "1", "-0", "1e400", "0x10", "yes", "NaN", " 3 ", "1_000", "\xff"} {
		f.Add("integer", s)
		f.Add("float", s)
		f.Add("flag", s)
	}
	f.Fuzz(func(t *testing.T, typ, s string) {
		v, err := typedValue(typ, s)
		if err != nil {
			return
		}
		if _, err := json.Marshal(v); err != nil {
			t.Fatalf("typedValue(%q, %q) = %#v, which JSON cannot encode: %v", typ, s, v, err)
		}
		switch typ {
		case "integer":
			if _, ok := v.(int64); !ok {
				t.Fatalf("integer gave %T", v)
			}
		case "float":
			if _, ok := v.(float64); !ok {
				t.Fatalf("float gave %T", v)
			}
		case "flag":
			if _, ok := v.(bool); !ok {
				t.Fatalf("flag gave %T", v)
			}
		}
	})
}
