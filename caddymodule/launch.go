package caddymodule

import (
	"cmp"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/hooklaunch/caddy-valohai/launch"
	"github.com/hooklaunch/caddy-valohai/launch/convert"
	"github.com/hooklaunch/caddy-valohai/validators"
)

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
	// Response replaces the default answer of an accepted run (completed or
	// pending); a run that failed within wait gets the default 502 answer.
	Response *ResponseConfig `json:"response,omitempty"`
	// DryRun is "always" (every request is a dry run) or "header" (a
	// request with `Webhook-Dry-Run: 1` is); empty means never. A dry run
	// resolves and converts everything but creates, stores and takes
	// nothing, and answers with the requests it would send.
	DryRun string `json:"dry_run,omitempty"`

	app      *App
	logger   *zap.Logger
	compiled []compiledAction
	project  *launch.Template
	respBody *launch.Template
}

// ActionConfig is one action of a trigger.
type ActionConfig struct {
	// Kind is execution, pipeline, copy_pipeline or fetch_repository.
	Kind string `json:"kind"`
	// Step is the valohai.yaml step of an execution.
	Step string `json:"step,omitempty"`
	// Pipeline is the valohai.yaml pipeline name of a pipeline action.
	Pipeline string `json:"pipeline,omitempty"`
	// Source is the pipeline a copy_pipeline action copies: its id or
	// <project id>:<counter>.
	Source string `json:"source,omitempty"`
	// Commit is the commit, branch or tag to run (placeholders allowed).
	Commit string `json:"commit,omitempty"`
	// PayloadInput names the input that receives the request body: an
	// input of the execution's step, or <node>.<input> of a pipeline.
	PayloadInput string `json:"payload_input,omitempty"`
	// Title of the execution or pipeline.
	Title string `json:"title,omitempty"`
	// Parameters in order; for an execution a name given twice becomes a
	// list (multi-value); for a pipeline a name is a pipeline parameter or
	// <node>.<parameter>.
	Parameters []NameValue `json:"parameters,omitempty"`
	// Inputs in order; a name given twice gets both URLs (executions).
	Inputs []NameValue `json:"inputs,omitempty"`
	// Environment is the Valohai environment slug or id (executions).
	Environment string `json:"environment,omitempty"`
	// Tags of the execution or pipeline.
	Tags []string `json:"tags,omitempty"`
	// Env are environment variables of the execution.
	Env []NameValue `json:"env,omitempty"`
	// Image overrides the step's Docker image (executions).
	Image string `json:"image,omitempty"`
	// TimeLimit overrides the step's time-limit, in whole seconds
	// (executions); 0 keeps the step's.
	TimeLimit int64 `json:"time_limit,omitempty"`
	// EnvironmentVariableGroups are ids of environment variable groups
	// (executions).
	EnvironmentVariableGroups []string `json:"environment_variable_groups,omitempty"`
	// RuntimeConfigPreset is a runtime config preset id (executions).
	RuntimeConfigPreset string `json:"runtime_config_preset,omitempty"`
	// Priority of the execution; nil leaves it to Valohai.
	Priority *int64 `json:"priority,omitempty"`
}

// ResponseConfig replaces the default answer of a launched run.
type ResponseConfig struct {
	// Status of the answer (default 200).
	Status int `json:"status,omitempty"`
	// ContentType of the answer (default application/json).
	ContentType string `json:"content_type,omitempty"`
	// Body template: {run_id}, {webhook.*}, {valohai.execution.*},
	// {valohai.pipeline.*} and {valohai.result.<i>.<field>}.
	Body string `json:"body,omitempty"`
}

// NameValue is one `parameter`, `input` or `env` line of an action: a
// name and the template of its value.
type NameValue struct {
	// Name is the parameter's, input's or environment variable's name.
	Name string `json:"name"`
	// Value is a template: placeholders are resolved per request, and a
	// value that is exactly one placeholder keeps the JSON type of what it
	// references (README.md, "`valohai_launch` — the terminal handler").
	Value string `json:"value"`
}

