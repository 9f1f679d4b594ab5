"""Probes at the root, for load balancers and orchestrators: liveness and readiness.

Ready means Redis answers and at least one worker can take a flow now: its pool beat within
the liveness window, `dizest_worker.liveness.WINDOW_S` (a beat is written only once Celery
declared the worker ready, and a restarting worker deletes its previous instance's beat first),
as `dizest_worker.client.live_workers` tells. The same rule guards the
submit routes: with no live worker they answer 503 `no_worker` (`require_worker`) rather than
accept a run that would wait unseen.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from dizest_api.endpoint import endpoint
from dizest_api.errors import ApiError, error_response
from dizest_api.schemas import ERR
from dizest_api.services import services
from dizest_worker.client import live_workers, sandbox_layers

bp = Blueprint("health", __name__)
RETRY_AFTER_S = 5  # a worker that restarts is back within seconds


class NoWorker(ApiError):
    status, code = 503, "no_worker"


def require_worker() -> None:
    """Refuse a submit (503 no_worker, Retry-After) when no worker is live: a run accepted
    then would stay pending with nobody to say why."""
    found = services()
    if not found.client.live_workers():
        raise NoWorker(
            "no worker is running to take this run; retry shortly",
            {"retry_after": RETRY_AFTER_S, "workers": []},
        )


@endpoint(bp, "GET", "/healthz", "The process is alive", access="public",
          responses={200: "Status"})  # fmt: skip
def healthz() -> Response:
    return jsonify({"status": "ok"})


@endpoint(bp, "GET", "/readyz", "Redis answers and a worker is live now", access="public",
          responses={200: "Ready", 503: ERR})  # fmt: skip
def readyz() -> Response:
    found = services()
    try:
        found.redis.ping()
        live = live_workers(found.redis, found.settings.worker)
        layers = sandbox_layers(found.redis, found.settings.worker, live)
    except Exception as exc:  # any Redis failure means not ready, whatever its type
        return error_response(503, "not_ready", f"redis unreachable: {type(exc).__name__}")
    if not live:
        return error_response(503, "not_ready", "no live worker", {"workers": []})
    # which flow sandbox layers each worker runs with; why one is missing is in its own log
    sandbox = {
        name: {layer: "active" if state == "active" else "missing" for layer, state in s.items()}
        for name, s in layers.items()
    }
    return jsonify({"status": "ready", "workers": live, "sandbox": sandbox})
