package launch

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/hooklaunch/caddy-valohai/launch/convert"
)

// This file holds what Action.Body stores for the action kinds other than
// run_execution, and how Client.Perform carries them out. The Caddy glue
// builds a spec with every placeholder already resolved, marshals it into
// Action.Body, and sets Action.Kind; the spec is all a worker needs, so a
// run stored before a restart is performed the same way after it.

// NodeInput puts a URL (the webhook payload URL) into an input of a
// pipeline node, replacing the input's defaults.
type NodeInput struct {
	// Node is the node name, or the name of a step exactly one node runs
	// (Valohai's trigger form asks for "<node/step>.<input>"; split such a
	// setting with SplitNodeRef).
	Node string `json:"node"`
	// Input is the input name, as the node's step defines it.
	Input string `json:"input"`
	// URL is what the input reads; it must be a URI ("://").
	URL string `json:"url"`
}

// PipelineSpec is Action.Body of a run_pipeline action: run the pipeline
// called Pipeline in valohai.yaml at Commit. Stored as JSON:
//
//	{"project":"<uuid>","commit":"main","pipeline":"train-pipeline",
//	 "title":"Nightly","tags":["webhook"],
//	 "payload_inputs":[{"node":"preprocess","input":"dataset","url":"https://..."}],
//	 "parameters":[{"name":"epochs","value":5},{"name":"train.learning_rate","value":0.01}]}
//
// Perform reads the commit with its valohai.yaml (a branch such as "main"
// is resolved to the commit Valohai reports for it, and the nodes run that
// exact commit), converts the pipeline with ConvertPipeline, applies the
// payload inputs and parameters, and POSTs /api/v0/pipelines/. A pipeline,
// node, input or parameter that does not exist fails the action for good
// with a *PipelineError naming what exists.
type PipelineSpec struct {
	// Project is the Valohai project id; empty means Action.Project.
	Project string `json:"project"`
	// Commit is a sha, a branch or tag, or an abbreviated sha.
	Commit string `json:"commit"`
	// Pipeline is the pipeline's name in valohai.yaml.
	Pipeline string `json:"pipeline"`
	// Title of the pipeline run; empty means the pipeline's name.
	Title string `json:"title,omitempty"`
	// Tags of the pipeline run.
	Tags []string `json:"tags,omitempty"`
	// PayloadInputs are applied in order; a later one for the same node
	// input replaces an earlier one.
	PayloadInputs []NodeInput `json:"payload_inputs,omitempty"`
	// Parameters are applied in order, after the payload inputs.
	Parameters []NamedValue `json:"parameters,omitempty"`
}

// CopySpec is Action.Body of a copy_pipeline action: run an existing
// pipeline's graph again. Stored as JSON:
//
//	{"source":"<pipeline-uuid or project-uuid:counter>","project":"<uuid>",
//	 "title":"Re-run","payload_inputs":[{"node":"train","input":"dataset","url":"https://..."}]}
//
// Valohai has no copy endpoint, so Perform GETs the source pipeline and
// POSTs a new one with the same nodes (name, type, template, on-error,
// actions, edge-merge-mode, and the deployment and mimic fields; not the
// server's id, status, execution or log), edges (the six source_/target_
// fields and configuration), parameters and tags, with the payload inputs
// and title applied. The templates are copied as Valohai returns them, so
// the copy runs the source's commit.
type CopySpec struct {
	// Source is the pipeline's id, or "<project-id>:<counter>" (or
	// "<project-id>:latest").
	Source string `json:"source"`
	// Project of the new pipeline; empty means Action.Project, then the
	// source's project.
	Project string `json:"project,omitempty"`
	// Title of the new pipeline; empty means the source's title.
	Title string `json:"title,omitempty"`
	// PayloadInputs are applied in order, as in PipelineSpec.
	PayloadInputs []NodeInput `json:"payload_inputs,omitempty"`
	// Tags are added to the source's tags.
	Tags []string `json:"tags,omitempty"`
}

// mergeTags appends the tags of add not already in tags.
func mergeTags(tags, add []string) []string {
	for _, t := range add {
		if !slices.Contains(tags, t) {
			tags = append(tags, t)
		}
	}
	return tags
}

// FetchSpec is Action.Body of a fetch_repository action:
//
//	{"project":"<uuid>"}
//
// Perform POSTs /api/v0/projects/<project>/fetch/. The result's Extra holds
// "commits", the identifiers of the commits Valohai saw for the first time,
// and "errors", Valohai's fetch errors. Fetch errors do not fail the action:
// Valohai answered 201, and a retry would only repeat them.
type FetchSpec struct {
	// Project is the Valohai project id; empty means Action.Project.
	Project string `json:"project"`
}

// decodeSpec reads an action's spec, keeping numbers exact.
func decodeSpec(a *Action, spec any) error {
	if len(a.Body) == 0 {
		return fmt.Errorf("valohai: action %s has no body", a.Kind)
	}
	if err := decodeNumbers(a.Body, spec); err != nil {
		return fmt.Errorf("valohai: action %s: body is not a valid %s spec: %v", a.Kind, a.Kind, err)
	}
	return nil
}

