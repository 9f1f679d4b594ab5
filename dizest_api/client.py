"""A small, typed HTTP client for the dizest API (standard library only).

    client = Client("http://127.0.0.1:8000", token="...")   # or DIZEST_TOKEN
    run_id = client.submit("report.dwp", inputs={"n": 3})
    report = client.wait(run_id)

Errors come back as `ApiError` subclasses: `Unauthorized` (401), `NotFoundError` (404),
`InvalidWorkflow` (422, with `.problems`), `TooManyRuns` (429), `ServerError` (5xx).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dizest_api.payloads import decode_output, multipart

RUN_FINAL = frozenset({"ready", "error", "cancelled"})
RECONNECTS = 3


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


class Client:
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

    # -- your drive (files) and open-format outputs ------------------------------------------

    def _raw(
        self, method: str, path: str, data: bytes | None, headers: Mapping[str, str] | None = None
    ) -> Any:
        request = urllib.request.Request(
            self.server + "/api/v1" + path, data=data, method=method, headers=self._headers(headers)
        )
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                raise _error(exc.code, exc.read()) from None

    def _files(self, path: str) -> str:
        return (
            "/files/" + urllib.parse.quote(path.strip("/"), safe="/")
            if path.strip("/")
            else "/files"
        )

    def files_put(self, local: str | os.PathLike[str], remote: str) -> dict[str, Any]:
        """Upload a local file to `remote` in your drive (created or replaced)."""
        data = Path(local).read_bytes()
        headers = {"Content-Type": "application/octet-stream"}
        with self._raw("PUT", self._files(remote), data, headers) as answer:
            entry: dict[str, Any] = json.loads(answer.read())
        return entry

    def files_ls(self, path: str = "", recursive: bool = False) -> dict[str, Any]:
        """A folder of your drive: `{path, items: [{name, path, type, size, modified}], usage}`."""
        query = "?recursive=true" if recursive else ""
        listing: dict[str, Any] = self.request("GET", self._files(path) + query)
        return listing

    def files_get(self, remote: str) -> bytes:
        """The bytes of a file of your drive."""
        with self._raw("GET", self._files(remote), None) as answer:
            data: bytes = answer.read()
        return data

    def files_mkdir(self, path: str) -> dict[str, Any]:
        with self._raw("POST", self._files(path), b"") as answer:
            made: dict[str, Any] = json.loads(answer.read())
        return made

    def files_mv(self, src: str, dst: str) -> dict[str, Any]:
        moved: dict[str, Any] = self.request("PATCH", self._files(src), {"to": dst})
        return moved

    def files_rm(self, path: str) -> None:
        """Delete a file, or a folder and its contents."""
        self.request("DELETE", self._files(path))

    def submit_files(
        self, body: Mapping[str, Any], files: Mapping[str, str | os.PathLike[str]]
    ) -> dict[str, Any]:
        """POST /runs as multipart: `body` is the JSON submit, `files` maps a path in the run's
        working directory to a local file; the answer is the new run's summary."""
        parts = [("json", "", "application/json", json.dumps(dict(body)).encode())]
        parts += [("file", name, "application/octet-stream", Path(p).read_bytes()) for name, p in files.items()]  # fmt: skip
        data, content_type = multipart(parts)
        with self._raw("POST", "/runs", data, {"Content-Type": content_type}) as answer:
            made: dict[str, Any] = json.loads(answer.read())
        return made

    def output(self, run_id: str, flow_id: str, name: str, pickled: bool = False) -> Any:
        """The output's value itself: decoded from the open format the server chose (JSON,
        text, bytes; a DataFrame from CSV and an array from .npy when pandas/numpy are here;
        a PNG as bytes). `pickled=True` asks for the pickle and unpickles it: only for outputs
        you trust (unpickling runs code)."""
        path = f"/runs/{self._q(run_id)}/flows/{self._q(flow_id)}/outputs/{self._q(name)}"
        query = "?format=pickle" if pickled else ""
        with self._raw("GET", path + query, None, {"Accept": "*/*"}) as answer:
            data, kind = answer.read(), answer.headers.get_content_type()
        return decode_output(data, kind)

    # -- runs -------------------------------------------------------------------------------

    def submit(
        self,
        package: str | os.PathLike[str] | Mapping[str, Any],
        inputs: Mapping[str, Any] | None = None,
        flows: list[str] | None = None,
        options: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Start a run of an inline package (a .dwp path or its dict); return the run id."""
        if isinstance(package, Mapping):
            body: dict[str, Any] = {"package": dict(package)}
        else:
            body = {"package": json.loads(Path(package).read_text(encoding="utf-8"))}
        return self._submit(body, inputs, flows, options, idempotency_key)

    def submit_workflow(
        self,
        workflow_id: str,
        version: int | None = None,
        inputs: Mapping[str, Any] | None = None,
        flows: list[str] | None = None,
        options: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Start a run of a stored workflow (its latest version by default); return the run id."""
        body: dict[str, Any] = {"workflow_id": workflow_id}
        if version is not None:
            body["version"] = version
        return self._submit(body, inputs, flows, options, idempotency_key)

    def _submit(
        self,
        body: dict[str, Any],
        inputs: Mapping[str, Any] | None,
        flows: list[str] | None,
        options: Mapping[str, Any] | None,
        idempotency_key: str | None,
    ) -> str:
        if inputs:
            body["inputs"] = dict(inputs)
        if flows:
            body["flows"] = list(flows)
        if options:
            body["options"] = dict(options)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key is not None else None
        answer = self.request("POST", "/runs", body, headers)
        return str(answer["run_id"])

    def get(self, run_id: str) -> dict[str, Any]:
        """The run report."""
        report: dict[str, Any] = self.request("GET", f"/runs/{self._q(run_id)}")
        return report

    def outputs(self, run_id: str, flow_id: str) -> dict[str, Any]:
        """A flow's outputs (JSON previews)."""
        path = f"/runs/{self._q(run_id)}/flows/{self._q(flow_id)}/outputs"
        answer: dict[str, Any] = self.request("GET", path)["outputs"]
        return answer

    def cancel(self, run_id: str) -> dict[str, Any]:
        """Cancel a run; returns the server's answer."""
        answer: dict[str, Any] = self.request("POST", f"/runs/{self._q(run_id)}/cancel")
        return answer

    def rerun(self, run_id: str, flow_id: str) -> str:
        """Run one flow of a run again, reusing the run's upstream outputs; the new run's id."""
        path = f"/runs/{self._q(run_id)}/flows/{self._q(flow_id)}/rerun"
        return str(self.request("POST", path)["run_id"])

    def runs(self, offset: int = 0, limit: int = 50, **filters: str | None) -> dict[str, Any]:
        """A page of runs, newest first: `{items, total, offset, limit}`; filters: status,
        workflow_id, owner."""
        query = {k: v for k, v in filters.items() if v}
        query.update(offset=str(offset), limit=str(limit))
        page: dict[str, Any] = self.request("GET", "/runs?" + urllib.parse.urlencode(query))
        return page

    def events(
        self, run_id: str, after: str | None = None, reconnects: int = RECONNECTS
    ) -> Iterator[dict[str, Any]]:
        """The run's events (dicts with id, run_id, type, flow_id, data, ts) until the final one.

        Follows the Server-Sent Events stream; on a dropped connection, reconnects with
        Last-Event-ID (at most `reconnects` times in a row, waiting a little longer each time).
        """
        last, failures = after, 0
        while True:
            headers = {"Accept": "text/event-stream"}
            if last is not None:
                headers["Last-Event-ID"] = last
            try:
                answer = self._open("GET", f"/api/v1/runs/{self._q(run_id)}/events", None, headers)
            except (urllib.error.URLError, OSError, http.client.HTTPException):
                failures += 1
                if failures > reconnects:
                    raise
                time.sleep(min(2.0, 0.2 * failures))
                continue
            try:
                with answer:
                    for event in _parse_sse(answer):
                        failures = 0
                        last = str(event.get("id") or last)
                        yield event
                        if _is_final(event):
                            return
            except (OSError, http.client.HTTPException):
                failures += 1
                if failures > reconnects:
                    raise
                time.sleep(min(2.0, 0.2 * failures))
                continue
            # The stream ended before the final event (this client was dropped, or the run
            # had already ended before `after`): catch up from where it stopped.
            failures += 1
            if failures > reconnects:
                return
            time.sleep(min(2.0, 0.2 * failures))

    def wait(self, run_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Follow the run's events until its final one, then return its report.

        Raises TimeoutError if the run has not ended after `timeout` seconds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        for _event in self.events(run_id):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} did not end within {timeout}s")
        report = self.get(run_id)
        while report.get("status") not in RUN_FINAL:  # the stream ended early: poll
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} did not end within {timeout}s")
            time.sleep(0.3)
            report = self.get(run_id)
        return report

    # -- workflows --------------------------------------------------------------------------

    def workflows(self, title: str = "", offset: int = 0, limit: int = 50) -> dict[str, Any]:
        """A page of the workflows you own or were granted: `{items, total, offset, limit}`."""
        query = urllib.parse.urlencode({"title": title, "offset": offset, "limit": limit})
        page: dict[str, Any] = self.request("GET", f"/workflows?{query}")
        return page

    def push_workflow(
        self, package: Mapping[str, Any], title: str | None = None, workflow_id: str | None = None
    ) -> dict[str, Any]:
        """Store a .dwp as a new workflow, or as the next version of `workflow_id`."""
        body: dict[str, Any] = {"package": dict(package)}
        if title is not None:
            body["title"] = title
        if workflow_id is None:
            answer: dict[str, Any] = self.request("POST", "/workflows", body)
        else:
            answer = self.request("PUT", f"/workflows/{self._q(workflow_id)}", body)
        return answer

    def pull_workflow(self, workflow_id: str, version: int | None = None) -> tuple[str, bytes]:
        """(file name, bytes) of a stored workflow's .dwp (its latest version by default)."""
        query = "" if version is None else f"?version={int(version)}"
        path = f"/api/v1/workflows/{self._q(workflow_id)}/dwp{query}"
        with self._open("GET", path) as answer:
            disposition = answer.headers.get("Content-Disposition", "")
            name = disposition.partition('filename="')[2].rstrip('"') or f"{workflow_id}.dwp"
            return Path(name).name, answer.read()

    # -- app api functions (issue 11) ----------------------------------------------------------

    def api_call(
        self,
        run_id: str,
        flow_id: str,
        name: str,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call the `api` function `name` of a run's flow (runner right): its JSON answer
        decoded, text as str, anything else as bytes. An error of the function raises
        ApiError with status 422 and its traceback as `message`; `timeout` bounds the call on
        the worker (seconds, default the server's)."""
        query = dict(params or {})
        if timeout is not None:
            query["timeout"] = str(timeout)
        path = f"/runs/{self._q(run_id)}/flows/{self._q(flow_id)}/api/{self._q(name)}"
        if query:
            path += "?" + urllib.parse.urlencode(query)
        request = urllib.request.Request(
            self.server + "/api/v1" + path,
            data=json.dumps(body).encode(),
            method="POST",
            headers=self._headers({"Content-Type": "application/json", "Accept": "*/*"}),
        )
        wait = self.timeout + (timeout if timeout is not None else 30)
        try:
            with urllib.request.urlopen(request, timeout=wait) as answer:
                return self._api_answer(answer.headers.get_content_type(), answer.read())
        except urllib.error.HTTPError as exc:
            with exc:
                raw = exc.read()
                if exc.headers.get_content_type() == "text/plain":  # a traceback: all of it
                    raise ApiError(exc.code, "api_error", raw.decode("utf-8", "replace")) from None
                raise _error(exc.code, raw) from None

    @staticmethod
    def _api_answer(media_type: str, raw: bytes) -> Any:
        """An api function's answer as Python: JSON decoded, text as str, else bytes."""
        if media_type == "application/json":
            return json.loads(raw) if raw else None
        if media_type.startswith("text/"):
            return raw.decode("utf-8", "replace")
        return raw

    # -- automation: schedules, webhooks, triggers (docs/automation.md) -----------------------

    def schedules(self, workflow_id: str | None = None) -> list[dict[str, Any]]:
        """Your schedules (admins: all), or those of one workflow."""
        path = (
            "/schedules" if workflow_id is None else f"/workflows/{self._q(workflow_id)}/schedules"
        )
        return list(self.request("GET", path)["items"])

    def schedule(self, schedule_id: str, history: int = 20) -> dict[str, Any]:
        """A schedule with its latest tick records (`history`: run ids, errors, skips)."""
        answer: dict[str, Any] = self.request("GET", f"/schedules/{self._q(schedule_id)}?limit={int(history)}")  # fmt: skip
        return answer

    def add_schedule(self, workflow_id: str, cron: str, **fields: Any) -> dict[str, Any]:
        """Run `workflow_id` on `cron` as you; fields: timezone, inputs, options, enabled,
        catchup ("once" or "skip")."""
        path = f"/workflows/{self._q(workflow_id)}/schedules"
        answer: dict[str, Any] = self.request("POST", path, {"cron": cron, **fields})
        return answer

    def update_schedule(self, schedule_id: str, **changes: Any) -> dict[str, Any]:
        """Change a schedule (e.g. `enabled=False`)."""
        answer: dict[str, Any] = self.request(
            "PATCH", f"/schedules/{self._q(schedule_id)}", changes
        )
        return answer

    def remove_schedule(self, schedule_id: str) -> None:
        self.request("DELETE", f"/schedules/{self._q(schedule_id)}")

    def hooks(self) -> list[dict[str, Any]]:
        """Your webhooks."""
        return list(self.request("GET", "/hooks")["items"])

    def hook(self, hook_id: str, deliveries: int = 20) -> dict[str, Any]:
        """A webhook with its latest deliveries (status codes, attempts)."""
        answer: dict[str, Any] = self.request("GET", f"/hooks/{self._q(hook_id)}?limit={int(deliveries)}")  # fmt: skip
        return answer

    def add_hook(self, url: str, workflow_id: str | None = None) -> dict[str, Any]:
        """Call `url` when your runs (of `workflow_id` only, if given) end; the answer holds the
        signing `secret`, shown this once."""
        body = {"url": url} | ({"workflow_id": workflow_id} if workflow_id else {})
        answer: dict[str, Any] = self.request("POST", "/hooks", body)
        return answer

    def remove_hook(self, hook_id: str) -> None:
        self.request("DELETE", f"/hooks/{self._q(hook_id)}")

    def triggers(self, workflow_id: str) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/workflows/{self._q(workflow_id)}/triggers")["items"])

    def add_trigger(self, workflow_id: str, rate_per_min: int | None = None) -> dict[str, Any]:
        """A secret URL starting runs of `workflow_id` as you; `secret` and `url` shown once."""
        body = {} if rate_per_min is None else {"rate_per_min": rate_per_min}
        answer: dict[str, Any] = self.request("POST", f"/workflows/{self._q(workflow_id)}/triggers", body)  # fmt: skip
        return answer

    def rotate_trigger(self, workflow_id: str, trigger_id: str) -> dict[str, Any]:
        """A new secret for a trigger; the old URL stops working at once."""
        path = f"/workflows/{self._q(workflow_id)}/triggers/{self._q(trigger_id)}/rotate"
        answer: dict[str, Any] = self.request("POST", path)
        return answer

    def remove_trigger(self, workflow_id: str, trigger_id: str) -> None:
        self.request("DELETE", f"/workflows/{self._q(workflow_id)}/triggers/{self._q(trigger_id)}")

    def fire_trigger(self, url: str, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Start a run through a trigger URL (no token needed: the URL is the secret)."""
        anonymous = Client(self.server, token="", timeout=self.timeout)
        path = url[len(self.server) :] if url.startswith(self.server) else url
        with anonymous._open("POST", path, dict(inputs or {})) as answer:
            started: dict[str, Any] = json.loads(answer.read())
        return started

    # -- accounts ---------------------------------------------------------------------------

    def me(self) -> dict[str, Any]:
        """The calling user, how it authenticated, and its scopes."""
        answer: dict[str, Any] = self.request("GET", "/auth/me")
        return answer

    def login(
        self,
        username: str,
        password: str,
        name: str = "cli",
        scopes: list[str] | None = None,
        expires_in_s: float | None = None,
    ) -> dict[str, Any]:
        """Exchange a password for a new API token, through a session ended right after; returns
        the token's record with its secret under `token`, and uses that token from then on."""
        anonymous = Client(self.server, token="", timeout=self.timeout)
        credentials = {"username": username, "password": password}
        with anonymous._open("POST", "/api/v1/auth/login", credentials) as answer:
            csrf = json.loads(answer.read())["csrf_token"]
            cookies = [c.split(";")[0] for c in answer.headers.get_all("Set-Cookie") or []]
        session = {"Cookie": "; ".join(cookies), "X-CSRF-Token": csrf}
        body: dict[str, Any] = {"name": name, "scopes": scopes or ["read", "run"]}
        if expires_in_s is not None:
            body["expires_in_s"] = expires_in_s
        try:
            made: dict[str, Any] = anonymous.request("POST", "/tokens", body, session)
        finally:
            with contextlib.suppress(ApiError, OSError):
                anonymous.request("POST", "/auth/logout", None, session)
        self.token = str(made["token"])
        return made

    def revoke_token(self, token_id: str) -> None:
        """Revoke one of your tokens (admins: anyone's); it stops working at once."""
        self.request("DELETE", f"/tokens/{self._q(token_id)}")


def _is_final(event: dict[str, Any]) -> bool:
    data = event.get("data") or {}
    return event.get("type") == "workflow.status" and data.get("status") in RUN_FINAL


def _parse_sse(stream: Any) -> Iterator[dict[str, Any]]:
    """Events of a text/event-stream: JSON `data` objects (the `id` field wins if missing)."""
    event_id: str | None = None
    event_type: str | None = None
    data: list[str] = []
    for raw in stream:
        line = raw.decode("utf-8").rstrip("\r\n")
        if not line:
            if data:
                event = json.loads("\n".join(data))
                if not isinstance(event, dict):
                    event = {"data": event}
                if event_id is not None:
                    event.setdefault("id", event_id)
                if event_type is not None:
                    event.setdefault("type", event_type)
                yield event
            event_id, event_type, data = None, None, []
            continue
        if line.startswith(":"):
            continue  # a comment or heartbeat
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "id":
            event_id = value
        elif name == "event":
            event_type = value
        elif name == "data":
            data.append(value)


__all__ = [
    "ApiError",
    "Client",
    "InvalidWorkflow",
    "NotFoundError",
    "ServerError",
    "TooManyRuns",
    "Unauthorized",
]