type namedTemplate struct {
	name string
	tmpl *launch.Template
	// encoded is the JSON of a parameter's value without placeholders
	// (encoded once at provision); nil otherwise.
	encoded []byte
}

type compiledAction struct {
	cfg         ActionConfig
	kind        launch.ActionKind
	step        *launch.Template
	source      *launch.Template
	commit      *launch.Template
	title       *launch.Template
	environment *launch.Template
	params      []namedTemplate
	inputs      []namedTemplate
	env         []namedTemplate
	tags        []*launch.Template
	image       *launch.Template
	preset      *launch.Template
	envGroups   []*launch.Template
	// payloadNode/payloadInput split a pipeline's <node>.<input>.
	payloadNode, payloadInput string
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
	if l.Status != 0 {
		return fmt.Errorf("valohai_launch %s: status %d: valohai_launch rejects no request, so it has no rejection status; its answers are set by `response { status ... }`", l.Trigger, l.Status)
	}
	if l.Project == "" {
		return fmt.Errorf("valohai_launch %s: project is required (the Valohai project id)", l.Trigger)
	}
	if l.DryRun != "" && l.DryRun != "always" && l.DryRun != "header" {
		return fmt.Errorf("valohai_launch %s: dry_run is `dry_run` (every request) or `dry_run header` (requests with %s: 1), not %q", l.Trigger, DryRunHeader, l.DryRun)
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
	if l.Response != nil {
		if l.Response.Status != 0 && (l.Response.Status < 200 || l.Response.Status > 299) {
			return fmt.Errorf("valohai_launch %s: response status must be a 2xx code, got %d", l.Trigger, l.Response.Status)
		}
		if l.respBody, err = launch.ParseTemplate(l.Response.Body); err != nil {
			return fmt.Errorf("valohai_launch %s: response body: %v", l.Trigger, err)
		}
		if ct := l.Response.ContentType; ct == "" || isJSONType(ct) {
			if err := l.respBody.ValidateJSON(); err != nil {
				return fmt.Errorf("valohai_launch %s: response body: %v (or set content_type to a non-JSON type)", l.Trigger, err)
			}
		}
	}
	app.registerTrigger(l)
	return nil
}

// Cleanup forgets the trigger when its config is unloaded.
func (l *Launch) Cleanup() error {
	if l.app != nil {
		l.app.unregisterTrigger(l)
	}
	return nil
}

// answer writes the trigger's answer for run: the response block for an
// accepted run (completed or pending), else the default JSON.
func (l *Launch) answer(w http.ResponseWriter, run *launch.Run, look launch.Lookup) error {
	if l.Response == nil || (run.Status != launch.StatusCompleted && run.Status != launch.StatusPending) {
		return writeRunResponse(w, run, 0)
	}
	ct := l.Response.ContentType
	if ct == "" {
		ct = "application/json"
	}
	results := resultsOf(run)
	lookup := func(key string) (any, bool) {
		if v, ok := resultPlaceholder(results, key); ok {
			return v, true
		}
		return look(key)
	}
	var body string
	if isJSONType(ct) {
		// Every value is escaped into its place in the JSON, so no webhook
		// field can break the answer or add a member to it.
		body = l.respBody.JSON(lookup)
	} else {
		body = l.respBody.String(lookup)
	}
	status := l.Response.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, err := w.Write([]byte(body))
	return err
}

func compileAction(a ActionConfig) (compiledAction, error) {
	c := compiledAction{cfg: a}
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
			out = append(out, namedTemplate{name: nv.Name, tmpl: parse(field+" "+nv.Name, nv.Value)})
		}
		return out
	}
	c.title = parse("title", a.Title)
	c.params = named("parameter", a.Parameters)
	for i, p := range c.params {
		// As appendExecutionSpec would write it per request; an empty
		// value is left out there.
		if p.tmpl.IsLiteral() && p.tmpl.Value(nil) != "" {
			// A literal is a string, a bool or a valid json.Number.
			c.params[i].encoded, _ = json.Marshal(p.tmpl.Value(nil))
		}
	}
	for _, t := range a.Tags {
		c.tags = append(c.tags, parse("tag", t))
	}
	switch a.Kind {
	case "execution":
		c.kind = launch.ActionRunExecution
		if a.Step == "" {
			return c, fmt.Errorf("execution needs a step name, e.g. `execution train { ... }`")
		}
		if a.Commit == "" {
			return c, fmt.Errorf("execution %s: commit is required (a branch, tag or commit sha)", a.Step)
		}
		c.step = parse("step", a.Step)
		c.commit = parse("commit", a.Commit)
		c.environment = parse("environment", a.Environment)
		c.inputs = named("input", a.Inputs)
		c.env = named("env", a.Env)
		c.image = parse("image", a.Image)
		c.preset = parse("runtime_config_preset", a.RuntimeConfigPreset)
		for _, g := range a.EnvironmentVariableGroups {
			c.envGroups = append(c.envGroups, parse("environment_variable_group", g))
		}
		if a.TimeLimit < 0 {
			return c, fmt.Errorf("execution %s: time_limit must be positive", a.Step)
		}
	case "pipeline":
		c.kind = launch.ActionRunPipeline
		if a.Pipeline == "" {
			return c, fmt.Errorf("pipeline needs the pipeline's name in valohai.yaml, e.g. `pipeline nightly { ... }`")
		}
		if a.Commit == "" {
			return c, fmt.Errorf("pipeline %s: commit is required (a branch, tag or commit sha)", a.Pipeline)
		}
		c.step = parse("pipeline", a.Pipeline)
		c.commit = parse("commit", a.Commit)
	case "copy_pipeline":
		c.kind = launch.ActionCopyPipeline
		if a.Source == "" {
			return c, fmt.Errorf("copy_pipeline needs the source pipeline: its id or <project id>:<counter>")
		}
		c.source = parse("source", a.Source)
	case "fetch_repository":
		c.kind = launch.ActionFetchRepository
	default:
		return c, fmt.Errorf("unknown action kind %q: use execution, pipeline, copy_pipeline or fetch_repository", a.Kind)
	}
	if a.PayloadInput != "" && c.kind != launch.ActionRunExecution {
		node, input, ok := convert.SplitNodeRef(a.PayloadInput)
		if !ok {
			return c, fmt.Errorf("payload_input %q: a pipeline's payload input is <node>.<input>, e.g. preprocess.dataset", a.PayloadInput)
		}
		c.payloadNode, c.payloadInput = node, input
	}
	if len(a.Inputs)+len(a.Env) > 0 && c.kind != launch.ActionRunExecution {
		return c, fmt.Errorf("input and env belong to executions; for a pipeline use payload_input <node>.<input> and parameter <node>.<parameter>")
	}
	if a.Environment != "" && c.kind != launch.ActionRunExecution {
		return c, fmt.Errorf("environment belongs to executions")
	}
	if (a.Image != "" || a.TimeLimit != 0 || len(a.EnvironmentVariableGroups) > 0 || a.RuntimeConfigPreset != "" || a.Priority != nil) &&
		c.kind != launch.ActionRunExecution {
		return c, fmt.Errorf("image, time_limit, environment_variable_group, runtime_config_preset and priority belong to executions")
	}
	return c, err
}

