"""Kills land only on the flow they are meant for, and a SIGKILL is called out of memory only
with evidence.

The engine never signals a pid: it asks the zygote (which reaps its children, so it alone knows
a pid still names the child it forked) to kill a fork token; a token whose child is reaped is
ignored. Tested under a fast churn of unrelated processes that reuse pids."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from dizest_core.execution import Finished, Supervisor
from dizest_core.job import FlowJob
from dizest_core.outcome import OUT_OF_MEMORY_ELSEWHERE
from dizest_core.sandbox import Policy, Slot
from dizest_core.settings import child_environment
from dizest_core.zygote import END_GRACE_S, Zygote, _Child, exiting
from tests.conftest import STUCK_AFTER_DONE, lock_free, package, wait_for


def _finish(sup: Supervisor, flow_id: str) -> Finished:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for signal_ in sup.poll(0.5):
            if isinstance(signal_, Finished) and signal_.flow_id == flow_id:
                return signal_
    raise AssertionError(f"{flow_id} did not finish")


def test_late_kills_never_hit_a_process_that_reused_the_pid(tmp_path: Path):
    stop = threading.Event()
    bystanders: list[subprocess.Popen[bytes]] = []

    def churn() -> None:  # unrelated short-lived processes, taking the pids flows just freed
        while not stop.is_set():
            bystanders.append(subprocess.Popen(["sleep", "0.05"]))
            if len(bystanders) % 20 == 0:
                for proc in bystanders[-40:]:
                    proc.poll()

    sup = Supervisor(child_environment())
    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for i in range(150):
            flow_id = f"f{i}"
            sup.launch(FlowJob("r", flow_id, "a", "v = 1", (), ("v",), str(tmp_path)))
            assert _finish(sup, flow_id).ok
            sup.zygote.kill(str(i + 1))  # the engine's token for that child, reaped by now
            sup.kill(flow_id, "late")  # and the engine's own late kill: a no-op
    finally:
        stop.set()
        thread.join()
        sup.close()
    codes = [proc.wait(timeout=10) for proc in bystanders]
    assert len(codes) > 150
    assert all(code == 0 for code in codes), sorted(set(codes))


def test_sigkill_without_evidence_is_not_called_out_of_memory(make_workflow, tmp_path):
    code = "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"
    pkg = package({"k": {"code": code}}, {"f": {"app": "k"}})
    for sandbox in ("off", "on") if os.geteuid() == 0 else ("off",):
        report = make_workflow(pkg, sandbox=sandbox, memory_limit_mb=256).run(workdir=tmp_path)
        assert report["flows"]["f"]["reason"] == "killed by SIGKILL", sandbox


@pytest.mark.skipif(os.geteuid() != 0, reason="the memory cgroup needs a root engine")
def test_an_oom_kill_in_the_flows_cgroup_is_reported_as_the_memory_limit(make_workflow, tmp_path):
    code = "b = bytearray(400 << 20)\nb[::4096] = b'x' * len(b[::4096])"
    pkg = package({"hog": {"code": code}}, {"f": {"app": "hog"}})
    wf = make_workflow(pkg, sandbox="on", memory_limit_mb=128)
    assert wf.runner.supervisor.layers["cgroup"] == "active"
    report = wf.run(workdir=tmp_path)
    assert report["flows"]["f"]["reason"] == "memory limit exceeded (128 MB)"


PARENT_ONLY_OOM = """
import json, os, sys
open(os.path.join(sys.argv[1], "cgroup.procs"), "w").write(str(os.getpid()))
from dizest_core.settings import Settings
from dizest_core.workflow import Workflow
with Workflow(json.loads(sys.argv[2]), settings=Settings(sandbox="on")) as wf:
    print(json.dumps(wf.run(workdir=sys.argv[3])["flows"]["f"]["reason"]))
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not os.access("/sys/fs/cgroup/memory", os.W_OK),
    reason="a memory cgroup v1 hierarchy a root engine can write",
)
def test_a_flow_killed_for_memory_short_outside_its_limit_is_not_told_to_raise_it(tmp_path):
    """A probe's flow under its 256 MB limit was killed when another user's flow had the whole
    machine short of memory, and was told "memory limit exceeded (256 MB)": v1 counts such
    kills in the victim's group too. Here the engine's own group (the machine, say) holds
    200 MB and the flow may have 2 GB: it is killed, and says the machine was short."""
    parent = Path("/sys/fs/cgroup/memory") / f"dz-short-{os.getpid()}-{time.monotonic_ns()}"
    parent.mkdir()
    try:
        (parent / "memory.limit_in_bytes").write_text(str(200 << 20))
        code = "b = bytearray(600 << 20)\nb[::4096] = b'x' * len(b[::4096])\nv = 1"
        pkg = package({"hog": {"code": code, "outputs": ["v"]}},
                      {"f": {"app": "hog", "dizest": {"memory_limit_mb": 2048}}})  # fmt: skip
        run = subprocess.run(
            [sys.executable, "-c", PARENT_ONLY_OOM, str(parent), json.dumps(pkg), str(tmp_path)],
            capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-2000:]
        assert json.loads(run.stdout) == OUT_OF_MEMORY_ELSEWHERE
    finally:
        wait_for(lambda: _removed(parent), timeout=30)


