"""The plumbing of the HTTP client: one server, one bearer token, JSON requests."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

from dizest_api.client.errors import _error


class Base:
    """One dizest server, reached with one bearer token."""

    def __init__(self, server: str, token: str | None = None, timeout: float = 30) -> None:
        self.server = server.rstrip("/")
        self.token = token if token is not None else os.environ.get("DIZEST_TOKEN") or None
        self.timeout = timeout

    # -- plumbing ---------------------------------------------------------------------------

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def _open(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        sent = self._headers(headers)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        request = urllib.request.Request(self.server + path, data=data, method=method, headers=sent)
        try:
            return urllib.request.urlopen(request, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                raise _error(exc.code, exc.read()) from None

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """The decoded JSON answer of one request to `/api/v1{path}`; raises ApiError."""
        with self._open(method, "/api/v1" + path, body, headers) as answer:
            raw = answer.read()
        return json.loads(raw) if raw else None

    @staticmethod
    def _q(value: str) -> str:
        return urllib.parse.quote(value, safe="")
