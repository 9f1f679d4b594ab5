"""`GET /metrics`: Prometheus text (format 0.0.4), computed from Redis on each request.

Who may scrape: an admin user with the read scope (an admin's session, or a token of an admin
created with just `read`: a scrape token need not carry `admin`). Anyone else: 403; anonymous: 401.

Run counts cover the newest `RUN_SCAN_LIMIT` runs of the `{prefix}:runs` index only (one
pipelined HMGET per run), so they are gauges over that window, not lifetime counters.
`dizest_stream_clients` counts the SSE/WebSocket clients of the answering process only (with
several API processes, each one answers for itself). Flow counters and the duration histogram
are lifetime values the workers' CLAIM, FINISH and REQUEUE scripts keep in `{prefix}:metrics`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from flask import Blueprint, Response, current_app

from dizest_api.auth import current
from dizest_api.endpoint import endpoint
from dizest_api.errors import Forbidden
from dizest_api.services import services
from dizest_worker import liveness
from dizest_worker.keys import DURATION_BUCKETS
from dizest_worker.scripts import bucket_name

bp = Blueprint("metrics", __name__)

RUN_SCAN_LIMIT = 10_000
FLOW_STATES = ("completed", "failed", "cancelled", "unresolved")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _metric(
    name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]
) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    for labels, value in samples:
        inner = ",".join(f'{k}="{_label(v)}"' for k, v in sorted(labels.items()))
        lines.append(f"{name}{{{inner}}} {value:g}" if inner else f"{name} {value:g}")
    return lines


def _number(raw: str | None) -> float:
    try:
        return float(raw or 0)
    except ValueError:
        return 0.0


def _histogram(counters: dict[str, str]) -> list[str]:
    """`dizest_flow_duration_seconds` from the per-bucket counts (cumulative, as Prometheus has
    histograms)."""
    name = "dizest_flow_duration_seconds"
    lines = [f"# HELP {name} Duration of finished flow attempts.", f"# TYPE {name} histogram"]
    total = 0.0
    for bound in DURATION_BUCKETS:
        total += _number(counters.get(f"duration:{bucket_name(bound)}"))
        lines.append(f'{name}_bucket{{le="{bucket_name(bound)}"}} {total:g}')
    total += _number(counters.get("duration:+Inf"))
    lines.append(f'{name}_bucket{{le="+Inf"}} {total:g}')
    lines.append(f"{name}_sum {_number(counters.get('duration_sum')):g}")
    lines.append(f"{name}_count {_number(counters.get('duration_count')):g}")
    return lines


@endpoint(bp, "GET", "/metrics", "Prometheus metrics (admins; read scope suffices)", scope="read")
def metrics() -> Response:
    if not current().user.is_admin:
        raise Forbidden("admins only")
    found = services()
    redis, keys, worker = found.redis, found.library.keys, found.settings.worker
    run_ids = redis.zrevrange(keys.runs, 0, RUN_SCAN_LIMIT - 1)
    pipe = redis.pipeline(transaction=False)
    for run_id in run_ids:
        pipe.hmget(keys.run(run_id), ["status", *FLOW_STATES])
    statuses: Counter[str] = Counter()
    flows: Counter[str] = Counter()
    for fields in pipe.execute() if run_ids else []:
        if fields[0] is None:
            continue  # expired, not yet removed from the index
        statuses[fields[0]] += 1
        for state, raw in zip(FLOW_STATES, fields[1:], strict=True):
            try:
                flows[state] += int(raw or 0)
            except ValueError:
                continue
    depth = redis.llen(worker.queue)
    live = len(liveness.live_workers(redis, worker))
    counters = redis.hgetall(keys.metrics)
    hub = current_app.extensions.get("dizest.events")
    clients = hub.clients() if hub is not None else 0
    window = f"newest {RUN_SCAN_LIMIT} runs"
    lines = [
        *_metric(
            "dizest_runs",
            "gauge",
            f"Runs by status, among the {window}.",
            (({"status": s}, n) for s, n in sorted(statuses.items())),
        ),
        *_metric(
            "dizest_run_flows",
            "gauge",
            f"Flows of the {window} by state (completed, failed, cancelled, unresolved).",
            (({"state": s}, flows[s]) for s in FLOW_STATES),
        ),
        *_metric(
            "dizest_flows_started_total",
            "counter",
            "Flow attempts started by workers.",
            [({}, _number(counters.get("started")))],
        ),
        *_metric(
            "dizest_flows_finished_total",
            "counter",
            "Flow attempts finished, by status (ready or error).",
            [
                ({"status": st}, _number(counters.get(f"finished:{st}")))
                for st in ("ready", "error")
            ],
        ),
        *_metric(
            "dizest_flow_retries_total",
            "counter",
            "Failed flow attempts sent back to be retried.",
            [({}, _number(counters.get("retried")))],
        ),
        *_histogram(counters),
        *_metric(
            "dizest_queue_depth",
            "gauge",
            "Tasks waiting in the default broker queue (LLEN).",
            [({"queue": worker.queue}, depth)],
        ),
        *_metric(
            "dizest_stream_clients",
            "gauge",
            "SSE/WebSocket clients connected to this API process.",
            [({}, clients)],
        ),
        *_metric(
            "dizest_workers_live",
            "gauge",
            f"Workers whose heartbeat is at most {liveness.WINDOW_S:g} s old.",
            [({}, live)],
        ),
    ]
    return Response("\n".join(lines) + "\n", content_type=CONTENT_TYPE)
