"""`dizest submit`: run a .dwp on a dizest server over its HTTP API.

Exit codes as for `dizest run`: 0 the run is ready (or, without --wait, was accepted); 1 it
failed (or was cancelled); 2 the workflow is invalid or the command line is wrong.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from dizest_cli.common import connect, print_started, server_options
from dizest_cli.local import EXIT_FAILED, EXIT_INVALID, EXIT_OK, input_option, parse_inputs
from dizest_cli.progress import Progress
from dizest_cli.runopts import idempotency_option, run_option_flags
from dizest_cli.terminal import Failure, echo
from dizest_core import dwp
from dizest_core.events import Event
from dizest_core.model import Package

if TYPE_CHECKING:
    from dizest_api.client import ApiError, Client


def _final_outputs(package: Package) -> dict[str, list[str]]:
    """Outputs no flow consumes, per flow (what `dizest run` prints)."""
    consumed = {
        (c.node, c.output)
        for f in package.flows.values()
        for cs in f.connections.values()
        for c in cs
    }
    finals: dict[str, list[str]] = {}
    for flow in package.flows.values():
        try:
            app = package.app_of(flow)
        except Exception:  # an unknown app: the server reports it
            continue
        names = [n for n in app.outputs if (flow.id, n) not in consumed]
        if names:
            finals[flow.id] = names
    return finals


def problem_text(problem: dict[str, Any]) -> str:
    where = ", ".join(f"{k} {problem[k]!r}" for k in ("flow", "app", "field") if problem.get(k))
    message = str(problem.get("message") or problem.get("code") or problem)
    return f"{message} ({where})" if where else message


def refused(name: str, exc: ApiError) -> NoReturn:
    """Print the server's refusal of what was asked of the workflow `name` (a 422, a line per
    problem; a 400: an input no flow reads, a malformed value) and exit 2, as `dizest run`."""
    from dizest_api.client import InvalidRequest

    echo(f"{name}: {exc.message}", err=True)  # the server's words: what is invalid
    if isinstance(exc, InvalidRequest):
        for problem in exc.problems:
            echo(f"{name}: error: {problem_text(problem)}", err=True)
    sys.exit(EXIT_INVALID)


@click.command()
@click.argument("workflow", type=click.Path(dir_okay=False, exists=True))
@server_options
@input_option
@click.option("--flow", "-f", "flows", multiple=True, metavar="ID", help="Run only this flow (and its upstream).")  # fmt: skip
@click.option("--file", "attach", multiple=True, metavar="PATH|AS=PATH", help="Attach a local file to this run alone: it is put in the run's working directory at PATH (relative), or at AS, before its flows start.")  # fmt: skip
@run_option_flags
@idempotency_option
@click.option("--wait", is_flag=True, help="Stream the run's events and print its outputs.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print JSON for scripts: `{"run_id"}`, with --wait the report.',
)
def submit(
    workflow: str,
    server: str | None,
    profile: str | None,
    inputs: tuple[str, ...],
    flows: tuple[str, ...],
    attach: tuple[str, ...],
    options: dict[str, Any],
    idempotency_key: str | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Submit WORKFLOW (.dwp) to a dizest server (the one of `dizest login`, or --server with
    DIZEST_TOKEN). A flow's own `"dizest"` options come before the run's; the server refuses
    what goes beyond its bounds."""
    from dizest_api.client import ApiError, BadRequest, InvalidRequest

    client = connect(server, profile)
    values = parse_inputs(inputs)
    try:
        raw = json.loads(Path(workflow).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        echo(f"{workflow}: cannot read: {exc}", err=True)
        sys.exit(EXIT_INVALID)
    if not isinstance(raw, dict):
        echo(f"{workflow}: not a .dwp (a JSON object)", err=True)
        sys.exit(EXIT_INVALID)
    try:
        if attach:
            body = {"package": raw, "inputs": values, "flows": list(flows), "options": options}
            body = {k: v for k, v in body.items() if v}
            files = attached_files(attach)
            run_id = client.submit_files(body, files, idempotency_key)["run_id"]
        else:
            run_id = client.submit(raw, values, list(flows) or None, options, idempotency_key)
    except (InvalidRequest, BadRequest) as exc:
        refused(workflow, exc)
    except ApiError as exc:
        raise Failure(str(exc)) from None
    except OSError as exc:
        raise Failure(f"cannot reach {client.server}: {exc}") from None
    if not wait:
        print_started(run_id, as_json)
        sys.exit(EXIT_OK)
    package, _ = dwp.parse(raw)
    follow_run(client, run_id, package, as_json)


def follow_run(client: Client, run_id: str, package: Package, as_json: bool) -> NoReturn:
    """Show a run's events as they happen (`Progress`), then its outputs or JSON report; exit
    0 when it ended ready, 1 otherwise, 130 on Ctrl-C (after cancelling it)."""
    from dizest_api.client import ApiError

    echo(f"run {run_id}", err=True)
    progress = Progress(package, sys.stderr)
    try:
        for event in client.events(run_id):
            progress.event(Event.from_dict(event))
        report = client.final_report(run_id)  # (wait() would follow all the events again)
    except KeyboardInterrupt:
        progress.close()
        try:
            client.cancel(run_id)
            echo(f"cancelled run {run_id}", err=True)
        except (ApiError, OSError):
            echo(f"could not cancel run {run_id}", err=True)
        sys.exit(130)
    except (ApiError, OSError) as exc:
        progress.close()
        raise Failure(str(exc)) from None
    progress.summary(report)
    if as_json:
        click.echo(json.dumps(report, indent=2, default=str))
    else:
        for flow_id, names in _final_outputs(package).items():
            outputs = (report.get("flows", {}).get(flow_id) or {}).get("outputs") or {}
            for name in names:
                if name in outputs:
                    echo(f"{flow_id}.{name} = {json.dumps(outputs[name], default=str)}")
    sys.exit(EXIT_OK if report.get("status") == "ready" else EXIT_FAILED)


def attached_files(specs: tuple[str, ...]) -> dict[str, Path]:
    """`--file` values as {path in the run's working directory: local file}."""
    files: dict[str, Path] = {}
    for spec in specs:
        name, _, local = spec.rpartition("=") if "=" in spec else ("", "", spec)
        path = Path(local)
        if not path.is_file():
            raise click.BadParameter(f"{local}: no such file", param_hint="--file")
        name = name or (local if not path.is_absolute() else path.name)
        files[Path(name).as_posix()] = path
    return files
