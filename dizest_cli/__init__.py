"""The `dizest` command line: one click group; each command group lives in its own module.

Every command is imported only when it runs, and `dizest --help` lists them from the summaries
below without importing any (issue 12: `--help` in 0.1 s, `dizest run` without Flask, Celery
or Redis). tests/test_cli_startup.py holds each summary to its command's own help text, and the
module lists to what `--help` and `run` may import.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import click


class Lazy(NamedTuple):
    """Where a command lives ("module:attribute") and the summary `--help` shows for it."""

    target: str
    summary: str


LAZY: dict[str, Lazy] = {
    "run": Lazy(
        "dizest_cli.local:run", "Run WORKFLOW (.dwp) here, each flow in its own child process."
    ),
    "validate": Lazy(
        "dizest_cli.local:validate",
        "Check WORKFLOW and list every problem (exit 2 on errors or code that does not compile).",
    ),
    "apps": Lazy("dizest_cli.local:apps", "List the apps installed by plugins."),
    "worker": Lazy(
        "dizest_cli.cluster:worker", "Start a worker that runs flows from Redis (DIZEST_REDIS_URL)."
    ),
    "worker-alive": Lazy(
        "dizest_cli.cluster:worker_alive",
        "Exit 0 if the worker beat lately (`dizest_worker.liveness`), 1 otherwise: a health check.",
    ),
    "workers": Lazy(
        "dizest_cli.workers:workers",
        "List the live workers of a dizest server (admins): host, queues, slots, load, memory.",
    ),
    "packages": Lazy(
        "dizest_cli.packages:packages",
        "List the Python packages flows can import on a dizest server, or --check a requirements.txt.",
    ),
    "user": Lazy("dizest_api.cli:user", "Manage users (admin or user role)."),
    "token": Lazy("dizest_api.cli:token", "Manage API tokens."),
    "serve": Lazy(
        "dizest_api.serve:serve",
        "Serve the HTTP API (gunicorn), with an embedded Redis and a worker when none is given.",
    ),
    "submit": Lazy(
        "dizest_cli.remote:submit",
        "Submit WORKFLOW (.dwp) to a dizest server "
        "(the one of `dizest login`, or --server with DIZEST_TOKEN).",
    ),
    "files": Lazy(
        "dizest_cli.files:files",
        "Upload, list, download, move and delete the files of your drive on a dizest server.",
    ),
    "login": Lazy(
        "dizest_cli.login:login",
        "Log in to a dizest server and store an API token for it (no more --server).",
    ),
    "logout": Lazy(
        "dizest_cli.login:logout", "Revoke the profile's token on its server and forget it."
    ),
    "profiles": Lazy(
        "dizest_cli.login:profiles", "List the servers you are logged in to (never the tokens)."
    ),
    "runs": Lazy(
        "dizest_cli.runs:runs",
        "List, inspect, follow, cancel and re-run the runs of a dizest server.",
    ),
    "api-call": Lazy(
        "dizest_cli.apicall:api_call",
        "Call the api function NAME of flow FLOW_ID in run RUN_ID; print its answer.",
    ),
    "workflows": Lazy(
        "dizest_cli.workflows:workflows",
        "List, push, pull and run the stored workflows of a dizest server.",
    ),
    "beat": Lazy(
        "dizest_api.automation.beat:beat",
        "Run schedules (celery-redbeat), deliver webhooks and notice ended runs.",
    ),
    "schedules": Lazy(
        "dizest_cli.automation:schedules", "Run stored workflows on cron schedules (as you)."
    ),
    "hooks": Lazy(
        "dizest_cli.automation:hooks", "Webhooks: URLs called (signed) when your runs end."
    ),
    "triggers": Lazy(
        "dizest_cli.automation:triggers",
        "Secret URLs that start runs of a workflow (as you) for other systems.",
    ),
}


def load_command(name: str) -> click.Command:
    """Import the command `name` of LAZY (its module and whatever that module needs)."""
    module, attr = LAZY[name].target.split(":")
    command = getattr(importlib.import_module(module), attr)
    assert isinstance(command, click.Command)
    return command


def summary_line(name: str, limit: int) -> str:
    """The summary of LAZY[name] shortened to `limit` exactly as click shortens a help text."""
    return click.Command(name, help=LAZY[name].summary).get_short_help_str(limit)


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, never to list them."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY])

    def get_command(self, ctx: click.Context, name: str) -> Any:
        if name in LAZY:
            return load_command(name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's own layout, with the summaries of LAZY instead of importing every command."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(n) for n in names)
        rows = []
        for name in names:
            if name in LAZY:
                rows.append((name, summary_line(name, limit)))
                continue
            cmd = super().get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, cmd.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dizest")
def cli() -> None:
    """dizest: run DIZEST workflow packages (.dwp), locally or on a cluster of workers."""


def main(argv: Sequence[str] | None = None) -> None:
    """The console script; `argv` (default: sys.argv[1:]) lets a test drive it in-process."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="dizest")
