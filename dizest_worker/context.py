"""What a worker knows about one run once it has read its snapshot: the package, the plan, and
each flow's effective options. Pure data (no Redis, no Celery); cached per run in each process.

Per-flow options are looked up, first match wins, in:
  1. the flow's `"dizest"` object in the .dwp    {"queue": "gpu", "timeout": 60, "retries": 2,
  2. the app's `"dizest"` object in the .dwp       "memory_limit_mb": 4096}
  3. the run's options given at submit           {"flow_timeout", "memory_limit_mb", "retries"}
  4. the worker's settings (DIZEST_FLOW_TIMEOUT, DIZEST_MEMORY_LIMIT_MB, DIZEST_QUEUE).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dizest_core import dwp
from dizest_core.graph import Graph
from dizest_core.model import Package
from dizest_core.plan import Plan, make_plan
from dizest_core.settings import Settings

OPTION_KEYS = ("queue", "timeout", "retries", "memory_limit_mb")


@dataclass(frozen=True)
class FlowOptions:
    queue: str
    timeout: float | None
    retries: int
    memory_limit_mb: int | None


@dataclass
class RunContext:
    run_id: str
    package: Package
    plan: Plan
    options: Mapping[str, Any]
    inputs: Mapping[str, Any]
    flow_inputs: Mapping[str, Mapping[str, Any]]
    _descendants: dict[str, list[str]] = field(default_factory=dict)

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
    ) -> RunContext:
        package = dwp.load(snapshot)
        done = set(reused)
        plan = make_plan(package, Graph.from_package(package), targets, lambda f: f in done)
        return cls(run_id, package, plan, options, inputs, flow_inputs)

    def descendants(self, flow_id: str) -> list[str]:
        """Every flow of the run below `flow_id`, in plan order (skipped when it fails)."""
        if flow_id not in self._descendants:
            seen: set[str] = set()
            todo = list(self.plan.children[flow_id])
            while todo:
                child = todo.pop()
                if child not in seen:
                    seen.add(child)
                    todo.extend(self.plan.children[child])
            self._descendants[flow_id] = [f for f in self.plan.run if f in seen]
        return self._descendants[flow_id]

    def flow_options(self, flow_id: str, defaults: Settings, default_queue: str) -> FlowOptions:
        flow = self.package.flows[flow_id]
        layers = [
            _own(flow.raw),
            _own(self.package.app_of(flow).raw),
            {
                "timeout": self.options.get("flow_timeout"),
                "retries": self.options.get("retries"),
                "memory_limit_mb": self.options.get("memory_limit_mb"),
            },
            {
                "queue": default_queue,
                "timeout": defaults.flow_timeout,
                "retries": 0,
                "memory_limit_mb": defaults.memory_limit_mb,
            },
        ]
        chosen = {
            k: next((layer[k] for layer in layers if layer.get(k) is not None), None)
            for k in OPTION_KEYS
        }
        return FlowOptions(
            str(chosen["queue"]),
            _num(chosen["timeout"], float),
            int(chosen["retries"] or 0),
            _num(chosen["memory_limit_mb"], int),
        )

    def params(self, flow_id: str) -> dict[str, Any]:
        return {**self.inputs, **self.flow_inputs.get(flow_id, {})}


def _own(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    value = raw.get("dizest")
    return value if isinstance(value, Mapping) else {}


def _num(value: Any, kind: type) -> Any:
    return None if value is None else kind(value)
