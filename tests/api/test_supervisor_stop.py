"""How the supervisor of `dizest serve` stops a child, on real processes: within its stop
timeout, also where the kernel gives no pidfd; and what `--stop-timeout` accepts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dizest_api.supervisor import Child
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
STUBBORN = (  # ignores SIGTERM (only the stop's SIGKILL ends it), then makes the file argv[1]
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "open(sys.argv[1], 'w').close()\n"
    "time.sleep(600)\n"
)


@pytest.mark.parametrize("pidfd", [True, False])
def test_a_child_that_ignores_sigterm_is_killed_after_its_stop_timeout(
    pidfd: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if not pidfd:  # as on Linux < 5.3 or under a seccomp profile that refuses pidfd_open

        def refused(pid: int, flags: int = 0) -> int:
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(os, "pidfd_open", refused)
    up = tmp_path / "up"
    child = Child("stubborn", [sys.executable, "-c", STUBBORN, str(up)], 0.5, warm=True)
    child.start()
    proc = child.proc
    assert proc is not None
    try:
        wait_for(up.exists, timeout=30)
        begun = time.monotonic()
        child.stop()
        took = time.monotonic() - begun
        assert proc.returncode == -9, proc.returncode  # SIGKILLed after the timeout
        assert 0.4 < took < 10, took
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("value", ["inf", "nan", "1e12", "-1"])
def test_stop_timeout_must_be_a_bounded_number_of_seconds(value: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "dizest_cli", "serve", "--stop-timeout", value],
        cwd=tmp_path,  # where its default data dir would be made
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("DIZEST_")},
            "PYTHONPATH": str(ROOT),
        },
    )
    assert done.returncode == 2, done.stderr
    assert "--stop-timeout" in done.stderr
    assert not (tmp_path / ".dizest").exists()
