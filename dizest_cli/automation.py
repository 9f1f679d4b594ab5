"""`dizest schedules|hooks|triggers ...`: schedules, webhooks and triggers of a dizest server
(see docs/automation.md). Each listing prints a table, or the server's JSON with `--json`.
Secrets (a webhook's signing secret, a trigger's URL) are printed once, when made or rotated.
"""

from __future__ import annotations

from typing import Any

import click

from dizest_cli.common import (  # fmt: skip
    api_errors,
    connect,
    json_option,
    print_json,
    print_table,
    server_options,
    when,
    zoned,
)
from dizest_cli.local import input_option, parse_inputs
from dizest_cli.runopts import run_option_flags
from dizest_cli.terminal import echo


@click.group()
def schedules() -> None:
    """Run stored workflows on cron schedules (as you)."""


@schedules.command("list")
@server_options
@click.option("--workflow", "workflow_id", help="Only this workflow's schedules.")
@json_option
def schedules_list(
    server: str | None, profile: str | None, workflow_id: str | None, as_json: bool
) -> None:
    """Your schedules (admins: all)."""
    client = connect(server, profile)
    with api_errors(client.server):
        items = client.schedules(workflow_id)
    if as_json:
        print_json(items)
        return
    rows = [
        (s["id"], s["workflow_id"], s["cron"], s["timezone"], "on" if s["enabled"] else "off",
         s["catchup"], zoned(s.get("next_run_at"), s["timezone"]))
        for s in items
    ]  # fmt: skip
    print_table(rows, ["ID", "WORKFLOW", "CRON", "TZ", "STATE", "CATCHUP", "NEXT RUN"])


@schedules.command("show")
@server_options
@click.argument("schedule_id")
@json_option
def schedules_show(
    server: str | None, profile: str | None, schedule_id: str, as_json: bool
) -> None:
    """A schedule and its latest ticks."""
    client = connect(server, profile)
    with api_errors(client.server):
        found = client.schedule(schedule_id)
    if as_json:
        print_json(found)
        return
    echo(f"{found['id']}  {found['cron']} ({found['timezone']})  workflow {found['workflow_id']}")  # fmt: skip
    rows = [
        (h.get("tick"), h.get("run_id") or "-", h.get("error") or h.get("skipped") or "")
        for h in found["history"]
    ]
    print_table(rows, ["TICK", "RUN", "NOTE"])


@schedules.command("add")
@server_options
@click.argument("workflow_id")
@click.argument("cron")
@click.option("--tz", "timezone", default="UTC", show_default=True, help="IANA time zone.")
@input_option
@run_option_flags
@click.option("--catchup", type=click.Choice(["once", "skip"]), default="once", show_default=True,
              help="A tick missed while no beat ran: run once when one is back, or skip it.")  # fmt: skip
@click.option("--disabled", is_flag=True, help="Store it disabled.")
@json_option
def schedules_add(
    server: str | None,
    profile: str | None,
    workflow_id: str,
    cron: str,
    timezone: str,
    inputs: tuple[str, ...],
    options: dict[str, Any],
    catchup: str,
    disabled: bool,
    as_json: bool,
) -> None:
    """Run WORKFLOW_ID on CRON (5 fields, e.g. "0 9 * * 1-5", or @daily), with the run options
    given (each tick's run has them, as a submit's)."""
    client = connect(server, profile)
    with api_errors(client.server):
        made = client.add_schedule(
            workflow_id,
            cron,
            timezone=timezone,
            inputs=parse_inputs(inputs),
            options=options,
            catchup=catchup,
            enabled=not disabled,
        )
    if as_json:
        print_json(made)
    else:
        next_run = zoned(made.get("next_run_at"), made["timezone"])
        echo(f"{made['id']}  next run {next_run} ({made['timezone']})")


def _switch(server: str | None, profile: str | None, schedule_id: str, enabled: bool) -> None:
    client = connect(server, profile)
    with api_errors(client.server):
        client.update_schedule(schedule_id, enabled=enabled)
    echo(f"{schedule_id} {'enabled' if enabled else 'disabled'}")


@schedules.command("enable")
@server_options
@click.argument("schedule_id")
def schedules_enable(server: str | None, profile: str | None, schedule_id: str) -> None:
    """Enable a schedule (ticks while it was off are not run)."""
    _switch(server, profile, schedule_id, True)


@schedules.command("disable")
@server_options
@click.argument("schedule_id")
def schedules_disable(server: str | None, profile: str | None, schedule_id: str) -> None:
    """Disable a schedule."""
    _switch(server, profile, schedule_id, False)


