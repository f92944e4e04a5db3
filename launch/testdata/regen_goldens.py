"""Regenerate pipeline-<name>.json (the bodies TestConvertPipelineGolden and
the action tests expect) from pipeline-<name>.yaml with valohai-yaml's
PipelineConverter; see README.md for how to run it."""
import json
import valohai_yaml
from valohai_yaml.pipelines.conversion import PipelineConverter

PROJECT = "0b7e7c2a-5f6d-4f59-9a43-2f8c1f5b9d01"
COMMIT = "0123abcd0123abcd0123abcd0123abcd0123abcd"
for name, pipeline in [("basic", "train-pipeline"), ("task", "search"), ("overrides", "harbors"), ("deploy", "train-and-deploy")]:
    config = valohai_yaml.parse(open(f"pipeline-{name}.yaml").read())
    body = {"project": PROJECT, "title": pipeline, "tags": []}
    body.update(PipelineConverter(config=config, commit_identifier=COMMIT).convert_pipeline(config.pipelines[pipeline]))
    with open(f"pipeline-{name}.json", "w") as f:
        json.dump(body, f, indent=2)
        f.write("\n")
