"""`GET /metrics`: Prometheus text (format 0.0.4), rendered by `prometheus_client` from a snapshot
the cluster client reads on each request (`dizest_worker.client.Client.metrics_snapshot`).

Who may scrape: an admin user with the read scope (an admin's session, or a token of an admin
created with just `read`: a scrape token need not carry `admin`). Anyone else: 403; anonymous: 401.

Run counts cover the newest runs of the run index only (see `dizest_worker.metrics`), so they are
gauges over that window, not lifetime counters. `dizest_stream_clients` counts the SSE/WebSocket
clients of the answering process only (with several API processes, each one answers for itself).
Flow counters and the duration histogram are lifetime values the workers keep. The collector is
a custom one (no metric objects live in this process): every number comes from the snapshot.
"""

from __future__ import annotations

from collections.abc import Iterator

from flask import Blueprint, Flask, Response, current_app
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from dizest_api.auth import current
from dizest_api.endpoint import endpoint
from dizest_api.errors import Forbidden
from dizest_api.schemas import Body

bp = Blueprint("metrics", __name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROMETHEUS = Body("text/plain", {"type": "string"}, "Prometheus text exposition format 0.0.4")


class ClusterCollector:
    """Yields the metric families of one `metrics_snapshot()` plus this process's stream count."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        snap = self.app.extensions["dizest"].client.metrics_snapshot()
        window = f"newest {snap.run_limit} runs"
        runs = GaugeMetricFamily(
            "dizest_runs", f"Runs by status, among the {window}.", labels=["status"]
        )
        for status, count in snap.runs.items():
            runs.add_metric([status], count)
        yield runs
        flows = GaugeMetricFamily(
            "dizest_run_flows",
            f"Flows of the {window} by state (completed, failed, cancelled, unresolved).",
            labels=["state"],
        )
        for state, count in snap.flows.items():
            flows.add_metric([state], count)
        yield flows
        yield CounterMetricFamily(
            "dizest_flows_started", "Flow attempts started by workers.", value=snap.started
        )
        finished = CounterMetricFamily(
            "dizest_flows_finished",
            "Flow attempts finished, by status (ready or error).",
            labels=["status"],
        )
        for status, count in snap.finished.items():
            finished.add_metric([status], count)
        yield finished
        yield CounterMetricFamily(
            "dizest_flow_retries",
            "Failed flow attempts sent back to be retried.",
            value=snap.retried,
        )
        yield CounterMetricFamily(
            "dizest_flows_parked",
            "Flow attempts that waited for a flow slot: their owner held their fair share.",
            value=snap.parked,
        )
        yield HistogramMetricFamily(
            "dizest_flow_duration_seconds",
            "Duration of finished flow attempts.",
            buckets=snap.duration_buckets,
            sum_value=snap.duration_sum,
        )
        depth = GaugeMetricFamily(
            "dizest_queue_depth",
            "Tasks waiting in the default broker queue (LLEN).",
            labels=["queue"],
        )
        depth.add_metric([snap.queue], snap.queue_depth)
        yield depth
        hub = self.app.extensions.get("dizest.events")
        yield GaugeMetricFamily(
            "dizest_stream_clients",
            "SSE/WebSocket clients connected to this API process.",
            value=hub.clients() if hub is not None else 0,
        )
        yield GaugeMetricFamily(
            "dizest_workers_live",
            f"Workers whose heartbeat is at most {snap.live_window_s:g} s old.",
            value=snap.workers_live,
        )


def _registry(app: Flask) -> CollectorRegistry:
    """The app's registry with its one collector (made on first scrape; a benign race makes
    two, and the last one wins)."""
    registry: CollectorRegistry | None = app.extensions.get("dizest.metrics")
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(ClusterCollector(app))
        app.extensions["dizest.metrics"] = registry
    return registry


@endpoint(bp, "GET", "/metrics", "Prometheus metrics (admins; read scope suffices)", scope="read",
          responses={200: PROMETHEUS})  # fmt: skip
def metrics() -> Response:
    if not current().user.is_admin:
        raise Forbidden("admins only")
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return Response(generate_latest(_registry(app)), content_type=CONTENT_TYPE)