@schedules.command("rm")
@server_options
@click.argument("schedule_id")
def schedules_rm(server: str | None, profile: str | None, schedule_id: str) -> None:
    """Delete a schedule."""
    client = connect(server, profile)
    with api_errors(client.server):
        client.remove_schedule(schedule_id)
    echo(f"deleted {schedule_id}")


@click.group()
def hooks() -> None:
    """Webhooks: URLs called (signed) when your runs end."""


@hooks.command("list")
@server_options
@json_option
def hooks_list(server: str | None, profile: str | None, as_json: bool) -> None:
    """Your webhooks."""
    client = connect(server, profile)
    with api_errors(client.server):
        items = client.hooks()
    if as_json:
        print_json(items)
        return
    rows = [(h["id"], h.get("workflow_id") or "(all runs)", h["url"]) for h in items]
    print_table(rows, ["ID", "WORKFLOW", "URL"])


@hooks.command("add")
@server_options
@click.argument("url")
@click.option("--workflow", "workflow_id", help="Only this workflow's runs (default: all yours).")
@json_option
def hooks_add(
    server: str | None, profile: str | None, url: str, workflow_id: str | None, as_json: bool
) -> None:
    """Call URL when a run ends; prints the signing secret once."""
    client = connect(server, profile)
    with api_errors(client.server):
        made = client.add_hook(url, workflow_id)
    if as_json:
        print_json(made)
    else:
        echo(made["id"])
        echo(f"secret (shown once): {made['secret']}")


@hooks.command("show")
@server_options
@click.argument("hook_id")
@json_option
def hooks_show(server: str | None, profile: str | None, hook_id: str, as_json: bool) -> None:
    """A webhook and its latest deliveries."""
    client = connect(server, profile)
    with api_errors(client.server):
        found = client.hook(hook_id)
    if as_json:
        print_json(found)
        return
    echo(f"{found['id']}  {found['url']}")
    rows = [
        (when(d.get("at")), d.get("run_id"), d.get("attempt"),
         d.get("status_code") or d.get("error"), f"{d.get('duration_ms')} ms")
        for d in found["deliveries"]
    ]  # fmt: skip
    print_table(rows, ["AT", "RUN", "ATTEMPT", "RESULT", "TOOK"])


@hooks.command("rm")
@server_options
@click.argument("hook_id")
def hooks_rm(server: str | None, profile: str | None, hook_id: str) -> None:
    """Delete a webhook."""
    client = connect(server, profile)
    with api_errors(client.server):
        client.remove_hook(hook_id)
    echo(f"deleted {hook_id}")


@click.group()
def triggers() -> None:
    """Secret URLs that start runs of a workflow (as you) for other systems."""


@triggers.command("list")
@server_options
@click.argument("workflow_id")
@json_option
def triggers_list(server: str | None, profile: str | None, workflow_id: str, as_json: bool) -> None:
    """A workflow's triggers (their secrets are never shown again)."""
    client = connect(server, profile)
    with api_errors(client.server):
        items = client.triggers(workflow_id)
    if as_json:
        print_json(items)
        return
    rows = [(t["id"], t["owner"], t["rate_per_min"], when(t["created_at"])) for t in items]
    print_table(rows, ["ID", "OWNER", "PER MIN", "CREATED"])


@triggers.command("add")
@server_options
@click.argument("workflow_id")
@click.option("--rate", "rate_per_min", type=click.IntRange(1, 10_000), help="Calls per minute.")
@json_option
def triggers_add(
    server: str | None, profile: str | None, workflow_id: str, rate_per_min: int | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Make a trigger URL; prints it once (POST JSON inputs to it)."""
    client = connect(server, profile)
    with api_errors(client.server):
        made = client.add_trigger(workflow_id, rate_per_min)
    _print_secret(made, as_json)


@triggers.command("rotate")
@server_options
@click.argument("workflow_id")
@click.argument("trigger_id")
@json_option
def triggers_rotate(
    server: str | None, profile: str | None, workflow_id: str, trigger_id: str, as_json: bool
) -> None:
    """Replace a trigger's URL (the old one stops working)."""
    client = connect(server, profile)
    with api_errors(client.server):
        made = client.rotate_trigger(workflow_id, trigger_id)
    _print_secret(made, as_json)


@triggers.command("rm")
@server_options
@click.argument("workflow_id")
@click.argument("trigger_id")
def triggers_rm(server: str | None, profile: str | None, workflow_id: str, trigger_id: str) -> None:
    """Revoke a trigger."""
    client = connect(server, profile)
    with api_errors(client.server):
        client.remove_trigger(workflow_id, trigger_id)
    echo(f"revoked {trigger_id}")


def _print_secret(made: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(made)
        return
    echo(made["id"])
    echo(f"url (shown once): {made['url']}")
    echo(f"start a run: curl -X POST -H 'Content-Type: application/json' -d '{{}}' {made['url']}")
