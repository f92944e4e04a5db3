package caddymodule

import (
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// Caddyfile parsing shared by every directive of the plugin: a block is
// parsed from one table of sub-directives, so an unknown name is answered
// with the list of the names that table parses, which cannot drift from
// what is parsed.
//
// Errors returned while parsing a directive's tokens carry no
// "webhook_x:" prefix: Caddy already wraps them as "parsing caddyfile
// tokens for 'webhook_x': ..., at <file>:<line>". Provision errors, which
// Caddy does not wrap that way, keep naming the directive.

// handlerModule is what a handler of this plugin is: a Caddy module, an
// HTTP middleware and its own Caddyfile parser.
type handlerModule[H any] interface {
	*H
	caddy.Module
	caddyhttp.MiddlewareHandler
	caddyfile.Unmarshaler
}

// registerHandler registers the handler module H and its Caddyfile
// directive, named as the module (http.handlers.<directive>).
func registerHandler[H any, P handlerModule[H]]() {
	caddy.RegisterModule(P(new(H)))
	directive := P(new(H)).CaddyModule().ID.Name()
	httpcaddyfile.RegisterHandlerDirective(directive, func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		m := P(new(H))
		return m, m.UnmarshalCaddyfile(h.Dispenser)
	})
}

// subLine is one line of a block: the sub-directive's name and its
// arguments on that line. The dispenser stands after them, so a parser
// may go on into a nested block with d.NextBlock.
type subLine struct {
	d    *caddyfile.Dispenser
	name string
	args []string
}

// errf is an error at this line.
func (l subLine) errf(format string, args ...any) error { return l.d.Errf(format, args...) }

// one returns the line's single argument.
func (l subLine) one() (string, error) {
	if len(l.args) != 1 {
		return "", l.errf("%s takes one value", l.name)
	}
	return l.args[0], nil
}

// some returns the line's arguments, at least one.
func (l subLine) some() ([]string, error) {
	if len(l.args) == 0 {
		return nil, l.errf("%s takes one or more values", l.name)
	}
	return l.args, nil
}

// duration reads the line's single argument as a positive duration.
func (l subLine) duration() (caddy.Duration, error) {
	v, err := l.one()
	if err != nil {
		return 0, err
	}
	return parseDuration(l.d, l.name, v)
}

// subParser parses one line of a block.
type subParser func(l subLine) error

// subTable maps the sub-directives of a block to their parsers.
type subTable map[string]subParser

// parseBlock parses the block at nesting (0 for a directive's own block,
// 1 for a block inside it, ...) line by line with the parsers of tables,
// which must not share a name. An unknown sub-directive is an error that
// lists the valid ones.
func parseBlock(d *caddyfile.Dispenser, nesting int, tables ...subTable) error {
	subs := subTable{}
	for _, t := range tables {
		for name, parse := range t {
			if _, dup := subs[name]; dup {
				panic("caddymodule: sub-directive " + name + " is in two tables of one block")
			}
			subs[name] = parse
		}
	}
	for d.NextBlock(nesting) {
		name := d.Val()
		parse, ok := subs[name]
		if !ok {
			return d.Errf("unknown sub-directive %q; this block takes %s%s", name, subs.names(), notTakenHints[name])
		}
		if err := parse(subLine{d: d, name: name, args: d.RemainingArgs()}); err != nil {
			return err
		}
	}
	return nil
}

// notTakenHints explain a well-known sub-directive that a block does not
// take.
var notTakenHints = map[string]string{
	"status": " (status is the status of a rejection, and this handler turns no request away for failing a check; README.md, \"Options every condition takes\")",
}

// names lists the table's sub-directives, sorted, for an error message.
func (t subTable) names() string {
	return strings.Join(slices.Sorted(maps.Keys(t)), ", ")
}

// setOne stores the line's single argument in dst.
func setOne(dst *string) subParser {
	return func(l subLine) error {
		v, err := l.one()
		*dst = v
		return err
	}
}

// setOptional stores the line's single argument in *dst, so that an empty
// value ("") is told apart from none.
func setOptional(dst **string) subParser {
	return func(l subLine) error {
		v, err := l.one()
		if err == nil {
			*dst = &v
		}
		return err
	}
}

// appendOne appends the line's single argument to dst: a repeatable
// sub-directive of one value (secret rotation, several keys).
func appendOne(dst *[]string) subParser {
	return func(l subLine) error {
		v, err := l.one()
		if err == nil {
			*dst = append(*dst, v)
		}
		return err
	}
}

// appendSome appends the line's arguments, at least one, to dst.
func appendSome(dst *[]string) subParser {
	return func(l subLine) error {
		v, err := l.some()
		*dst = append(*dst, v...)
		return err
	}
}

// setDuration stores the line's single argument, a positive duration.
func setDuration(dst *caddy.Duration) subParser {
	return func(l subLine) error {
		v, err := l.duration()
		*dst = v
		return err
	}
}

// setSource reads `<header|query|field> <name>` into a SourceConfig.
func setSource(dst **SourceConfig) subParser {
	return func(l subLine) error {
		if len(l.args) != 2 {
			return l.errf("%s takes header <name>, query <name> or field <name>", l.name)
		}
		*dst = &SourceConfig{From: l.args[0], Name: l.args[1]}
		return nil
	}
}

// conditionSubdirectives are the sub-directives of every condition
// directive that rejects requests: status (of a rejection), methods and
// max_body.
func (c *Common) conditionSubdirectives() subTable {
	t := c.handlerSubdirectives()
	t["status"] = func(l subLine) error {
		v, err := l.one()
		if err != nil {
			return err
		}
		code, err := strconv.Atoi(v)
		if err != nil || code < 400 || code > 599 {
			return l.errf("status is the status of a rejection: an HTTP error code 400-599, got %q", v)
		}
		c.Status = code
		return nil
	}
	return t
}

// handlerSubdirectives are the sub-directives of every handler that reads
// the webhook: methods and max_body.
func (c *Common) handlerSubdirectives() subTable {
	return subTable{
		"methods": func(l subLine) error {
			v, err := l.some()
			if err != nil {
				return err
			}
			c.Methods = c.Methods[:0]
			for _, m := range v {
				c.Methods = append(c.Methods, strings.ToUpper(m))
			}
			return nil
		},
		"max_body": func(l subLine) error {
			v, err := l.one()
			if err != nil {
				return err
			}
			n, err := parseSize(v)
			if err != nil || n <= 0 {
				return l.errf("max_body: bad size %q (e.g. 25MiB)", v)
			}
			c.MaxBody = n
			return nil
		},
	}
}
