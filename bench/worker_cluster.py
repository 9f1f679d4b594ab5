"""bench_worker's worker configurations and the processes behind them: each config's real
`dizest worker` processes (each in its own process group, output captured, stopped with
whatever their trees left) with a Client, and the CPU their trees used, by component.
"""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(1, str(ROOT))  # a clone run without `pip install -e .`

from procfs import CLK_TCK, proc_info, process_tree  # noqa: E402

from dizest_core import envconfig  # noqa: E402
from dizest_worker.client import Client  # noqa: E402
from dizest_worker.settings import WorkerSettings  # noqa: E402

SANDBOX_REQUIRE = ("pidns", "cgroup", "mountns", "netns", "identity", "landlock")


@dataclass(frozen=True)
class WorkerSpec:
    concurrency: int
    pool: str = "prefork"


@dataclass(frozen=True)
class Config:
    key: str
    label: str
    workers: tuple[WorkerSpec, ...]
    slots: int = 1
    sandbox: str = ""  # DIZEST_SANDBOX of its workers ("": the environment's)


CONFIGS = {
    "A": Config("A", "1 worker -c 2 prefork, slots 1", (WorkerSpec(2),)),
    "B": Config("B", "1 worker -c 2 threads, slots 2", (WorkerSpec(2, "threads"),), 2),
    "C": Config("C", "2 workers -c 1 prefork, slots 1", (WorkerSpec(1), WorkerSpec(1))),
}
MAKESPAN_CONFIGS = (
    Config("P8", "1 worker -c 8 prefork, slots 1", (WorkerSpec(8),)),
    Config("T8", "1 worker -c 8 threads, slots 2", (WorkerSpec(8, "threads"),), 2),
)


def worker_env(settings: WorkerSettings, sandbox: str) -> dict[str, str]:
    """The settings of a config's workers as variables; a config's sandbox mode keeps the flow
    layers required but not Redis auth (the bench's Redis has no password)."""
    if sandbox:
        engine = replace(settings.engine, sandbox=sandbox, sandbox_require=SANDBOX_REQUIRE)
        settings = replace(settings, engine=engine)
    return {**os.environ, **envconfig.to_env(settings)}


class WorkerProcess:
    """`python -m dizest_cli worker` in its own session/process group, output captured."""

    def __init__(
        self, settings: WorkerSettings, name: str, spec: WorkerSpec, sandbox: str = ""
    ) -> None:
        self.name = name
        args = [sys.executable, "-m", "dizest_cli", "worker", "-c", str(spec.concurrency)]
        args += ["-n", name, "--pool", spec.pool]
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=worker_env(settings, sandbox),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.proc.pid
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            self.output.append(line.decode(errors="replace"))

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(" ready." in line for line in self.output):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = "".join(self.output[-20:])
                raise RuntimeError(f"worker {self.name} did not start:\n{tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM the group (warm shutdown), SIGKILL after 15 s; then whatever is left of the
        process tree seen just before (flow children run in sessions of their own)."""
        tree = process_tree(self.pid)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"worker {self.name}: no exit 15 s after SIGTERM, SIGKILL", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.proc.wait()
        for pid, info in tree.items():
            if pid != self.pid and proc_info(pid) is not None:
                now = proc_info(pid)
                if now is not None and now.start == info.start:  # same process, not a reuse
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
        self._reader.join(timeout=5)


class Cluster:
    """The workers of one configuration, plus a Client; `with` stops every worker."""

    def __init__(self, settings: WorkerSettings, config: Config) -> None:
        self.config = config
        self.settings = replace(settings, local_slots=config.slots)
        self.workers: list[WorkerProcess] = []
        self.client: Client | None = None

    def __enter__(self) -> Cluster:
        try:
            tag = uuid.uuid4().hex[:6]
            for i, spec in enumerate(self.config.workers):
                key = self.config.key.replace(":", "-")
                name = f"bench{key}{i + 1}-{tag}@{platform.node()}"
                worker = WorkerProcess(self.settings, name, spec, self.config.sandbox)
                self.workers.append(worker)
            for worker in self.workers:
                worker.wait_ready()
            self.client = Client(self.settings)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for worker in self.workers:
            try:
                worker.stop()
            except Exception as exc:  # stop the others all the same
                print(f"stopping {worker.name}: {exc}", file=sys.stderr)
        self.workers = []


COMPONENTS = ("main", "pool", "zygote", "flows", "reaper", "redis", "client")


def cpu_snapshot(cluster: Cluster) -> dict[str, float]:
    """CPU seconds so far by component, summed over the cluster's workers; `flows` is what the
    zygotes reaped (the flow children), `redis` the server's INFO cpu, `client` this process."""
    out = dict.fromkeys(COMPONENTS, 0.0)
    for worker in cluster.workers:
        tree = process_tree(worker.pid)
        zygotes = {p for p, i in tree.items() if "zygote" in i.cmdline}
        for pid, info in tree.items():
            if pid == worker.pid:
                out["main"] += info.own_s
            elif pid in zygotes:
                out["zygote"] += info.own_s
                out["flows"] += info.reaped_s
            elif "dizest_worker.reaper" in info.cmdline:
                out["reaper"] += info.own_s
            elif info.ppid in zygotes:
                continue  # a live flow child: counted by its zygote once reaped
            else:
                out["pool"] += info.own_s
    assert cluster.client is not None
    cpu = cluster.client.redis.info("cpu")
    out["redis"] = float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
    out["client"] = time.process_time()
    with open("/proc/stat", encoding="ascii") as fp:
        ticks = [int(x) for x in fp.readline().split()[1:9]]
    out["machine"] = (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK  # all but idle and iowait
    return out


def cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {k: max(0.0, after[k] - before[k]) for k in before}
