package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/hooklaunch/caddy-valohai/launch"
)

func init() {
	registerHandler[RunInfo]()
}

// RunInfo is the `valohai_run_info` handler, Valohai's trigger run-info:
// `GET ?run_id=<id>`, or `POST` with run_id in a JSON or form body (POST is
// what an HMAC-signed status query needs), answered with
// {"status":"pending|completed|error|complete_with_error","result":[...]}.
// Put the same conditions in front of it as in front of the trigger.
type RunInfo struct {
	Common
	// Triggers limits the visible runs to these triggers (default: all).
	Triggers []string `json:"triggers,omitempty"`

	app *App
}

// CaddyModule returns the Caddy module information.
func (*RunInfo) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "http.handlers.valohai_run_info", New: func() caddy.Module { return new(RunInfo) }}
}

// Provision binds the handler to the valohai app. It accepts GET and POST
// unless `methods` says otherwise.
func (ri *RunInfo) Provision(ctx caddy.Context) error {
	app, err := loadApp(ctx)
	if err != nil {
		return err
	}
	ri.app = app
	if ri.Status != 0 {
		return fmt.Errorf("valohai_run_info: status %d: valohai_run_info rejects no request, so it has no rejection status: remove it", ri.Status)
	}
	if len(ri.Methods) == 0 {
		ri.Methods = []string{http.MethodGet, http.MethodPost}
	}
	return nil
}

type runInfoResponse struct {
	Status launch.RunStatus `json:"status"`
	Result []actionResult   `json:"result"`
}

// ServeHTTP answers the status of one run.
func (ri *RunInfo) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	vr, r, held, err := ri.holdWebhookRequest(w, r, ri.app, "valohai_run_info")
	if err != nil {
		return err
	}
	if held > 0 {
		// This handler read the body: the route ends when it returns.
		defer ri.app.bodies.release(held)
	}
	id := vr.QueryValues().Get("run_id")
	if id == "" && r.Method == http.MethodPost {
		id, _ = vr.Field("run_id")
		if rej := vr.ReadJSONRejection("valohai_run_info"); rej != nil {
			return caddyhttp.Error(http.StatusBadRequest, rej)
		}
	}
	if id == "" {
		return caddyhttp.Error(http.StatusBadRequest, errors.New("valohai_run_info: run_id is required (query parameter, or a JSON or form field of a POST)"))
	}
	run, err := ri.app.store.GetRun(r.Context(), id)
	if errors.Is(err, launch.ErrNotFound) || (err == nil && len(ri.Triggers) > 0 && !slices.Contains(ri.Triggers, run.Trigger)) {
		return caddyhttp.Error(http.StatusNotFound, fmt.Errorf("valohai_run_info: no run %q", id))
	}
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, fmt.Errorf("valohai_run_info: %v", err))
	}
	resp := runInfoResponse{Status: run.Status, Result: []actionResult{}}
	if run.Status.Final() {
		// Like Valohai's run-info: results once the run is done. Error
		// details stay in the trigger log, not with the sender.
		for _, res := range resultsOf(run) {
			res.Error = ""
			resp.Result = append(resp.Result, res)
		}
	}
	return writeJSON(w, http.StatusOK, resp)
}

// UnmarshalCaddyfile parses
//
//	valohai_run_info [<trigger>...] {
//		methods GET POST
//		max_body 1MiB
//	}
func (ri *RunInfo) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	ri.Triggers = d.RemainingArgs()
	return parseBlock(d, 0, ri.handlerSubdirectives())
}

// Interface guards
var (
	_ caddy.Provisioner           = (*RunInfo)(nil)
	_ caddyhttp.MiddlewareHandler = (*RunInfo)(nil)
	_ caddyfile.Unmarshaler       = (*RunInfo)(nil)
)
