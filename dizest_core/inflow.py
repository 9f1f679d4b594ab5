"""DIZEST's core `Flow`, `App` and `Workflow` accessors, as app code sees them (`dizest.flow`,
and the `flow` and `workflow` globals), read from the DIZEST documents a job carries.

They answer like DIZEST's (`flow.id()`, `flow.title()`, `flow.inputs()`, `flow.previous()`,
`workflow.flows()`, ...) with two deliberate differences: `Flow.title()` returns the flow's own
title when it has one (DIZEST answers "Unknown" then), and `update()` raises: a flow runs in its
own process, so a change to the workflow could never reach the engine or the other flows.
Every document is the job's private copy; nothing here reaches back to the engine.
"""

from __future__ import annotations

import copy
from typing import Any

from dizest_core.job import FlowJob


class App:
    """An app of the workflow (DIZEST `core/app.py`)."""

    def __init__(self, raw: dict[str, Any], app_id: str = "") -> None:
        self._raw = raw
        self._id = raw.get("id") or app_id

    def id(self) -> str:
        return str(self._id)

    def title(self) -> str:
        title = self._raw.get("title")
        return title if isinstance(title, str) and title else "Unknown"

    def code(self) -> str:
        return str(self._raw.get("code") or "")

    def api(self) -> str:
        return str(self._raw.get("api") or "")

    def inputs(self) -> list[dict[str, Any]]:
        return list(self._raw.get("inputs") or [])

    def outputs(self) -> list[str]:
        return [o["name"] for o in self._raw.get("outputs") or [] if isinstance(o, dict)]

    def update(self, **values: Any) -> None:
        raise _read_only("app")

    def __repr__(self) -> str:
        return f"<dizest App {self.id()!r}>"


class Flow:
    """A flow of the workflow (DIZEST `core/flow.py`)."""

    def __init__(self, raw: dict[str, Any], app: App, flow_id: str = "") -> None:
        self._raw = raw
        self._app = app
        self._id = raw.get("id") or flow_id

    def package(self) -> dict[str, Any]:
        """The flow's DIZEST document (this process's copy)."""
        return self._raw

    def id(self) -> str:
        return str(self._id)

    def title(self) -> str:
        title = self._raw.get("title")
        return title if isinstance(title, str) and title else self._app.title()

    def active(self) -> bool:
        from dizest_core.dwp import is_active  # the parser: not in every child (see runtime)

        return is_active(self._raw)

    def app(self) -> App:
        return self._app

    def inputs(self) -> dict[str, dict[str, Any]]:
        """DIZEST's in-memory input shape: wired inputs as `{"type": "output", "data": [[flow,
        output], ...]}` (only when connected), variables as `{"type", "data", "inputtype"}`."""
        wired = self._raw.get("inputs") or {}
        data = self._raw.get("data") or {}
        result: dict[str, dict[str, Any]] = {}
        for spec in self._app.inputs():
            name, kind = str(spec.get("name")), spec.get("type")
            if kind == "output":
                conns = (wired.get(name) or {}).get("connections")
                if isinstance(conns, list):
                    links = [[c.get("node"), c.get("input")] for c in conns if isinstance(c, dict)]
                    result[name] = {"type": kind, "data": links}
            elif kind == "variable":
                result[name] = {
                    "type": kind,
                    "data": data.get(name),
                    "inputtype": spec.get("inputtype"),
                }
        return result

    def previous(self) -> list[str]:
        """Distinct source flow ids, in connection order."""
        seen: dict[str, None] = {}
        for spec in self.inputs().values():
            if spec["type"] == "output":
                for node, _ in spec["data"]:
                    seen.setdefault(node, None)
        return list(seen)

    def update(self, **values: Any) -> None:
        raise _read_only("flow")

    def __repr__(self) -> str:
        return f"<dizest Flow {self.id()!r}>"


class Workflow:
    """The whole package, read-only (DIZEST `workflow.py`: apps, app, flows, flow, to_dict)."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw
        self._apps: dict[str, Any] = raw.get("apps") or {}
        self._flows: dict[str, Any] = raw.get("flow") or {}

    def apps(self) -> list[str]:
        return list(self._apps)

    def app(self, app_id: str) -> App | None:
        raw = self._apps.get(app_id)
        return App(raw, app_id) if isinstance(raw, dict) else None

    def flows(self) -> list[Flow]:
        return [flow for flow in map(self.flow, self._flows) if flow is not None]

    def flow(self, flow_id: str) -> Flow | None:
        raw = self._flows.get(flow_id)
        if not isinstance(raw, dict):
            return None
        app_id = str(raw.get("app_id") or "")
        return Flow(raw, self.app(app_id) or App({}, app_id), flow_id)

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._raw)

    def __repr__(self) -> str:
        return f"<dizest Workflow of {len(self._flows)} flows>"


def flow_of(job: FlowJob) -> Flow:
    """The running flow; jobs built without documents (tests, old callers) get a minimal one."""
    app = App(job.app_raw or _app_document(job), job.app_id)
    return Flow(job.flow_raw or {"id": job.flow_id, "title": job.title}, app, job.flow_id)


def _app_document(job: FlowJob) -> dict[str, Any]:
    inputs = [{"type": s.type, "name": s.name, "inputtype": s.inputtype} for s in job.inputs]
    outputs = [{"name": name} for name in job.outputs]
    return {"id": job.app_id, "code": job.code, "inputs": inputs, "outputs": outputs}


def workflow_of(job: FlowJob) -> Workflow | None:
    """The package view, when the job carries the package (its code names `workflow`)."""
    return Workflow(job.package_raw) if job.package_raw is not None else None


def _read_only(what: str) -> NotImplementedError:
    return NotImplementedError(
        f"{what}.update() is not supported: each flow runs in its own process, so a change "
        "to the workflow would never reach the engine or the other flows"
    )
