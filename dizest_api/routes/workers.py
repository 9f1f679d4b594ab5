"""`GET /api/v1/workers`: the cluster's live workers, for operators (admins only): who each one
is and where it runs, the queues it serves, its slots and the flows it runs now, its machine's
load, memory and disk, and how long since it last beat (`dizest_worker.worker_info`). A worker
is listed while its beat is live (`/readyz`'s window), so one that stops leaves within seconds.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from dizest_api.endpoint import endpoint
from dizest_api.schemas import items_of
from dizest_api.services import services

bp = Blueprint("workers", __name__)


@endpoint(bp, "GET", "/workers", "The live workers: host, queues, slots, flows running, load",
          access="admin", responses={200: items_of("Worker")})  # fmt: skip
def list_workers() -> Response:
    return jsonify({"items": services().client.workers()})
