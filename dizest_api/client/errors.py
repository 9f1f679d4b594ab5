"""Errors of the HTTP client: one ApiError subclass per kind of answer."""

from __future__ import annotations

import json
from typing import Any


class ApiError(Exception):
    """An error answer from the server: its HTTP status, error code, message and details."""

    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


class Unauthorized(ApiError):
    """401: no token, or a wrong or expired one."""


class NotFoundError(ApiError):
    """404: no such run or workflow (or not visible to this token)."""


class InvalidWorkflow(ApiError):
    """422: the workflow (or the run request) is invalid; `.problems` lists every problem."""

    @property
    def problems(self) -> list[dict[str, Any]]:
        if isinstance(self.details, list):
            return [p if isinstance(p, dict) else {"message": str(p)} for p in self.details]
        return [{"message": self.message}]


class TooManyRuns(ApiError):
    """429: too many unfinished runs (or too many attempts)."""


class ServerError(ApiError):
    """5xx: the server failed."""


def _error_class(status: int) -> type[ApiError]:
    if status >= 500:
        return ServerError
    return {401: Unauthorized, 404: NotFoundError, 422: InvalidWorkflow, 429: TooManyRuns}.get(
        status, ApiError
    )


def _error(status: int, raw: bytes) -> ApiError:
    code, message, details = "error", raw.decode("utf-8", "replace")[:500], None
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        err = body["error"]
        code = str(err.get("code") or code)
        message = str(err.get("message") or "")
        details = err.get("details")
    return _error_class(status)(status, code, message, details)
