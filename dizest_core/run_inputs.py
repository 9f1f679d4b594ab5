"""Run inputs: which flows a run input reaches, and which inputs a workflow reads.

`{"name": v}` reaches every flow (DIZEST's run parameters: the global `name`, and what
`dizest.input("name")` answers first), `{"flow_id.name": v}` only flow `flow_id`. A flow reads
input `name` when its app declares an input of that name (a variable or a wired input: a run
input wins over both) or its code names it (an undeclared global, `dizest.input('name')`).

`check` refuses inputs no flow reads (a typo, an input renamed since) before anything runs or
is stored, naming them and the inputs the workflow declares: a submit, a trigger, a schedule
(when it is made or changed, and again at each tick) and `dizest run` all follow it, where such
an input was dropped silently and the workflow ran without the value meant for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dizest_core.errors import Problem, UnknownInputError
from dizest_core.model import App, Package

PROBLEM = "unknown_input"  # the code of an input no flow reads (the API's error code too)
SHOWN = 20  # declared inputs a message lists


def split_inputs(
    inputs: Mapping[str, Any], package: Package
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Split run inputs into those for every flow and those for one (`flow_id.name`)."""
    common: dict[str, Any] = {}
    per_flow: dict[str, dict[str, Any]] = {}
    for key, value in inputs.items():
        found = _flow_and_name(key, package)
        if found is None:
            common[key] = value
        else:
            per_flow.setdefault(found[0], {})[found[1]] = value
    return common, per_flow


def _flow_and_name(key: str, package: Package) -> tuple[str, str] | None:
    """The flow and input of `key` when it is `flow_id.name` of a flow of the package. A flow id
    may hold dots (DIZEST names a plugin app's flows `table.read_csv-<ms>`): its longest flow id
    is taken (a split at the first dot refused a run input of such a flow as unknown)."""
    at = len(key)
    while (at := key.rfind(".", 0, at)) > 0:
        if key[:at] in package.flows and at + 1 < len(key):
            return key[:at], key[at + 1 :]
    return None


def join_inputs(
    common: Mapping[str, Any], per_flow: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """The run inputs `split_inputs` split (a rerun submits its run's inputs again)."""
    joined = dict(common)
    for flow_id, values in per_flow.items():
        joined.update({flow_key(flow_id, name): value for name, value in values.items()})
    return joined


def flow_key(flow_id: str, name: str) -> str:
    """The run input that reaches one flow's input `name` only (`split_inputs` reads it)."""
    return f"{flow_id}.{name}"


def api_inputs(requested: Mapping[str, Mapping[str, None]]) -> dict[str, list[str]]:
    """DIZEST's external API inputs (`/api/run/<workflow>`: a request value per name): each
    name with the run inputs its value fills, every requested input of that name (`spec()`'s
    unconnected output-type inputs), as `flow_key`s, in flow order."""
    accepted: dict[str, list[str]] = {}
    for flow_id, names in requested.items():
        for name in names:
            accepted.setdefault(name, []).append(flow_key(flow_id, name))
    return accepted


def declared(package: Package) -> list[str]:
    """The input names the workflow's flows declare, sorted: the inputs it takes."""
    return sorted({s.name for f in package.flows.values() for s in package.app_of(f).inputs})


def problems(inputs: Mapping[str, Any], package: Package) -> list[Problem]:
    """A problem for each run input no flow of `package` reads (see the module docstring)."""
    common, per_flow = split_inputs(inputs, package)
    apps = {f.app_id: package.app_of(f) for f in package.flows.values()}
    found = []
    for name in common:
        named = _named(name)
        if not any(_reads(app, name, named) for app in apps.values()):
            found.append(Problem(PROBLEM, "no flow reads this input", field=f"inputs.{name}"))
    for flow_id, values in per_flow.items():
        app = package.app_of(package.flows[flow_id])
        for name in values:
            if not _reads(app, name, _named(name)):
                takes = ", ".join(s.name for s in app.inputs) or "none"
                message = f"the flow reads no input {name!r} (it declares: {takes})"
                field = f"inputs.{flow_id}.{name}"
                found.append(Problem(PROBLEM, message, flow=flow_id, field=field))
    return found


def check(inputs: Mapping[str, Any], package: Package) -> None:
    """Raise UnknownInputError naming each input of `inputs` no flow of `package` reads, and
    the inputs its flows declare (`details`: `unknown`, `inputs`)."""
    found = problems(inputs, package)
    if found:
        details: dict[str, object] = {"unknown": _names(found), "inputs": declared(package)}
        details["problems"] = [p.to_dict() for p in found]
        raise UnknownInputError(PROBLEM, headline(found, package), details)


def headline(found: list[Problem], package: Package) -> str:
    """What is wrong, on one line: the inputs of `found` (`problems`) and those declared."""
    takes = declared(package)
    listed = ", ".join(takes[:SHOWN]) or "no input"
    if len(takes) > SHOWN:
        listed += f" and {len(takes) - SHOWN} more"
    names = ", ".join(_names(found))
    return f"no flow reads input(s) {names}; the workflow's flows declare: {listed}"


def _names(found: list[Problem]) -> list[str]:
    return [(p.field or "").removeprefix("inputs.") for p in found]


def _named(name: str) -> re.Pattern[str]:
    return re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")


def _reads(app: App, name: str, named: re.Pattern[str]) -> bool:
    if app.input(name) is not None:
        return True
    api = app.raw.get("api")
    return bool(named.search(app.code) or (isinstance(api, str) and named.search(api)))
