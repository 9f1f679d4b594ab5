"""Per-flow execution options: queue, timeout, memory limit, CPUs, retries and network, their bounds
and their lookup order, the same for a local run (`dizest_core.runner`) and through workers.
Invariant: a value that reaches a flow, a worker or the reaper is already known good.

`validate` checks the run's options and every `"dizest"` object of a package (each flow's, and
each used app's) before anything runs, is stored or enqueued, and raises one `InvalidOptions`
naming every bad flow/app and field. `resolve` then picks each flow's effective options, first
match wins, from:
  1. the flow's `"dizest"` object in the .dwp    {"queue": "gpu", "timeout": 60, "retries": 2,
  2. the app's `"dizest"` object in the .dwp       "memory_limit_mb": 4096, "cpus": 1.5,
                                                   "network": "none"}
  3. the run's options (submit, or a local run)  {"flow_timeout", "memory_limit_mb", "retries",
                                                   "network", "cpus"}
  4. the settings (DIZEST_FLOW_TIMEOUT, DIZEST_MEMORY_LIMIT_MB, DIZEST_FLOW_CPUS, DIZEST_NETWORK,
     DIZEST_QUEUE).
`Bounds` are what the server lets any flow ask for (the longest timeout, DIZEST_NETWORK_MAX,
DIZEST_MEMORY_LIMIT_MB_MAX, DIZEST_FLOW_CPUS_MAX): a value above one is refused at submit like a
bad one, and a flow queued before a bound was lowered runs within the new bound all the same.
Through workers `max_flow_timeout_s` is every flow's default timeout and its upper bound, so no
flow outlives the broker's visibility timeout or Celery's hard time limit; a local run has no
such bound (`UNBOUNDED`: a flow without a timeout runs as long as it takes). The queue means
nothing locally.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from dizest_core.errors import InvalidOptions, Problem, ValidationError
from dizest_core.model import App, Package
from dizest_core.settings import (
    MAX_CPUS,
    MAX_MEMORY_MB,
    MIN_CPUS,
    MIN_MEMORY_MB,
    NETWORKS,
    Settings,
)

FLOW_KEYS = ("queue", "timeout", "retries", "memory_limit_mb", "network", "cpus")
RUN_OPTIONS = {
    "flow_timeout": "timeout",
    "memory_limit_mb": "memory_limit_mb",
    "retries": "retries",
    "network": "network",
    "cpus": "cpus",
}
MAX_RETRIES = 10
# A queue is a Redis list of that very name (kombu's Redis transport): no ':' (every key of
# ours and of redbeat has one) and none of kombu's own keys (`unacked`, `unacked_index`, ...),
# or a package could turn another key into a list and break every user's submits; nor the
# queue of `dizest beat`'s own tasks (`<queue>.automation`: a probe flooded its log so).
AUTOMATION_SUFFIX = ".automation"
QUEUE_NAME = re.compile(
    r"(?!unacked)(?!celery-task-meta-)(?!.*\.automation$)[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}"
)
QUEUE_RULE = (
    "a queue name (1-100 of A-Z a-z 0-9 _ . @ -, not starting with 'unacked'"
    f" nor ending with {AUTOMATION_SUFFIX!r})"
)
UNBOUNDED = math.inf  # a local run's max_timeout_s
OPTION_PROBLEM = "invalid_option"  # the code of every problem of an option


@dataclass(frozen=True)
class FlowOptions:
    queue: str
    timeout: float  # seconds, bounded by max_flow_timeout_s through workers (local: may be inf)
    retries: int  # retries of failing user code (worker losses are counted apart)
    memory_limit_mb: int | None
    network: str = "egress"  # none, egress or full (dizest_core.sandbox)
    cpus: float | None = None  # the most CPUs its processes use at once (the cpu layer's quota)


@dataclass(frozen=True)
class Bounds:
    """The most any flow may ask for on this server (see the module docstring)."""

    timeout_s: float = UNBOUNDED  # through workers: max_flow_timeout_s
    network: str = "full"  # DIZEST_NETWORK_MAX
    memory_mb: int | None = None  # DIZEST_MEMORY_LIMIT_MB_MAX; None: no ceiling
    cpus: float | None = None  # DIZEST_FLOW_CPUS_MAX; None: no ceiling

    @classmethod
    def of(cls, engine: Settings, timeout_s: float = UNBOUNDED) -> Bounds:
        return cls(timeout_s, engine.network_max, engine.memory_limit_mb_max, engine.flow_cpus_max)


def validate(package: Package, run_options: Mapping[str, Any], bounds: Bounds) -> None:
    """Raise InvalidOptions listing every bad run option and `"dizest"` option of `package`
    (one above the server's `bounds` included)."""
    problems = run_problems(run_options, bounds)
    problems += package_problems(package, bounds)
    if problems:
        raise InvalidOptions(problems)


def checked(
    source: Any,
    bounds: Bounds,
    run_options: Mapping[str, Any] | None = None,
    extra_apps: Mapping[str, App] | None = None,
) -> tuple[Package, list[Problem]]:
    """The package (as far as it could be built) with every problem at once: its own
    (`dwp.checked`: errors and warnings), its `"dizest"` options' and the run options'. The one
    rule of what a submit, a store, a validation (API and CLI) and `load` report."""
    from dizest_core import dwp  # here: dwp imports job, which imports this module

    package, problems = dwp.checked(source, extra_apps=extra_apps)
    return package, problems + package_problems(package, bounds) + run_problems(run_options or {}, bounds)  # fmt: skip


def load(
    source: Any,
    bounds: Bounds,
    run_options: Mapping[str, Any] | None = None,
    extra_apps: Mapping[str, App] | None = None,
) -> Package:
    """The package, when `checked` finds no error; else one error naming every one of them:
    InvalidOptions when only options are wrong, else ValidationError."""
    package, problems = checked(source, bounds, run_options, extra_apps)
    raise_errors(problems)
    return package


def raise_errors(problems: list[Problem]) -> None:
    """Raise for the errors among `problems` (warnings pass): InvalidOptions when they are all
    about options, else ValidationError with all of them."""
    errors = [p for p in problems if p.severity == "error"]
    if errors and all(p.code == OPTION_PROBLEM for p in errors):
        raise InvalidOptions(errors)
    if errors:
        raise ValidationError(errors)


def package_problems(package: Package, bounds: Bounds) -> list[Problem]:
    """The `"dizest"` options' problems of the package's flows and apps alone: what a store
    and a validation of the package say too, so that none passes what every submit refuses."""
    problems: list[Problem] = []
    apps = {}
    for flow in package.flows.values():
        if flow.app_id in package.apps:  # an unknown app is the package check's problem
            apps[flow.app_id] = package.app_of(flow)
        problems += _object_problems(flow.raw, bounds, flow=flow.id)
    for app_id, app in apps.items():
        problems += _object_problems(app.raw, bounds, app=app_id)
    return problems


def run_problems(run_options: Mapping[str, Any], bounds: Bounds) -> list[Problem]:
    """The run options' problems alone: what a schedule checks before it stores its options, so
    that it never keeps options every one of its ticks' submits would refuse."""
    return [
        Problem(OPTION_PROBLEM, message, field=f"options.{name}")
        for name, message in _errors(run_options, RUN_OPTIONS, bounds)
    ]


def _object_problems(raw: Mapping[str, Any], bounds: Bounds, **where: str) -> list[Problem]:
    own = raw.get("dizest")
    if own is None:
        return []
    if not isinstance(own, Mapping):
        return [Problem(OPTION_PROBLEM, "must be an object", field="dizest", **where)]
    names = {k: k for k in FLOW_KEYS}
    return [
        Problem(OPTION_PROBLEM, message, field=f"dizest.{name}", **where)
        for name, message in _errors(own, names, bounds)
    ]


def _errors(
    options: Mapping[str, Any], names: Mapping[str, str], bounds: Bounds
) -> list[tuple[str, str]]:
    """(name, message) for each unknown or out-of-bounds option; `names` maps a name to its kind."""
    errors = []
    for name, value in options.items():
        kind = names.get(name)
        message = f"unknown option (known: {', '.join(names)})" if kind is None else None
        if kind is not None and value is not None:  # None: not set here, the next layer decides
            message = _CHECKS[kind](value, bounds)
        if message:
            errors.append((name, message))
    return errors


def _number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(value, int) or math.isfinite(value)  # a huge int: no float() overflow


def _whole(value: Any) -> bool:
    return _number(value) and (isinstance(value, int) or value.is_integer())


def _timeout(value: Any, bounds: Bounds) -> str | None:
    if not _number(value) or not 0 < value <= bounds.timeout_s:
        bound = "" if bounds.timeout_s == UNBOUNDED else f" and at most {bounds.timeout_s:g}"
        return f"must be a number of seconds above 0{bound}, not {value!r}"
    return None


def _memory(value: Any, bounds: Bounds) -> str | None:
    if not _whole(value) or not MIN_MEMORY_MB <= value <= MAX_MEMORY_MB:
        return (
            f"must be a whole number of MB from {MIN_MEMORY_MB} to {MAX_MEMORY_MB}, not {value!r}"
        )
    if bounds.memory_mb is not None and value > bounds.memory_mb:
        return f"{value!r} MB is more memory than this server allows ({bounds.memory_mb} MB)"
    return None


def _cpus(value: Any, bounds: Bounds) -> str | None:
    if not _number(value) or not MIN_CPUS <= value <= MAX_CPUS:
        return f"must be a number of CPUs from {MIN_CPUS} to {MAX_CPUS}, not {value!r}"
    if bounds.cpus is not None and value > bounds.cpus:
        return f"asks for {value!r} CPUs, more than this server allows ({bounds.cpus:g})"
    return None


def _retries(value: Any, _: Bounds) -> str | None:
    if not _whole(value) or not 0 <= value <= MAX_RETRIES:
        return f"must be a whole number from 0 to {MAX_RETRIES}, not {value!r}"
    return None


def _queue(value: Any, _: Bounds) -> str | None:
    if not isinstance(value, str) or not QUEUE_NAME.fullmatch(value):
        return f"must be {QUEUE_RULE}, not {value!r}"
    return None


def above(network: str, ceiling: str) -> bool:
    """Whether `network` gives more than `ceiling` (none < egress < full)."""
    return NETWORKS.index(network) > NETWORKS.index(ceiling)


def _network(value: Any, bounds: Bounds) -> str | None:
    if value not in NETWORKS:
        return f"must be one of {', '.join(NETWORKS)}, not {value!r}"
    if above(value, bounds.network):
        return f"{value!r} is more network than this server allows ({bounds.network!r})"
    return None


_CHECKS = {
    "timeout": _timeout,
    "memory_limit_mb": _memory,
    "retries": _retries,
    "queue": _queue,
    "network": _network,
    "cpus": _cpus,
}


def for_flow(
    package: Package,
    flow_id: str,
    run_options: Mapping[str, Any],
    engine: Settings,
    queue: str = "",
    max_timeout_s: float = UNBOUNDED,
) -> FlowOptions:
    """One flow's effective options: its own `"dizest"` object, its app's, the run's options
    (`RUN_OPTIONS` names), then the settings. The run's `network` is also the most its flows
    get: whoever runs a workflow (someone it was shared with) keeps it off the network, whatever
    its author's flows ask."""
    flow = package.flows[flow_id]
    run = {kind: run_options.get(name) for name, kind in RUN_OPTIONS.items()}
    layers = [_own(flow.raw), _own(package.app_of(flow).raw), run]
    chosen = resolve(layers, engine, queue, max_timeout_s)
    if run["network"] is not None and above(chosen.network, run["network"]):
        return replace(chosen, network=run["network"])
    return chosen


def _own(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    value = raw.get("dizest")
    return value if isinstance(value, Mapping) else {}


def resolve(
    layers: list[Mapping[str, Any]], engine: Settings, queue: str, max_timeout_s: float
) -> FlowOptions:
    """Effective options from `layers` (flow, app, run, already validated) over the settings'
    defaults. The timeout is capped at `max_timeout_s` even when a default says more; the
    network and the memory limit at the server's ceilings (a flow without a memory limit gets
    the ceiling: without one it could take more)."""
    defaults = {
        "queue": queue,
        "timeout": engine.flow_timeout,
        "retries": 0,
        "memory_limit_mb": engine.memory_limit_mb or engine.memory_limit_mb_max,
        "network": engine.network,
        "cpus": engine.flow_cpus or engine.flow_cpus_max,
    }
    chosen = {
        k: next((layer[k] for layer in [*layers, defaults] if layer.get(k) is not None), None)
        for k in FLOW_KEYS
    }
    timeout = min(float(chosen["timeout"] or max_timeout_s), max_timeout_s)
    memory = chosen["memory_limit_mb"]
    ceiling = engine.memory_limit_mb_max
    if ceiling is not None and memory is not None and memory > ceiling:  # queued before
        memory = ceiling
    cpus = chosen["cpus"]
    if engine.flow_cpus_max is not None and cpus is not None and cpus > engine.flow_cpus_max:
        cpus = engine.flow_cpus_max  # queued before the ceiling was lowered
    network = str(chosen["network"])
    if above(network, engine.network_max):  # submitted before the ceiling was lowered
        network = engine.network_max
    return FlowOptions(
        str(chosen["queue"]),
        timeout,
        int(chosen["retries"] or 0),
        None if memory is None else int(memory),
        network,
        None if cpus is None else float(cpus),
    )
