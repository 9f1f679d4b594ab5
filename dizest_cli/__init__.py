"""The `dizest` command line: one click group; each command group lives in its own module."""

from __future__ import annotations

import click

from dizest_cli.cluster import worker
from dizest_cli.local import apps, run, validate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="dizest")
def cli() -> None:
    """dizest: run DIZEST workflow packages (.dwp), locally or on a cluster of workers."""


cli.add_command(run)
cli.add_command(validate)
cli.add_command(apps)
cli.add_command(worker)


def main() -> None:
    cli(prog_name="dizest")
