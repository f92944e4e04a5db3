package caddymodule

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hooklaunch/caddy-valohai/launch"
)

// specReference is how the execution spec was built before
// appendExecutionSpec: a launch.ExecutionSpec value, then json.Marshal.
// appendExecutionSpec must write exactly its bytes, so runs stored by
// either version read the same and Valohai gets the same execution.
func specReference(c *compiledAction, project, payloadURL string, tags []string, look launch.Lookup) launch.ExecutionSpec {
	spec := launch.ExecutionSpec{
		Project: project, Commit: c.commit.String(look), Step: c.step.String(look), Tags: tags,
		TimeLimit: c.cfg.TimeLimit, Priority: c.cfg.Priority,
	}
	str := func(t *launch.Template) string {
		if t == nil {
			return ""
		}
		return t.String(look)
	}
	spec.Title, spec.Environment = str(c.title), str(c.environment)
	spec.Image, spec.RuntimeConfigPreset = str(c.image), str(c.preset)
	for _, g := range c.envGroups {
		if v := g.String(look); v != "" {
			spec.EnvironmentVariableGroups = append(spec.EnvironmentVariableGroups, v)
		}
	}
	// A parameter or input that renders empty (a placeholder with no value)
	// is left out: the step's default applies.
	for _, p := range c.params {
		if v := p.tmpl.Value(look); v != "" {
			spec.Parameters = append(spec.Parameters, launch.NamedValue{Name: p.name, Value: v})
		}
	}
	for _, in := range c.inputs {
		if v := in.tmpl.String(look); v != "" {
			spec.Inputs = append(spec.Inputs, launch.NamedValue{Name: in.name, Value: v})
		}
	}
	if c.cfg.PayloadInput != "" {
		spec.Inputs = append(spec.Inputs, launch.NamedValue{Name: c.cfg.PayloadInput, Value: payloadURL})
	}
	for _, e := range c.env {
		spec.EnvironmentVariables = append(spec.EnvironmentVariables, launch.NamedValue{Name: e.name, Value: e.tmpl.String(look)})
	}
	return spec
}

// specLookups are values of placeholders of every type a lookup returns
// (webhook JSON as decoded by jsonValue, Caddy placeholders).
var specLookups = map[string]any{
	"s":      "refs/heads/main",
	"html":   `<b>"fish" & chips</b>`,
	"ctl":    "line\nbreak\ttab\x01",
	"uni":    "ä€🚀\u2028",
	"empty":  "",
	"num":    json.Number("12.50"),
	"bigint": json.Number("123456789012345678901234567890"),
	"t":      true,
	"f":      false,
	"null":   nil,
	"obj":    json.RawMessage(`{ "a" : [1, 2, {"b":"<c>"}] }`),
	"list":   json.RawMessage(`["x", "y"]`),
	"float":  0.1,
	"int":    42,
	"int64":  int64(-7),
	"status": launch.StatusPending,
}

// specConfigs are execution actions using every field of the spec.
func specConfigs() []ActionConfig {
	prio, zero := int64(3), int64(0)
	return []ActionConfig{
		{Kind: "execution", Step: "train", Commit: "main"},
		{Kind: "execution", Step: "train", Commit: "main", PayloadInput: "dataset",
			Title: "Push {s} to {html} {missing}", Tags: []string{"webhook", "{s}", "{empty}"},
			Parameters: []NameValue{
				{"epochs", "10"}, {"lr", "0.001"}, {"flag", "true"}, {"off", "false"}, {"text", "<x & y>"},
				{"branch", "{s}"}, {"n", "{num}"}, {"big", "{bigint}"}, {"t", "{t}"}, {"f", "{f}"}, {"null", "{null}"},
				{"obj", "{obj}"}, {"list", "{list}"}, {"float", "{float}"}, {"int", "{int}"}, {"int64", "{int64}"},
				{"status", "{status}"}, {"gone", "{missing}"}, {"empty", "{empty}"}, {"mixed", "v{num}-{t}"},
				{"branch", "again {uni}"}, {"blank", ""},
			}},
		{Kind: "execution", Step: "{s}", Commit: "{html}", Environment: "{ctl}", Image: "python:{num}",
			Inputs:                    []NameValue{{"weights", "datum://{s}"}, {"gone", "{missing}"}, {"weights", "{uni}"}},
			Env:                       []NameValue{{"MODE", "fast"}, {"EMPTY", "{missing}"}, {"OBJ", "{obj}"}},
			EnvironmentVariableGroups: []string{"{s}", "{missing}", "grp-<1>"},
			RuntimeConfigPreset:       "{uni}", Priority: &prio, TimeLimit: 600},
		{Kind: "execution", Step: "train", Commit: "main", Priority: &zero},
		{Kind: "execution", Step: "train", Commit: "main", Tags: []string{"{empty}"}, Env: []NameValue{{"E", ""}}},
	}
}

func specLookup(key string) (any, bool) {
	v, ok := specLookups[key]
	return v, ok
}

