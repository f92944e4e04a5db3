package caddymodule

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/launch"
)

func init() {
	caddy.RegisterModule(new(Launch))
}

const defaultWait = 2 * time.Second

// Launch is the terminal `valohai_launch` handler: a request that passed
// every condition before it becomes a stored run whose actions the valohai
// app's workers send to Valohai.
type Launch struct {
	Common
	// Trigger names the trigger in logs, metrics and the trigger log.
	Trigger string `json:"trigger"`
	// Project is the Valohai project id the actions run in.
	Project string `json:"project"`
	// Actions run in the order written.
	Actions []ActionConfig `json:"actions"`
	// Wait is how long the request waits for the launches before answering
	// 202 pending (default 2s).
	Wait *caddy.Duration `json:"wait,omitempty"`

	app      *App
	logger   *zap.Logger
	compiled []compiledAction
	project  *launch.Template
}

// ActionConfig is one action of a trigger.
type ActionConfig struct {
	// Kind is "execution".
	Kind string `json:"kind"`
	// Step is the valohai.yaml step of an execution.
	Step string `json:"step,omitempty"`
	// Commit is the commit, branch or tag to run (placeholders allowed).
	Commit string `json:"commit,omitempty"`
	// PayloadInput names the input that receives the request body.
	PayloadInput string `json:"payload_input,omitempty"`
	// Title of the execution.
	Title string `json:"title,omitempty"`
	// Parameters in order; a name given twice becomes a list (multi-value).
	Parameters []NameValue `json:"parameters,omitempty"`
	// Inputs in order; a name given twice gets both URLs.
	Inputs []NameValue `json:"inputs,omitempty"`
	// Environment is the Valohai environment slug or id.
	Environment string `json:"environment,omitempty"`
	// Tags of the execution.
	Tags []string `json:"tags,omitempty"`
	// Env are environment variables of the execution.
	Env []NameValue `json:"env,omitempty"`
}

// NameValue is a named value template.
type NameValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type namedTemplate struct {
	name string
	tmpl *launch.Template
}

type compiledAction struct {
	cfg         ActionConfig
	step        *launch.Template
	commit      *launch.Template
	title       *launch.Template
	environment *launch.Template
	params      []namedTemplate
	inputs      []namedTemplate
	env         []namedTemplate
	tags        []*launch.Template
}

// CaddyModule returns the Caddy module information.
func (*Launch) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.valohai_launch", New: func() caddy.Module { return new(Launch) }}
}

// Provision compiles every template and checks the trigger against the app.
func (l *Launch) Provision(ctx caddy.Context) error {
	l.logger = ctx.Logger()
	app, err := loadApp(ctx)
	if err != nil {
		return err
	}
	l.app = app
	if l.Trigger == "" {
		return fmt.Errorf("valohai_launch: a trigger name is required, e.g. `valohai_launch github-push { ... }`")
	}
	if l.Project == "" {
		return fmt.Errorf("valohai_launch %s: project is required (the Valohai project id)", l.Trigger)
	}
	if len(l.Actions) == 0 {
		return fmt.Errorf("valohai_launch %s: no action; add e.g. `execution <step> { commit main }`", l.Trigger)
	}
	if l.project, err = launch.ParseTemplate(l.Project); err != nil {
		return fmt.Errorf("valohai_launch %s: project: %v", l.Trigger, err)
	}
	usesPayload := false
	for i, a := range l.Actions {
		c, err := compileAction(a)
		if err != nil {
			return fmt.Errorf("valohai_launch %s: action %d (%s): %v", l.Trigger, i+1, a.Kind, err)
		}
		usesPayload = usesPayload || a.PayloadInput != ""
		l.compiled = append(l.compiled, c)
	}
	if err := app.requireLaunch(usesPayload); err != nil {
		return err
	}
	return nil
}

func compileAction(a ActionConfig) (compiledAction, error) {
	c := compiledAction{cfg: a}
	if a.Kind != "execution" {
		return c, fmt.Errorf("unknown action kind %q", a.Kind)
	}
	if a.Step == "" {
		return c, fmt.Errorf("execution needs a step name, e.g. `execution train { ... }`")
	}
	if a.Commit == "" {
		return c, fmt.Errorf("execution %s: commit is required (a branch, tag or commit sha)", a.Step)
	}
	var err error
	parse := func(field, s string) *launch.Template {
		if err != nil || s == "" {
			return nil
		}
		var t *launch.Template
		t, err = launch.ParseTemplate(s)
		if err != nil {
			err = fmt.Errorf("%s: %v", field, err)
		}
		return t
	}
	named := func(field string, list []NameValue) []namedTemplate {
		var out []namedTemplate
		for _, nv := range list {
			if nv.Name == "" && err == nil {
				err = fmt.Errorf("%s: a name is required", field)
			}
			out = append(out, namedTemplate{nv.Name, parse(field+" "+nv.Name, nv.Value)})
		}
		return out
	}
	c.step = parse("step", a.Step)
	c.commit = parse("commit", a.Commit)
	c.title = parse("title", a.Title)
	c.environment = parse("environment", a.Environment)
	c.params = named("parameter", a.Parameters)
	c.inputs = named("input", a.Inputs)
	c.env = named("env", a.Env)
	for _, t := range a.Tags {
		c.tags = append(c.tags, parse("tag", t))
	}
	return c, err
}

