"""Errors of the HTTP client: one ApiError subclass per kind of answer, chosen by the error
body's `code` (`dizest_api.errors` and docs/api.md list the codes) and, failing that, the status.

    ApiError
    ├── BadRequest                400: a malformed request (a parameter, a header, the body)
    ├── Unauthorized              401
    ├── Forbidden                 403: the token lacks the scope, or you the right
    ├── NotFoundError             404
    ├── Conflict                  409: changed meanwhile (a workflow's version): read it again
    ├── QuotaExceeded             quota_* (413 or 422): free room first
    ├── InvalidRequest            422: fix the request; `.problems` lists what is wrong
    │   ├── InvalidWorkflow       invalid_workflow, package_* (the package is over a limit)
    │   ├── InvalidOptions        invalid_options, option_* (the run's options)
    │   │   └── InvalidPackageOptions  (also InvalidWorkflow) a package's "dizest" options
    │   ├── InvalidInput          input_* (a run input too deep, too large, ...)
    │   ├── InvalidRun            invalid_run
    │   ├── InvalidSchedule       invalid_schedule
    │   └── InvalidUrl            invalid_url (a webhook's)
    ├── Throttled                 429: retry after `.retry_after` (seconds, when known)
    │   ├── TooManyRuns           too_many_runs (your unfinished runs are at the limit)
    │   └── RateLimited           rate_limited (a trigger called past its rate)
    └── ServerError               5xx
"""

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


class BadRequest(ApiError):
    """400: the request is malformed (a parameter, a header, the body); `.message` says which."""


class Unauthorized(ApiError):
    """401: no token, or a wrong or expired one."""


class Forbidden(ApiError):
    """403: the token lacks the scope (read, run, admin), or its user the right (a viewer's
    write to a shared workflow, an admin's route)."""


class NotFoundError(ApiError):
    """404: no such run or workflow (or not visible to this token)."""


class Conflict(ApiError):
    """409: what you changed was changed meanwhile (a workflow's version): read it again."""


class QuotaExceeded(ApiError):
    """413 or 422 with a `quota_*` code: what you hold is at a limit (`.details` says which)."""


class InvalidRequest(ApiError):
    """422: the request cannot be done as given; `.problems` lists every problem."""

    @property
    def problems(self) -> list[dict[str, Any]]:
        if isinstance(self.details, list):
            return [p if isinstance(p, dict) else {"message": str(p)} for p in self.details]
        return [{"message": self.message}]


class InvalidWorkflow(InvalidRequest):
    """422 `invalid_workflow`: the package is invalid (or over a limit: `package_*`)."""


class InvalidOptions(InvalidRequest):
    """422 `invalid_options` (or `option_*`): run options with bad or out-of-bounds values."""


class InvalidPackageOptions(InvalidOptions, InvalidWorkflow):
    """422 `invalid_options` naming a flow's or an app's `"dizest"` options: the package is
    what is wrong (an InvalidWorkflow too)."""


class InvalidInput(InvalidRequest):
    """422 `input_*`: a run input too deep, too large or not JSON."""


class InvalidRun(InvalidRequest):
    """422 `invalid_run`: the run cannot start as asked."""


class InvalidSchedule(InvalidRequest):
    """422 `invalid_schedule`: a bad cron, time zone or catch-up rule."""


class InvalidUrl(InvalidRequest):
    """422 `invalid_url`: a webhook URL the server refuses."""


class Throttled(ApiError):
    """429: too many of something at once; retry after `retry_after` seconds (None: unknown)."""

    @property
    def retry_after(self) -> float | None:
        value = self.details.get("retry_after") if isinstance(self.details, dict) else None
        return float(value) if isinstance(value, int | float) else None


class TooManyRuns(Throttled):
    """429 `too_many_runs`: you have the most unfinished runs allowed."""


class RateLimited(Throttled):
    """429 `rate_limited`: a trigger was called more often than its rate allows."""


class ServerError(ApiError):
    """5xx: the server failed."""


CODES: dict[str, type[ApiError]] = {
    "invalid_workflow": InvalidWorkflow,
    "invalid_options": InvalidOptions,
    "invalid_run": InvalidRun,
    "invalid_schedule": InvalidSchedule,
    "invalid_url": InvalidUrl,
    "too_many_runs": TooManyRuns,
    "rate_limited": RateLimited,
}
PREFIXES: dict[str, type[ApiError]] = {  # codes made of a limit's kind and what broke
    "quota_": QuotaExceeded,
    "input_": InvalidInput,
    "option_": InvalidOptions,
    "package_": InvalidWorkflow,
}
STATUSES: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFoundError,
    409: Conflict,
    422: InvalidRequest,
    429: Throttled,
}


def _error_class(status: int, code: str = "", details: Any = None) -> type[ApiError]:
    if status >= 500:
        return ServerError
    found = CODES.get(code) or next(
        (cls for prefix, cls in PREFIXES.items() if code.startswith(prefix)), None
    )
    if found is InvalidOptions and _about_package(details):
        return InvalidPackageOptions
    return found or STATUSES.get(status, ApiError)


def _about_package(details: Any) -> bool:
    """Whether an invalid_options answer names a flow's or app's `"dizest"` options."""
    return isinstance(details, list) and any(
        isinstance(p, dict) and str(p.get("field") or "").startswith("dizest") for p in details
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
    return _error_class(status, code, details)(status, code, message, details)