// runPipeline performs a run_pipeline action (see PipelineSpec).
func (c *Client) runPipeline(ctx context.Context, a *Action) (*ActionResult, error) {
	body, err := c.pipelineRequest(ctx, a)
	if err != nil {
		return nil, err
	}
	return c.createOnce(ctx, a, "/api/v0/pipelines/", body)
}

// pipelineRequest builds the body a run_pipeline action POSTs.
func (c *Client) pipelineRequest(ctx context.Context, a *Action) (*PipelineBody, error) {
	var spec PipelineSpec
	if err := decodeSpec(a, &spec); err != nil {
		return nil, err
	}
	project := cmp.Or(spec.Project, a.Project)
	switch {
	case project == "":
		return nil, fmt.Errorf("valohai: run_pipeline %q: no project", spec.Pipeline)
	case spec.Commit == "":
		return nil, fmt.Errorf("valohai: run_pipeline %q: no commit", spec.Pipeline)
	case spec.Pipeline == "":
		return nil, fmt.Errorf("valohai: run_pipeline: no pipeline name")
	}
	commit, err := c.ResolveCommit(ctx, project, spec.Commit)
	if err != nil {
		return nil, err
	}
	body, err := convert.ConvertPipeline(commit.Config, commit.Identifier, spec.Pipeline)
	if err != nil {
		return nil, fmt.Errorf("valohai: run_pipeline at commit %s (%s): %w", commit.Identifier, spec.Commit, err)
	}
	body.Project = project
	if spec.Title != "" {
		body.Title = spec.Title
	}
	if spec.Tags != nil {
		body.Tags = spec.Tags
	}
	if err := applyOverrides(body, spec.PayloadInputs, spec.Parameters); err != nil {
		return nil, fmt.Errorf("valohai: run_pipeline at commit %s (%s): %w", commit.Identifier, spec.Commit, err)
	}
	return body, nil
}

// applyOverrides sets the payload inputs, then the parameters.
func applyOverrides(body *PipelineBody, inputs []NodeInput, params []NamedValue) error {
	for _, in := range inputs {
		if err := body.SetNodeInput(in.Node, in.Input, in.URL); err != nil {
			return err
		}
	}
	for _, p := range params {
		if err := body.SetParameter(p.Name, p.Value); err != nil {
			return err
		}
	}
	return nil
}

// copyPipeline performs a copy_pipeline action (see CopySpec).
func (c *Client) copyPipeline(ctx context.Context, a *Action) (*ActionResult, error) {
	body, err := c.copyRequest(ctx, a)
	if err != nil {
		return nil, err
	}
	return c.createOnce(ctx, a, "/api/v0/pipelines/", body)
}

// copyRequest reads the source pipeline and builds the body a
// copy_pipeline action POSTs.
func (c *Client) copyRequest(ctx context.Context, a *Action) (*PipelineBody, error) {
	var spec CopySpec
	if err := decodeSpec(a, &spec); err != nil {
		return nil, err
	}
	if spec.Source == "" {
		return nil, fmt.Errorf("valohai: copy_pipeline: no source pipeline")
	}
	src, err := c.GetPipeline(ctx, spec.Source)
	if err != nil {
		return nil, err
	}
	body, err := src.Copy()
	if err != nil {
		return nil, fmt.Errorf("valohai: copy_pipeline %s: %w", spec.Source, err)
	}
	body.Project = cmp.Or(spec.Project, a.Project, src.Project)
	if body.Project == "" {
		return nil, fmt.Errorf("valohai: copy_pipeline %s: no project (the source names none)", spec.Source)
	}
	if spec.Title != "" {
		body.Title = spec.Title
	}
	if body.Title == "" {
		body.Title = "Copy of " + spec.Source // the API requires a title
	}
	if err := applyOverrides(body, spec.PayloadInputs, nil); err != nil {
		return nil, fmt.Errorf("valohai: copy_pipeline %s: %w", spec.Source, err)
	}
	body.Tags = mergeTags(body.Tags, spec.Tags)
	return body, nil
}

// fetchRepository performs a fetch_repository action (see FetchSpec).
func (c *Client) fetchRepository(ctx context.Context, a *Action) (*ActionResult, error) {
	var spec FetchSpec
	if err := decodeSpec(a, &spec); err != nil {
		return nil, err
	}
	project := cmp.Or(spec.Project, a.Project)
	if project == "" {
		return nil, fmt.Errorf("valohai: fetch_repository: no project")
	}
	res, err := c.FetchRepository(ctx, project)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(res.Commits)) // in Valohai's order
	for i, commit := range res.Commits {
		ids[i] = commit.Identifier
	}
	return &ActionResult{
		Status: fetchStatus(res),
		Extra:  map[string]any{"commits": ids, "errors": res.Errors},
	}, nil
}

// fetchStatus summarizes a fetch for run-info: "fetched", or
// "fetched_with_errors" when Valohai reported errors.
func fetchStatus(res *FetchResult) string {
	if len(res.Errors) > 0 {
		return "fetched_with_errors"
	}
	return "fetched"
}
