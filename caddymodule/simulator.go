package caddymodule

import (
	"fmt"
	"net/http"
	"os"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"gopkg.in/yaml.v3"

	"github.com/hooklaunch/caddy-valohai/launch/simulator"
)

func init() {
	caddy.RegisterModule(new(Simulator))
	httpcaddyfile.RegisterHandlerDirective("valohai_simulator", func(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
		s := new(Simulator)
		return s, s.UnmarshalCaddyfile(h.Dispenser)
	})
}

// Simulator is the `valohai_simulator` handler: a local stand-in for the
// Valohai REST API for demos and tests. It validates bodies the way the real
// API does, keeps what it received (GET /__simulator/calls) and can be told
// to fail or slow down (POST /__simulator/fail, /__simulator/delay).
type Simulator struct {
	// Token is the API token it accepts (placeholders expanded).
	Token string `json:"token"`
	// Projects it knows.
	Projects []SimulatorProject `json:"projects,omitempty"`

	sim *simulator.Simulator
}

// SimulatorProject is a project known to the simulator.
type SimulatorProject struct {
	ID      string            `json:"id"`
	Name    string            `json:"name,omitempty"`
	Commits []SimulatorCommit `json:"commits,omitempty"`
}

// SimulatorCommit is a commit of a simulated project; Config names the
// valohai.yaml file it holds.
type SimulatorCommit struct {
	Identifier string `json:"identifier"`
	Ref        string `json:"ref,omitempty"`
	Config     string `json:"config,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*Simulator) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.valohai_simulator", New: func() caddy.Module { return new(Simulator) }}
}

// Provision loads the projects' valohai.yaml files.
func (s *Simulator) Provision(ctx caddy.Context) error {
	token, err := caddy.NewReplacer().ReplaceOrErr(s.Token, true, true)
	if err != nil || token == "" {
		return fmt.Errorf("valohai_simulator: token is required and must not be empty")
	}
	cfg := simulator.Config{Token: token, Projects: map[string]*simulator.Project{}}
	for _, p := range s.Projects {
		proj := &simulator.Project{ID: p.ID, Name: p.Name, Commits: map[string]simulator.Commit{}}
		if proj.Name == "" {
			proj.Name = "demo/" + p.ID
		}
		for _, c := range p.Commits {
			commit := simulator.Commit{Identifier: c.Identifier, Ref: c.Ref}
			if c.Config != "" {
				raw, err := os.ReadFile(c.Config)
				if err != nil {
					return fmt.Errorf("valohai_simulator: project %s commit %s: %v", p.ID, c.Identifier, err)
				}
				if err := yaml.Unmarshal(raw, &commit.Config); err != nil {
					return fmt.Errorf("valohai_simulator: project %s commit %s: %s is not valid YAML: %v", p.ID, c.Identifier, c.Config, err)
				}
			}
			proj.Commits[c.Identifier] = commit
			if c.Ref != "" {
				proj.Commits[c.Ref] = commit
			}
		}
		cfg.Projects[p.ID] = proj
	}
	s.sim = simulator.New(cfg)
	return nil
}

// ServeHTTP serves the simulated API.
func (s *Simulator) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	s.sim.ServeHTTP(w, r)
	return nil
}

// UnmarshalCaddyfile parses
//
//	valohai_simulator {
//		token {env.VALOHAI_API_TOKEN}
//		project <id> [<owner/name>] {
//			commit <identifier> [<ref>] [<valohai.yaml>]
//		}
//	}
func (s *Simulator) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "token":
			if !d.AllArgs(&s.Token) {
				return d.Err("valohai_simulator: token takes one value")
			}
		case "project":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.Err("valohai_simulator: project takes <id> [<owner/name>]")
			}
			p := SimulatorProject{ID: args[0]}
			if len(args) == 2 {
				p.Name = args[1]
			}
			for d.NextBlock(1) {
				if d.Val() != "commit" {
					return d.Errf("valohai_simulator: project %s: unknown sub-directive %q", p.ID, d.Val())
				}
				args := d.RemainingArgs()
				if len(args) < 1 || len(args) > 3 {
					return d.Err("valohai_simulator: commit takes <identifier> [<ref>] [<valohai.yaml>]")
				}
				c := SimulatorCommit{Identifier: args[0]}
				if len(args) > 1 {
					c.Ref = args[1]
				}
				if len(args) > 2 {
					c.Config = args[2]
				}
				p.Commits = append(p.Commits, c)
			}
			s.Projects = append(s.Projects, p)
		default:
			return d.Errf("valohai_simulator: unknown sub-directive %q", d.Val())
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Simulator)(nil)
	_ caddyhttp.MiddlewareHandler = (*Simulator)(nil)
	_ caddyfile.Unmarshaler       = (*Simulator)(nil)
)
