"""Commands that need no server: `dizest run`, `dizest validate`, `dizest apps`.

Exit codes: 0 every flow that ran is ready; 1 a flow failed (or the run was cancelled or timed
out); 2 the workflow is invalid or the command line is wrong.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from dizest_cli.runopts import run_option_flags
from dizest_cli.terminal import Failure, echo, echo_problems
from dizest_core import zygote_handle
from dizest_core.errors import DizestError, InvalidOptions, Problem, ValidationError
from dizest_core.options import Bounds
from dizest_core.plugins import PluginRegistry
from dizest_core.settings import Settings

if TYPE_CHECKING:
    from dizest_core.model import Package
    from dizest_core.workflow import Workflow

# The engine (dizest_core.workflow and what it imports) is imported only once `run` has started
# the zygote (zygote_handle.prestart): the zygote's ~0.1 s start overlaps those imports.

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def parse_inputs(pairs: tuple[str, ...]) -> dict[str, Any]:
    """`name=value` pairs; values are JSON when they parse as JSON, else strings."""
    from dizest_core.workflow import parse_value

    inputs: dict[str, Any] = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name:
            raise click.BadParameter(f"{pair!r} is not name=value", param_hint="--input")
        inputs[name] = parse_value(value)
    return inputs


# `dizest run`, `dizest submit` and `dizest schedules add` take a run's inputs alike
input_option = click.option(
    "--input",
    "-i",
    "inputs",
    multiple=True,
    metavar="NAME=VALUE",
    help="Run input for every flow that reads NAME, or FLOW_ID.NAME for one flow (JSON or text).",
)


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except DizestError as exc:
        raise Failure(str(exc)) from exc


def _load(
    path: str, settings: Settings, plugins: PluginRegistry, asked: dict[str, Any]
) -> Workflow:
    """The workflow, when neither it nor the run asked of it (`asked`: options, inputs, flows)
    has an error; else every problem at once, in the server's words and by the server's
    rules (`options.checked`, `run_inputs`), exit 2: the package's, its `"dizest"` options',
    the run options', the inputs no flow reads, unknown flows. (Loaded alone, the package
    hid the options' problems until its own were fixed.)"""
    from dizest_core import options, run_inputs
    from dizest_core.workflow import Workflow

    package, problems = options.checked(path, Bounds.of(settings), asked["options"], plugins.apps())
    if not any(p.severity == "error" and p.code != options.OPTION_PROBLEM for p in problems):
        problems += run_inputs.problems(asked["inputs"], package)  # what it reads is known now
        unknown = [f for f in asked["flows"] if f not in package.flows]
        if unknown:  # the server's UnknownFlowError
            message = f"unknown flow(s): {', '.join(unknown)}"
            problems.append(Problem("unknown_flow", message, field="flows"))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        echo_problems(path, _headline(errors, package), errors)
        sys.exit(EXIT_INVALID)
    return Workflow(package, settings=settings, plugins=plugins)


def _note_unfed(wf: Workflow, values: dict[str, Any], flows: tuple[str, ...]) -> None:
    """Say which inputs the run reads as None: connected to no flow's output and given no value
    (a link deleted by mistake fails a flow later, on None, far from its cause). The run's
    inputs from outside, as DIZEST's spec() names them: a value given makes them no note."""
    request = wf.request(values, flows or None)
    unfed = [
        f"{flow}.{name}"
        for flow, names in wf.spec(flows or None)[0].items()
        for name in names
        if name not in request.inputs and name not in request.flow_inputs.get(flow, {})
    ]
    if unfed:
        echo(
            f"dizest run: connected to no output and given no value, so read as None: "
            f"{', '.join(unfed)} (-i NAME=VALUE gives one)",
            err=True,
        )


def _headline(errors: list[Problem], package: Package) -> str:
    """The server's first line for `errors`, by what they are about (several kinds at once,
    the package's included: the package's, as the server's 422 then says)."""
    from dizest_core import options, run_inputs

    kinds = {options.OPTION_PROBLEM: "options", run_inputs.PROBLEM: "inputs"}
    about = {kinds.get(p.code, "flows" if p.code == "unknown_flow" else "package") for p in errors}
    if about == {"options"}:
        return InvalidOptions.headline(errors)
    if about == {"inputs"}:
        return run_inputs.headline(errors, package)
    if about == {"flows"}:
        return errors[0].message
    if "package" in about:
        return ValidationError.headline(errors)
    return f"invalid run: {len(errors)} problem(s)"


