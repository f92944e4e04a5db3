package caddymodule

import (
	"fmt"
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func init() {
	registerHandler[Launch]()
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
		return d.Err("a trigger name is required, e.g. `valohai_launch github-push { ... }`")
	}
	l.Trigger = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	action := func(line subLine) error {
		a, err := parseAction(line)
		l.Actions = append(l.Actions, a)
		return err
	}
	return parseBlock(d, 0, l.handlerSubdirectives(), subTable{
		"project": func(line subLine) error {
			if len(line.args) != 1 {
				return line.errf("project takes one value, the Valohai project id")
			}
			l.Project = line.args[0]
			return nil
		},
		"wait": func(line subLine) error {
			if len(line.args) != 1 {
				return line.errf("wait takes one duration, e.g. wait 2s")
			}
			dur, err := caddy.ParseDuration(line.args[0])
			if err != nil || dur < 0 {
				return line.errf("wait: bad duration %q (e.g. 2s)", line.args[0])
			}
			cd := caddy.Duration(dur)
			l.Wait = &cd
			return nil
		},
		"execution":     action,
		"pipeline":      action,
		"copy_pipeline": action,
		"dry_run": func(line subLine) error {
			switch {
			case len(line.args) == 0:
				l.DryRun = "always"
			case len(line.args) == 1 && line.args[0] == "header":
				l.DryRun = "header"
			default:
				return line.errf("dry_run takes no argument (every request is a dry run) or `header` (requests with %s: 1 are)", DryRunHeader)
			}
			return nil
		},
		"fetch_repository": func(line subLine) error {
			if len(line.args) > 0 || line.d.NextBlock(1) {
				return line.errf("fetch_repository takes no arguments (it fetches the trigger's project)")
			}
			l.Actions = append(l.Actions, ActionConfig{Kind: "fetch_repository"})
			return nil
		},
		"response": func(line subLine) error {
			if l.Response != nil {
				return line.errf("only one response block")
			}
			if len(line.args) > 0 {
				return line.errf("response takes a block, no arguments")
			}
			l.Response = &ResponseConfig{}
			return parseResponse(line.d, l.Response)
		},
	})
}

// parseAction parses an execution, pipeline or copy_pipeline block.
func parseAction(line subLine) (ActionConfig, error) {
	a := ActionConfig{Kind: line.name}
	if len(line.args) != 1 {
		switch a.Kind {
		case "execution":
			return a, line.errf("execution takes a step name, e.g. `execution train { ... }`")
		case "pipeline":
			return a, line.errf("pipeline takes the pipeline's name in valohai.yaml, e.g. `pipeline nightly { ... }`")
		default:
			return a, line.errf("copy_pipeline takes the source pipeline, its id or <project id>:<counter>")
		}
	}
	name := line.args[0]
	switch a.Kind {
	case "execution":
		a.Step = name
	case "pipeline":
		a.Pipeline = name
	default:
		a.Source = name
	}
	if err := parseBlock(line.d, 1, actionSubdirectives(&a)); err != nil {
		return a, fmt.Errorf("%s %s: %w", a.Kind, name, err)
	}
	return a, nil
}

// actionSubdirectives are the sub-directives an action of a's kind takes.
func actionSubdirectives(a *ActionConfig) subTable {
	t := subTable{
		"payload_input": setOne(&a.PayloadInput),
		"title":         setOne(&a.Title),
	}
	if a.Kind == "copy_pipeline" {
		return t
	}
	nameValue := func(dst *[]NameValue, usage string) subParser {
		return func(l subLine) error {
			if len(l.args) != 2 {
				return l.errf("%s takes %s", l.name, usage)
			}
			*dst = append(*dst, NameValue{l.args[0], l.args[1]})
			return nil
		}
	}
	t["commit"] = setOne(&a.Commit)
	t["parameter"] = nameValue(&a.Parameters, "<name> <value>")
	t["tag"] = appendSome(&a.Tags)
	if a.Kind == "pipeline" {
		return t
	}
	t["environment"] = setOne(&a.Environment)
	t["input"] = nameValue(&a.Inputs, "<name> <url>")
	t["env"] = nameValue(&a.Env, "<NAME> <value>")
	t["image"] = setOne(&a.Image)
	t["runtime_config_preset"] = setOne(&a.RuntimeConfigPreset)
	t["environment_variable_group"] = appendSome(&a.EnvironmentVariableGroups)
	t["time_limit"] = func(l subLine) error {
		v, err := l.one()
		if err != nil {
			return err
		}
		dur, err := caddy.ParseDuration(v)
		switch {
		case err != nil || dur <= 0:
			return l.errf("time_limit %q is not a positive duration such as 2h or 90m", v)
		case dur%time.Second != 0:
			return l.errf("time_limit %q: Valohai takes whole seconds, e.g. 90s", v)
		}
		a.TimeLimit = int64(dur / time.Second)
		return nil
	}
	t["priority"] = func(l subLine) error {
		v, err := l.one()
		if err != nil {
			return err
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return l.errf("priority %q is not an integer", v)
		}
		a.Priority = &n
		return nil
	}
	return t
}

// parseResponse parses
//
//	response {
//		status       200
//		content_type application/json
//		body         `{"run_id":"{run_id}","text":"Started {valohai.execution.counter}"}`
//	}
func parseResponse(d *caddyfile.Dispenser, r *ResponseConfig) error {
	err := parseBlock(d, 1, subTable{
		"status": func(l subLine) error {
			v, err := l.one()
			if err != nil {
				return err
			}
			code, err := strconv.Atoi(v)
			if err != nil || code < 200 || code > 299 {
				return l.errf("status must be a 2xx code, got %q", v)
			}
			r.Status = code
			return nil
		},
		"content_type": setOne(&r.ContentType),
		"body":         setOne(&r.Body),
	})
	if err != nil {
		return fmt.Errorf("response: %w", err)
	}
	return nil
}