// ServeHTTP stores the run with the claims of the conditions before it
// (one durable write), waits up to `wait` for its launches and answers.
func (l *Launch) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	vr, r, held, err := l.holdWebhookRequest(w, r, l.app, "valohai_launch")
	if err != nil {
		return err
	}
	if held > 0 {
		// This handler read the body: the route ends when it returns.
		defer l.app.bodies.release(held)
	}
	if rej := vr.JSONRejection("valohai_launch"); rej != nil {
		// Placeholders and the run's step code read this body: refuse one
		// that JSON readers would not agree on (README.md, "Hostile input").
		return l.rejectStatus(l.app, l.logger, r, rej, http.StatusBadRequest)
	}
	runID := runIDFor(r)
	look := requestLookup(r, vr, runID)
	dry := l.isDryRun(r)

	now := time.Now()
	var payload *launch.Payload
	payloadURL := ""
	expires := now.Add(time.Duration(l.app.PayloadTTL))
	for _, c := range l.compiled {
		if c.cfg.PayloadInput != "" {
			payload = &launch.Payload{Body: vr.Body, Framed: framedBody(r, vr), ContentType: payloadContentType(r), ExpiresAt: expires}
			payloadURL = l.app.signer.URL(runID, expires)
			break
		}
	}

	project := l.project.String(look)
	run := &launch.Run{ID: runID, Trigger: l.Trigger, Host: r.Host, Path: r.URL.Path}
	for i, c := range l.compiled {
		action, err := c.build(l.Trigger, runID, i, project, payloadURL, look)
		if err != nil {
			return caddyhttp.Error(http.StatusBadRequest, fmt.Errorf("valohai_launch: building the %s action: %v", c.cfg.Kind, err))
		}
		run.Actions = append(run.Actions, action)
	}
	if dry {
		return l.answerDryRun(w, r, run)
	}
	adm := admissionOf(r)
	if err := l.app.dispatcher.Submit(r.Context(), run, payload, adm.claimsOf()...); err != nil {
		if d, ok := launch.AsClaimDenied(err); ok {
			// A quota spent or a delivery key taken since the condition
			// let the request through: nothing was stored, and the
			// condition that claimed it answers.
			if err, ok := adm.denied(w, r, d); ok {
				return err
			}
		}
		l.logger.Error("storing run failed", zap.String("trigger", l.Trigger), zap.Error(err))
		l.app.metrics.request(l.Trigger, "store_error")
		// Not acknowledged: the sender may retry.
		return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("valohai_launch: the run could not be stored"))
	}
	wait := defaultWait
	if l.Wait != nil {
		wait = time.Duration(*l.Wait)
	}
	var done *launch.Run
	if wait > 0 {
		done, err = l.app.dispatcher.Wait(r.Context(), runID, wait)
	}
	if wait <= 0 || err != nil || done == nil {
		// wait 0s answers once the run is stored, as pending: no read of
		// the run back (the worker launches from its own copy).
		done = &launch.Run{ID: runID, Trigger: l.Trigger, Host: run.Host, Path: run.Path, Status: launch.StatusPending}
	}
	l.app.metrics.request(l.Trigger, string(done.Status))
	return l.answer(w, done, look)
}

