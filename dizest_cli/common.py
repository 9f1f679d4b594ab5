"""What every command that talks to a server shares: `--server`/`--profile`, the client they
resolve to, API errors as one-line messages, and output as aligned tables or as JSON.

Listings print a table for people and, with `--json`, the server's JSON for scripts: stdout
carries only that, messages go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dizest_cli.config import ConfigFileError, resolve
from dizest_cli.terminal import Failure, echo, plain

if TYPE_CHECKING:
    from dizest_api.client import Client

F = TypeVar("F", bound=Callable[..., Any])
EXIT_USAGE = 2


def server_options(command: F) -> F:
    """Add `--server URL` and `--profile NAME` (see `dizest_cli.config.resolve`)."""
    command = click.option(
        "--profile",
        metavar="NAME",
        help="A profile of `dizest login` (default: DIZEST_PROFILE, else the default one).",
    )(command)
    return click.option(
        "--server",
        metavar="URL",
        help="The dizest server (default: DIZEST_SERVER, else the profile's).",
    )(command)


def json_option(command: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")(command)


def connect(server: str | None, profile: str | None) -> Client:
    """A client for the resolved server and token; exits 2 with a hint when there is none."""
    from dizest_api.client import Client

    try:
        remote = resolve(server, profile)
    except ConfigFileError as exc:
        raise click.UsageError(str(exc)) from None
    if remote is None:
        raise click.UsageError(
            "no server: run `dizest login --server URL` once, or give --server / DIZEST_SERVER"
        )
    if not remote.token:
        raise click.UsageError(
            f"not logged in to {remote.server}: run `dizest login --server {remote.server}`, "
            "or set DIZEST_TOKEN"
        )
    return Client(remote.server, remote.token)


@contextlib.contextmanager
def api_errors(server: str) -> Iterator[None]:
    """Turn the client's errors into a one-line message and exit 1 (usage errors: 2)."""
    from dizest_api.client import ApiError, Unauthorized

    try:
        yield
    except Unauthorized as exc:
        raise Failure(
            f"{exc.message or 'unauthorized'}: log in again (`dizest login --server {server}`)"
        ) from None
    except ApiError as exc:
        raise Failure(f"{exc.code}: {exc.message}") from None
    except OSError as exc:
        raise Failure(f"cannot reach {server}: {exc}") from None


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


def print_started(run_id: str, as_json: bool) -> None:
    """A run just started, not followed: its id alone, or with --json `{"run_id": ...}` (stdout
    stays JSON for a script that asked for JSON)."""
    if as_json:
        print_json({"run_id": run_id})
    else:
        echo(run_id)


def print_table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
    """Aligned columns, a header first; the last column is not padded."""
    cells = [
        [str(h) for h in headers],
        *[["-" if c is None else plain(c) for c in r] for r in rows],
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        click.echo("  ".join([*padded, row[-1]]).rstrip())


def when(value: Any) -> str:
    """A timestamp (epoch seconds or ISO text) as local `YYYY-MM-DD HH:MM:SS`."""
    if value in (None, ""):
        return "-"
    try:
        moment = (
            datetime.fromtimestamp(float(value))
            if isinstance(value, (int, float))
            else datetime.fromisoformat(str(value)).astimezone()
        )
    except (ValueError, OSError, OverflowError):
        return str(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def zoned(value: Any, timezone: str) -> str:
    """An ISO timestamp in time zone `timezone` (a schedule's), ISO with its offset:
    `2026-11-27T06:00:00+01:00`; anything else as it is."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if value in (None, ""):
        return "-"
    try:
        moment = datetime.fromisoformat(str(value)).astimezone(ZoneInfo(timezone))
    except (ValueError, ZoneInfoNotFoundError, OverflowError):
        return str(value)
    return moment.isoformat(timespec="seconds")


def seconds(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}s"


def fail(message: str, code: int = 1) -> None:
    echo(message, err=True)
    sys.exit(code)
