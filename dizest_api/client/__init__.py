"""A small, typed HTTP client for the dizest API (standard library only).

    client = Client("http://127.0.0.1:8000", token="...")   # or DIZEST_TOKEN
    run_id = client.submit("report.dwp", inputs={"n": 3})
    report = client.wait(run_id)

Errors come back as `ApiError` subclasses: `Unauthorized` (401), `NotFoundError` (404),
`InvalidWorkflow` (422, with `.problems`), `TooManyRuns` (429), `ServerError` (5xx).
The calls live in one module per area (runs, files, automation), mixed into `Client`.
"""

from __future__ import annotations

from dizest_api.client.automation import AutomationMixin
from dizest_api.client.errors import (
    ApiError,
    InvalidWorkflow,
    NotFoundError,
    ServerError,
    TooManyRuns,
    Unauthorized,
)
from dizest_api.client.files import FilesMixin
from dizest_api.client.runs import RECONNECTS, RUN_FINAL, RunsMixin


class Client(RunsMixin, FilesMixin, AutomationMixin):
    """One dizest server, reached with one bearer token."""


__all__ = [
    "RECONNECTS",
    "RUN_FINAL",
    "ApiError",
    "Client",
    "InvalidWorkflow",
    "NotFoundError",
    "ServerError",
    "TooManyRuns",
    "Unauthorized",
]
