"""GET /metrics: Prometheus text for admins (read scope suffices), numbers from Redis."""

from __future__ import annotations

import re
import time
from pathlib import Path

from dizest_worker.client import Client
from tests.api.conftest import Api

DATA = Path(__file__).resolve().parents[1] / "data"


def sample(text: str, name: str, labels: str = "") -> float:
    pattern = "^" + re.escape(name + (f"{{{labels}}}" if labels else "")) + r" (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_metrics_are_prometheus_text_and_follow_runs(cluster_api: Api) -> None:
    api = cluster_api
    headers = api.user("root", "admin", scopes=("read",))
    answer = api.http.get("/metrics", headers=headers)
    assert answer.status_code == 200, answer.data
    assert answer.mimetype == "text/plain"
    assert "version=0.0.4" in answer.headers["Content-Type"]
    text = answer.get_data(as_text=True)
    for name in (
        "dizest_runs",
        "dizest_run_flows",
        "dizest_queue_depth",
        "dizest_stream_clients",
        "dizest_workers_live",
    ):
        assert f"# TYPE {name} gauge" in text
    worker = api.services.settings.worker
    queue = f'queue="{worker.queue}"'
    assert sample(text, "dizest_workers_live") == 0
    before_depth = sample(text, "dizest_queue_depth", queue)

    client = Client(worker)
    run_id = client.submit(DATA / "c03_fanout.dwp")  # no worker: it stays running, queued
    assert run_id
    api.services.redis.hset(worker.prefix + ":workers", "w-test", str(time.time() * 1000))

    text = api.http.get("/metrics", headers=headers).get_data(as_text=True)
    assert sample(text, "dizest_runs", 'status="running"') == 1
    assert sample(text, "dizest_run_flows", 'state="unresolved"') == 4
    assert sample(text, "dizest_queue_depth", queue) > before_depth
    assert sample(text, "dizest_workers_live") == 1


def test_metrics_are_for_admins_only(api: Api) -> None:
    assert api.http.get("/metrics", headers=api.user("alice")).status_code == 403
    assert api.http.get("/metrics").status_code == 401
    admin = api.user("root", "admin", scopes=("run",))
    assert api.http.get("/metrics", headers=admin).status_code == 403


def test_lifetime_counters_and_the_histogram_come_from_the_workers_hash(cluster_api: Api) -> None:
    """The counters CLAIM, FINISH and REQUEUE keep (per-bucket counts) render as Prometheus
    counters and a cumulative histogram whose +Inf bucket is its count."""
    api = cluster_api
    prefix = api.services.settings.worker.prefix
    api.services.redis.hset(
        prefix + ":metrics",
        mapping={
            "started": 7,
            "finished:ready": 5,
            "finished:error": 1,
            "retried": 2,
            "parked": 3,
            "duration:0.05": 2,
            "duration:1": 3,
            "duration:+Inf": 1,
            "duration_sum": 12.5,
            "duration_count": 6,
        },
    )
    headers = api.user("root", "admin", scopes=("read",))
    text = api.http.get("/metrics", headers=headers).get_data(as_text=True)
    assert "# TYPE dizest_flows_started_total counter" in text
    assert "# TYPE dizest_flow_duration_seconds histogram" in text
    assert sample(text, "dizest_flows_started_total") == 7
    assert sample(text, "dizest_flows_finished_total", 'status="ready"') == 5
    assert sample(text, "dizest_flows_finished_total", 'status="error"') == 1
    assert sample(text, "dizest_flow_retries_total") == 2
    assert sample(text, "dizest_flows_parked_total") == 3
    name = "dizest_flow_duration_seconds"
    cumulative = {"0.01": 0, "0.05": 2, "0.5": 2, "1": 5, "3600": 5, "+Inf": 6}
    for le, count in cumulative.items():
        assert sample(text, f"{name}_bucket", f'le="{le}"') == count, le
    assert sample(text, f"{name}_sum") == 12.5
    assert sample(text, f"{name}_count") == 6
