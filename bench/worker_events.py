"""Event latency through workers: a chain whose flows print, each event's publish (its ts, the
Redis clock) -> its receipt on the events channel (pubsub) and on the run's stream (XREAD
BLOCK, read from before the run exists).
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from functools import partial

import redis
from common import Target, fmt_known, med, pct, table
from worker_cluster import Cluster
from worker_runs import RUN_TIMEOUT_S, check_report, make_chain, submit_wait

from dizest_core.events import LOG_APPEND
from dizest_worker.client import run_channel
from dizest_worker.settings import WorkerSettings
from dizest_worker.state import RedisRuns

EVENT_FLOWS = 50
EVENT_LINES = 20
PUBSUB_P99 = Target(5.0, "ms")


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
                fmt_known(pct(r.pubsub_ms, 50), 1),
                fmt_known(p99, 1),
                fmt_known(max(r.pubsub_ms) if r.pubsub_ms else math.nan, 1),
                str(len(r.stream_ms)),
                fmt_known(pct(r.stream_ms, 50), 1),
                fmt_known(pct(r.stream_ms, 99), 1),
                fmt_known(max(r.stream_ms) if r.stream_ms else math.nan, 1),
                str(int(med(r.log_events))) if r.log_events else "-",
                "FAILED" if r.failures else "ok",
                f"pubsub p99{PUBSUB_P99.text()}",
                PUBSUB_P99.verdict(p99),
            ]
        )
    table(head, lines)