// dryRunResponse is the answer of a dry run.
type dryRunResponse struct {
	RunID    string                  `json:"run_id"`
	Status   string                  `json:"status"`
	Requests []launch.PlannedRequest `json:"requests"`
	Error    string                  `json:"error,omitempty"`
}

// answerDryRun plans every action (commit and config reads, conversion,
// typing) without creating or storing anything, and answers 200 with the
// requests that would be sent, or 502 with the first action's error.
func (l *Launch) answerDryRun(w http.ResponseWriter, r *http.Request, run *launch.Run) error {
	resp := dryRunResponse{RunID: run.ID, Status: "dry_run", Requests: []launch.PlannedRequest{}}
	status := http.StatusOK
	for i := range run.Actions {
		reqs, err := l.app.client.Plan(r.Context(), &run.Actions[i])
		if err != nil {
			status = http.StatusBadGateway
			resp.Error = fmt.Sprintf("action %d (%s): %v", i+1, run.Actions[i].Kind, err)
			break
		}
		resp.Requests = append(resp.Requests, reqs...)
	}
	l.app.metrics.request(l.Trigger, "dry_run")
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(resp)
}

// requestLookup resolves the placeholders of action values and responses
// for one request: {run_id}, {webhook.*}, then any Caddy placeholder. It
// is used by one goroutine at a time (the request's).
func requestLookup(r *http.Request, vr *validators.Request, runID string) launch.Lookup {
	repl, _ := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	// The request's webhook fields cannot change, and a trigger often
	// names one twice (a title and a parameter both read the ref): each
	// is looked up in the body once. Caddy's placeholders are not kept,
	// as some of them change during the request.
	var seen []webhookValue
	return func(key string) (any, bool) {
		if key == "run_id" {
			return runID, true
		}
		for _, s := range seen {
			if s.key == key {
				return s.value, true
			}
		}
		if v, ok := webhookPlaceholder(vr, key); ok {
			seen = append(seen, webhookValue{key, v})
			return v, true
		}
		if repl != nil {
			return repl.Get(key)
		}
		return nil, false
	}
}

