"""Shared fixtures: the sample packages, workflows that clean up after themselves, and a check
that fails any test leaving a child process behind (like Flask's leak detector)."""

from __future__ import annotations

import fcntl
import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dizest_core.settings import Settings
from dizest_core.workflow import Workflow
from tests import weights

DATA = Path(__file__).parent / "data"

# Helper modules test files share: their asserts report the values they compared, as a test's do
# (register before anything imports them).
pytest.register_assert_rewrite(
    "tests.api.hub_streams", "tests.core.dwp_raw", "tests.core.plans", "tests.serve_process"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-weights",
        action="store_true",
        help="write the seconds each test file took into tests/weights.json (tests/weights.py)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("record_weights") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(weights.Recorder(), "dizest-weights")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    weights.order(items)


def child_pids() -> set[int]:
    """Live (non-zombie) direct children of this process."""
    me = str(os.getpid())
    pids = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[1] == me and fields[0] != "Z":
            pids.add(int(entry))
    return pids


def wait_for(condition: Callable[[], object], timeout: float = 10.0, interval: float = 0.01):
    """Poll `condition` until it is truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


# A flow that says DONE, then never exits (its exit is a long sleep), holding a lock on
# `held.lock` in its working directory while it lives: free again once it is killed.
STUCK_AFTER_DONE = (
    "import fcntl, os, time\n"
    "held = open('held.lock', 'w')\n"
    "fcntl.flock(held, fcntl.LOCK_EX)\n"
    "os._exit = lambda code: time.sleep(300)\n"
    "v = 1\n"
)


def lock_free(path: Path) -> bool:
    """Whether nobody holds an flock on `path` (seen from any PID namespace)."""
    with open(path, "w") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


@pytest.fixture(scope="session", autouse=True)
def flow_cgroups() -> None:
    """As root on cgroup v2, this process makes its flows' groups beside it, as a worker and
    `dizest run` do (`cgroups.delegate`): the sandbox tests then run the v2 path; v1: nothing."""
    if os.geteuid() == 0:
        from dizest_core.cgroups import delegate

        delegate()


@pytest.fixture(autouse=True)
def no_leaked_processes() -> Iterator[None]:
    before = child_pids()
    yield
    try:
        wait_for(lambda: not (child_pids() - before), timeout=5)
    except AssertionError:
        leaked = child_pids() - before
        pytest.fail(f"test left child processes running: {sorted(leaked)}")


@pytest.fixture
def make_workflow(tmp_path: Path) -> Iterator[Callable[..., Workflow]]:
    """Factory: Workflow(package, **settings), closed (zygote stopped) after the test."""
    made: list[Workflow] = []

    def make(package: object, **settings: object) -> Workflow:
        wf = Workflow(package, settings=Settings(**settings))  # type: ignore[arg-type]
        made.append(wf)
        return wf

    yield make
    for wf in made:
        wf.close()


def package(apps: dict[str, dict], flows: dict[str, dict]) -> dict:
    """A .dwp dict from short specs.

    apps: {id: {"code": str, "inputs": [...names or (name, type, inputtype)], "outputs": [names]}}
    flows: {id: {"app": app_id, "data": {...}, "in": {input: [(src, output), ...]}, ...raw}}
    """
    dwp_apps = {}
    for app_id, spec in apps.items():
        inputs = []
        for item in spec.get("inputs", []):
            name, kind, inputtype = (item, "output", None) if isinstance(item, str) else item
            entry = {"type": kind, "name": name}
            if inputtype:
                entry["inputtype"] = inputtype
            inputs.append(entry)
        dwp_apps[app_id] = {
            "id": app_id,
            "title": app_id,
            "code": spec["code"],
            "inputs": inputs,
            "outputs": [{"name": n} for n in spec.get("outputs", [])],
        }
    dwp_flows = {}
    for flow_id, spec in flows.items():
        raw = {k: v for k, v in spec.items() if k not in ("app", "in")}
        raw.update({"id": flow_id, "app_id": spec["app"], "active": spec.get("active", True)})
        raw.setdefault("data", {})
        raw["inputs"] = {
            name: {"connections": [{"node": n, "input": o} for n, o in conns]}
            for name, conns in spec.get("in", {}).items()
        }
        dwp_flows[flow_id] = raw
    return {"apps": dwp_apps, "flow": dwp_flows}


def chain_and_leaves(leaves: int = 5, chain: int = 3) -> tuple[dict, list[str], list[str]]:
    """(package, chain ids, leaf ids): `leaves` one-flow leaves l0.. first in package order,
    then a chain c0 -> c1 -> ...; all roots are ready at once. With one slot, every link but the
    last has a longer path ahead than any leaf, so it starts first (`Plan.rank`, both modes);
    the last link ties with the leaves (then package order decides)."""
    leaf_ids = [f"l{i}" for i in range(leaves)]
    chain_ids = [f"c{i}" for i in range(chain)]
    flows: dict[str, dict] = {f: {"app": "one"} for f in leaf_ids}
    flows[chain_ids[0]] = {"app": "one"}
    for prev, cur in itertools.pairwise(chain_ids):
        flows[cur] = {"app": "inc", "in": {"x": [(prev, "v")]}}
    apps = {
        "one": {"code": "dizest.output('v', 1)", "outputs": ["v"]},
        "inc": {
            "code": "dizest.output('v', dizest.input('x') + 1)",
            "inputs": ["x"],
            "outputs": ["v"],
        },
    }
    return package(apps, flows), chain_ids, leaf_ids
