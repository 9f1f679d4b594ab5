"""`dizest files put|ls|get|mv|rm|mkdir`: your drive on a dizest server.

A run reads the drive of the user who started it through `dizest.drive()` (read-only, after the
run's own working directory), so `dizest files put data/sales.csv data/sales.csv` once lets every
later run read `data/sales.csv`. Paths on the server are relative to your drive.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dizest_cli.common import (
    api_errors,
    connect,
    json_option,
    print_json,
    print_table,
    server_options,
    when,
)
from dizest_cli.terminal import echo
from dizest_cli.workers import size


@click.group()
def files() -> None:
    """Upload, list, download, move and delete the files of your drive on a dizest server."""


@files.command("put")
@server_options
@click.argument("local", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=True))
@click.argument("remote")
def put(server: str | None, profile: str | None, local: tuple[str, ...], remote: str) -> None:
    """Upload LOCAL files (folders: their files, recursively) to REMOTE. One file: REMOTE is its
    path (a trailing / keeps its name); several, or a folder: REMOTE is the folder they go in."""
    client = connect(server, profile)
    pairs: list[tuple[Path, str]] = []
    into = len(local) > 1 or remote.endswith("/") or any(Path(p).is_dir() for p in local)
    for item in map(Path, local):
        if item.is_dir():
            pairs += [(f, f"{remote.rstrip('/')}/{item.name}/{f.relative_to(item).as_posix()}") for f in sorted(item.rglob("*")) if f.is_file()]  # fmt: skip
        else:
            pairs.append((item, f"{remote.rstrip('/')}/{item.name}" if into else remote))
    with api_errors(client.server):
        for path, target in pairs:
            entry = client.files_put(path, target.lstrip("/"))
            echo(f"{entry['path']}  {entry['size']} bytes", err=True)


@files.command("ls")
@server_options
@click.argument("path", default="")
@click.option("--recursive", "-r", is_flag=True, help="List sub-folders too.")
@json_option
def ls(server: str | None, profile: str | None, path: str, recursive: bool, as_json: bool) -> None:
    """List a folder of your drive (default: its top), with the drive's usage."""
    client = connect(server, profile)
    with api_errors(client.server):
        listing = client.files_ls(path, recursive)
    if as_json:
        print_json(listing)
        return
    rows = [
        (i["path"] + ("/" if i["type"] == "directory" else ""), i["size"], when(i["modified"]))
        for i in listing["items"]
    ]
    print_table(rows, ["PATH", "SIZE", "MODIFIED"])
    usage = listing["usage"]
    echo(
        f"{size(usage['bytes'])} of {size(usage['quota_bytes'])}, "
        f"{usage['files']} of {usage['quota_files']} files and folders used",
        err=True,
    )


@files.command("get")
@server_options
@click.argument("remote")
@click.argument("local", required=False, type=click.Path(dir_okay=True))
def get(server: str | None, profile: str | None, remote: str, local: str | None) -> None:
    """Download REMOTE to LOCAL (default: its name here; `-`: stdout)."""
    client = connect(server, profile)
    with api_errors(client.server):
        data = client.files_get(remote)
    if local == "-":
        sys.stdout.buffer.write(data)
        return
    target = Path(local or Path(remote).name)
    if target.is_dir():
        target = target / Path(remote).name
    target.write_bytes(data)
    echo(f"{target}  {len(data)} bytes", err=True)


@files.command("mv")
@server_options
@click.argument("src")
@click.argument("dst")
def mv(server: str | None, profile: str | None, src: str, dst: str) -> None:
    """Move or rename a file or folder of your drive."""
    client = connect(server, profile)
    with api_errors(client.server):
        client.files_mv(src, dst)


@files.command("mkdir")
@server_options
@click.argument("path")
def mkdir(server: str | None, profile: str | None, path: str) -> None:
    """Create a folder (and its parents) in your drive."""
    client = connect(server, profile)
    with api_errors(client.server):
        client.files_mkdir(path)


@files.command("rm")
@server_options
@click.argument("paths", nargs=-1, required=True)
def rm(server: str | None, profile: str | None, paths: tuple[str, ...]) -> None:
    """Delete files, or folders with their contents."""
    client = connect(server, profile)
    with api_errors(client.server):
        for path in paths:
            client.files_rm(path)