// checkSpecBytes compares appendExecutionSpec with the reference for one
// action and lookup.
func checkSpecBytes(t *testing.T, a ActionConfig, look launch.Lookup) {
	t.Helper()
	c, err := compileAction(a)
	if err != nil {
		t.Fatalf("compile %+v: %v", a, err)
	}
	const project, payloadURL = "0190a8e3-5b8e-7a4c-9d1f-3c2b1a0e9f7d", "https://h.example/_valohai/payloads/r1?expires=1&signature=x"
	tags := appendTag(appendTag(c.tagValues(look), "webhook:t<1>"), "webhook-run:r1:1")
	want, wantErr := json.Marshal(specReference(&c, project, payloadURL, tags, look))
	got, gotErr := c.appendExecutionSpec([]byte("ignored"), project, c.step.String(look), payloadURL, tags, look)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("errors differ: reference %v, appended %v", wantErr, gotErr)
	}
	if wantErr == nil && string(got) != "ignored"+string(want) {
		t.Fatalf("appended\n%s\nreference\n%s", got[len("ignored"):], want)
	}
}

func TestAppendExecutionSpecIsMarshal(t *testing.T) {
	for _, a := range specConfigs() {
		checkSpecBytes(t, a, specLookup)
		checkSpecBytes(t, a, nil)
	}
	// Values encoding/json refuses fail both ways.
	checkSpecBytes(t, ActionConfig{Kind: "execution", Step: "s", Commit: "c", Parameters: []NameValue{{"p", "{x}"}}},
		func(string) (any, bool) { return json.Number("1x"), true })
	checkSpecBytes(t, ActionConfig{Kind: "execution", Step: "s", Commit: "c", Parameters: []NameValue{{"p", "{x}"}}},
		func(string) (any, bool) { return func() {}, true })
}

// FuzzAppendExecutionSpec: whatever a webhook's fields hold and whatever
// an action's text is, the appended spec is json.Marshal's.
func FuzzAppendExecutionSpec(f *testing.F) {
	f.Add("refs/heads/main", "Push {v}", "10", `{"a":1}`, "x")
	f.Add("<&>\u2028", "{v}", "{v}", "", "\xff")
	f.Add("", "", "", "12.5e3", "")
	f.Fuzz(func(t *testing.T, value, title, param, raw, tag string) {
		for _, s := range []string{title, param, tag} {
			if _, err := launch.ParseTemplate(s); err != nil {
				return // refused at provision
			}
		}
		a := ActionConfig{Kind: "execution", Step: "train", Commit: "{v}", PayloadInput: "dataset",
			Title: title, Tags: []string{tag, "{v}"}, Parameters: []NameValue{{"p", param}, {"v", "{v}"}, {"raw", "{raw}"}},
			Inputs: []NameValue{{"in", "{v}"}}, Env: []NameValue{{"E", param}}}
		look := func(key string) (any, bool) {
			switch key {
			case "v":
				return value, true
			case "raw":
				if json.Valid([]byte(raw)) && strings.TrimSpace(raw) != "" {
					return json.RawMessage(raw), true
				}
				return json.Number(raw), true
			}
			return nil, false
		}
		checkSpecBytes(t, a, look)
	})
}

// BenchmarkExecutionSpec is the spec of bench/caddyfiles/launch.caddyfile's
// action built the former way (launch.ExecutionSpec and json.Marshal) and
// appended.
//
//	go test -run '^$' -bench ExecutionSpec -benchmem ./caddymodule
func BenchmarkExecutionSpec(b *testing.B) {
	c, err := compileAction(ActionConfig{Kind: "execution", Step: "train", Commit: "main", PayloadInput: "dataset",
		Title:      "Push {webhook.json.head_commit.id} to {webhook.json.ref}",
		Parameters: []NameValue{{"epochs", "10"}, {"branch", "{webhook.json.ref}"}}, Tags: []string{"webhook"}})
	if err != nil {
		b.Fatal(err)
	}
	look := func(key string) (any, bool) {
		switch key {
		case "webhook.json.head_commit.id":
			return "6113728f27ae82c7b1a177c8d03f9e96e0adf246", true
		case "webhook.json.ref":
			return "refs/heads/main", true
		}
		return nil, false
	}
	const project, runID = "0190a8e3-5b8e-7a4c-9d1f-3c2b1a0e9f7d", "01a24e24-112f-7e37-b0b8-4b832d02fadf"
	const payloadURL = "http://127.0.0.1:8080/_valohai/payloads/" + runID + "?expires=1796607002&signature=PKlm2wK6n1E4Mr7ZB9Q2cT8e0a8vN3JxqgH6zL1yR5s"
	tags := appendTag(appendTag(c.tagValues(look), "webhook:bench-push"), "webhook-run:"+runID+":1")
	b.Run("struct+json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = json.Marshal(specReference(&c, project, payloadURL, tags, look))
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = c.appendExecutionSpec(make([]byte, 0, 1024), project, "train", payloadURL, tags, look)
		}
	})
}
