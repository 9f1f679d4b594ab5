"""Admission by measured CPU (the default concurrency): flows that wait do not hold a core,
flows that compute do, and the hard cap on processes holds either way. Real zygote and forks."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from dizest_core import cpuuse
from tests.conftest import package

CPUS = cpuuse.cpus()
WAIT_FOR_GO = (
    "import os, time\n"
    "open(f'started.{dizest.flow.id()}', 'w').write(str(time.time()))\n"
    "while not os.path.exists('go'):\n"
    "    time.sleep(0.005)\n"
    "v = 1\n"
)
SPIN = (
    "import time\n"
    "t0 = time.time()\n"
    "end = time.process_time() + 0.25\n"
    "while time.process_time() < end:\n"
    "    pass\n"
    "open(f'span.{dizest.flow.id()}', 'w').write(f'{t0} {time.time()}')\n"
    "v = 1\n"
)


def fan(n: int, code: str) -> dict:
    return package(
        {"a": {"code": code, "outputs": ["v"]}}, {f"f{i}": {"app": "a"} for i in range(n)}
    )


def most_at_once(tmp_path: Path, n: int) -> int:
    spans = []
    for i in range(n):
        start, end = map(float, (tmp_path / f"span.f{i}").read_text().split())
        spans += [(start, 1), (end, -1)]
    now = peak = 0
    for _, step in sorted(spans):
        now += step
        peak = max(peak, now)
    return peak


def run_until_all_started(wf, tmp_path: Path, n: int) -> dict:
    """Run the fan in a thread; once all `n` flows have started (deadline 30 s), let them end."""
    box: dict = {}
    runner = threading.Thread(target=lambda: box.update(wf.run(workdir=tmp_path)))
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while len(list(tmp_path.glob("started.*"))) < n and time.monotonic() < deadline:
            runner.join(0.01)
        started = len(list(tmp_path.glob("started.*")))
    finally:
        (tmp_path / "go").touch()
        runner.join(30)
    assert started == n, f"only {started} of {n} waiting flows were admitted at once"
    return box


def test_waiting_flows_do_not_hold_a_core_by_default(make_workflow, tmp_path):
    n = CPUS + 3
    report = run_until_all_started(make_workflow(fan(n, WAIT_FOR_GO)), tmp_path, n)
    assert report["status"] == "ready"


def test_computing_flows_get_at_most_one_core_each(make_workflow, tmp_path):
    n = CPUS + 2
    report = make_workflow(fan(n, SPIN)).run(workdir=tmp_path)
    assert report["status"] == "ready"
    assert most_at_once(tmp_path, n) <= CPUS


def test_the_hard_cap_holds_for_waiting_flows(make_workflow, tmp_path):
    """Each span from the flow's own clock: a file's mtime is the kernel's coarse time, up to a
    tick early, and made a flow started just after another ended seem to overlap it."""
    code = WAIT_FOR_GO.replace(
        "v = 1\n",
        "started = open(f'started.{dizest.flow.id()}').read()\n"
        "open(f'span.{dizest.flow.id()}', 'w').write(f'{started} {time.time()}')\n"
        "v = 1\n",
    )
    cap = CPUS + 1
    wf = make_workflow(fan(cap + 2, code), max_processes=cap)
    report = run_until_all_started(wf, tmp_path, cap)  # the cap is reached ...
    assert report["status"] == "ready"
    assert most_at_once(tmp_path, cap + 2) <= cap  # ... and never passed


def test_a_fixed_concurrency_is_a_plain_cap(make_workflow, tmp_path):
    report = make_workflow(fan(4, SPIN), concurrency=1).run(workdir=tmp_path)
    assert report["status"] == "ready"
    assert most_at_once(tmp_path, 4) == 1
