"""What each layer of the flow sandbox costs a flow (issue 7): fork + exit of a child that sets up
one layer exactly as `dizest_core.confine` does, timed fork -> reaped, interleaved with plain
fork + exit; then every layer together through `confine.enter` itself, with a real FlowJob.

`measure_in_pidns` runs it from pid 1 of a new PID namespace (where the zygote forks flows),
in the lean process `python bench/sandbox_cost.py` starts (see sandbox_cost.py); a big parent
forks slower than a zygote does.
"""

from __future__ import annotations

import gc
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import med, table, verdict

from dizest_core import confine, linux, probe, seccomp
from dizest_core.cgroups import Group
from dizest_core.job import FlowJob
from dizest_core.sandbox import (
    LAYERS,
    Policy,
    Prepared,
    Slot,
    make_policy,
    rlimits,
    slot_uid,
)
from dizest_core.settings import Settings

TARGET_MS = 3.0  # the issue's: every layer together, per flow, on this machine


@dataclass
class Bed:
    """What a zygote has at hand when it forks a flow: policy, slot group, a job's dirs."""

    policy: Policy
    group: Group | None
    uid: int
    job: FlowJob
    exposed: list[Any]
    prepared: Prepared


def make_bed(root: Path) -> Bed:
    runs, artifacts = root / "runs", root / "artifacts"
    workdir = runs / "r1" / "f1"
    workdir.mkdir(parents=True)
    artifacts.mkdir()
    policy = make_policy(Settings(sandbox="on"), server=True, hide=(str(runs), str(artifacts)))
    job = FlowJob(
        "r1", "f1", "a1", "", (), (), str(workdir), artifact_dir=str(artifacts), network="none"
    )
    slots = probe.cgroup_slots()
    group = slots.group(f"dizest-bench-{os.getpid()}-0") if slots is not None else None
    uid = slot_uid(policy, os.getpid(), 0)
    layers = dict.fromkeys(LAYERS, "active")
    if group is not None:  # the zygote sets a slot's limits once, when they change
        group.limit(None, policy.max_pids)
    prepared = confine.prepare(policy, layers)  # once per zygote: its mount namespace, fds
    return Bed(policy, group, uid, job, confine.exposures(job), prepared)


def _options(bed: Bed) -> dict[str, str]:
    tmp = f"mode=1777,size={bed.policy.tmp_mb}m"
    return {c: tmp if c in ("/tmp", "/dev/shm") else confine.COVER for c in bed.prepared.covers}


def _cgroup(bed: Bed) -> None:
    assert bed.group is not None
    bed.group.join()


def _mountns(bed: Bed) -> None:
    linux.unshare(linux.CLONE_NEWNS)
    confine._cover(list(bed.prepared.covers), bed.exposed, _options(bed), seal=True)  # a flow's


def _mount_unshare(bed: Bed) -> None:
    linux.unshare(linux.CLONE_NEWNS)


def _netns(bed: Bed) -> None:
    linux.unshare(linux.CLONE_NEWNET)


def _ipcns(bed: Bed) -> None:
    linux.unshare(linux.CLONE_NEWIPC)


def _seccomp(bed: Bed) -> None:
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    seccomp.install(no_unix_sockets=bed.job.network == "none")


def _identity(bed: Bed) -> None:
    confine._give_to_group(bed.job, bed.policy.gid)
    os.setgroups([])
    os.setresgid(bed.policy.gid, bed.policy.gid, bed.policy.gid)
    os.setresuid(bed.uid, bed.uid, bed.uid)
    os.umask(0o007)


def _rlimits(bed: Bed) -> None:
    rlimits(bed.policy, None, tree_memory=bed.group is not None)


def _landlock(bed: Bed) -> None:
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    ruleset = confine._ruleset(bed.prepared, "none", netns=False)
    confine._landlock(ruleset, bed.exposed, bed.prepared, pidns=True)


def _all(network: str) -> Callable[[Bed], None]:
    def step(bed: Bed) -> None:
        layers = dict.fromkeys(LAYERS, "active")
        slot = Slot(bed.uid, bed.policy.gid, bed.group, layers, bed.prepared)
        job = FlowJob(**{**bed.job.__dict__, "network": network})
        done = confine.ahead(bed.policy, slot, job.memory_limit_mb)
        confine.enter(job, bed.policy, slot, done)

    return step


LAYER_STEPS: dict[str, Callable[[Bed], None] | None] = {
    "fork+exit": None,
    "cgroup": _cgroup,
    "mountns": _mountns,
    "  mountns step: unshare(CLONE_NEWNS) only": _mount_unshare,
    "netns": _netns,
    "ipcns": _ipcns,
    "identity": _identity,
    "rlimits": _rlimits,
    "landlock": _landlock,
    "seccomp": _seccomp,
    "all, network egress": _all("egress"),
    "all, network none": _all("none"),
}


