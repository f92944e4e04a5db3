"""Regenerate the expected pipeline bodies next to each valohai.yaml here.

Run from this folder with valohai-yaml and leval checkouts on PYTHONPATH
(see README.md in this folder). The Go tests only read the .json files.
"""
import glob
import json
import sys

import valohai_yaml
from valohai_yaml.lint import lint
from valohai_yaml.pipelines.conversion import PipelineConverter

COMMIT = "0123abcd0123abcd0123abcd0123abcd0123abcd"

for path in sorted(glob.glob("*.yaml")):
    with open(path) as f:
        text = f.read()
    out = {"valohai_yaml": valohai_yaml.__version__, "commit": COMMIT}
    result = lint(text, ansi_colors=False)
    errors = [m["message"].strip() for m in result.errors]
    if errors:
        out["errors"] = errors
    else:
        config = valohai_yaml.parse(text)
        converter = PipelineConverter(config=config, commit_identifier=COMMIT)
        out["pipelines"] = {
            name: converter.convert_pipeline(pipeline)
            for name, pipeline in config.pipelines.items()
        }
    with open(path[: -len(".yaml")] + ".json", "w") as f:
        json.dump(out, f, indent=2, sort_keys=False)
        f.write("\n")
    print(path, "errors" if errors else len(out["pipelines"]), file=sys.stderr)
