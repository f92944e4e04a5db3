package launch

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/hooklaunch/caddy-valohai/launch/convert"
)

// runExecution performs a run_execution action (see ExecutionSpec).
func (c *Client) runExecution(ctx context.Context, a *Action) (*ActionResult, error) {
	if legacyExecutionBody(a.Body) {
		// Stored before this version, which stored the finished body: sent
		// as it was built then.
		return c.CreateExecution(ctx, a.Body)
	}
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
	spec.Project = cmp.Or(spec.Project, a.Project)
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

// legacyExecutionBody reports whether a stored run_execution body is an
// execution body as earlier versions stored it (inputs and parameters as
// objects) rather than an ExecutionSpec (lists of name/value pairs), so a
// run queued before an upgrade is still sent after it.
func legacyExecutionBody(body json.RawMessage) bool {
	var probe struct {
		Inputs     json.RawMessage `json:"inputs"`
		Parameters json.RawMessage `json:"parameters"`
	}
	if json.Unmarshal(body, &probe) != nil {
		return false
	}
	isObject := func(raw json.RawMessage) bool {
		for _, b := range raw {
			switch b {
			case ' ', '\t', '\r', '\n':
				continue
			}
			return b == '{'
		}
		return false
	}
	return isObject(probe.Inputs) || isObject(probe.Parameters)
}