// webhookValue is a {webhook.*} placeholder's value for one request.
type webhookValue struct {
	key   string
	value any
}

// build resolves the action's templates for one request into a stored
// action: the spec a worker turns into API calls. Every execution and
// pipeline is tagged webhook:<trigger> and with the action's marker
// (webhook-run:<run id>:<action number>), so the run and what it created
// point at each other, and a retry can find what an earlier try created.
func (c *compiledAction) build(trigger, runID string, index int, project, payloadURL string, look launch.Lookup) (launch.Action, error) {
	a := launch.Action{Kind: c.kind, Project: project}
	var spec any
	tags := c.tagValues(look)
	if c.kind != launch.ActionFetchRepository {
		a.Marker = "webhook-run:" + runID + ":" + strconv.Itoa(index+1)
		tags = appendTag(appendTag(tags, "webhook:"+trigger), a.Marker)
	}
	switch c.kind {
	case launch.ActionRunExecution:
		// The action every trigger of the benchmarks runs: appended
		// directly, with the bytes json.Marshal would write.
		a.Name = c.step.String(look)
		body, err := c.appendExecutionSpec(make([]byte, 0, 1024), project, a.Name, payloadURL, tags, look)
		if err != nil {
			return a, err
		}
		a.Body = body
		return a, nil
	case launch.ActionRunPipeline:
		a.Name = c.step.String(look)
		ps := launch.PipelineSpec{Project: project, Commit: c.commit.String(look), Pipeline: a.Name, Tags: tags}
		if c.title != nil {
			ps.Title = c.title.String(look)
		}
		if c.payloadNode != "" {
			ps.PayloadInputs = []launch.NodeInput{{Node: c.payloadNode, Input: c.payloadInput, URL: payloadURL}}
		}
		for _, p := range c.params {
			ps.Parameters = append(ps.Parameters, launch.NamedValue{Name: p.name, Value: p.tmpl.Value(look)})
		}
		spec = ps
	case launch.ActionCopyPipeline:
		cs := launch.CopySpec{Source: c.source.String(look), Project: project, Tags: tags}
		a.Name = cs.Source
		if c.title != nil {
			cs.Title = c.title.String(look)
		}
		if c.payloadNode != "" {
			cs.PayloadInputs = []launch.NodeInput{{Node: c.payloadNode, Input: c.payloadInput, URL: payloadURL}}
		}
		spec = cs
	case launch.ActionFetchRepository:
		spec = launch.FetchSpec{Project: project}
	}
	body, err := json.Marshal(spec)
	if err != nil {
		return a, err
	}
	a.Body = body
	return a, nil
}

func (c *compiledAction) tagValues(look launch.Lookup) []string {
	if len(c.tags) == 0 {
		return nil
	}
	tags := make([]string, 0, len(c.tags))
	for _, t := range c.tags {
		tags = appendTag(tags, t.String(look))
	}
	return tags
}

// appendTag adds tag unless it is empty or already there.
func appendTag(tags []string, tag string) []string {
	if tag == "" || slices.Contains(tags, tag) {
		return tags
	}
	return append(tags, tag)
}