def _removed(group: Path) -> bool:
    """`group` and what the engine left in it gone (its zygote's slot groups)."""
    for inner in sorted(group.glob("*/"), reverse=True):
        with contextlib.suppress(OSError):
            inner.rmdir()
    with contextlib.suppress(OSError):
        group.rmdir()
    return not group.exists()


SYS_EXIT = {"x86_64": 60, "aarch64": 93}


@pytest.mark.skipif(platform.machine() not in SYS_EXIT, reason="SYS_exit number unknown here")
def test_only_a_process_whose_every_thread_is_exiting_counts_as_exiting():
    """The zygote skips the engine's kill of a child already in its exit (`exiting`); a child
    whose main thread alone has exited (SYS_exit) while another thread runs is not one."""
    half = (
        "import ctypes, threading, time\n"
        "threading.Thread(target=time.sleep, args=(300,)).start()\n"
        f"ctypes.CDLL(None).syscall({SYS_EXIT[platform.machine()]}, 0)\n"  # this thread only
    )
    running = subprocess.Popen(["sleep", "300"])
    halfway = subprocess.Popen([sys.executable, "-c", half])
    done = subprocess.Popen(["true"])
    try:
        wait_for(lambda: _state(done.pid) == "Z", timeout=10)  # not reaped yet: a zombie
        me = os.getpid()
        assert exiting(done.pid, me)
        assert not exiting(done.pid, me + 1)  # not the child it is asked about: unknown
        assert not exiting(running.pid, me)
        wait_for(lambda: _state(halfway.pid) == "Z", timeout=10)  # the main thread's state
        assert len(os.listdir(f"/proc/{halfway.pid}/task")) == 2
        assert not exiting(halfway.pid, me)
        assert not exiting(2**22 + 7, me)  # no such process: not known to be exiting
    finally:
        for proc in (running, halfway, done):
            proc.kill()
            proc.wait()


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rpartition(b") ")[2].split()[0].decode()


def test_a_child_let_exit_is_killed_after_all_when_it_is_not_reaped_in_time():
    """`end` spares a child that looks exiting for END_GRACE_S only: one still there then (stuck
    in its exit, or a thread `exiting` could not see) is killed with its tree."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    zygote = Zygote(ours, Policy(enabled=False), os.getpid())
    stuck = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        zygote.children[stuck.pid] = _Child("t1", 0, Slot(None, None, None), 0)
        zygote.due[stuck.pid] = time.monotonic() + 60
        wait = zygote.overdue()
        assert wait is not None and END_GRACE_S < wait <= 60  # not yet: still running
        assert stuck.poll() is None
        zygote.due[stuck.pid] = time.monotonic() - 0.001
        assert zygote.overdue() is None
        assert stuck.wait(timeout=10) == -9  # killed
        assert zygote.due == {}
    finally:
        stuck.kill()
        stuck.wait()
        ours.close()
        theirs.close()


def test_a_flow_done_before_its_start_notice_is_read_is_still_killed(tmp_path: Path):
    """The exact interleaving: the zygote's notices (its pid among them) are held back until the
    flow's DONE is handled, as when both arrive in one poll and the channel is read first. The
    kill of a finished flow goes by fork token, so it still lands; the flow (its exit replaced
    by a long sleep) holds a lock that is free once it is gone."""
    sup = Supervisor(child_environment())
    read = sup.zygote.read
    holding = [True]
    sup.zygote.read = lambda: [] if holding[0] else read()  # type: ignore[method-assign]
    try:
        sup.launch(FlowJob("r", "stuck", "a", STUCK_AFTER_DONE, (), ("v",), str(tmp_path)))
        assert _finish(sup, "stuck").ok
        assert sup.forking, "its start notice was read: not the interleaving under test"
        holding[0] = False
        sup.settle()
        wait_for(lambda: lock_free(tmp_path / "held.lock"), timeout=10)
    finally:
        sup.close()
