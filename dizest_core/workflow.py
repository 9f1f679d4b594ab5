"""The programmatic interface for programs that embed the engine: `Workflow`.

    wf = Workflow("my.dwp")                      # a path, JSON text, a dict or a Package
    wf.on("log.append", lambda e: print(e.data["entry"]))
    report = wf.run(inputs={"k": 3}, flows=["sink"], timeout=60)
    for event in wf.stream(): ...                # the same run, events as they happen
    wf.rerun("sink")                             # re-run one flow, reusing upstream outputs

A Workflow owns a LocalRunner (and so a zygote process) once it has run: close it, or use it
as a context manager. Run inputs: `{"name": v}` reaches every flow (like DIZEST's run
parameters), `{"flow_id.name": v}` only that flow.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from dizest_core import dwp
from dizest_core.errors import Problem
from dizest_core.events import Callback, Callbacks, Event
from dizest_core.graph import Graph
from dizest_core.model import OUTPUT, Package
from dizest_core.plugins import PluginRegistry
from dizest_core.run_inputs import split_inputs
from dizest_core.runner import LocalRunner, RunRequest
from dizest_core.settings import Settings


class Workflow:
    """A loaded, validated workflow package that can be run locally."""

    def __init__(
        self,
        package: dwp.Source,
        *,
        settings: Settings | None = None,
        plugins: PluginRegistry | None = None,
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.plugins = plugins or PluginRegistry.discover(self.settings.plugin_paths)
        self.package: Package = dwp.load(package, extra_apps=self.plugins.apps())
        self.graph = Graph.from_package(self.package)
        self.callbacks = Callbacks()
        self._runner: LocalRunner | None = None
        self.last_run_id: str | None = None

    def __enter__(self) -> Workflow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._runner is not None:
            self._runner.close()
            self._runner = None

    @property
    def runner(self) -> LocalRunner:
        if self._runner is None:
            self._runner = LocalRunner(self.settings, renderer_files=self.plugins.renderer_files())
        return self._runner

    def problems(self) -> list[Problem]:
        """Warnings about the package (errors would have stopped loading)."""
        return dwp.check(self.package, extra_apps=self.plugins.apps())

    def on(self, event_type: str, callback: Callback) -> Callback:
        """Call `callback(event)` for every event of a type ("*": all); any number per type."""
        return self.callbacks.on(event_type, callback)

    def spec(
        self, target_flows: Iterable[str] | None = None
    ) -> tuple[dict[str, dict[str, None]], dict[str, list[str]]]:
        """(inputs the run needs from outside, final outputs), as DIZEST's spec() returns them.

        Needed inputs are output-type inputs with no connection; final outputs are the outputs
        no flow consumes. With `target_flows`, only the flows those targets need are counted.
        """
        return package_spec(self.package, self.graph, target_flows)

    def request(
        self,
        inputs: Mapping[str, Any] | None = None,
        flows: Iterable[str] | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> RunRequest:
        """Turn run arguments into a RunRequest (splitting `flow_id.name` inputs)."""
        common, per_flow = split_inputs(inputs or {}, self.package)
        return RunRequest(
            inputs=common,
            flow_inputs=per_flow,
            flows=tuple(flows) if flows is not None else None,
            timeout=timeout,
            **options,
        )

    def stream(
        self,
        inputs: Mapping[str, Any] | None = None,
        flows: Iterable[str] | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> Iterator[Event]:
        """Run and yield each event as it happens; the last one is the final workflow.status."""
        req = self.request(inputs, flows, timeout, **options)
        for event in self.runner.stream(
            self.package, req, callbacks=self.callbacks, graph=self.graph
        ):
            self.last_run_id = event.run_id
            yield event

    def run(
        self,
        inputs: Mapping[str, Any] | None = None,
        flows: Iterable[str] | None = None,
        timeout: float | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Run to the end and return the run report.

        Options: concurrency, flow_timeout, memory_limit_mb, cpus, network, retries, cache (bool),
        workdir;
        a flow's own `"dizest"` options come first (`dizest_core.options`).
        """
        for _ in self.stream(inputs, flows, timeout, **options):
            pass
        return self.runner.report()

    def rerun(
        self, flow_id: str, inputs: Mapping[str, Any] | None = None, **options: Any
    ) -> dict[str, Any]:
        """Run one flow again, reusing the outputs its upstream produced in the last run."""
        return self.run(inputs, [flow_id], base_run=self.last_run_id, **options)

    def cancel(self) -> None:
        """Cancel the run in progress (from a callback or another thread)."""
        if self._runner is not None:
            self._runner.cancel()


def package_spec(
    package: Package, graph: Graph | None = None, target_flows: Iterable[str] | None = None
) -> tuple[dict[str, dict[str, None]], dict[str, list[str]]]:
    """See `Workflow.spec`."""
    graph = graph or Graph.from_package(package)
    scope = graph.upstream(target_flows) if target_flows is not None else None
    flows = [f for f in package.flows.values() if scope is None or f.id in scope]
    consumed = {(c.node, c.output) for f in flows for cs in f.connections.values() for c in cs}
    requested: dict[str, dict[str, None]] = {}
    outputs: dict[str, list[str]] = {}
    for flow in flows:
        app = package.app_of(flow)
        free = {
            s.name: None
            for s in app.inputs
            if s.type == OUTPUT and not flow.connections.get(s.name)
        }
        if free:
            requested[flow.id] = free
        final = [name for name in app.outputs if (flow.id, name) not in consumed]
        if final:
            outputs[flow.id] = final
    return requested, outputs


def parse_value(text: str) -> Any:
    """A command-line input value: JSON when it parses as JSON, else the string itself (also
    a value nested deeper than the parser goes: its RecursionError was a compat route's 500)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text
