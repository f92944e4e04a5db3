// Package convert turns a commit's valohai.yaml into what Valohai's own
// tools would send for it: the checks valohai-yaml's schema makes
// (ValidateConfig), the pipeline body of valohai-yaml's PipelineConverter
// (ConvertPipeline, with PipelineBody's editing of node inputs and
// parameters), the execution body of valohai-cli's `vh execution run`
// (BuildExecutionBody, parameters typed by their declaration), and a new
// pipeline body from a pipeline as Valohai returns it (Pipeline.Copy).
//
// It is pure: no network, no Caddy. The launch package's client reads the
// commit and the pipeline objects, calls this package, and sends the
// bodies. README.md ("What Valohai receives") and docs/valohai-fidelity.md
// describe the behaviour; launch/testdata holds the fixtures valohai-yaml
// and valohai-cli produced, which its tests compare against.
package convert
