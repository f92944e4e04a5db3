package caddymodule

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("valohai_launch", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		l := new(Launch)
		return l, l.UnmarshalCaddyfile(h.Dispenser)
	})
}

// UnmarshalCaddyfile parses
//
//	valohai_launch <trigger> {
//		project <id>
//		execution <step> {
//			commit        main
//			payload_input dataset
//			title         "Push {webhook.json.head_commit.id}"
//			parameter     epochs 10
//			input         weights datum://model-latest
//			environment   aws-eu-west-1-p3-2xlarge
//			tag           webhook
//			env           KEY value
//			image         python:3.12
//			time_limit    2h
//			environment_variable_group <group id>
//			runtime_config_preset <preset id>
//			priority      5
//		}
//		dry_run [header]
//		wait 2s
//		methods POST
//		max_body 25MiB
//	}
func (l *Launch) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if !d.NextArg() {
		return d.Err("valohai_launch: a trigger name is required, e.g. `valohai_launch github-push { ... }`")
	}
	l.Trigger = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		if ok, err := l.parseCommon(d); ok {
			if err != nil {
				return err
			}
			continue
		}
		switch d.Val() {
		case "project":
			if !d.AllArgs(&l.Project) {
				return d.Err("valohai_launch: project takes one value, the Valohai project id")
			}
		case "wait":
			var v string
			if !d.AllArgs(&v) {
				return d.Err("valohai_launch: wait takes one duration, e.g. wait 2s")
			}
			dur, err := caddy.ParseDuration(v)
			if err != nil || dur < 0 {
				return d.Errf("valohai_launch: wait: bad duration %q", v)
			}
			cd := caddy.Duration(dur)
			l.Wait = &cd
		case "execution", "pipeline", "copy_pipeline":
			a, err := parseAction(d)
			if err != nil {
				return err
			}
			l.Actions = append(l.Actions, a)
		case "dry_run":
			args := d.RemainingArgs()
			switch {
			case len(args) == 0:
				l.DryRun = "always"
			case len(args) == 1 && args[0] == "header":
				l.DryRun = "header"
			default:
				return d.Errf("valohai_launch: dry_run takes no argument (every request is a dry run) or `header` (requests with %s: 1 are)", DryRunHeader)
			}
		case "fetch_repository":
			if d.NextArg() || d.NextBlock(1) {
				return d.Err("valohai_launch: fetch_repository takes no arguments (it fetches the trigger's project)")
			}
			l.Actions = append(l.Actions, ActionConfig{Kind: "fetch_repository"})
		case "response":
			if l.Response != nil {
				return d.Err("valohai_launch: only one response block")
			}
			r, err := parseResponse(d)
			if err != nil {
				return err
			}
			l.Response = r
		default:
			return d.Errf("valohai_launch: unknown sub-directive %q", d.Val())
		}
	}
	return nil
}

