"""The cluster-wide numbers behind `/metrics`, read from Redis in one place.

The API renders them (Prometheus text) but does not know where they live: run statuses in the
run records, lifetime counters the CLAIM, FINISH and REQUEUE scripts keep in `{prefix}:metrics`,
the broker queue's length (over its priority levels) and the workers' beats. Run counts cover
the newest `run_limit` runs of the `{prefix}:runs` index (one pipelined HMGET per run), so they
are gauges over that window.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import redis

from dizest_worker.keys import DURATION_BUCKETS, Keys
from dizest_worker.messages import queue_depth
from dizest_worker.scripts import bucket_name
from dizest_worker.settings import WorkerSettings

RUN_SCAN_LIMIT = 10_000
FLOW_STATES = ("completed", "failed", "cancelled", "unresolved")


@dataclass(frozen=True)
class MetricsSnapshot:
    """What the cluster looks like now. `duration_buckets` are cumulative (`le`, count) pairs,
    ending with `+Inf`, as Prometheus histograms have them."""

    run_limit: int
    runs: dict[str, int]  # status -> runs among the newest `run_limit`
    flows: dict[str, int]  # FLOW_STATES -> flows of those runs
    started: float
    finished: dict[str, float]  # "ready" / "error" -> attempts
    retried: float
    parked: float  # attempts parked for want of a flow slot of their owner (flow_slots)
    duration_buckets: list[tuple[str, float]]
    duration_sum: float
    duration_count: float
    queue: str
    queue_depth: int
    workers_live: int
    live_window_s: float


def _number(raw: str | None) -> float:
    try:
        return float(raw or 0)
    except ValueError:
        return 0.0


def read_snapshot(
    client: redis.Redis, settings: WorkerSettings, run_limit: int = RUN_SCAN_LIMIT
) -> MetricsSnapshot:
    """One snapshot: a ZREVRANGE, one pipeline of HMGETs, then LLEN, the beats and the counters
    (not atomic: each number is current when read)."""
    from dizest_worker import liveness  # it imports Celery: not on importing the client

    keys = Keys(settings.prefix)
    run_ids = [_text(r) for r in client.zrevrange(keys.runs, 0, run_limit - 1)]  # type: ignore[arg-type]
    statuses: Counter[str] = Counter()
    flows: Counter[str] = Counter({state: 0 for state in FLOW_STATES})
    if run_ids:
        pipe = client.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hmget(keys.run(run_id), ["status", *FLOW_STATES])
        for fields in pipe.execute():
            if fields[0] is None:
                continue  # expired, not yet removed from the index
            statuses[_text(fields[0])] += 1
            for state, raw in zip(FLOW_STATES, fields[1:], strict=True):
                try:
                    flows[state] += int(raw or 0)
                except ValueError:
                    continue
    counters = {_text(k): _text(v) for k, v in client.hgetall(keys.metrics).items()}
    buckets, total = [], 0.0
    for bound in DURATION_BUCKETS:
        total += _number(counters.get(f"duration:{bucket_name(bound)}"))
        buckets.append((bucket_name(bound), total))
    buckets.append(("+Inf", total + _number(counters.get("duration:+Inf"))))
    return MetricsSnapshot(
        run_limit=run_limit,
        runs=dict(sorted(statuses.items())),
        flows=dict(flows),
        started=_number(counters.get("started")),
        finished={st: _number(counters.get(f"finished:{st}")) for st in ("ready", "error")},
        retried=_number(counters.get("retried")),
        parked=_number(counters.get("parked")),
        duration_buckets=buckets,
        duration_sum=_number(counters.get("duration_sum")),
        duration_count=_number(counters.get("duration_count")),
        queue=settings.queue,
        queue_depth=queue_depth(client, settings.queue),
        workers_live=len(liveness.live_workers(client, settings)),
        live_window_s=liveness.WINDOW_S,
    )


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value
