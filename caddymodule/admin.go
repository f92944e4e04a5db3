package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/hooklaunch/caddy-valohai/launch"
)

func init() {
	caddy.RegisterModule(adminAPI{})
}

// adminAPI adds the trigger log to Caddy's admin API:
//
//	GET  /valohai/runs?trigger=&path=&status=&limit=   accepted runs and rejected requests
//	GET  /valohai/runs/<run_id>                        one run
//	POST /valohai/runs/<run_id>/retry                  send a failed run's failed actions again
type adminAPI struct{}

// CaddyModule returns the Caddy module information.
func (adminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "admin.api.valohai", New: func() caddy.Module { return adminAPI{} }}
}

// Routes returns the admin routes.
func (adminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{
		{Pattern: "/valohai/runs", Handler: caddy.AdminHandlerFunc(handleRuns)},
		{Pattern: "/valohai/runs/", Handler: caddy.AdminHandlerFunc(handleRun)},
	}
}

// runView is a run as the trigger log shows it: progress and Valohai's
// answers, without the request bodies sent (they hold the payload link).
type runView struct {
	ID            string           `json:"run_id"`
	Trigger       string           `json:"trigger"`
	Host          string           `json:"host,omitempty"`
	Path          string           `json:"path,omitempty"`
	Status        launch.RunStatus `json:"status"`
	CreatedAt     time.Time        `json:"created_at"`
	UpdatedAt     time.Time        `json:"updated_at"`
	NextAttemptAt *time.Time       `json:"next_attempt_at,omitempty"`
	Actions       []actionView     `json:"actions"`
}

type actionView struct {
	Action    launch.ActionKind    `json:"action"`
	Name      string               `json:"name,omitempty"`
	State     launch.ActionState   `json:"state"`
	Attempts  int                  `json:"attempts"`
	LastError string               `json:"last_error,omitempty"`
	Result    *launch.ActionResult `json:"result,omitempty"`
}

func viewRun(r *launch.Run) runView {
	v := runView{ID: r.ID, Trigger: r.Trigger, Host: r.Host, Path: r.Path, Status: r.Status, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
	if r.Status == launch.StatusPending && !r.NextAttemptAt.IsZero() {
		t := r.NextAttemptAt
		v.NextAttemptAt = &t
	}
	for _, a := range r.Actions {
		v.Actions = append(v.Actions, actionView{Action: a.Kind, Name: a.Name, State: a.State, Attempts: a.Attempts, LastError: a.LastError, Result: a.Result})
	}
	return v
}

func activeApp() (*App, error) {
	ctx := caddy.ActiveContext()
	v, err := ctx.AppIfConfigured("valohai")
	if err != nil {
		return nil, caddy.APIError{HTTPStatus: http.StatusNotFound, Err: errors.New("the valohai app is not running in the current config")}
	}
	return v.(*App), nil
}

func handleRuns(w http.ResponseWriter, r *http.Request) error {
	if r.Method != http.MethodGet {
		return caddy.APIError{HTTPStatus: http.StatusMethodNotAllowed, Err: fmt.Errorf("method %s not allowed", r.Method)}
	}
	app, err := activeApp()
	if err != nil {
		return err
	}
	q := r.URL.Query()
	f := launch.RunFilter{Trigger: q.Get("trigger"), Path: q.Get("path"), Status: launch.RunStatus(q.Get("status"))}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > 10000 {
			return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("limit must be 1-10000, got %s", quoteForMessage(l))}
		}
		f.Limit = n
	}
	switch f.Status {
	case "", launch.StatusPending, launch.StatusCompleted, launch.StatusError, launch.StatusCompleteWithError:
	default:
		return caddy.APIError{HTTPStatus: http.StatusBadRequest, Err: fmt.Errorf("status must be pending, completed, error or complete_with_error, got %s", quoteForMessage(string(f.Status)))}
	}
	runs, err := app.store.ListRuns(r.Context(), f)
	if err != nil {
		return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
	}
	out := struct {
		Runs       []runView         `json:"runs"`
		Rejections []launch.Rejected `json:"rejections"`
	}{Runs: []runView{}, Rejections: []launch.Rejected{}}
	for _, run := range runs {
		out.Runs = append(out.Runs, viewRun(run))
	}
	// Rejections have no trigger name (they never reached valohai_launch)
	// nor a status: those filters select runs only.
	if f.Trigger == "" && f.Status == "" {
		rej, err := app.store.ListRejections(r.Context(), f)
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		out.Rejections = append(out.Rejections, rej...)
	}
	return writeJSON(w, http.StatusOK, out)
}

func handleRun(w http.ResponseWriter, r *http.Request) error {
	app, err := activeApp()
	if err != nil {
		return err
	}
	rest := strings.TrimPrefix(r.URL.Path, "/valohai/runs/")
	id, action, _ := strings.Cut(rest, "/")
	switch {
	case action == "" && r.Method == http.MethodGet:
		run, err := app.store.GetRun(r.Context(), id)
		if errors.Is(err, launch.ErrNotFound) {
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no run %q", id)}
		}
		if err != nil {
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		return writeJSON(w, http.StatusOK, viewRun(run))
	case action == "retry" && r.Method == http.MethodPost:
		run, err := app.dispatcher.RetryRun(r.Context(), id)
		switch {
		case errors.Is(err, launch.ErrNotFound):
			return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("no run %q", id)}
		case errors.Is(err, launch.ErrRunPending):
			return caddy.APIError{HTTPStatus: http.StatusConflict, Err: fmt.Errorf("run %s is still pending; only a final run can be retried", id)}
		case err != nil:
			return caddy.APIError{HTTPStatus: http.StatusInternalServerError, Err: err}
		}
		return writeJSON(w, http.StatusAccepted, viewRun(run))
	default:
		return caddy.APIError{HTTPStatus: http.StatusNotFound, Err: fmt.Errorf("use GET /valohai/runs/<id> or POST /valohai/runs/<id>/retry")}
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Interface guards
var _ caddy.AdminRouter = adminAPI{}
