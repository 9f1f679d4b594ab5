"""A small, typed HTTP client for the dizest API (standard library only).

    client = Client("http://127.0.0.1:8000", token="...")   # or DIZEST_TOKEN
    run_id = client.submit("report.dwp", inputs={"n": 3})
    report = client.wait(run_id)

Errors come back as `ApiError` subclasses chosen by the answer's error `code` (the tree is in
`dizest_api.client.errors`): `BadRequest` (400), `Unauthorized` (401), `Forbidden` (403),
`NotFoundError` (404), `Conflict` (409), `InvalidRequest` (422,
with `.problems`: `InvalidWorkflow`, `InvalidOptions`, `InvalidInput`, `InvalidSchedule`,
`InvalidUrl`, ...), `QuotaExceeded`, `Throttled` (429: `TooManyRuns`, `RateLimited`),
`ServerError` (5xx).
The calls live in one module per area (runs, files, automation, cluster), mixed into `Client`.
"""

from __future__ import annotations

from dizest_api.client.automation import AutomationMixin
from dizest_api.client.cluster import ClusterMixin
from dizest_api.client.errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidOptions,
    InvalidPackageOptions,
    InvalidRequest,
    InvalidRun,
    InvalidSchedule,
    InvalidUrl,
    InvalidWorkflow,
    NotFoundError,
    QuotaExceeded,
    RateLimited,
    ServerError,
    Throttled,
    TooManyRuns,
    Unauthorized,
)
from dizest_api.client.files import FilesMixin
from dizest_api.client.runs import RECONNECTS, RUN_FINAL, RunsMixin


class Client(RunsMixin, FilesMixin, AutomationMixin, ClusterMixin):
    """One dizest server, reached with one bearer token."""


__all__ = [
    "RECONNECTS",
    "RUN_FINAL",
    "ApiError",
    "BadRequest",
    "Client",
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "InvalidOptions",
    "InvalidPackageOptions",
    "InvalidRequest",
    "InvalidRun",
    "InvalidSchedule",
    "InvalidUrl",
    "InvalidWorkflow",
    "NotFoundError",
    "QuotaExceeded",
    "RateLimited",
    "ServerError",
    "Throttled",
    "TooManyRuns",
    "Unauthorized",
]