// ServeHTTP stores the run, waits up to `wait` for its launches and answers.
func (l *Launch) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	vr, r, err := l.webhookRequest(w, r, l.app, "valohai_launch")
	if err != nil {
		return err
	}
	runID := runIDFor(r)
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	look := func(key string) (any, bool) {
		if key == "run_id" {
			return runID, true
		}
		if v, ok := webhookPlaceholder(vr, key); ok {
			return v, true
		}
		if repl != nil {
			return repl.Get(key)
		}
		return nil, false
	}

	now := time.Now()
	var payload *launch.Payload
	payloadURL := ""
	expires := now.Add(time.Duration(l.app.PayloadTTL))
	for _, c := range l.compiled {
		if c.cfg.PayloadInput != "" {
			ct := r.Header.Get("Content-Type")
			if ct == "" {
				ct = "application/octet-stream"
			}
			payload = &launch.Payload{Body: vr.Body, ContentType: ct, ExpiresAt: expires}
			payloadURL = l.app.signer.URL(runID, expires)
			break
		}
	}

	project := l.project.String(look)
	run := &launch.Run{ID: runID, Trigger: l.Trigger, Host: r.Host, Path: r.URL.Path}
	for _, c := range l.compiled {
		body, err := json.Marshal(c.executionBody(project, payloadURL, look))
		if err != nil {
			return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("valohai_launch: building the execution: %v", err))
		}
		run.Actions = append(run.Actions, launch.Action{
			Kind: launch.ActionRunExecution, Body: body, Project: project, Name: c.step.String(look),
		})
	}
	if err := l.app.dispatcher.Submit(r.Context(), run, payload); err != nil {
		l.logger.Error("storing run failed", zap.String("trigger", l.Trigger), zap.Error(err))
		l.app.metrics.requests.WithLabelValues(l.Trigger, "store_error").Inc()
		// Not acknowledged: the sender may retry.
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("valohai_launch: the run could not be stored"))
	}
	wait := defaultWait
	if l.Wait != nil {
		wait = time.Duration(*l.Wait)
	}
	done, err := l.app.dispatcher.Wait(r.Context(), runID, wait)
	if err != nil || done == nil {
		done = run
		done.Status = launch.StatusPending
	}
	l.app.metrics.requests.WithLabelValues(l.Trigger, string(done.Status)).Inc()
	return writeRunResponse(w, done)
}

// executionBody is the POST /api/v0/executions/ body of one action.
func (c *compiledAction) executionBody(project, payloadURL string, look launch.Lookup) map[string]any {
	params := map[string]any{}
	for _, p := range c.params {
		v := p.tmpl.Value(look)
		if prev, ok := params[p.name]; ok {
			// A parameter given twice is a multi-value parameter.
			if list, ok := prev.([]any); ok {
				params[p.name] = append(list, v)
			} else {
				params[p.name] = []any{prev, v}
			}
			continue
		}
		params[p.name] = v
	}
	inputs := map[string][]string{}
	for _, in := range c.inputs {
		inputs[in.name] = append(inputs[in.name], in.tmpl.String(look))
	}
	if c.cfg.PayloadInput != "" {
		inputs[c.cfg.PayloadInput] = append(inputs[c.cfg.PayloadInput], payloadURL)
	}
	body := map[string]any{
		"project":    project,
		"commit":     c.commit.String(look),
		"step":       c.step.String(look),
		"inputs":     inputs,
		"parameters": params,
	}
	if c.title != nil {
		body["title"] = c.title.String(look)
	}
	if c.environment != nil {
		body["environment"] = c.environment.String(look)
	}
	if len(c.tags) > 0 {
		tags := make([]string, 0, len(c.tags))
		for _, t := range c.tags {
			tags = append(tags, t.String(look))
		}
		body["tags"] = tags
	}
	if len(c.env) > 0 {
		env := map[string]string{}
		for _, e := range c.env {
			env[e.name] = e.tmpl.String(look)
		}
		body["environment_variables"] = env
	}
	return body
}

// actionResult is one entry of the response's and run-info's result list.
type actionResult struct {
	Action           launch.ActionKind `json:"action"`
	ExecutionStep    string            `json:"execution_step,omitempty"`
	ExecutionID      string            `json:"execution_id,omitempty"`
	ExecutionCounter int64             `json:"execution_counter,omitempty"`
	URL              string            `json:"url,omitempty"`
	Error            string            `json:"error,omitempty"`
}

type runResponse struct {
	RunID  string           `json:"run_id"`
	Status launch.RunStatus `json:"status"`
	Result []actionResult   `json:"result,omitempty"`
}

func resultsOf(run *launch.Run) []actionResult {
	out := make([]actionResult, 0, len(run.Actions))
	for _, a := range run.Actions {
		res := actionResult{Action: a.Kind}
		if a.Kind == launch.ActionRunExecution {
			res.ExecutionStep = a.Name
		}
		if a.Result != nil {
			res.ExecutionID = a.Result.ID
			res.ExecutionCounter = a.Result.Counter
			res.URL = a.Result.DisplayURL
			if res.URL == "" {
				res.URL = a.Result.URL
			}
		}
		if a.State == launch.ActionFailed {
			res.Error = a.LastError
		}
		out = append(out, res)
	}
	return out
}

// writeRunResponse answers 200 for a completed run, 202 while pending and
// 502 when an action failed for good (SPEC.md section 5).
func writeRunResponse(w http.ResponseWriter, run *launch.Run) error {
	resp := runResponse{RunID: run.ID, Status: run.Status}
	status := http.StatusOK
	switch run.Status {
	case launch.StatusPending:
		status = http.StatusAccepted
	case launch.StatusCompleted:
		resp.Result = resultsOf(run)
	default:
		status = http.StatusBadGateway
		resp.Result = resultsOf(run)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(resp)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Launch)(nil)
	_ caddyhttp.MiddlewareHandler = (*Launch)(nil)
)
