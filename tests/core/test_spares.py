"""Spare children: forked ahead of their job (off the critical path), each still used once.

Real zygote, real forks, with the flow sandbox on where the engine is root (as in workers).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dizest_core.errors import ConfigError
from dizest_core.settings import Settings
from dizest_core.workflow import Workflow
from tests.conftest import package

MODES = ("off", "on") if os.geteuid() == 0 else ("off",)
RECORD = (
    "import os\n"
    "with open(f'pid.{dizest.flow.id()}', 'a') as f:\n"
    "    f.write(f'{os.getpid()} {os.getuid()}\\n')\n"
    "v = 1\n"
)


def chain(n: int, code: str = RECORD) -> dict:
    flows: dict[str, dict] = {"f0": {"app": "a"}}
    for i in range(1, n):
        flows[f"f{i}"] = {"app": "b", "in": {"x": [(f"f{i - 1}", "v")]}}
    apps = {
        "a": {"code": code, "outputs": ["v"]},
        "b": {"code": code, "inputs": ["x"], "outputs": ["v"]},
    }
    return package(apps, flows)


def recorded(tmp_path: Path, flow_id: str) -> list[tuple[int, int]]:
    lines = (tmp_path / f"pid.{flow_id}").read_text().split()
    return [(int(lines[i]), int(lines[i + 1])) for i in range(0, len(lines), 2)]


def waiting_spares(wf: Workflow, deadline_s: float = 10.0) -> set[int]:
    """The pids of the spares waiting now, once the zygote has said each one started."""
    sup = wf.runner.supervisor
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        pids = {s.pid for s in sup.spares.by_token.values()}
        if pids and None not in pids:
            return pids  # type: ignore[return-value]
        sup.poll(0.05)
    raise AssertionError("no spare child started within the deadline")


@pytest.mark.parametrize("sandbox", MODES)
def test_every_flow_runs_in_a_spare_of_its_own_used_once(make_workflow, tmp_path, sandbox):
    wf = make_workflow(chain(6), sandbox=sandbox)
    for _ in range(3):
        assert wf.run(workdir=tmp_path)["status"] == "ready"
    spares = waiting_spares(wf)
    assert wf.run(workdir=tmp_path)["status"] == "ready"
    pids = [pid for i in range(6) for pid, _ in recorded(tmp_path, f"f{i}")]
    assert len(pids) == 24 and len(set(pids)) == 24  # a fresh process per flow, never reused
    first_of_last_run = recorded(tmp_path, "f0")[-1][0]
    assert first_of_last_run in spares  # it was forked before its run was asked for
    if sandbox == "on":  # a spare is confined as any child: the slot's uid, never root
        assert all(uid != 0 for i in range(6) for _, uid in recorded(tmp_path, f"f{i}"))


@pytest.mark.parametrize("sandbox", MODES)
def test_a_run_leaves_its_reserve_of_spares_for_the_next_run(make_workflow, tmp_path, sandbox):
    """One slot (one spare per slot during a run), a reserve of 4, kept once the engine runs
    a second time (a first run may be the only one): the 4 flows of the next chain all run
    in processes forked before that run was asked for, each once."""
    wf = make_workflow(chain(4), sandbox=sandbox, concurrency=1, spare_reserve=4)
    assert wf.run(workdir=tmp_path)["status"] == "ready"
    assert len(waiting_spares(wf)) == 1  # a spare per slot, no reserve yet
    assert wf.run(workdir=tmp_path)["status"] == "ready"
    spares = waiting_spares(wf)
    assert len(spares) == 4
    assert wf.run(workdir=tmp_path)["status"] == "ready"
    last_run = [recorded(tmp_path, f"f{i}")[-1][0] for i in range(4)]
    assert set(last_run) == spares  # one reserve spare per flow, none forked during the run
    after = waiting_spares(wf)
    assert len(after) == 4 and after.isdisjoint(spares)  # a fresh reserve for the run after


def test_the_reserve_follows_the_memory_limit_and_drops_the_others(make_workflow, tmp_path):
    wf = make_workflow(chain(2), sandbox="off", concurrency=1, spare_reserve=3)
    for _ in range(2):
        assert wf.run(workdir=tmp_path)["status"] == "ready"
    spares = wf.runner.supervisor.spares
    assert (spares.count(0), len(spares)) == (3, 3)
    assert wf.run(workdir=tmp_path, memory_limit_mb=256)["status"] == "ready"
    assert (spares.count(256), len(spares)) == (3, 3)  # none left waiting for no limit


def test_a_negative_reserve_is_refused_by_name():
    with pytest.raises(ConfigError, match="DIZEST_SPARE_RESERVE must be from 0 to"):
        Settings.from_env({"DIZEST_SPARE_RESERVE": "-1"})


SLEEPY = RECORD + "import time\ntime.sleep(30)\n"


def test_a_run_that_times_out_forks_no_reserve(make_workflow, tmp_path):
    wf = make_workflow(chain(1, SLEEPY), sandbox="off", concurrency=1, spare_reserve=4)
    for _ in range(2):  # a second run, but neither ended normally
        report = wf.run(workdir=tmp_path, timeout=0.5)
        assert report["status"] == "error" and "timeout" in report["flows"]["f0"]["reason"]
    assert len(wf.runner.supervisor.spares) == 1  # the spare per slot, no reserve


def test_an_engine_with_no_reserve_keeps_only_a_spare_per_slot(make_workflow, tmp_path):
    wf = make_workflow(chain(3), sandbox="off", concurrency=1, spare_reserve=0)
    for _ in range(2):
        assert wf.run(workdir=tmp_path)["status"] == "ready"
        assert len(wf.runner.supervisor.spares) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="the memory cgroup needs a root engine")
def test_a_job_with_another_memory_limit_never_gets_a_spare_forked_without_it(
    make_workflow, tmp_path
):
    code = RECORD + "b = bytearray(400 << 20)\nb[::4096] = b'x' * len(b[::4096])\n"
    wf = make_workflow(chain(1, code), sandbox="on")
    assert wf.run(workdir=tmp_path)["status"] == "ready"  # no limit: 400 MB is fine
    spares = waiting_spares(wf)
    report = wf.run(workdir=tmp_path, memory_limit_mb=128)
    assert report["flows"]["f0"]["reason"] == "memory limit exceeded (128 MB)"
    assert recorded(tmp_path, "f0")[-1][0] not in spares
    report = wf.run(workdir=tmp_path)  # and back: the spares for no limit serve again
    assert report["status"] == "ready"


def test_spares_left_unused_exit_when_the_engine_closes(make_workflow, tmp_path):
    wf = make_workflow(chain(2), sandbox="off", spare_reserve=3)
    for _ in range(2):
        assert wf.run(workdir=tmp_path)["status"] == "ready"
    spares = waiting_spares(wf)
    assert len(spares) == 3  # the reserve
    zygote = wf.runner.supervisor.zygote.proc
    wf.close()
    assert zygote.returncode is not None  # close() waited for it: it reaped every spare
    for pid in spares:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


LISTEN = (
    "import socket\n"
    "s = socket.socket()\n"
    "try:\n"
    "    s.bind(('127.0.0.1', 0))\n"
    "    s.listen()\n"
    "    v = 'listening'\n"
    "except OSError as exc:\n"
    "    v = type(exc).__name__\n"
)


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs a root engine")
def test_a_spare_ruleset_made_ahead_still_confines_its_flow(make_workflow, tmp_path):
    """The Landlock ruleset a spare builds before its job (for the default network, egress)
    is the one enforced: a flow in a spare cannot listen, run after run."""
    from dizest_core import linux

    if linux.landlock_abi() < 4:
        pytest.skip("Landlock network rules need ABI 4")
    pkg = package({"l": {"code": LISTEN, "outputs": ["v"]}}, {"f": {"app": "l"}})
    wf = make_workflow(pkg, sandbox="on")
    wf.run(workdir=tmp_path)
    spares = waiting_spares(wf)
    for _ in range(2):
        report = wf.run(workdir=tmp_path)
        assert report["status"] == "ready"
        assert report["flows"]["f"]["outputs"]["v"] == "PermissionError", report["flows"]["f"]
    assert spares  # the runs above took their children from these


def test_the_warm_up_of_a_spare_leaves_nothing_a_flow_can_see(make_workflow, tmp_path):
    code = (
        "import linecache, sys\n"
        "v = sorted(k for k in linecache.cache if 'warm-up' in str(k))\n"
        "v += sorted(m for m in sys.modules if 'warm' in m and m != 'dizest_core.warmup')\n"
        "print('only this line')\n"
    )
    pkg = package({"a": {"code": code, "outputs": ["v"]}}, {"f": {"app": "a"}})
    wf = make_workflow(pkg, sandbox="off")
    wf.run(workdir=tmp_path)
    waiting_spares(wf)
    report = wf.run(workdir=tmp_path)  # in a spare that warmed up
    flow = report["flows"]["f"]
    assert report["status"] == "ready" and flow["outputs"]["v"] == [], flow
    assert flow["log"] == ["only this line"]
