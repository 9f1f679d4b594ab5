"""What the flow sandbox costs (issue 7): containment on vs off side by side, and per layer.

Three measurements, each printed with the load average (the machine is shared):

  local     `bench_core.py --only sandbox`: chain10_noop and dag1000 through two Workflows open
            at once, Settings(sandbox="off") and Settings(sandbox="on"), runs interleaved
            (off, on, on, off, ...) so both see the same load; per-flow cost =
            (median on - median off) / flows, and the CPU of the zygote tree per flow (the
            zygote's own time plus the flow children it reaped: hardly moved by other load).
  layers    `python bench/sandbox_cost.py` (a fresh, lean process standing in for the zygote,
            as `bench_core.py --only sandbox` also runs it): fork + exit of a child that sets up
            one layer, exactly as `dizest_core.confine` does, timed fork -> reaped, interleaved
            with plain fork + exit; added ms = median(layer) - median(plain). Then every layer
            together through `confine.enter` itself, with a real FlowJob.
  worker    `bench_worker.py --sandbox off,on`: every configuration's rows once with the workers'
            DIZEST_SANDBOX=off and once with =on; `print_worker_pairs` sets them side by side.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from dizest_core import confine, linux, probe, seccomp  # noqa: E402
from dizest_core.cgroups import Group  # noqa: E402
from dizest_core.job import FlowJob  # noqa: E402
from dizest_core.sandbox import (  # noqa: E402
    LAYERS,
    Policy,
    Prepared,
    Slot,
    make_policy,
    rlimits,
    slot_uid,
)
from dizest_core.settings import Settings  # noqa: E402

TARGET_MS = 3.0  # the issue's: every layer together, per flow, on this machine
LOCAL_SHAPES = ("chain10_noop", "dag1000")
MODES = ("off", "on")
LAYER_ITERATIONS = 200
CLK_TCK = os.sysconf("SC_CLK_TCK")


def verdict(added_ms: float) -> str:
    return "?" if math.isnan(added_ms) else "PASS" if added_ms <= TARGET_MS else "MISS"


def load_text() -> str:
    return "load avg " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


# ----------------------------------------------------------------------------- local mode


@dataclass
class PairRow:
    """One shape, run with the sandbox off and on by the same process, interleaved."""

    shape: str
    flows: int = 0
    times: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    cpu_ms: dict[str, list[float]] = field(default_factory=lambda: {m: [] for m in MODES})
    layers: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    load: tuple[float, float] = (math.nan, math.nan)

    def added_ms(self) -> float:
        """Wall time the sandbox adds per flow: (median on - median off) / flows."""
        on, off = med(self.times["on"]), med(self.times["off"])
        return 1000 * (on - off) / self.flows if self.flows else math.nan

    def added_cpu_ms(self) -> float:
        return med(self.cpu_ms["on"]) - med(self.cpu_ms["off"])


def tree_cpu_s(root: int) -> float:
    """CPU seconds of `root` and its direct children, each with the children they reaped:
    the zygote (outside and, with the PID namespace, inside it) and the flows it forked."""
    total = 0.0
    for pid in (root, *children(root)):
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as fp:
                fields = fp.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(fields[i]) for i in (11, 12, 13, 14)) / CLK_TCK
    return total


def children(parent: int) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat", encoding="ascii") as fp:
                    if int(fp.read().rsplit(")", 1)[1].split()[1]) == parent:
                        found.append(int(name))
            except (OSError, ValueError, IndexError):
                continue
    return found


def bench_local(shape: str, repeat: int) -> PairRow:
    """Cold run of each mode, then `repeat` warm runs of each, the order alternating."""
    from bench_core import expected, package_path, run_checked

    from dizest_core.workflow import Workflow

    exp = expected(shape)
    row = PairRow(shape, flows=exp["flows"])
    load0 = os.getloadavg()[0]
    wfs = {m: Workflow(package_path(shape), settings=Settings(sandbox=m)) for m in MODES}
    try:
        for mode, wf in wfs.items():
            _, bad = run_checked(wf, exp)
            row.failures += [f"{mode} cold: {b}" for b in bad[:3]]
        row.layers = wfs["on"].runner.supervisor.layers
        zygotes = {m: wf.runner.supervisor.zygote.proc.pid for m, wf in wfs.items()}
        for i in range(repeat):
            for mode in MODES if i % 2 == 0 else reversed(MODES):
                gc.collect()
                cpu0 = tree_cpu_s(zygotes[mode])
                elapsed, bad = run_checked(wfs[mode], exp)
                row.cpu_ms[mode].append(1000 * (tree_cpu_s(zygotes[mode]) - cpu0) / row.flows)
                row.times[mode].append(elapsed)
                row.failures += [f"{mode} run {i + 1}: {b}" for b in bad[:3]]
    finally:
        for wf in wfs.values():
            wf.close()
    row.load = (load0, os.getloadavg()[0])
    return row


def print_local(rows: list[PairRow]) -> None:
    print(
        "\nContainment cost, local mode (Workflow API, Settings(sandbox=off|on), one engine, "
        "runs interleaved)"
    )
    if rows and rows[0].layers:
        active = [k for k, v in rows[0].layers.items() if v == "active"]
        print(f"  layers on: {', '.join(active)}")
    head = ["shape", "runs", "off s", "on s", "added ms/flow", "target", "goal"]
    head += ["zygote CPU ms/flow off", "on", "added", "load avg", "check"]
    lines = []
    for r in rows:
        added = r.added_ms()
        lines.append(
            [
                r.shape,
                f"{len(r.times['off'])}+{len(r.times['on'])}",
                f"{med(r.times['off']):.3f}",
                f"{med(r.times['on']):.3f}",
                f"{added:.2f}",
                f"<={TARGET_MS:g} ms",
                verdict(added),
                f"{med(r.cpu_ms['off']):.2f}",
                f"{med(r.cpu_ms['on']):.2f}",
                f"{r.added_cpu_ms():.2f}",
                f"{r.load[0]:.2f}->{r.load[1]:.2f}",
                "FAILED" if r.failures else "ok",
            ]
        )
    table(head, lines)
    print(
        "  added ms/flow = (median on - median off) / flows (wall time; dag1000 runs 2 flows at "
        "a time, so\n  its wall figure is about half the per-flow work); zygote CPU = the zygote "
        "and the flow processes it reaped"
    )


def table(head: list[str], rows: list[list[str]]) -> None:
    body = [head, *rows]
    widths = [max(len(line[i]) for line in body) for i in range(len(head))]
    for i, line in enumerate(body):
        print("  " + "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  " + "  ".join("-" * w for w in widths))


# ----------------------------------------------------------------------------- layers


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
    confine._cover(list(bed.prepared.covers), bed.exposed, _options(bed))


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
    table(["layer", "ms per flow", "added ms"], lines)
    total = ms["all, network none"] - base + max(0.0, base - result.get("outside_ms", base))
    print(
        f"  all layers together (network none, pidns included): {total:.2f} ms per flow, "
        f"target <={TARGET_MS:g} ms: {verdict(total)}"
    )
    print("  env: the allow-listed environment is built once per zygote, nothing per flow")


def run_layers_subprocess(iterations: int) -> dict[str, Any]:
    """The layer benchmark in a fresh interpreter: a big parent forks slower than a zygote."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--json-only", "-n", str(iterations)],
        capture_output=True,
        text=True,
        timeout=600,
        start_new_session=True,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"sandbox_cost.py failed: {proc.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


