"""`dizest workflows list|push|pull|run`: the stored workflows of a dizest server.

`push` stores a .dwp file as a new workflow (title: the file name) or, with `--to ID`, as the next
version of one; `pull` writes a stored version back to a file, exactly as the server keeps it;
`run` runs a stored version (yours, or one shared with you to run) on the server.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from dizest_cli.common import (
    api_errors,
    connect,
    json_option,
    print_json,
    print_started,
    print_table,
    server_options,
    when,
)
from dizest_cli.local import input_option, parse_inputs
from dizest_cli.runopts import idempotency_option, run_option_flags
from dizest_cli.terminal import echo


@click.group()
def workflows() -> None:
    """List, push, pull and run the stored workflows of a dizest server."""


@workflows.command("list")
@server_options
@click.option("--title", default="", help="Only titles containing this text.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 200))
@click.option("--offset", default=0, type=click.IntRange(min=0))
@json_option
def list_workflows(
    server: str | None, profile: str | None, title: str, limit: int, offset: int, as_json: bool
) -> None:
    """Workflows you own or were granted, newest first."""
    client = connect(server, profile)
    with api_errors(client.server):
        page = client.workflows(title, offset, limit)
    if as_json:
        print_json(page)
        return
    rows = [
        (w["id"], w.get("title"), w.get("version"), w.get("owner"), when(w.get("updated_at")))
        for w in page["items"]
    ]
    print_table(rows, ["ID", "TITLE", "VERSION", "OWNER", "UPDATED"])
    shown = offset + len(page["items"])
    if shown < page["total"]:
        echo(f"{shown} of {page['total']} workflows; --offset {shown} for more", err=True)


@workflows.command("push")
@server_options
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@click.option("--title", help="Default: the file name without .dwp (a new version keeps its own).")  # fmt: skip
@click.option("--to", "workflow_id", metavar="ID", help="Store as the next version of this workflow.")  # fmt: skip
@json_option
def push(
    server: str | None,
    profile: str | None,
    path: str,
    title: str | None,
    workflow_id: str | None,
    as_json: bool,
) -> None:
    """Store the .dwp at PATH on the server; prints the workflow id."""
    from dizest_api.client import InvalidRequest
    from dizest_cli.remote import refused

    try:
        package = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint="PATH") from None
    if not isinstance(package, dict):
        raise click.BadParameter(f"{path} is not a .dwp (a JSON object)", param_hint="PATH")
    if title is None and workflow_id is None:
        title = Path(path).name.removesuffix(".dwp")
    client = connect(server, profile)
    with api_errors(client.server):
        try:
            stored = client.push_workflow(package, title, workflow_id)
        except InvalidRequest as exc:
            refused(path, exc)
    if as_json:
        print_json(stored)
    else:
        echo(stored["id"])
        where = f"{stored['id']} version {stored.get('version')}"
        if stored.get("stored", True):
            echo(f"stored {path} as {where}", err=True)
        else:
            echo(f"{path} is {where} already: nothing stored", err=True)
        for warning in stored.get("warnings", []):  # stored all the same (a syntax error...)
            echo(f"{path}: warning: {warning.get('message')}", err=True)


@workflows.command("pull")
@server_options
@click.argument("workflow_id")
@click.option("--version", type=click.IntRange(min=1), help="Default: the latest.")
@click.option(
    "--output",
    "-o",
    metavar="FILE",
    help="Where to write it ('-': stdout; default: the server's file name, here).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def pull(
    server: str | None,
    profile: str | None,
    workflow_id: str,
    version: int | None,
    output: str | None,
    force: bool,
) -> None:
    """Write a stored workflow's .dwp to a file."""
    client = connect(server, profile)
    with api_errors(client.server):
        name, body = client.pull_workflow(workflow_id, version)
    if output == "-":
        sys.stdout.buffer.write(body)
        sys.stdout.flush()
        return
    target = Path(output or name)
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists (--force to overwrite it)")
    target.write_bytes(body)
    echo(f"wrote {target}", err=True)


@workflows.command("run")
@server_options
@click.argument("workflow_id")
@click.option("--version", type=click.IntRange(min=1), help="Default: the latest.")
@input_option
@click.option("--flow", "-f", "flows", multiple=True, metavar="ID", help="Run only this flow (and its upstream).")  # fmt: skip
@run_option_flags
@idempotency_option
@click.option("--wait", is_flag=True, help="Follow the run and print its outputs.")
@json_option
def run_stored(
    server: str | None,
    profile: str | None,
    workflow_id: str,
    version: int | None,
    inputs: tuple[str, ...],
    flows: tuple[str, ...],
    options: dict[str, Any],
    idempotency_key: str | None,
    wait: bool,
    as_json: bool,
) -> None:
    """Run a stored workflow on the server; prints the run id (exit codes as `dizest submit`)."""
    from dizest_api.client import BadRequest, InvalidRequest
    from dizest_cli.remote import follow_run, refused
    from dizest_core import dwp

    client = connect(server, profile)
    values = parse_inputs(inputs)
    with api_errors(client.server):
        try:
            run_id = client.submit_workflow(
                workflow_id, version, values, list(flows) or None, options, idempotency_key
            )
        except (InvalidRequest, BadRequest) as exc:
            refused(workflow_id, exc)
        if not wait:
            print_started(run_id, as_json)
            return
        package, _ = dwp.parse(client.request("GET", f"/runs/{client._q(run_id)}/dwp"))
    follow_run(client, run_id, package, as_json)