// parseAction parses an execution, pipeline or copy_pipeline block.
func parseAction(d *caddyfile.Dispenser) (ActionConfig, error) {
	a := ActionConfig{Kind: d.Val()}
	if !d.NextArg() {
		switch a.Kind {
		case "execution":
			return a, d.Err("valohai_launch: execution needs a step name, e.g. `execution train { ... }`")
		case "pipeline":
			return a, d.Err("valohai_launch: pipeline needs the pipeline's name in valohai.yaml, e.g. `pipeline nightly { ... }`")
		default:
			return a, d.Err("valohai_launch: copy_pipeline needs the source pipeline, its id or <project id>:<counter>")
		}
	}
	name := d.Val()
	switch a.Kind {
	case "execution":
		a.Step = name
	case "pipeline":
		a.Pipeline = name
	default:
		a.Source = name
	}
	if d.NextArg() {
		return a, d.ArgErr()
	}
	for d.NextBlock(1) {
		sub := d.Val()
		args := d.RemainingArgs()
		need := func(n int, usage string) error {
			if len(args) != n {
				return d.Errf("valohai_launch: %s %s: %s takes %s", a.Kind, name, sub, usage)
			}
			return nil
		}
		allowed := map[string][]string{
			"execution": {"commit", "payload_input", "title", "environment", "parameter", "input", "env", "tag",
				"image", "time_limit", "environment_variable_group", "runtime_config_preset", "priority"},
			"pipeline":      {"commit", "payload_input", "title", "parameter", "tag"},
			"copy_pipeline": {"payload_input", "title"},
		}[a.Kind]
		if !slices.Contains(allowed, sub) {
			return a, d.Errf("valohai_launch: %s %s: unknown sub-directive %q (use %s)", a.Kind, name, sub, strings.Join(allowed, ", "))
		}
		var err error
		switch sub {
		case "commit":
			if err = need(1, "one value (branch, tag or sha)"); err == nil {
				a.Commit = args[0]
			}
		case "payload_input":
			if err = need(1, "one input name"); err == nil {
				a.PayloadInput = args[0]
			}
		case "title":
			if err = need(1, "one (quoted) value"); err == nil {
				a.Title = args[0]
			}
		case "environment":
			if err = need(1, "one environment slug or id"); err == nil {
				a.Environment = args[0]
			}
		case "parameter":
			if err = need(2, "<name> <value>"); err == nil {
				a.Parameters = append(a.Parameters, NameValue{args[0], args[1]})
			}
		case "input":
			if err = need(2, "<name> <url>"); err == nil {
				a.Inputs = append(a.Inputs, NameValue{args[0], args[1]})
			}
		case "env":
			if err = need(2, "<NAME> <value>"); err == nil {
				a.Env = append(a.Env, NameValue{args[0], args[1]})
			}
		case "image":
			if err = need(1, "one image reference"); err == nil {
				a.Image = args[0]
			}
		case "runtime_config_preset":
			if err = need(1, "one runtime config preset id"); err == nil {
				a.RuntimeConfigPreset = args[0]
			}
		case "environment_variable_group":
			if len(args) == 0 {
				err = d.Errf("valohai_launch: %s %s: environment_variable_group takes one or more group ids", a.Kind, name)
			}
			a.EnvironmentVariableGroups = append(a.EnvironmentVariableGroups, args...)
		case "time_limit":
			if err = need(1, "one duration, e.g. 2h or 90m"); err == nil {
				dur, perr := caddy.ParseDuration(args[0])
				switch {
				case perr != nil || dur <= 0:
					err = d.Errf("valohai_launch: %s %s: time_limit %q is not a positive duration such as 2h or 90m", a.Kind, name, args[0])
				case dur%time.Second != 0:
					err = d.Errf("valohai_launch: %s %s: time_limit %q: Valohai takes whole seconds, e.g. 90s", a.Kind, name, args[0])
				default:
					a.TimeLimit = int64(dur / time.Second)
				}
			}
		case "priority":
			if err = need(1, "one integer"); err == nil {
				n, perr := strconv.ParseInt(args[0], 10, 64)
				if perr != nil {
					err = d.Errf("valohai_launch: %s %s: priority %q is not an integer", a.Kind, name, args[0])
				} else {
					a.Priority = &n
				}
			}
		case "tag":
			if len(args) == 0 {
				err = d.Errf("valohai_launch: %s %s: tag takes one or more values", a.Kind, name)
			}
			a.Tags = append(a.Tags, args...)
		}
		if err != nil {
			return a, err
		}
	}
	return a, nil
}

// parseResponse parses
//
//	response {
//		status       200
//		content_type application/json
//		body         `{"run_id":"{run_id}","text":"Started {valohai.execution.counter}"}`
//	}
func parseResponse(d *caddyfile.Dispenser) (*ResponseConfig, error) {
	r := &ResponseConfig{}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(1) {
		sub := d.Val()
		var v string
		if !d.AllArgs(&v) {
			return nil, d.Errf("valohai_launch: response: %s takes one value", sub)
		}
		switch sub {
		case "status":
			code, err := strconv.Atoi(v)
			if err != nil || code < 200 || code > 299 {
				return nil, d.Errf("valohai_launch: response: status must be a 2xx code, got %q", v)
			}
			r.Status = code
		case "content_type":
			r.ContentType = v
		case "body":
			r.Body = v
		default:
			return nil, d.Errf("valohai_launch: response: unknown sub-directive %q (use status, content_type, body)", sub)
		}
	}
	return r, nil
}
