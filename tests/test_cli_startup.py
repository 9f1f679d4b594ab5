"""`dizest` start-up (issue 12): `--help` imports no command, `run` only the core engine.

Guarded by what a fresh interpreter has in sys.modules, not by timing (the machine is shared);
bench/startup_cost.py measures the wall. The summaries `--help` lists without importing the
commands are held to each command's own help text here, so they cannot drift.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

import dizest_cli
from tests.conftest import DATA

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ("celery", "kombu", "flask", "werkzeug", "redis", "dizest_api", "dizest_worker")
PROBE = """
import json, sys
import dizest_cli
code = 0
try:
    dizest_cli.main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code or 0
top = sorted({m.split(".")[0] for m in sys.modules})
cli = sorted(m for m in sys.modules if m.startswith("dizest_cli."))
print(json.dumps({"code": code, "top": top, "cli": cli}), file=sys.stderr)
"""


def probe(*args: str) -> tuple[dict, str]:
    """Run the CLI in a fresh interpreter: (exit code and loaded modules, stdout)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    return json.loads(done.stderr.strip().splitlines()[-1]), done.stdout


def test_help_lists_every_command_without_importing_any() -> None:
    loaded, out = probe("--help")
    assert loaded["code"] == 0
    for name in dizest_cli.LAZY:
        assert f"\n  {name} " in out
    assert loaded["cli"] == []
    assert not set(loaded["top"]) & {*SERVICE, "dizest_core", "pandas", "numpy"}


def test_run_imports_the_core_engine_only() -> None:
    loaded, out = probe("run", str(DATA / "chain10_noop.dwp"), "--json")
    assert loaded["code"] == 0
    assert json.loads(out)["status"] == "ready"
    assert "dizest_core" in loaded["top"]
    assert not set(loaded["top"]) & {*SERVICE, "pandas"}
    allowed = {
        "dizest_cli.local",
        "dizest_cli.progress",
        "dizest_cli.runopts",
        "dizest_cli.terminal",
    }
    assert set(loaded["cli"]) <= allowed


def test_a_remote_command_imports_the_client_not_the_service() -> None:
    """`dizest workers` (any command that talks to a server) loads the API's client, never
    Flask, Celery or the routes: dizest_api's package import loads nothing of its own."""
    loaded, _ = probe("workers", "--server", "http://127.0.0.1:9")  # nothing listens there
    assert loaded["code"] != 0  # it tried: no server
    assert "dizest_api" in loaded["top"]
    assert not set(loaded["top"]) & {"celery", "kombu", "flask", "werkzeug", "dizest_worker"}


@pytest.mark.parametrize("name", sorted(dizest_cli.LAZY))
def test_listed_summary_is_the_commands_own(name: str) -> None:
    command = dizest_cli.load_command(name)
    assert isinstance(command, click.Command)
    assert command.name == name and not command.hidden
    for limit in (30, 45, 60, 10_000):
        assert dizest_cli.summary_line(name, limit) == command.get_short_help_str(limit)


OVERLAP = """
import json, sys
import dizest_cli
from dizest_core import zygote_handle
seen = {}
prestart, start = zygote_handle.prestart, zygote_handle.start
def prestart_probe(*args):
    seen["engine_loaded"] = "dizest_core.runner" in sys.modules
    prestart(*args)
    seen["prestarted"] = [z.proc.pid for z in zygote_handle._early.values()]
def start_probe(*args):
    zygote = start(*args)
    seen["used"] = zygote.proc.pid
    return zygote
zygote_handle.prestart, zygote_handle.start = prestart_probe, start_probe
try:
    dizest_cli.main(sys.argv[1:])
except SystemExit as exc:
    seen["code"] = exc.code or 0
print(json.dumps(seen), file=sys.stderr)
"""


def test_run_starts_its_zygote_before_importing_the_engine_and_uses_it() -> None:
    """The zygote's start (an interpreter and the flow runtime) overlaps the engine's imports:
    `run` starts it first, and the run's Supervisor takes that one rather than a second."""
    done = subprocess.run(
        [sys.executable, "-c", OVERLAP, "run", str(DATA / "chain10_noop.dwp"), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    seen = json.loads(done.stderr.strip().splitlines()[-1])
    assert seen["code"] == 0 and json.loads(done.stdout)["status"] == "ready"
    assert seen["engine_loaded"] is False
    assert seen["prestarted"] == [seen["used"]]
