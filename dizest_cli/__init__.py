"""The `dizest` command line: one click group; each command group lives in its own module.

Commands that need Flask or Celery are imported only when they run, so `dizest run` starts fast.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from dizest_cli.local import apps, run, validate

LAZY = {
    "worker": "dizest_cli.cluster:worker",
    "worker-alive": "dizest_cli.cluster:worker_alive",
    "user": "dizest_api.cli:user",
    "token": "dizest_api.cli:token",
    "serve": "dizest_api.serve:serve",
    "submit": "dizest_cli.remote:submit",
    "files": "dizest_cli.files:files",
    "login": "dizest_cli.login:login",
    "logout": "dizest_cli.login:logout",
    "profiles": "dizest_cli.login:profiles",
    "runs": "dizest_cli.runs:runs",
    "api-call": "dizest_cli.apicall:api_call",
    "workflows": "dizest_cli.workflows:workflows",
    "beat": "dizest_api.automation.beat:beat",
    "schedules": "dizest_cli.automation:schedules",
    "hooks": "dizest_cli.automation:hooks",
    "triggers": "dizest_cli.automation:triggers",
}


class LazyGroup(click.Group):
    """A group whose heavier subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY])

    def get_command(self, ctx: click.Context, name: str) -> Any:
        if name in LAZY:
            module, attr = LAZY[name].split(":")
            return getattr(importlib.import_module(module), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dizest")
def cli() -> None:
    """dizest: run DIZEST workflow packages (.dwp), locally or on a cluster of workers."""


cli.add_command(run)
cli.add_command(validate)
cli.add_command(apps)


def main() -> None:
    cli(prog_name="dizest")
