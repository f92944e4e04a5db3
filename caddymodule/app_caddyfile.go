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

// storeSyntax is what the store option takes, for its errors.
const storeSyntax = "valohai: store takes `file <dir> [pebble|bbolt]`, `redis <url> [<key prefix>]` or a `redis { ... }` block with sentinel and master, or cluster (docs/redis.md), e.g. store redis {env.REDIS_URL}"

// parseStore parses the store option whose arguments are args, and the
// block of `store redis { ... }` (docs/redis.md, "Syntax").
func parseStore(d *caddyfile.Dispenser, args []string) (*StoreConfig, error) {
	if (len(args) == 2 || len(args) == 3) && args[0] == "file" {
		if d.NextBlock(d.Nesting()) {
			return nil, d.Err("valohai: store file takes no block")
		}
		sc := &StoreConfig{Type: "file", Path: args[1]}
		if len(args) == 3 {
			sc.Engine = args[2]
		}
		return sc, nil
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
	addrs := func(dst *[]string, port string) subParser {
		return func(l subLine) error {
			if len(l.args) == 0 {
				return l.errf("%s takes one or more host:port addresses, e.g. %s 10.0.0.1:%s 10.0.0.2:%[3]s 10.0.0.3:%[3]s", l.name, l.name, port)
			}
			*dst = l.args
			return nil
		}
	}
	table := subTable{
		"sentinel": addrs(&sc.Sentinel, "26379"),
		"cluster":  addrs(&sc.Cluster, "7000"),
		"master":   setOne(&sc.Master),
		"username": setOne(&sc.Username),
		"password": setOne(&sc.Password),
		"prefix": func(l subLine) error {
			if sc.Prefix != "" {
				return l.errf("the key prefix is given twice (after the URL and as prefix)")
			}
			return setOne(&sc.Prefix)(l)
		},
		"tls": func(l subLine) error {
			if len(l.args) != 0 {
				return l.errf("tls takes no value (TLS to every node, verified against the system's roots)")
			}
			sc.TLS = true
			return nil
		},
		"min_replicas_ack": func(l subLine) error {
			if len(l.args) < 1 || len(l.args) > 2 {
				return l.errf("min_replicas_ack takes <replicas> [<timeout>], e.g. min_replicas_ack 1 1s")
			}
			n, err := strconv.Atoi(l.args[0])
			if err != nil || n < 0 {
				return l.errf("min_replicas_ack must be a number of replicas (0 or more), got %q", l.args[0])
			}
			sc.MinReplicasAck = n
			if len(l.args) == 2 {
				sc.AckTimeout, err = parseDuration(l.d, "min_replicas_ack timeout", l.args[1])
			}
			return err
		},
	}
	// Each sub-directive once: a second sentinel line would silently
	// replace the first list.
	seen := map[string]bool{}
	for name, parse := range table {
		table[name] = func(l subLine) error {
			if seen[l.name] {
				return l.errf("%s given twice", l.name)
			}
			seen[l.name] = true
			return parse(l)
		}
	}
	if err := parseBlock(d, d.Nesting(), table); err != nil {
		return nil, err
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