# ----------------------------------------------------------------------------- workers


def print_worker_pairs(shapes: Sequence[Any], hops: Sequence[Any]) -> None:
    """bench_worker rows whose config is `<key>:off` and `<key>:on`, side by side."""
    pairs: dict[tuple[str, str], dict[str, list[float]]] = {}
    flows: dict[str, int] = {}
    for r in shapes:
        key, _, mode = r.config.partition(":")
        pairs.setdefault((key, r.shape), {}).setdefault(mode, []).extend(r.times)
        flows[r.shape] = r.flows
    if not pairs and not hops:
        return
    print(f"\nContainment cost through workers (DIZEST_SANDBOX=off vs on), {load_text()}")
    lines = []
    for (key, shape), modes in pairs.items():
        off, on = med(modes.get("off", [])), med(modes.get("on", []))
        added = 1000 * (on - off) / flows[shape] if flows.get(shape) else math.nan
        lines.append([key, shape, f"{off:.3f}", f"{on:.3f}", f"{added:.2f}", verdict(added)])
    if lines:
        table(["cfg", "shape", "off s", "on s", "added ms/flow", "<=3 ms"], lines)
    hop: dict[str, dict[str, list[float]]] = {}
    for r in hops:
        key, _, mode = r.config.partition(":")
        hop.setdefault(key, {}).setdefault(mode, []).extend(r.hops)
    lines = []
    for key, modes in hop.items():
        cells = [key]
        for q in (50, 95):
            off, on = pct(modes.get("off", []), q), pct(modes.get("on", []), q)
            cells += [f"{off:.1f}", f"{on:.1f}", f"{on - off:+.1f}"]
        lines.append(cells)
    if lines:
        print()
        head = ["cfg", "hop p50 off ms", "on", "added", "hop p95 off ms", "on", "added"]
        table(head, lines)


def pct(values: Sequence[float], q: float) -> float:
    """As makespan.pct; not imported from there: this process stays lean (it stands in for
    the zygote, whose size is part of what is measured)."""
    if not values:
        return math.nan
    s = sorted(values)
    k = (len(s) - 1) * q / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("-n", type=int, default=LAYER_ITERATIONS, help="forks per layer")
    ap.add_argument("--json-only", action="store_true", help="print the result as JSON only")
    args = ap.parse_args(argv)
    if os.geteuid() != 0:
        print("the layer benchmark needs root (as the sandbox does)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGINT, signal.default_int_handler)
    result = measure_in_pidns(args.n)
    if args.json_only:
        print(json.dumps(result))
    else:
        print_layers(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
