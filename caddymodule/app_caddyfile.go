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
//		store       redis {
//			sentinel 10.0.0.1:26379 10.0.0.2:26379 10.0.0.3:26379
//			master   mymaster
//			# or: cluster 10.0.0.1:7000 10.0.0.2:7000 10.0.0.3:7000
//			username {env.REDIS_USER}
//			password {env.REDIS_PASSWORD}
//			tls
//			min_replicas_ack 1 [<timeout>]
//			prefix   valohai:
//		}
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
			if app.Store, err = parseStore(d, args); err != nil {
				return nil, err
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

// storeSyntax is what the store option takes, for its errors.
const storeSyntax = "valohai: store takes `file <dir>`, `redis <url> [<key prefix>]` or a `redis { ... }` block with sentinel and master, or cluster (docs/redis.md), e.g. store redis {env.REDIS_URL}"

// parseStore parses the store option whose arguments are args, and the
// block of `store redis { ... }` (docs/redis.md, "Syntax").
func parseStore(d *caddyfile.Dispenser, args []string) (*StoreConfig, error) {
	if len(args) == 2 && args[0] == "file" {
		if d.NextBlock(d.Nesting()) {
			return nil, d.Err("valohai: store file takes no block")
		}
		return &StoreConfig{Type: "file", Path: args[1]}, nil
	}
	if len(args) < 1 || len(args) > 3 || args[0] != "redis" {
		return nil, d.Err(storeSyntax)
	}
	sc := &StoreConfig{Type: "redis"}
	if len(args) >= 2 {
		sc.URL = args[1]
	}
	if len(args) == 3 {
		sc.Prefix = args[2]
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		sub := d.Val()
		vals := d.RemainingArgs()
		if seen[sub] {
			return nil, d.Errf("store redis: %s given twice", sub)
		}
		seen[sub] = true
		one := func() (string, error) {
			if len(vals) != 1 {
				return "", d.Errf("store redis: %s takes exactly one value", sub)
			}
			return vals[0], nil
		}
		var err error
		switch sub {
		case "sentinel", "cluster":
			if len(vals) == 0 {
				return nil, d.Errf("store redis: %s takes one or more host:port addresses, e.g. %s 10.0.0.1:%s 10.0.0.2:%[3]s 10.0.0.3:%[3]s", sub, sub, map[string]string{"sentinel": "26379", "cluster": "7000"}[sub])
			}
			if sub == "sentinel" {
				sc.Sentinel = vals
			} else {
				sc.Cluster = vals
			}
		case "master":
			sc.Master, err = one()
		case "username":
			sc.Username, err = one()
		case "password":
			sc.Password, err = one()
		case "prefix":
			if sc.Prefix != "" {
				return nil, d.Err("store redis: the key prefix is given twice (after the URL and as prefix)")
			}
			sc.Prefix, err = one()
		case "tls":
			if len(vals) != 0 {
				return nil, d.Err("store redis: tls takes no value (TLS to every node, verified against the system's roots)")
			}
			sc.TLS = true
		case "min_replicas_ack":
			if len(vals) < 1 || len(vals) > 2 {
				return nil, d.Err("store redis: min_replicas_ack takes <replicas> [<timeout>], e.g. min_replicas_ack 1 1s")
			}
			n, convErr := strconv.Atoi(vals[0])
			if convErr != nil || n < 0 {
				return nil, d.Errf("store redis: min_replicas_ack must be a number of replicas (0 or more), got %q", vals[0])
			}
			sc.MinReplicasAck = n
			if len(vals) == 2 {
				if sc.AckTimeout, err = parseDuration(d, "store redis: min_replicas_ack timeout", vals[1]); err != nil {
					return nil, err
				}
			}
		default:
			return nil, d.Errf("store redis: unknown sub-directive %q; use sentinel, master, cluster, username, password, tls, min_replicas_ack or prefix", sub)
		}
		if err != nil {
			return nil, err
		}
	}
	if sc.URL == "" && len(sc.Sentinel) == 0 && len(sc.Cluster) == 0 {
		return nil, d.Err(storeSyntax)
	}
	return sc, nil
}

func parseDuration(d *caddyfile.Dispenser, opt, v string) (caddy.Duration, error) {
	dur, err := caddy.ParseDuration(v)
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: bad duration %q (e.g. 10m, 168h)", opt, v)
	}
	return caddy.Duration(dur), nil
}
