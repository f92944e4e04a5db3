package caddymodule

import (
	"strconv"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("valohai", parseGlobalOption)
}

// parseGlobalOption parses the `valohai` global option:
//
//	valohai {
//		api_url     https://app.valohai.com
//		api_token   {env.VALOHAI_API_TOKEN}
//		store       file <dir> [pebble|bbolt]
//		store       redis redis://[user:pass@]host:6379/0 [<key prefix>]
//		payload_url https://hooks.example.com/_valohai/payloads
//		payload_ttl 168h
//		max_body    25MiB
//		workers     4
//		retry       12 1s 10m
//		run_retention 720h
//		notify      https://hooks.example.com/alerts
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	app := new(App)
	if existing != nil {
		return nil, d.Err("valohai: the global option may appear only once")
	}
	d.Next() // option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		opt := d.Val()
		args := d.RemainingArgs()
		one := func() (string, error) {
			if len(args) != 1 {
				return "", d.Errf("valohai: %s takes exactly one value", opt)
			}
			return args[0], nil
		}
		var err error
		switch opt {
		case "api_url":
			app.APIURL, err = one()
		case "api_token":
			app.APIToken, err = one()
		case "payload_url":
			app.PayloadURL, err = one()
		case "notify":
			app.Notify, err = one()
		case "store":
			switch {
			case (len(args) == 2 || len(args) == 3) && args[0] == "file":
				app.Store = &StoreConfig{Type: "file", Path: args[1]}
				if len(args) == 3 {
					app.Store.Engine = args[2]
				}
			case (len(args) == 2 || len(args) == 3) && args[0] == "redis":
				app.Store = &StoreConfig{Type: "redis", URL: args[1]}
				if len(args) == 3 {
					app.Store.Prefix = args[2]
				}
			default:
				return nil, d.Err("valohai: store takes `file <dir> [pebble|bbolt]` or `redis <url> [<key prefix>]`, e.g. store redis {env.REDIS_URL}")
			}
		case "max_body_in_flight":
			var v string
			if v, err = one(); err == nil {
				if app.MaxBodyInFlight, err = parseSize(v); err != nil || app.MaxBodyInFlight <= 0 {
					return nil, d.Errf("valohai: max_body_in_flight: bad size %q (e.g. 256MiB)", v)
				}
			}
		case "body_timeout":
			var v string
			if v, err = one(); err == nil {
				app.BodyTimeout, err = parseDuration(d, opt, v)
			}
		case "payload_ttl", "run_retention":
			var v string
			if v, err = one(); err == nil {
				var dur caddy.Duration
				dur, err = parseDuration(d, opt, v)
				if opt == "payload_ttl" {
					app.PayloadTTL = dur
				} else {
					app.RunRetention = dur
				}
			}
		case "max_body":
			var v string
			if v, err = one(); err == nil {
				if app.MaxBody, err = parseSize(v); err != nil || app.MaxBody <= 0 {
					return nil, d.Errf("valohai: max_body: bad size %q (e.g. 25MiB)", v)
				}
			}
		case "workers":
			var v string
			if v, err = one(); err == nil {
				if app.Workers, err = strconv.Atoi(v); err != nil || app.Workers < 1 {
					return nil, d.Errf("valohai: workers must be a positive number, got %q", v)
				}
			}
		case "retry":
			if len(args) != 3 {
				return nil, d.Err("valohai: retry takes <attempts> <first backoff> <max backoff>, e.g. retry 12 1s 10m")
			}
			n, convErr := strconv.Atoi(args[0])
			if convErr != nil {
				return nil, d.Errf("valohai: retry attempts must be a number, got %q", args[0])
			}
			first, e1 := parseDuration(d, "retry", args[1])
			maxB, e2 := parseDuration(d, "retry", args[2])
			if e1 != nil || e2 != nil {
				return nil, d.Err("valohai: retry takes <attempts> <first backoff> <max backoff>, e.g. retry 12 1s 10m")
			}
			app.Retry = &RetryConfig{Attempts: n, First: first, Max: maxB}
		default:
			return nil, d.Errf("valohai: unknown option %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	return httpcaddyfile.App{Name: "valohai", Value: caddyconfig.JSON(app, nil)}, nil
}

func parseDuration(d *caddyfile.Dispenser, opt, v string) (caddy.Duration, error) {
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: bad duration %q (e.g. 10m, 168h)", opt, v)
	}
	return caddy.Duration(dur), nil
}