def fork_once(bed: Bed, name: str, step: Callable[[Bed], None] | None) -> float:
    """Seconds from fork to reaped for a child that runs `step` and exits; the parent does what
    the zygote does around a flow with a cgroup (OOM count before, kill of the group after)."""
    use_group = name == "cgroup" or name.startswith("all")
    t0 = time.perf_counter()
    if use_group and bed.group is not None:
        bed.group.oom_counts()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            if step is not None:
                step(bed)
        except BaseException as exc:
            os.write(2, f"{name}: {exc!r}\n".encode())
            code = 1
        os._exit(code)
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    if use_group and bed.group is not None:
        bed.group.kill()
    _, status = os.waitpid(pid, 0)
    if use_group and bed.group is not None:
        bed.group.oom_counts()
    elapsed = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"layer {name}: child failed (status {status})")
    return elapsed


def measure_layers(iterations: int) -> dict[str, Any]:
    """Every step of LAYER_STEPS `iterations` times, round-robin; ms per fork, median."""
    linux.load()
    times: dict[str, list[float]] = {name: [] for name in LAYER_STEPS}
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="dizest-layers-") as tmp:
        bed = make_bed(Path(tmp))
        try:
            for name, step in LAYER_STEPS.items():  # warm-up (first chown, page cache)
                fork_once(bed, name, step)
            gc.collect()
            gc.freeze()
            for _ in range(iterations):
                for name, step in LAYER_STEPS.items():
                    times[name].append(fork_once(bed, name, step))
        finally:
            if bed.group is not None:
                bed.group.remove()
    return {
        "ms": {name: 1000 * med(values) for name, values in times.items()},
        "iterations": iterations,
        "load": [load0, os.getloadavg()[0]],
        "pidns": _in_pid_namespace(),
    }


def _in_pid_namespace() -> bool:
    return os.getpid() == 1


def measure_in_pidns(iterations: int) -> dict[str, Any]:
    """`measure_layers` from pid 1 of a new PID namespace (where the zygote forks flows), plus
    plain fork + exit from outside it: the difference is the pidns layer's cost per flow."""
    outside = [_plain_fork() for _ in range(iterations)]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            linux.unshare(linux.CLONE_NEWPID)
            inner = os.fork()
            if inner == 0:
                os.write(write, json.dumps(measure_layers(iterations)).encode())
                os._exit(0)
            _, status = os.waitpid(inner, 0)
            code = os.waitstatus_to_exitcode(status)
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        raw = fh.read()
    os.waitpid(pid, 0)
    if not raw:
        raise RuntimeError("the layer benchmark in the PID namespace failed")
    result: dict[str, Any] = json.loads(raw)
    result["outside_ms"] = 1000 * med(outside)
    return result


def _plain_fork() -> float:
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return time.perf_counter() - t0


def print_layers(result: dict[str, Any]) -> None:
    ms = result["ms"]
    base = ms["fork+exit"]
    where = "pid 1 of a new PID namespace" if result.get("pidns") else "this process"
    print(
        f"\nContainment cost per layer: fork -> reaped of a child that sets up one layer as "
        f"dizest_core.confine does,\n  forked from {where} (a lean zygote stand-in), "
        f"{result['iterations']} forks each, round-robin, median; "
        f"load avg {result['load'][0]:.2f}->{result['load'][1]:.2f}"
    )
    lines = [["fork+exit (plain)", f"{base:.3f}", "-"]]
    if "outside_ms" in result:
        lines.insert(0, ["fork+exit outside the PID ns", f"{result['outside_ms']:.3f}", "-"])
        lines.append(["pidns", "-", f"{base - result['outside_ms']:+.3f}"])
    for name, value in ms.items():
        if name != "fork+exit":
            lines.append([name, f"{value:.3f}", f"{value - base:+.3f}"])
    covers = "  mountns step: + tmpfs covers and binds"
    if covers in ms:  # the rest of mountns: the private /proc mount
        at = next(i for i, line in enumerate(lines) if line[0] == covers) + 1
        proc = f"{ms['mountns'] - ms[covers]:+.3f}"
        lines.insert(at, ["  mountns step: + private /proc", "-", proc])
    table(["layer", "ms per flow", "added ms"], lines, "  ")
    total = ms["all, network none"] - base + max(0.0, base - result.get("outside_ms", base))
    print(
        f"  all layers together (network none, pidns included): {total:.2f} ms per flow, "
        f"target <={TARGET_MS:g} ms: {verdict(total, TARGET_MS)}"
    )
    print("  env: the allow-listed environment is built once per zygote, nothing per flow")
