"""`dizest runs list|show|logs|cancel|outputs|rerun`: the runs of a dizest server.

Everything goes through the public API (`dizest_api.client.Client`), with the server and token
of `dizest login` (see `dizest_cli.config`). Listings print aligned tables, or the server's JSON
with `--json`. Exit codes: 0 done; 1 an API error (or, for `logs -f` and `rerun --wait`, a run
that did not end ready); 2 a usage error.
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING, Any

import click

from dizest_cli.common import (
    api_errors,
    connect,
    json_option,
    print_json,
    print_started,
    print_table,
    seconds,
    server_options,
    when,
)
from dizest_cli.terminal import Failure, echo, plain, safe_line
from dizest_core.render import as_text

if TYPE_CHECKING:
    from dizest_api.client import Client

FOLLOW_RECONNECTS = 30  # about a minute of retries: an API restart does not end `logs -f`
SHORT_ID = re.compile(r"[0-9a-f]{4,31}")  # the start of a run's id, as the console shows it
SHORT_PAGES = 10  # of 200 runs: a short id is looked for among the caller's newest 2,000


def resolve(client: Client, given: str) -> str:
    """The run `given` names: a whole id as it is, else the one of the caller's newest runs
    (an admin's: anyone's), then of those shared with it, whose id starts with it (the console
    shows 12 characters); a Failure when none or several do. Anything else goes to the server
    as given (its 404)."""
    if not SHORT_ID.fullmatch(given):
        return given
    found: list[str] = []
    for shared in (None, "1"):
        for page in range(SHORT_PAGES):
            listed = client.runs(page * 200, 200, shared=shared)
            found += [r["run_id"] for r in listed["items"] if r["run_id"].startswith(given)]
            if len(listed["items"]) < 200:
                break
        if found:
            break
    if len(found) == 1:
        return found[0]
    if found:
        raise Failure(
            f"{given!r} starts {len(found)} runs' ids: {', '.join(found[:5])}; give more of it"
        )
    raise Failure(
        f"no run whose id starts with {given!r} among your {SHORT_PAGES * 200:,} newest "
        "and as many shared with you"
    )


@click.group()
def runs() -> None:
    """List, inspect, follow, cancel and re-run the runs of a dizest server."""


@runs.command("list")
@server_options
@click.option("--status", help="Only runs with this status: pending, running, ready, error or cancelled.")  # fmt: skip
@click.option("--workflow", "workflow_id", metavar="ID", help="Only runs of this workflow.")
@click.option("--owner", metavar="USER", help="Only this user's runs (admins).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 200))
@click.option("--offset", default=0, type=click.IntRange(min=0))
@json_option
def list_runs(
    server: str | None,
    profile: str | None,
    status: str | None,
    workflow_id: str | None,
    owner: str | None,
    limit: int,
    offset: int,
    as_json: bool,
) -> None:
    """Your runs, newest first (admins: everyone's)."""
    client = connect(server, profile)
    with api_errors(client.server):
        page = client.runs(offset, limit, status=status, workflow_id=workflow_id, owner=owner)
    if as_json:
        print_json(page)
        return
    rows = [
        (
            r["run_id"],
            r.get("status"),
            r.get("workflow_id") or "(inline)",
            r.get("owner"),
            _origin(r.get("origin")),
            when(r.get("created_at")),
            _took(r.get("created_at"), r.get("finished_at")),
        )
        for r in page["items"]
    ]
    print_table(rows, ["RUN", "STATUS", "WORKFLOW", "OWNER", "ORIGIN", "CREATED", "TOOK"])
    shown = offset + len(page["items"])
    if shown < page["total"]:
        echo(f"{shown} of {page['total']} runs; --offset {shown} for more", err=True)


def _origin(origin: Any) -> str:
    """What started a run ('schedule 8f2c...', 'rerun <run>'); '-' for its owner's submit."""
    if not isinstance(origin, dict):
        return "-"
    return f"{origin['kind']} {origin['id']}" if origin.get("id") else str(origin["kind"])


def _took(start: Any, end: Any) -> str:
    return "-" if not start or not end else seconds(float(end) - float(start))


@runs.command("show")
@server_options
@click.argument("run_id")
@json_option
def show(server: str | None, profile: str | None, run_id: str, as_json: bool) -> None:
    """RUN_ID's report: status, times, inputs and each flow's status."""
    client = connect(server, profile)
    with api_errors(client.server):
        report = client.get(resolve(client, run_id))
    if as_json:
        print_json(report)
        return
    for label, key in (("run", "run_id"), ("status", "status"), ("workflow", "workflow_id"),
                       ("owner", "owner")):  # fmt: skip
        echo(f"{label + ':':<10}{report.get(key) or '-'}")
    echo(f"{'origin:':<10}{_origin(report.get('origin'))}")
    echo(f"{'started:':<10}{when(report.get('started_at'))}")
    echo(f"{'finished:':<10}{when(report.get('finished_at'))}")
    if report.get("inputs"):
        echo(f"{'inputs:':<10}{report['inputs']}")
    echo("")
    rows = [
        (flow_id, d.get("status"), seconds(d.get("duration_s")), d.get("reason") or "")
        for flow_id, d in _in_run_order(report)
    ]
    print_table(rows, ["FLOW", "STATUS", "TIME", "REASON"])


def _in_run_order(report: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Flows in the order they started (those that never did last, as in the file)."""
    flows = list((report.get("flows") or {}).items())
    return sorted(flows, key=lambda item: (item[1].get("index", -1) < 0, item[1].get("index", 0)))


def _lines(flow_id: str, entry: Any) -> list[str]:
    text = entry if isinstance(entry, str) else as_text(entry)
    return [f"[{plain(flow_id)}] {safe_line(line)}" for line in text.rstrip("\n").split("\n")]


@runs.command("logs")
@server_options
@click.argument("run_id")
@click.option("--follow", "-f", is_flag=True, help="Keep printing until the run ends.")
@click.option("--flow", "flows", multiple=True, metavar="ID", help="Only this flow (repeatable).")
def logs(
    server: str | None, profile: str | None, run_id: str, follow: bool, flows: tuple[str, ...]
) -> None:
    """RUN_ID's log lines, `[flow] line`, on stdout; with -f, live until the run ends (exit 1
    when it did not end ready)."""
    client = connect(server, profile)
    wanted = set(flows)
    with api_errors(client.server):
        run_id = resolve(client, run_id)
        if not follow:
            for flow_id, d in _in_run_order(client.get(run_id)):
                if not wanted or flow_id in wanted:
                    for entry in d.get("log") or []:
                        click.echo("\n".join(_lines(flow_id, entry)))
            return
        status = None
        for event in client.events(run_id, reconnects=FOLLOW_RECONNECTS):
            kind, flow, data = event.get("type"), event.get("flow_id"), event.get("data") or {}
            if wanted and flow is not None and flow not in wanted:
                continue
            if kind == "log.append":
                click.echo("\n".join(_lines(str(flow), data.get("entry", ""))))
            elif kind == "flow.status" and data.get("status") == "error":
                echo(f"[{flow}] error: {data.get('reason')}", err=True)
            elif kind == "workflow.status":
                status = data.get("status")
    echo(f"run {run_id} {status}", err=True)
    sys.exit(0 if status == "ready" else 1)


@runs.command("cancel")
@server_options
@click.argument("run_id")
@json_option
def cancel(server: str | None, profile: str | None, run_id: str, as_json: bool) -> None:
    """Cancel RUN_ID: flows not started never start, running ones are stopped."""
    client = connect(server, profile)
    with api_errors(client.server):
        run_id = resolve(client, run_id)
        answer = client.cancel(run_id)
    if as_json:
        print_json(answer)
    else:
        echo(f"run {run_id}: {_cancel_text(answer)}")


def _cancel_text(answer: dict[str, Any]) -> str:
    """The API's `result`: 'final' (the run is over) or how many flows its workers now stop."""
    result, status = answer.get("result"), answer.get("status")
    if result == "final" or str(result) == "0":
        return f"cancelled (status {status})"
    return f"cancelling: {result} running flow(s) being stopped (status {status})"


@runs.command("outputs")
@server_options
@click.argument("run_id")
@click.option("--flow", "flows", multiple=True, metavar="ID", help="Only this flow (repeatable).")
@json_option
def outputs(
    server: str | None, profile: str | None, run_id: str, flows: tuple[str, ...], as_json: bool
) -> None:
    """RUN_ID's outputs (JSON previews), `flow.name = value`, or `{flow: {name: value}}`."""
    client = connect(server, profile)
    with api_errors(client.server):
        run_id = resolve(client, run_id)
        report = client.get(run_id)
    found = {
        flow_id: d.get("outputs") or {}
        for flow_id, d in _in_run_order(report)
        if (not flows or flow_id in flows) and d.get("outputs")
    }
    unknown = [f for f in flows if f not in (report.get("flows") or {})]
    if unknown:
        raise click.BadParameter(f"run {run_id} has no flow(s) {', '.join(unknown)}", param_hint="--flow")  # fmt: skip
    if as_json:
        print_json(found)
        return
    for flow_id, values in found.items():
        for name, value in values.items():
            echo(f"{flow_id}.{name} = {json.dumps(value, default=str)}")


@runs.command("rerun")
@server_options
@click.argument("run_id")
@click.argument("flow_id")
@click.option("--wait", is_flag=True, help="Follow the new run and print its outputs.")
@json_option
def rerun(
    server: str | None, profile: str | None, run_id: str, flow_id: str, wait: bool, as_json: bool
) -> None:
    """Run FLOW_ID of RUN_ID again, reusing the run's upstream outputs; prints the new run id."""
    from dizest_cli.remote import follow_run
    from dizest_core import dwp

    client = connect(server, profile)
    with api_errors(client.server):
        new_id = client.rerun(resolve(client, run_id), flow_id)
        if not wait:
            print_started(new_id, as_json)
            return
        package, _ = dwp.parse(client.request("GET", f"/runs/{client._q(new_id)}/dwp"))
    follow_run(client, new_id, package, as_json)