// appendExecutionSpec appends the launch.ExecutionSpec of an execution
// action for one request to dst, as JSON: the bytes json.Marshal writes
// for the spec (omitempty fields left out when empty), without building
// the spec and marshaling it by reflection. The worker turns it into the
// body valohai-cli would send, typed by the commit's valohai.yaml
// (convert.BuildExecutionBody).
func (c *compiledAction) appendExecutionSpec(dst []byte, project, step, payloadURL string, tags []string, look launch.Lookup) ([]byte, error) {
	str := func(t *launch.Template) string {
		if t == nil {
			return ""
		}
		return t.String(look)
	}
	o := launch.JSONObject{B: append(dst, '{')}
	o.String("project", project)
	o.String("commit", c.commit.String(look))
	o.String("step", step)
	o.OptionalString("title", str(c.title))
	// A parameter or input that renders empty (a placeholder with no
	// value) is left out: the step's default applies.
	params := namedValues{o: &o, name: "parameters"}
	for _, p := range c.params {
		if p.encoded != nil {
			params.addEncoded(p.name, p.encoded)
		} else if v := p.tmpl.Value(look); v != "" {
			if err := params.add(p.name, v); err != nil {
				return nil, err
			}
		}
	}
	params.end()
	inputs := namedValues{o: &o, name: "inputs"}
	for _, in := range c.inputs {
		if v := in.tmpl.String(look); v != "" {
			inputs.addString(in.name, v)
		}
	}
	if c.cfg.PayloadInput != "" {
		inputs.addString(c.cfg.PayloadInput, payloadURL)
	}
	inputs.end()
	o.OptionalString("environment", str(c.environment))
	o.OptionalString("image", str(c.image))
	env := namedValues{o: &o, name: "environment_variables"}
	for _, e := range c.env {
		env.addString(e.name, e.tmpl.String(look))
	}
	env.end()
	var groups []string
	for _, g := range c.envGroups {
		if v := g.String(look); v != "" {
			groups = append(groups, v)
		}
	}
	o.OptionalStrings("environment_variable_groups", groups)
	o.OptionalStrings("tags", tags)
	o.OptionalString("runtime_config_preset", str(c.preset))
	if c.cfg.Priority != nil {
		o.Key("priority")
		o.B = strconv.AppendInt(o.B, *c.cfg.Priority, 10)
	}
	if c.cfg.TimeLimit != 0 {
		o.Key("time_limit")
		o.B = strconv.AppendInt(o.B, c.cfg.TimeLimit, 10)
	}
	return append(o.B, '}'), nil
}

// namedValues appends an omitempty list of launch.NamedValue to o, with
// the bytes json.Marshal writes for it: the member appears with its first
// item, and end closes it.
type namedValues struct {
	o    *launch.JSONObject
	name string
	n    int
}

// item starts the next item and writes its name.
func (l *namedValues) item(name string) {
	if l.n == 0 {
		l.o.Key(l.name)
	}
	l.o.B = append(l.o.B, launch.ListSeparator(l.n))
	l.n++
	l.o.B = append(l.o.B, `{"name":`...)
	l.o.B = launch.AppendJSONString(l.o.B, name)
	l.o.B = append(l.o.B, `,"value":`...)
}

// add appends a value of any type; an error is encoding/json's.
func (l *namedValues) add(name string, value any) error {
	l.item(name)
	var err error
	l.o.B, err = launch.AppendJSONValue(l.o.B, value)
	l.o.B = append(l.o.B, '}')
	return err
}

func (l *namedValues) addString(name, value string) {
	l.item(name)
	l.o.B = append(launch.AppendJSONString(l.o.B, value), '}')
}

// addEncoded appends a value already encoded (a literal's, at provision).
func (l *namedValues) addEncoded(name string, encoded []byte) {
	l.item(name)
	l.o.B = append(append(l.o.B, encoded...), '}')
}

func (l *namedValues) end() {
	if l.n > 0 {
		l.o.B = append(l.o.B, ']')
	}
}

