package launch

import (
	"context"
	"errors"
	"fmt"

	"github.com/hooklaunch/caddy-valohai/launch/convert"
)

// runExecution performs a run_execution action (see ExecutionSpec).
func (c *Client) runExecution(ctx context.Context, a *Action) (*ActionResult, error) {
	body, err := c.ExecutionRequest(ctx, a)
	if err != nil {
		return nil, err
	}
	return c.createOnce(ctx, a, "/api/v0/executions/", body)
}

// ExecutionRequest resolves the commit, reads its valohai.yaml and builds
// the execution body of a run_execution action, without creating it.
func (c *Client) ExecutionRequest(ctx context.Context, a *Action) (*ExecutionBody, error) {
	var spec ExecutionSpec
	if err := decodeSpec(a, &spec); err != nil {
		return nil, err
	}
	spec.Project = orDefault(spec.Project, a.Project)
	switch {
	case spec.Project == "":
		return nil, fmt.Errorf("valohai: run_execution %q: no project", spec.Step)
	case spec.Commit == "":
		return nil, fmt.Errorf("valohai: run_execution %q: no commit", spec.Step)
	case spec.Step == "":
		return nil, errors.New("valohai: run_execution: no step name")
	}
	commit, err := c.ResolveCommit(ctx, spec.Project, spec.Commit)
	if err != nil {
		return nil, err
	}
	body, err := convert.BuildExecutionBody(commit.Config, commit.Identifier, &spec)
	if err != nil {
		return nil, fmt.Errorf("valohai: run_execution at commit %s (%s): %w", commit.Identifier, spec.Commit, err)
	}
	return body, nil
}
