package caddymodule

import (
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
//		}
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
		case "execution":
			a, err := parseExecution(d)
			if err != nil {
				return err
			}
			l.Actions = append(l.Actions, a)
		default:
			return d.Errf("valohai_launch: unknown sub-directive %q", d.Val())
		}
	}
	return nil
}

func parseExecution(d *caddyfile.Dispenser) (ActionConfig, error) {
	a := ActionConfig{Kind: "execution"}
	if !d.NextArg() {
		return a, d.Err("valohai_launch: execution needs a step name, e.g. `execution train { ... }`")
	}
	a.Step = d.Val()
	if d.NextArg() {
		return a, d.ArgErr()
	}
	for d.NextBlock(1) {
		sub := d.Val()
		args := d.RemainingArgs()
		need := func(n int, usage string) error {
			if len(args) != n {
				return d.Errf("valohai_launch: execution %s: %s takes %s", a.Step, sub, usage)
			}
			return nil
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
		case "tag":
			if len(args) == 0 {
				err = d.Errf("valohai_launch: execution %s: tag takes one or more values", a.Step)
			}
			a.Tags = append(a.Tags, args...)
		default:
			err = d.Errf("valohai_launch: execution %s: unknown sub-directive %q", a.Step, sub)
		}
		if err != nil {
			return a, err
		}
	}
	return a, nil
}
