"""`dizest workers`: the live workers of a dizest server, for its operators (admins only):
where each one runs, the queues it serves, its slots in use, its machine's load, memory and
disk, and how long since it last beat. An aligned table, or with `--json` the server's answer
(`GET /api/v1/workers`: also the pid, version, start time and the flows each one runs). Exit
codes: 0 done; 1 an API error (a user who is not an admin: forbidden); 2 a usage error.
"""

from __future__ import annotations

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

UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


@click.command()
@server_options
@json_option
def workers(server: str | None, profile: str | None, as_json: bool) -> None:
    """List the live workers of a dizest server (admins): host, queues, slots, load, memory."""
    client = connect(server, profile)
    with api_errors(client.server):
        found = client.workers()
    if as_json:
        print_json({"items": found})
        return
    rows = [
        (
            w["name"],
            w.get("host"),
            ",".join(w.get("queues") or []) or None,
            f"{w['running']}/{w['slots']}",
            " ".join(f"{x:.2f}" for x in w["load"]) if w.get("load") else None,
            _part(w.get("memory"), "available"),
            _part((w.get("disk") or {}).get("artifacts"), "free"),
            f"{w['last_beat_s']:.1f}s ago",
        )
        for w in found
    ]
    print_table(rows, ["WORKER", "HOST", "QUEUES", "SLOTS", "LOAD", "MEMORY", "DISK", "BEAT"])


def _part(amount: dict[str, Any] | None, part: str) -> str | None:
    """'<part> of <total>' of a {part, total} in bytes, for people ("3.1 GiB of 16 GiB")."""
    if not amount:
        return None
    return f"{size(amount[part])} of {size(amount['total'])} free"


def size(count: float) -> str:
    """Bytes, in the largest binary unit that keeps the number at least 1."""
    unit = 0
    while count >= 1024 and unit < len(UNITS) - 1:
        count, unit = count / 1024, unit + 1
    return (
        f"{count:.0f} {UNITS[unit]}" if unit == 0 or count >= 100 else f"{count:.1f} {UNITS[unit]}"
    )
