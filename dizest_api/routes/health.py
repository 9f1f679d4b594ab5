"""Probes at the root, for load balancers and orchestrators: liveness and readiness."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify

from dizest_api.endpoint import endpoint
from dizest_api.errors import error_response
from dizest_api.services import services

bp = Blueprint("health", __name__)


@endpoint(bp, "GET", "/healthz", "The process is alive", access="public")
def healthz() -> Response:
    return jsonify({"status": "ok"})


@endpoint(bp, "GET", "/readyz", "Redis answers and a worker was seen recently", access="public")
def readyz() -> Response:
    found = services()
    window_ms = 1000 * max(3 * found.settings.worker.reaper_interval_s, 30.0)
    try:
        found.redis.ping()
        beats = found.redis.hgetall(found.library.keys.workers)
    except Exception as exc:  # any Redis failure means not ready, whatever its type
        return error_response(503, "not_ready", f"redis unreachable: {type(exc).__name__}")
    now_ms = time.time() * 1000
    live = sorted(name for name, ms in beats.items() if now_ms - float(ms) <= window_ms)
    if not live:
        return error_response(503, "not_ready", "no worker seen recently", {"workers": []})
    return jsonify({"status": "ready", "workers": live})
