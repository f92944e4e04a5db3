package launch

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
)

// PlannedRequest is one create call an action would make: what a dry run
// answers instead of sending it.
type PlannedRequest struct {
	Method string `json:"method"`
	Path   string `json:"path"`
	// Body is the exact JSON body that would be sent (null for none).
	Body any `json:"body"`
}

// noFetchKey marks a context whose commit resolution must not fetch the
// repository (a dry run creates and changes nothing).
type noFetchKey struct{}

// Plan does everything Perform does for an action except what changes
// Valohai: it resolves the commit and reads its config (a dry run does not
// fetch the repository for an unknown commit), converts and types, and
// returns the requests Perform would send: POST /api/v0/executions/,
// POST /api/v0/pipelines/, or POST /api/v0/projects/<id>/fetch/.
func (c *Client) Plan(ctx context.Context, a *Action) ([]PlannedRequest, error) {
	ctx = context.WithValue(ctx, noFetchKey{}, true)
	switch a.Kind {
	case ActionRunExecution:
		body, err := c.ExecutionRequest(ctx, a)
		if err != nil {
			return nil, err
		}
		return []PlannedRequest{{Method: http.MethodPost, Path: "/api/v0/executions/", Body: body}}, nil
	case ActionRunPipeline:
		body, err := c.pipelineRequest(ctx, a)
		if err != nil {
			return nil, err
		}
		return []PlannedRequest{{Method: http.MethodPost, Path: "/api/v0/pipelines/", Body: body}}, nil
	case ActionCopyPipeline:
		body, err := c.copyRequest(ctx, a)
		if err != nil {
			return nil, err
		}
		return []PlannedRequest{{Method: http.MethodPost, Path: "/api/v0/pipelines/", Body: body}}, nil
	case ActionFetchRepository:
		var spec FetchSpec
		if err := decodeSpec(a, &spec); err != nil {
			return nil, err
		}
		project := cmp.Or(spec.Project, a.Project)
		seg, err := pathSegment("project", project)
		if err != nil {
			return nil, err
		}
		return []PlannedRequest{{Method: http.MethodPost, Path: "/api/v0/projects/" + seg + "/fetch/", Body: json.RawMessage("null")}}, nil
	}
	return nil, fmt.Errorf("action %s is %w", a.Kind, ErrUnsupportedAction)
}
