"""Running the `dizest` command as a user would: a real process, HOME and XDG_CONFIG_HOME of the
test's own, no DIZEST_* variable but those a test gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.conftest import package

ROOT = Path(__file__).resolve().parents[2]

# A flow that prints a line, then waits (bounded) for a file the test creates once it saw that
# line: output that only arrives at the end of the run can never satisfy the test.
WAIT_CODE = """\
import os, time
path = dizest.input('path')
print('waiting')
deadline = time.monotonic() + 60
while not os.path.exists(path):
    if time.monotonic() > deadline:
        raise TimeoutError('the test never created ' + path)
    time.sleep(0.01)
print('got it')
r = 1
"""
WAITING = package(
    {"w": {"code": WAIT_CODE, "inputs": [("path", "variable", None)], "outputs": ["r"]}},
    {"w": {"app": "w"}},
)
SYNTAX_ERROR = package(
    {
        "bad": {"code": "x = 1\ndef f(:\n    pass\n", "outputs": ["x"]},
        "ok": {"code": "y = 2", "outputs": ["y"]},
    },
    {"a": {"app": "bad"}, "b": {"app": "bad"}, "c": {"app": "ok"}},
)


def user_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZEST_")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "xdg"), **extra)
    return env


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dizest_cli", *args]


def dizest(
    home: Path, *args: str, stdin: str | None = None, cwd: Path = ROOT, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command(*args),
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=user_env(home, **env),
        timeout=120,
    )


def started(home: Path, *args: str) -> subprocess.Popen[str]:
    """`dizest <args>` running as `home`'s user, its output read as it comes (text pipes)."""
    return subprocess.Popen(
        command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=user_env(home),
    )


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def write_dwp(path: Path, pkg: dict[str, Any]) -> Path:
    path.write_text(json.dumps(pkg))
    return path
