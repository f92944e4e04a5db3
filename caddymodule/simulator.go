package caddymodule

import (
	"fmt"
	"net/http"
	"os"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"gopkg.in/yaml.v3"

	"github.com/hooklaunch/caddy-valohai/launch/simulator"
)

func init() {
	registerHandler[Simulator]()
}

// Simulator is the `valohai_simulator` handler: a local stand-in for the
// Valohai REST API for demos and tests. It validates bodies the way the real
// API does, keeps what it received (GET /__simulator/calls) and can be told
// to fail or slow down (POST /__simulator/fail, /__simulator/delay).
type Simulator struct {
	// Token is the API token it accepts (placeholders expanded); any
	// other gets 401.
	Token string `json:"token"`
	// Projects are the projects it knows, with their commits.
	Projects []SimulatorProject `json:"projects,omitempty"`

	sim *simulator.Simulator
}

// SimulatorProject is a project known to the simulator: one `project`
// block.
type SimulatorProject struct {
	// ID is the project id that actions name in `project` (any string;
	// Valohai's are UUIDs). Requests for other projects get 404.
	ID string `json:"id"`
	// Name is the project's owner/name, as Valohai shows it (default:
	// demo/<id>).
	Name string `json:"name,omitempty"`
	// Commits are the repository commits the project knows.
	Commits []SimulatorCommit `json:"commits,omitempty"`
}

// SimulatorCommit is a commit of a simulated project: one `commit` line.
type SimulatorCommit struct {
	// Identifier is the commit's full identifier (sha).
	Identifier string `json:"identifier"`
	// Ref is the branch or tag that points at the commit, so that
	// `commit main` resolves to it.
	Ref string `json:"ref,omitempty"`
	// Config is the path of the valohai.yaml file the commit holds, read
	// at provision and served as the commit's config.
	Config string `json:"config,omitempty"`
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
	return parseBlock(d, 0, subTable{
		"token": setOne(&s.Token),
		"project": func(l subLine) error {
			if len(l.args) < 1 || len(l.args) > 2 {
				return l.errf("project takes <id> [<owner/name>]")
			}
			p := SimulatorProject{ID: l.args[0]}
			if len(l.args) == 2 {
				p.Name = l.args[1]
			}
			err := parseBlock(l.d, 1, subTable{
				"commit": func(l subLine) error {
					if len(l.args) < 1 || len(l.args) > 3 {
						return l.errf("commit takes <identifier> [<ref>] [<valohai.yaml>]")
					}
					c := SimulatorCommit{Identifier: l.args[0]}
					if len(l.args) > 1 {
						c.Ref = l.args[1]
					}
					if len(l.args) > 2 {
						c.Config = l.args[2]
					}
					p.Commits = append(p.Commits, c)
					return nil
				},
			})
			if err != nil {
				return fmt.Errorf("project %s: %w", p.ID, err)
			}
			s.Projects = append(s.Projects, p)
			return nil
		},
	})
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Simulator)(nil)
	_ caddyhttp.MiddlewareHandler = (*Simulator)(nil)
	_ caddyfile.Unmarshaler       = (*Simulator)(nil)
)
