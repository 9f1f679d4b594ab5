"""The disk guard (`dizest_core.diskguard`): once free space where flows write is under the
reserve, the flow that wrote the most is stopped with a reason that says so, and a flow that
writes (almost) nothing to files goes on, however much it prints. The writer here rewrites one
4 MB file, so its write count grows without the disk filling; the reserve is set above the free
space to make it "low"."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from dizest_core.diskguard import DiskGuard, free_mb, group_members, written
from tests.conftest import package

WRITER = """
import time
with open('scratch.bin', 'wb') as f:
    for i in range(int(dizest.input('mb'))):
        f.seek((i % 4) << 20)
        f.write(b'x' * (1 << 20))
        time.sleep(0.002)
v = 1
"""
SLEEPER = """
import time
for i in range(3000):  # 3 MB down the log pipe: not a disk write
    print('y' * 1000)
time.sleep(float(dizest.input('s')))
v = 2
"""


def two(mb: int, sleep_s: float) -> dict:
    return package(
        {
            "w": {"code": WRITER, "inputs": [("mb", "variable", "number")], "outputs": ["v"]},
            "s": {"code": SLEEPER, "inputs": [("s", "variable", "number")], "outputs": ["v"]},
        },
        {
            "writer": {"app": "w", "data": {"mb": mb}},
            "sleeper": {"app": "s", "data": {"s": sleep_s}},
        },
    )


@pytest.mark.parametrize("sandbox", ["off", "on"])
def test_under_the_reserve_the_top_writer_is_stopped_and_a_quiet_flow_goes_on(
    make_workflow, tmp_path, sandbox
):
    os.chmod(tmp_path, 0o777)  # a sandboxed flow runs as another uid
    free = free_mb(str(tmp_path))
    assert free is not None
    wf = make_workflow(two(100_000, 3), disk_reserve_mb=int(free) + 1024, sandbox=sandbox)
    report = wf.run(workdir=tmp_path, concurrency=2, timeout=120)
    writer, sleeper = report["flows"]["writer"], report["flows"]["sleeper"]
    assert writer["status"] == "error", writer
    assert "the disk is almost full" in writer["reason"] and "wrote the most" in writer["reason"]
    assert writer["duration_s"] < 60  # stopped, not ended by its own loop (100 GB of writes)
    assert sleeper["status"] == "ready" and sleeper["outputs"] == {"v": 2}, sleeper


def test_with_room_to_spare_or_no_reserve_nothing_is_stopped(make_workflow, tmp_path):
    for reserve in (0, 1):  # no guard; a 1 MB reserve, far under what this disk has free
        report = make_workflow(two(40, 0), disk_reserve_mb=reserve).run(workdir=tmp_path)
        assert report["status"] == "ready", report["flows"]["writer"]


def test_the_guard_asks_once_per_interval_and_spares_small_writers(tmp_path):
    guard = DiskGuard(reserve_mb=1 << 40, every_s=10)  # every disk is "low"
    here = lambda: [str(tmp_path)]  # noqa: E731
    assert guard.check(here, now=100.0)
    assert not guard.check(here, now=200.0)  # still waiting for the answer
    assert guard.culprit({"1": (1 << 10, 1 << 10), "2": (0, 1 << 19)}) is None  # nobody: 1 MB
    assert not guard.check(here, now=105.0)  # not before the interval
    assert guard.check(here, now=110.0)
    found = guard.culprit({"1": (5 << 20, 5 << 20), "2": (9 << 20, 9 << 20)})
    assert found is not None and found[0] == "2" and "(9 MB)" in found[1]
    assert guard.check(here, now=120.0)
    found = guard.culprit({"1": (2 << 20, 2 << 20), "2": (0, 50 << 20)})  # "2" only printed
    assert found is not None and found[0] == "1"
    assert guard.check(here, now=130.0)
    found = guard.culprit({"1": (0, 3 << 20), "2": (0, 1 << 10)})  # a tmpfs: files show nobody
    assert found is not None and found[0] == "1" and "(3 MB)" in found[1]
    assert not DiskGuard(reserve_mb=0).check(here, now=1.0)  # 0: no guard


def test_write_counts_and_process_groups_are_read_from_proc():
    disk = Path(__file__).parent  # the checkout's disk (tmp_path may be a tmpfs)
    files, calls = written([os.getpid()])
    with tempfile.TemporaryFile(dir=disk) as sink:
        sink.write(b"x" * 123_456)
        sink.flush()
        after = written([os.getpid()])
    assert after[0] - files >= 123_456 and after[1] - calls >= 123_456
    files, calls = written([os.getpid()])
    read, write = os.pipe()
    try:
        os.write(write, b"y" * 60_000)  # what a flow prints
    finally:
        os.close(read)
        os.close(write)
    after = written([os.getpid()])
    assert after[0] - files < 4096 and after[1] - calls >= 60_000
    assert os.getpid() in group_members(os.getpgid(0))
    assert written([2**22 + 7]) == (0, 0)  # no such process: nothing, no error


@pytest.mark.parametrize("sandbox", ["off", "on"])
def test_on_a_tmpfs_the_top_writer_is_found_by_its_write_calls(make_workflow, sandbox):
    """A tmpfs dirties no page of its own (write_bytes stays 0): the guard goes by write calls,
    less what the engine read from each flow, so the writer is stopped and the flow that only
    printed 3 MB is not."""
    if not os.path.isdir("/dev/shm") or os.statvfs("/dev/shm").f_blocks == 0:
        pytest.skip("no tmpfs at /dev/shm")
    workdir = tempfile.mkdtemp(dir="/dev/shm", prefix="dizest-guard-")
    try:
        os.chmod(workdir, 0o777)  # a sandboxed flow runs as another uid
        free = free_mb(workdir)
        assert free is not None
        wf = make_workflow(two(100_000, 3), disk_reserve_mb=int(free) + 1024, sandbox=sandbox)
        report = wf.run(workdir=workdir, concurrency=2, timeout=120)
        writer, sleeper = report["flows"]["writer"], report["flows"]["sleeper"]
        assert writer["status"] == "error" and "wrote the most" in writer["reason"], writer
        assert sleeper["status"] == "ready" and sleeper["outputs"] == {"v": 2}, sleeper
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


SNEAKY = """
import os, time
deadline = time.time() + 60
while time.time() < deadline:  # every write in a grandchild, orphaned at once
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            with open('scratch.bin', 'wb') as f:
                f.write(b'x' * (256 << 10))  # under the guard's 1 MB: only the sum counts
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
    time.sleep(0.02)
v = 1
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="orphans go to the zygote in its PID namespace")
def test_what_orphaned_grandchildren_wrote_stays_their_flows(make_workflow, tmp_path):
    """The zygote reaps the orphans (pid 1 of the flows' namespace): their bytes leave every
    count of the flow's tree, so the guard counts them by the flow's uid before they go."""
    os.chmod(tmp_path, 0o777)
    free = free_mb(str(tmp_path))
    assert free is not None
    pkg = two(0, 3)
    pkg["apps"]["w"]["code"] = SNEAKY
    wf = make_workflow(pkg, disk_reserve_mb=int(free) + 1024, sandbox="on")
    report = wf.run(workdir=tmp_path, concurrency=2, timeout=120)
    writer, sleeper = report["flows"]["writer"], report["flows"]["sleeper"]
    assert writer["status"] == "error", writer
    assert "the disk is almost full" in writer["reason"] and "wrote the most" in writer["reason"]
    assert writer["duration_s"] < 30  # stopped, not ended by its own loop (60 s)
    assert sleeper["status"] == "ready", sleeper