@click.command()
@click.argument("workflow", type=click.Path(dir_okay=False))
@input_option
@click.option(
    "--flow",
    "-f",
    "flows",
    multiple=True,
    metavar="ID",
    help="Run only this flow and the upstream it needs (repeatable).",
)
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Whole-run limit (s).")
@run_option_flags
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    help="Flows at once (default: by measured CPU use; waiting flows hold no CPU).",
)
@click.option(
    "--cache/--no-cache", default=False, help="Reuse results across runs (DIZEST_CACHE_DIR)."
)
@click.option(
    "--preload",
    metavar="MODULES",
    help="Comma-separated modules the forking process imports once (e.g. pandas).",
)
@click.option(
    "--workdir",
    type=click.Path(exists=True, file_okay=False),
    help="Root of dizest.drive(), an existing directory (default: .)",
)
@click.option("--json", "as_json", is_flag=True, help="Print the run report as JSON on stdout.")
def run(
    workflow: str,
    inputs: tuple[str, ...],
    flows: tuple[str, ...],
    timeout: float | None,
    options: dict[str, Any],
    concurrency: int | None,
    cache: bool,
    preload: str | None,
    workdir: str | None,
    as_json: bool,
) -> None:
    """Run WORKFLOW (.dwp) here, each flow in its own child process. A flow's own `"dizest"`
    options (timeout, memory_limit_mb, cpus, retries, network) come before the run's."""
    settings = _settings()
    if cache and not settings.cache_dir:
        settings = replace(settings, cache_dir=".dizest/cache")
    if preload:
        settings = replace(settings, preload=tuple(m.strip() for m in preload.split(",") if m))
    if settings.sandbox == "on" and os.geteuid() == 0:  # cgroup v2: as a worker does
        from dizest_core.cgroups import delegate

        done = delegate()
        if done.startswith("not delegated"):
            echo(f"dizest run: cgroup v2 {done}; flows get no cgroup", err=True)
    registry = PluginRegistry.discover(settings.plugin_paths)
    zygote_handle.prestart(*zygote_handle.local_args(settings, registry.renderer_files()))
    values = parse_inputs(inputs)
    asked = {"options": options, "inputs": values, "flows": flows}
    with _load(workflow, settings, registry, asked) as wf:
        from dizest_cli.progress import Progress

        _note_unfed(wf, values, flows)

        progress = Progress(wf.package, sys.stderr)
        local = {"concurrency": concurrency, "cache": cache, "workdir": workdir}
        try:
            for event in wf.stream(values, flows or None, timeout, **options, **local):
                progress.event(event)
        except KeyboardInterrupt:
            wf.cancel()
            progress.close()
            echo("cancelled", err=True)
            sys.exit(130)
        report = wf.runner.report()
        progress.summary(report)
        if as_json:
            click.echo(json.dumps(report, indent=2, default=str))
        else:
            _print_outputs(wf, report)
    sys.exit(EXIT_OK if report["status"] == "ready" else EXIT_FAILED)


def _print_outputs(wf: Workflow, report: dict[str, Any]) -> None:
    _, finals = wf.spec()
    for flow_id, names in finals.items():
        outputs = report["flows"][flow_id]["outputs"]
        for name in names:
            if name in outputs:
                echo(f"{flow_id}.{name} = {json.dumps(outputs[name], default=str)}")


@click.command()
@click.argument("workflow", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
def validate(workflow: str, as_json: bool) -> None:
    """Check WORKFLOW and list every problem (exit 2 on errors or code that does not compile).

    App code that does not compile is a warning to `run` and a store, which run it and fail
    those flows, as DIZEST does; but this is the check a CI or an author runs, and that code
    can never run as written."""
    from dizest_core import options
    from dizest_core.code_check import SYNTAX_ERROR

    settings = _settings()
    registry = PluginRegistry.discover(settings.plugin_paths)
    # the `"dizest"` options too: a package this calls valid must not be refused by `run`
    _, problems = options.checked(workflow, Bounds.of(settings), extra_apps=registry.apps())
    problems += _missing_here(workflow)
    errors = [p for p in problems if p.severity == "error" or p.code == SYNTAX_ERROR]
    if as_json:
        click.echo(
            json.dumps({"valid": not errors, "problems": [p.to_dict() for p in problems]}, indent=2)
        )
    else:
        for problem in problems:
            echo(f"{workflow}: {problem.severity}: {problem}")
        if not errors:
            echo(f"{workflow}: valid")
        elif all(p.code == SYNTAX_ERROR for p in errors):
            echo(f"{workflow}: runs, but the flows of code that does not compile will fail")
    sys.exit(EXIT_INVALID if errors else EXIT_OK)


def _missing_here(workflow: str) -> list[Problem]:
    """Warnings of the imports this Python cannot satisfy (`dizest run` runs flows with it)."""
    from dizest_api.import_check import missing_modules
    from dizest_worker.packages import said

    try:
        with open(workflow, "rb") as file:
            raw = json.load(file)
    except (OSError, ValueError):
        return []  # its error is among the problems already
    return missing_modules(raw, [json.loads(said())], f"{sys.executable} has not installed")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the apps as JSON.")
def apps(as_json: bool) -> None:
    """List the apps installed by plugins."""
    registry = PluginRegistry.discover(_settings().plugin_paths)
    rows = []
    for plugin in registry.plugins():
        for app_id in plugin.apps:
            app = registry.apps()[app_id]
            rows.append(
                {
                    "id": app_id,
                    "plugin": plugin.name,
                    "title": app.title,
                    "inputs": [s.name for s in app.inputs],
                    "outputs": list(app.outputs),
                }
            )
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        echo(
            f"{row['id']:<24} {row['title']:<32} in: {', '.join(row['inputs']) or '-'}"
            f"  out: {', '.join(row['outputs']) or '-'}"
        )
    for problem in registry.problems:
        echo(f"warning: {problem}", err=True)
