"""How `dizest serve` stops its worker, end to end on a real serve: a warm shutdown that lets the
running flow end (it is not run again by the next serve), cut short by a second SIGTERM (the
flow is then started again by the next serve's worker)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from tests.api.test_serve_heal import wait_run
from tests.conftest import wait_for
from tests.redis_server import free_port
from tests.serve_process import admin_token, call, launch, stop_session, wait_ok

# The flow notes each start in its run's working directory (all a sandboxed flow sees of the
# machine, kept across attempts), waits there for the test's file `open`, then outputs.
GATED = {
    "apps": {
        "gate": {
            "id": "gate",
            "title": "gate",
            "inputs": [],
            "outputs": [{"name": "v"}],
            "code": (
                "import os, time\n"
                "with open('starts', 'a') as f:\n"
                "    f.write('s')\n"
                "print('waiting', flush=True)\n"
                "deadline = time.time() + 120\n"
                "while not os.path.exists('open') and time.time() < deadline:\n"
                "    time.sleep(0.01)\n"
                "v = os.path.exists('open')\n"
            ),
        }
    },
    "flow": {"g": {"id": "g", "app_id": "gate", "active": True, "inputs": {}, "outputs": {}}},
}


def start(tmp: Path, port: int, log: str, *args: str) -> subprocess.Popen[bytes]:
    proc = launch(tmp, port, *args, log_name=log)
    wait_ok(f"http://127.0.0.1:{port}", "/readyz", proc, time.monotonic() + 60)
    return proc


def running_flow(base: str, token: dict[str, str], data: Path) -> str:
    """Submit GATED; its run id once its flow runs (it noted its start: a zygote's waiting
    spares are processes before any flow runs, and a run is "running" from its submit)."""
    status, run, _ = call(base, "POST", "/api/v1/runs", {"package": GATED}, token)
    assert status == 201, run
    wait_for((data / "runs" / run["run_id"] / "starts").exists, timeout=30)
    return str(run["run_id"])


def said(log: Path, text: str) -> bool:
    return text in log.read_text(errors="replace")


@contextlib.contextmanager
def serves() -> Iterator[list[subprocess.Popen[bytes]]]:
    """The serves a test starts (it appends them), each stopped afterwards: none may leave a
    process behind."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            assert not stop_session(proc), "processes left behind"


def stopping(
    tmp: Path, port: int, started: list[subprocess.Popen[bytes]], timeout: int
) -> tuple[str, dict[str, str]]:
    """A serve with `--stop-timeout timeout` whose worker runs GATED's flow, sent SIGTERM: the
    run's id (and the token that submitted it) once serve says it waits for the flow."""
    first = start(tmp, port, "first.log", "--stop-timeout", str(timeout))
    started.append(first)
    base = f"http://127.0.0.1:{port}"
    token = admin_token(base)
    run_id = running_flow(base, token, tmp / "data")
    os.kill(first.pid, signal.SIGTERM)
    waits = f"stopping worker: its running flows have {timeout} s"
    wait_for(lambda: said(tmp / "first.log", waits), timeout=30)
    return run_id, token


def test_a_stop_lets_the_running_flow_end_and_it_is_not_run_again(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "first.log"
    base = f"http://127.0.0.1:{port}"
    with serves() as started:
        run_id, token = stopping(tmp_path, port, started, 60)
        first = started[0]
        assert first.poll() is None  # waiting for the flow (which waits for its gate)
        status, report, _ = call(base, "GET", f"/api/v1/runs/{run_id}", headers=token)
        assert (status, report["status"]) == (200, "running")  # the API shows it meanwhile
        (tmp_path / "data" / "runs" / run_id / "open").touch()
        assert first.wait(timeout=30) == 128 + signal.SIGTERM, log.read_text()
        text = log.read_text(errors="replace")
        assert "Warm shutdown" in text and "WorkerLostError" not in text, text[-3000:]

        started.append(start(tmp_path, port, "second.log"))
        token = admin_token(base)
        report = wait_run(base, token, run_id, timeout=30)
        assert report["status"] == "ready", report
        assert report["flows"]["g"]["outputs"]["v"] is True, report  # not timed out waiting
        starts = (tmp_path / "data" / "runs" / run_id / "starts").read_text()
        assert starts == "s"  # one attempt: ended by the first worker, not requeued
        assert not said(tmp_path / "second.log", "worker lost")


def test_a_second_sigterm_stops_at_once_and_the_next_serve_runs_the_flow_again(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serves() as started:
        run_id, _ = stopping(tmp_path, port, started, 120)
        first = started[0]
        assert first.poll() is None
        stopped = time.monotonic()
        os.kill(first.pid, signal.SIGTERM)  # Ctrl-C again
        first.wait(timeout=30)
        assert time.monotonic() - stopped < 30  # not the 120 s of --stop-timeout

        second = start(tmp_path, port, "second.log")
        started.append(second)
        token = admin_token(base)
        path = f"/api/v1/runs/{run_id}"
        wait_for(lambda: said(tmp_path / "second.log", "worker lost: requeued"), timeout=30)
        starts = tmp_path / "data" / "runs" / run_id / "starts"
        wait_for(lambda: starts.read_text() == "ss", timeout=30)  # its flow runs again
        (tmp_path / "data" / "runs" / run_id / "open").touch()
        report = wait_run(base, token, run_id, timeout=30)
        assert report["status"] == "ready", report
        assert call(base, "GET", path, headers=token)[1]["flows"]["g"]["outputs"]["v"] is True
        assert starts.read_text() == "ss"  # and only once more
