"""Regenerate expected.json: the POST /api/v0/executions/ body valohai-cli's
`vh execution run <step>` builds for each case of cases.json against
valohai.yaml, or the error it stops with. See ../README.md for how to run.
"""
import json
import sys

import click
import valohai_yaml
from valohai_cli.commands.execution.run import frontend_command as fc
from valohai_cli.commands.execution.run.dynamic_run_command import RunCommand

COMMIT = "0123abcd0123abcd0123abcd0123abcd0123abcd"
PROJECT = "0b7e7c2a-5f6d-4f59-9a43-2f8c1f5b9d01"


class Project:
    id = PROJECT


def runtime_config(step):
    # What frontend_command.run builds without --k8s-* or debug options.
    kube = fc.recursive_compact_kubernetes_dict({
        "containers": {"workload": {"resources": {
            "requests": {"cpu": step.resources.cpu.min, "memory": step.resources.memory.min},
            "limits": {"cpu": step.resources.cpu.max, "memory": step.resources.memory.max,
                       "devices": fc.resolve_k8s_devices([], False, step.resources.devices.devices)},
        }}},
        "cache_volumes": fc.resolve_k8s_cache_volumes([], False, step.cache_volumes),
    })
    return {"kubernetes": kube} if kube else {}


def option_name(name):
    return "--" + name.replace("_", "-")


config = valohai_yaml.parse(open("valohai.yaml").read())
cases = json.load(open("cases.json"))
expected = {}
for case in cases:
    step = config.steps[case["step"]]
    opts = case.get("options", {})
    time_limit = opts.get("time_limit")
    if time_limit is None and step.time_limit:
        time_limit = step.time_limit.total_seconds()
    rc = RunCommand(
        project=Project(), step=step, commit=COMMIT,
        environment=opts.get("environment"), image=opts.get("image"), title=opts.get("title"),
        environment_variables=opts.get("environment_variables"),
        environment_variable_groups=opts.get("environment_variable_groups"),
        tags=opts.get("tags"), runtime_config=runtime_config(step),
        runtime_config_preset=opts.get("runtime_config_preset"),
        priority=opts.get("priority"), time_limit=time_limit,
    )
    args = [f"{option_name(n)}={v}" for n, v in case.get("parameters", [])]
    args += [f"{option_name(n)}={v}" for n, v in case.get("inputs", [])]
    try:
        ctx = rc.make_context(rc.name, args)
        expected[case["name"]] = {"body": json.loads(json.dumps(rc._build_payload(**ctx.params)))}
    except (click.ClickException, click.exceptions.Exit) as e:
        expected[case["name"]] = {"error": e.format_message() if hasattr(e, "format_message") else str(e)}
    print(case["name"], "error" if "error" in expected[case["name"]] else "ok", file=sys.stderr)

with open("expected.json", "w") as f:
    json.dump({"valohai_cli": "git a8abade (0.35.0)", "commit": COMMIT, "project": PROJECT, "cases": expected}, f, indent=2)
    f.write("\n")
