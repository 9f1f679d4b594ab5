"""A service started with a bad setting stops at once with one line naming what is wrong, as the
operator typed it (the variable or the flag), and nothing else: no traceback, no password."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.cli.helpers import ROOT, command, user_env
from tests.redis_server import free_port


def start(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`dizest <args>` with `env` over a Redis URL where nothing listens (a setting a check
    missed shows as a wait and a connection error instead of its line)."""
    given = {"DIZEST_REDIS_URL": f"redis://:S3cretPW@127.0.0.1:{free_port()}/7", **env}
    return subprocess.run(
        command(*args),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=user_env(home, **given),
        timeout=60,
    )


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
