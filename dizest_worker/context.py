"""What a worker knows about one run once it has read its snapshot: the package, the plan, and
each flow's effective options. Pure data (no Redis, no Celery); cached per run in each process.

Per-flow options: lookup order and bounds in `dizest_core.options` (checked at submit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dizest_core import dwp
from dizest_core.graph import Graph
from dizest_core.model import Package
from dizest_core.options import FlowOptions, for_flow
from dizest_core.plan import Plan, make_plan
from dizest_worker.settings import WorkerSettings


@dataclass
class RunContext:
    run_id: str
    package: Package
    plan: Plan
    options: Mapping[str, Any]
    inputs: Mapping[str, Any]
    flow_inputs: Mapping[str, Mapping[str, Any]]
    drive: str | None = None  # the folder its flows read through dizest.drive() (read-only)
    account: str | None = None  # the user whose quota and flow slots (flow_slots) it counts in
    # flow -> (the settings it was resolved for, its options): a worker asks several times a flow
    _resolved: dict[str, tuple[WorkerSettings, FlowOptions]] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def build(
        cls,
        run_id: str,
        snapshot: Mapping[str, Any],
        targets: list[str] | None,
        reused: list[str],
        options: Mapping[str, Any],
        inputs: Mapping[str, Any],
        flow_inputs: Mapping[str, Mapping[str, Any]],
        drive: str | None = None,
        account: str | None = None,
    ) -> RunContext:
        package = dwp.load(snapshot)
        done = set(reused)
        plan = make_plan(package, Graph.from_package(package), targets, lambda f: f in done)
        return cls(run_id, package, plan, options, inputs, flow_inputs, drive, account)

    def flow_options(self, flow_id: str, settings: WorkerSettings) -> FlowOptions:
        hit = self._resolved.get(flow_id)
        if hit is not None and hit[0] is settings:
            return hit[1]
        options = for_flow(
            self.package,
            flow_id,
            self.options,
            settings.engine,
            settings.queue,
            settings.max_flow_timeout_s,
        )
        self._resolved[flow_id] = (settings, options)
        return options

    def params(self, flow_id: str) -> dict[str, Any]:
        return {**self.inputs, **self.flow_inputs.get(flow_id, {})}
