"""`dizest packages`: what flows can import on a dizest server, the Python packages of its live
workers' environments (`GET /api/v1/packages`); with `--check FILE` (a requirements.txt, `-`:
standard input) each requirement checked against them (`POST /api/v1/packages/check`), so a
script or CI job can ask before it submits. Exit codes: 0 done (with --check: every requirement
met everywhere); 1 an API error, or with --check a requirement not met, or no live worker;
2 a usage error.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from dizest_cli.common import (
    api_errors,
    connect,
    json_option,
    print_json,
    print_table,
    server_options,
)

MARKS = {True: "ok", False: "MISSING", None: "unknown"}


@click.command()
@server_options
@json_option
@click.option(
    "--check",
    "requirements",
    type=click.File("r"),
    help="A requirements.txt (- for standard input) to check against the workers.",
)
def packages(server: str | None, profile: str | None, as_json: bool, requirements: Any) -> None:
    """List the Python packages flows can import on a dizest server, or --check a requirements.txt."""
    client = connect(server, profile)
    if requirements is not None:
        text = requirements.read()
        with api_errors(client.server):
            found = client.check_requirements(text)
        sys.exit(_show_check(found, as_json))
    with api_errors(client.server):
        environments = client.packages()
    if as_json:
        print_json({"environments": environments})
        return
    for n, env in enumerate(environments):
        if n:
            click.echo()
        click.echo(f"# Python {env['python']} on {', '.join(env['workers'])}")
        print_table([(p["name"], p["version"]) for p in env["packages"]], ["PACKAGE", "VERSION"])
    if not environments:
        click.echo("no live worker", err=True)


def _show_check(found: dict[str, Any], as_json: bool) -> int:
    """Print the check; its exit code (1 unless every requirement is met on every worker)."""
    environments, rows = found["environments"], found["requirements"]
    met = bool(environments) and all(
        r["name"] is None or all(ok is True for ok in r["satisfied"]) for r in rows
    )
    if as_json:
        print_json(found)
        return 0 if met else 1
    if not environments:
        click.echo("no live worker: nothing to check against", err=True)
        return 1
    several = len(environments) > 1
    headers = ["REQUIREMENT"] + [
        f"{', '.join(e['workers']) if several else 'WORKERS'} (PYTHON {e['python']})"
        for e in environments
    ]
    table = []
    for r in rows:
        if r["name"] is None:
            table.append(
                [r["line"].strip(), f"not checked: {r['problem']}"] + [""] * (len(environments) - 1)
            )
        else:
            table.append([r["line"].strip()] + [
                f"{MARKS[ok]} {installed or '(not installed)'}"
                for installed, ok in zip(r["installed"], r["satisfied"], strict=True)
            ])  # fmt: skip
    print_table(table, headers)
    return 0 if met else 1
