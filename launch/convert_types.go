package launch

import "github.com/hooklaunch/caddy-valohai/launch/convert"

// The converter (valohai.yaml checks, pipeline conversion, execution
// bodies, pipeline copies) lives in launch/convert; these names keep the
// action specs and the client reading as before.
type (
	// NamedValue is a named value of an action spec.
	NamedValue = convert.NamedValue
	// ExecutionSpec is Action.Body of a run_execution action.
	ExecutionSpec = convert.ExecutionSpec
	// ExecutionBody is the body of POST /api/v0/executions/.
	ExecutionBody = convert.ExecutionBody
	// PipelineBody is the body of POST /api/v0/pipelines/.
	PipelineBody = convert.PipelineBody
	// PipelineError is a pipeline that cannot be built or edited.
	PipelineError = convert.PipelineError
	// StepError is an execution that cannot be built from its step.
	StepError = convert.StepError
	// ConfigError is a valohai.yaml that valohai-yaml refuses.
	ConfigError = convert.ConfigError
)