// actionResult is one entry of the response's and run-info's result list.
type actionResult struct {
	Action           launch.ActionKind `json:"action"`
	ExecutionStep    string            `json:"execution_step,omitempty"`
	ExecutionID      string            `json:"execution_id,omitempty"`
	ExecutionCounter int64             `json:"execution_counter,omitempty"`
	PipelineName     string            `json:"pipeline_name,omitempty"`
	PipelineID       string            `json:"pipeline_id,omitempty"`
	PipelineCounter  int64             `json:"pipeline_counter,omitempty"`
	URL              string            `json:"url,omitempty"`
	Commits          []string          `json:"commits,omitempty"`
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
		switch a.Kind {
		case launch.ActionRunExecution:
			res.ExecutionStep = a.Name
		case launch.ActionRunPipeline:
			res.PipelineName = a.Name
		}
		if r := a.Result; r != nil {
			url := r.DisplayURL
			if url == "" {
				url = r.URL
			}
			res.URL = url
			switch a.Kind {
			case launch.ActionRunExecution:
				res.ExecutionID, res.ExecutionCounter = r.ID, r.Counter
			case launch.ActionRunPipeline, launch.ActionCopyPipeline:
				res.PipelineID, res.PipelineCounter = r.ID, r.Counter
			case launch.ActionFetchRepository:
				res.Commits = stringList(r.Extra["commits"])
				if res.Commits == nil {
					res.Commits = []string{}
				}
			}
		}
		if a.State == launch.ActionFailed {
			res.Error = a.LastError
		}
		out = append(out, res)
	}
	return out
}

// stringList reads a list of strings that went through JSON ([]any) or not.
func stringList(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		out := make([]string, 0, len(l))
		for _, x := range l {
			out = append(out, fmt.Sprint(x))
		}
		return out
	}
	return nil
}

// resultPlaceholder resolves {valohai.execution.*}, {valohai.pipeline.*}
// (the first such action) and {valohai.result.<i>.<field>} from a run's
// results; field names are those of the default response's result.
func resultPlaceholder(results []actionResult, key string) (any, bool) {
	rest, ok := strings.CutPrefix(key, "valohai.")
	if !ok {
		return nil, false
	}
	kind, field, _ := strings.Cut(rest, ".")
	pick := -1
	switch kind {
	case "execution":
		pick = slices.IndexFunc(results, func(r actionResult) bool { return r.Action == launch.ActionRunExecution })
	case "pipeline":
		pick = slices.IndexFunc(results, func(r actionResult) bool {
			return r.Action == launch.ActionRunPipeline || r.Action == launch.ActionCopyPipeline
		})
	case "result":
		idx, f, _ := strings.Cut(field, ".")
		i, err := strconv.Atoi(idx)
		if err != nil || i < 0 || i >= len(results) {
			return nil, false
		}
		raw, _ := json.Marshal(results[i])
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		v, ok := m[f]
		return v, ok
	}
	if pick < 0 {
		return nil, false
	}
	r := results[pick]
	switch field {
	case "id":
		return cmp.Or(r.ExecutionID, r.PipelineID), true
	case "counter":
		if r.Action == launch.ActionRunExecution {
			return r.ExecutionCounter, true
		}
		return r.PipelineCounter, true
	case "url":
		return r.URL, true
	case "step":
		return r.ExecutionStep, true
	case "name":
		return r.PipelineName, true
	}
	return nil, false
}

// writeRunResponse answers 200 for a completed run, 202 while pending and
// 502 when an action failed for good (README.md, "Every answer, by status").
func writeRunResponse(w http.ResponseWriter, run *launch.Run, override int) error {
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
	if override != 0 {
		// webhook_dedupe's status: the body still says what the run is.
		status = override
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if resp.Result == nil {
		// The answer of every run accepted with wait 0s: the bytes
		// json.Encoder writes for it, without its reflection.
		b := make([]byte, 0, 80)
		b = append(b, `{"run_id":`...)
		b = launch.AppendJSONString(b, resp.RunID)
		b = append(b, `,"status":`...)
		b = launch.AppendJSONString(b, string(resp.Status))
		b = append(b, "}\n"...)
		_, err := w.Write(b)
		return err
	}
	return json.NewEncoder(w).Encode(resp)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Launch)(nil)
	_ caddy.CleanerUpper          = (*Launch)(nil)
	_ caddyhttp.MiddlewareHandler = (*Launch)(nil)
)

// isJSONType reports whether a response content type is JSON
// (application/json, or a +json type such as application/problem+json).
func isJSONType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(strings.Split(ct, ";")[0]))
	}
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}
