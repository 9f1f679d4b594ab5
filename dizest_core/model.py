"""The workflow model: apps, flows and the package that holds them, as immutable data.

Invariants: a Package's `flows` keep the package's dict order (it decides ties, as in DIZEST);
`Flow.connections[input]` lists its sources in the order the file gives them; `raw` keeps
the original JSON so that saving writes back every field the engine does not use.
Only `dwp` knows the file format; everything else reads these classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

OUTPUT = "output"
VARIABLE = "variable"


@dataclass(frozen=True)
class InputSpec:
    """A declared app input: `output` (wired from another flow) or `variable` (from flow data)."""

    name: str
    type: str = OUTPUT
    inputtype: str | None = None
    description: str = ""


@dataclass(frozen=True)
class App:
    """Reusable code with named inputs and outputs."""

    id: str
    code: str
    inputs: tuple[InputSpec, ...] = ()
    outputs: tuple[str, ...] = ()
    title: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def input(self, name: str) -> InputSpec | None:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        return None


@dataclass(frozen=True)
class Connection:
    """One edge into a flow input: the source flow and the source's output name."""

    node: str
    output: str


@dataclass(frozen=True)
class Flow:
    """An instance of an app inside a workflow, with its data and incoming connections."""

    id: str
    app_id: str
    active: bool = True
    title: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)
    connections: Mapping[str, tuple[Connection, ...]] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def sources(self) -> list[str]:
        """Distinct source flow ids, in connection order."""
        seen: dict[str, None] = {}
        for conns in self.connections.values():
            for conn in conns:
                seen.setdefault(conn.node, None)
        return list(seen)


@dataclass(frozen=True)
class Package:
    """A workflow package: apps by id and flows by id (package order)."""

    apps: Mapping[str, App]
    flows: Mapping[str, Flow]
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def app_of(self, flow: Flow) -> App:
        return self.apps[flow.app_id]

    def wired(self, flow: Flow) -> list[tuple[str, Connection]]:
        """(input name, connection) for every connection into the app's output-type inputs."""
        app = self.app_of(flow)
        return [
            (spec.name, conn)
            for spec in app.inputs
            if spec.type == OUTPUT
            for conn in flow.connections.get(spec.name, ())
        ]

    def flow_name(self, flow_id: str) -> str:
        """A flow as a message names it for a person: its title, else its app's title, else its
        app's id (the console's flownames.js flowTitle), quoted, with its id after it when that
        differs: `'Producer' (bo6at79gelssrhfz-1796458547289)`. Problem fields keep the id."""
        flow = self.flows.get(flow_id)
        app = self.apps.get(flow.app_id) if flow else None
        title = (flow and flow.title) or (app and app.title) or (flow and flow.app_id) or flow_id
        return repr(title) if title == flow_id else f"{title!r} ({flow_id})"

    def flow(self, flow_id: str) -> Flow:
        from dizest_core.errors import UnknownFlowError

        try:
            return self.flows[flow_id]
        except KeyError:
            raise UnknownFlowError(f"unknown flow {flow_id!r}") from None
