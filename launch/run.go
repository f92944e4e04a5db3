// Package launch turns a trusted webhook into Valohai API calls: the run
// model, the Valohai API client, payload storage and URL signing, and the
// store interface the durable queue is built on. Nothing here imports Caddy.
package launch

import (
	"encoding/json"
	"time"
)

// RunStatus is the status of a run as Valohai's run-info reports it.
type RunStatus string

// Run statuses. They match Valohai's trigger run-info endpoint.
const (
	StatusPending           RunStatus = "pending"
	StatusCompleted         RunStatus = "completed"
	StatusError             RunStatus = "error"               // every action failed for good
	StatusCompleteWithError RunStatus = "complete_with_error" // some actions failed for good
)

// Final reports whether no more work will be done on a run with this status.
func (s RunStatus) Final() bool { return s != StatusPending && s != "" }

// ActionKind names what an action asks Valohai to do; the names are the ones
// Valohai's run-info reports.
type ActionKind string

// Action kinds.
const (
	ActionRunExecution    ActionKind = "run_execution"
	ActionRunPipeline     ActionKind = "run_pipeline"
	ActionCopyPipeline    ActionKind = "copy_pipeline"
	ActionFetchRepository ActionKind = "fetch_repository"
)

// ActionState is the progress of one action. It is stored with the run so
// that an action Valohai accepted is never sent again.
type ActionState string

// Action states.
const (
	ActionPending ActionState = "pending"
	ActionDone    ActionState = "done"
	ActionFailed  ActionState = "failed" // failed for good (a 4xx other than 429, or retries exhausted)
)

// Action is one resolved Valohai call of a run: every placeholder already
// replaced, so the workers need nothing but the run to send it.
type Action struct {
	Kind ActionKind `json:"kind"`
	// Body is the execution body sent to Valohai (run_execution), or the
	// action's spec (PipelineSpec, CopySpec, FetchSpec in actions.go).
	Body json.RawMessage `json:"body,omitempty"`
	// Project is the Valohai project id the action targets.
	Project string `json:"project,omitempty"`
	// Step or pipeline name, for run-info results.
	Name string `json:"name,omitempty"`
	// Marker is the tag that identifies what this action creates in
	// Valohai ("webhook-run:<run id>:<action number>"); it is among the
	// tags sent, and a retry after an ambiguous failure looks for it before
	// creating again.
	Marker string `json:"marker,omitempty"`

	State    ActionState `json:"state"`
	Attempts int         `json:"attempts,omitempty"`
	// LastError is the latest failure (Valohai's error body or a network
	// error); kept for the trigger log.
	LastError string        `json:"last_error,omitempty"`
	Result    *ActionResult `json:"result,omitempty"`
}

// ActionResult is what Valohai answered for an accepted action.
type ActionResult struct {
	ID      string `json:"id,omitempty"`
	Counter int64  `json:"counter,omitempty"`
	URL     string `json:"url,omitempty"`
	// DisplayURL is the web UI address of the execution or pipeline.
	DisplayURL string `json:"display_url,omitempty"`
	Status     string `json:"status,omitempty"`
	// Extra holds action-specific results (fetched commits, ...).
	Extra map[string]any `json:"extra,omitempty"`
}

// Run is one accepted webhook: what it launches and how far it got.
type Run struct {
	ID      string `json:"id"`
	Trigger string `json:"trigger"`
	Host    string `json:"host,omitempty"`
	Path    string `json:"path,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`

	Status  RunStatus `json:"status"`
	Actions []Action  `json:"actions"`

	// NextAttemptAt is when the queue may hand the run to a worker again.
	NextAttemptAt time.Time `json:"next_attempt_at"`
	// Notified records that the failure note was sent, so it is sent once.
	Notified bool `json:"notified,omitempty"`
}

// Refresh derives the run status from its actions.
func (r *Run) Refresh() {
	done, failed := 0, 0
	for _, a := range r.Actions {
		switch a.State {
		case ActionDone:
			done++
		case ActionFailed:
			failed++
		}
	}
	switch {
	case done+failed < len(r.Actions):
		r.Status = StatusPending
	case failed == 0:
		r.Status = StatusCompleted
	case done == 0:
		r.Status = StatusError
	default:
		r.Status = StatusCompleteWithError
	}
}

// Payload is a stored webhook body, served to Valohai workers as the run's
// payload input.
type Payload struct {
	Body        []byte    `json:"body"`
	ContentType string    `json:"content_type"`
	ExpiresAt   time.Time `json:"expires_at"`
	// Framed, when set, is the buffer Body was read into: it ends with
	// Body and has room before it, which a store may overwrite to lay its
	// record out around Body instead of copying Body (a 1 MiB body is
	// then not copied once more). Never stored or serialized.
	Framed []byte `json:"-"`
}

// Rejected is a trigger-log entry for a request a condition turned away. It
// holds no secret: only where, which directive and its public reason.
type Rejected struct {
	At         time.Time `json:"at"`
	Host       string    `json:"host"`
	Path       string    `json:"path"`
	Directive  string    `json:"directive"`
	Reason     string    `json:"reason"`
	RemoteAddr string    `json:"remote_addr,omitempty"`
}
