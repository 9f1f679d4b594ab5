"""A service started with a bad setting stops at once with one line naming what is wrong, as the
operator typed it (the variable or the flag), and nothing else: no traceback, no password."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dizest_core.errors import ConfigError
from tests.cli.helpers import ROOT, command, dizest, user_env
from tests.redis_server import free_port


def start(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`dizest <args>` with `env` over a Redis URL where nothing listens (a setting a check
    missed shows as a wait and a connection error instead of its line)."""
    given = {"DIZEST_REDIS_URL": f"redis://:S3cretPW@127.0.0.1:{free_port()}/7", **env}
    return dizest(home, *args, **given)


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "S3cretPW" not in result.stderr + result.stdout
    return lines[0]


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {"DIZEST_WORKER_NAME": " "}, "DIZEST_WORKER_NAME must be 1-255 visible ASCII"),
        (("--name", " "), {}, "DIZEST_WORKER_NAME must be 1-255 visible ASCII"),
        ((), {"DIZEST_QUEUE": " "}, "DIZEST_QUEUE must be a queue name (1-100 of"),
        (("-Q", " , "), {}, "--queues must list queues, each a queue name"),
        (("-Q", "gpu,un acked"), {}, "--queues must list queues, each a queue name"),
    ],
)
def test_a_worker_with_a_bad_name_or_queue_stops_at_once(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    result = start(tmp_path, "worker", *args, DIZEST_SANDBOX="off", **env)
    assert message in one_line(result)


def test_a_mistyped_redis_url_is_refused_without_its_password(tmp_path: Path) -> None:
    bad = "redis//:S3cretPW@127.0.0.1:6379/7"  # no colon after the scheme
    line = one_line(start(tmp_path, "worker", DIZEST_REDIS_URL=bad))
    assert "DIZEST_REDIS_URL must be a redis:// URL, not '***@127.0.0.1:6379/7'" in line


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:S3cretPW@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:S3cret@PW@h/0", "redis://user:***@h/0"),
        ("redis//:S3cretPW@h:6379/7", "***@h:6379/7"),
        ("redis://:S3cret/PW@h:6379/0", "***@h:6379/0"),  # the path would start in it
        ("redis://:S3cret?PW@h/1", "***@h/1"),
        ("redis://h:6379/0?password=S3cretPW&db=1", "redis://h:6379/0?password=***&db=1"),
    ],
)
def test_a_redis_url_is_never_shown_with_its_password(url: str, shown: str) -> None:
    from dizest_worker.connection import redact_url

    assert redact_url(url) == shown


def said_within(deadline_s: float, home: Path, *args: str, **env: str) -> tuple[str, float]:
    """The first line `dizest <args>` writes to stderr about Redis, and when (s after start);
    the process (in a session of its own) is stopped afterwards."""
    proc = subprocess.Popen(
        command(*args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=user_env(home, **env),
        start_new_session=True,
    )
    assert proc.stderr is not None
    started, seen = time.monotonic(), []
    try:
        with selectors.DefaultSelector() as waiting:
            waiting.register(proc.stderr, selectors.EVENT_READ)
            while time.monotonic() - started < deadline_s:
                if waiting.select(timeout=0.5):
                    seen.append(proc.stderr.readline())
                    if "Redis" in seen[-1] or not seen[-1]:
                        return seen[-1], time.monotonic() - started
        raise AssertionError(f"nothing about Redis within {deadline_s} s: {seen}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()


@pytest.mark.parametrize(
    ("args", "who"),
    [(("worker",), "dizest worker: "), (("serve", "--no-worker"), "dizest: ")],
)
def test_an_unreachable_redis_is_said_at_once_without_its_password(
    tmp_path: Path, args: tuple[str, ...], who: str
) -> None:
    """Once a minute of silence, then a ConnectionError's traceback."""
    port = free_port()
    extra = ("--data-dir", str(tmp_path / "data")) if "serve" in args else ()
    line, after_s = said_within(
        20,
        tmp_path,
        *args,
        *extra,
        DIZEST_REDIS_URL=f"redis://:S3cretPW@127.0.0.1:{port}/7",
        DIZEST_SANDBOX="off",
    )
    assert line.startswith(f"{who}cannot reach Redis at redis://:***@127.0.0.1:{port}/7: "), line
    assert line.rstrip().endswith("; trying again for up to 30 s")
    assert after_s < 20 and "S3cretPW" not in line


def test_reach_gives_up_after_its_window_saying_why_once() -> None:
    from dizest_worker.connection import reach

    said: list[str] = []
    port = free_port()
    started = time.monotonic()
    with pytest.raises(
        ConfigError, match=rf"^cannot reach Redis at redis://:\*\*\*@127.0.0.1:{port}/7: "
    ):
        reach(f"redis://:S3cretPW@127.0.0.1:{port}/7", 1.5, said.append)
    assert time.monotonic() - started < 10
    assert len(said) == 1 and "S3cretPW" not in said[0]
