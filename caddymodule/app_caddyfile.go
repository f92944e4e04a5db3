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
//		store       file <dir>
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
		return nil, d.Err("the global option may appear only once")
	}
	d.Next() // option name
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	size := func(dst *int64) subParser {
		return func(l subLine) error {
			v, err := l.one()
			if err != nil {
				return err
			}
			if *dst, err = parseSize(v); err != nil || *dst <= 0 {
				return l.errf("%s: bad size %q (e.g. 25MiB)", l.name, v)
			}
			return nil
		}
	}
	err := parseBlock(d, 0, subTable{
		"api_url":     setOne(&app.APIURL),
		"api_token":   setOne(&app.APIToken),
		"payload_url": setOne(&app.PayloadURL),
		"notify":      setOne(&app.Notify),
		"store": func(l subLine) error {
			var err error
			app.Store, err = parseStore(l.d, l.args)
			return err
		},
		"max_body_in_flight": size(&app.MaxBodyInFlight),
		"max_body":           size(&app.MaxBody),
		"body_timeout":       setDuration(&app.BodyTimeout),
		"payload_ttl":        setDuration(&app.PayloadTTL),
		"run_retention":      setDuration(&app.RunRetention),
		"workers": func(l subLine) error {
			v, err := l.one()
			if err != nil {
				return err
			}
			if app.Workers, err = strconv.Atoi(v); err != nil || app.Workers < 1 {
				return l.errf("workers must be a positive number, got %q", v)
			}
			return nil
		},
		"retry": func(l subLine) error {
			const usage = "retry takes <attempts> <first backoff> <max backoff>, e.g. retry 12 1s 10m"
			if len(l.args) != 3 {
				return l.errf(usage)
			}
			n, err := strconv.Atoi(l.args[0])
			if err != nil {
				return l.errf("retry attempts must be a number, got %q", l.args[0])
			}
			first, e1 := parseDuration(l.d, "retry", l.args[1])
			maxB, e2 := parseDuration(l.d, "retry", l.args[2])
			if e1 != nil || e2 != nil {
				return l.errf(usage)
			}
			app.Retry = &RetryConfig{Attempts: n, First: first, Max: maxB}
			return nil
		},
	})
	if err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "valohai", Value: caddyconfig.JSON(app, nil)}, nil
}

// parseStore parses the arguments of the store option.
func parseStore(d *caddyfile.Dispenser, args []string) (*StoreConfig, error) {
	switch {
	case len(args) == 2 && args[0] == "file":
		return &StoreConfig{Type: "file", Path: args[1]}, nil
	case (len(args) == 2 || len(args) == 3) && args[0] == "redis":
		sc := &StoreConfig{Type: "redis", URL: args[1]}
		if len(args) == 3 {
			sc.Prefix = args[2]
		}
		return sc, nil
	}
	return nil, d.Err("valohai: store takes `file <dir>` or `redis <url> [<key prefix>]`, e.g. store redis {env.REDIS_URL}")
}

func parseDuration(d *caddyfile.Dispenser, opt, v string) (caddy.Duration, error) {
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: bad duration %q (e.g. 10m, 168h)", opt, v)
	}
	return caddy.Duration(dur), nil
}
