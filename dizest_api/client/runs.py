"""Client calls for runs (submit, events, wait), workflows and app `api` functions."""

from __future__ import annotations

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

from dizest_api.client.base import Base
from dizest_api.client.errors import ApiError, _error

RUN_FINAL = frozenset({"ready", "error", "cancelled"})
RECONNECTS = 3


class RunsMixin(Base):
    """Runs, their events, workflows and app api functions."""

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
        return self.final_report(run_id, deadline)

    def final_report(self, run_id: str, deadline: float | None = None) -> dict[str, Any]:
        """The report of a run whose events were followed to their end (polled while the stream
        ended before the run did); TimeoutError after `deadline` (time.monotonic())."""
        report = self.get(run_id)
        while report.get("status") not in RUN_FINAL:  # the stream ended early: poll
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"run {run_id} did not end in time")
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
