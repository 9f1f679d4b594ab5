"""Run inputs a user typed into a password field are shown only to that user; the values a
workflow stores in its password fields, only to who may write the workflow.

A workflow's grantees (viewers included) may read the owner's runs of it; the values the owner
gave its `inputtype: password` variables (a database password, an API key) are not theirs to
read. Which inputs are passwords comes from the run's own package snapshot; without one (the
run expired) every value is masked for them.

The same values typed into a flow's password field in the editor and saved are stored in the
package (each flow's `data`, as DIZEST stores them): every grantee read them in the workflow,
its .dwp and each run's snapshot. A reader who may not write the workflow (a viewer, a runner)
now gets them masked (`stored_masked`); its runs still use the stored values (a run form sends
only the fields changed), and who may write it (its owner, editors, admins) could change its
code to print them anyway, so they see them as stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dizest_core import dwp
from dizest_core.run_inputs import join_inputs, split_inputs

MASK = "********"


def password_names(package: Mapping[str, Any]) -> tuple[set[str], dict[str, set[str]]]:
    """The password variables of the package (read as `dwp` reads any): by any app, and by
    each flow (its app's)."""
    model, _ = dwp.parse(dict(package))  # structure only: whatever it holds, never raises
    by_app = {
        app.id: {spec.name for spec in app.inputs if spec.inputtype == "password"}
        for app in model.apps.values()
    }
    by_flow = {flow.id: by_app.get(flow.app_id, set()) for flow in model.flows.values()}
    return set().union(*by_app.values()), by_flow


def masked(
    inputs: Mapping[str, Any],
    flow_inputs: Mapping[str, Mapping[str, Any]],
    package: Mapping[str, Any] | None,
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """`inputs` (by name, for every flow reading it) and `flow_inputs` (by flow, then name)
    with the password values replaced by MASK (all of them when `package` is None)."""
    if package is None:
        return {k: MASK for k in inputs}, {f: {k: MASK for k in v} for f, v in flow_inputs.items()}
    anywhere, by_flow = password_names(package)
    shown = {k: MASK if k in anywhere else v for k, v in inputs.items()}
    per_flow = {
        f: {k: MASK if k in by_flow.get(f, anywhere) else v for k, v in values.items()}
        for f, values in flow_inputs.items()
    }
    return shown, per_flow


def masked_joined(inputs: Mapping[str, Any], package: Mapping[str, Any] | None) -> dict[str, Any]:
    """`inputs` as a submit or a schedule gives them (`flow_id.name` for one flow's) with the
    password values replaced by MASK (all of them when `package` is None)."""
    if package is None:
        return {k: MASK for k in inputs}
    model, _ = dwp.parse(dict(package))
    return join_inputs(*masked(*split_inputs(inputs, model), package))


def stored_masked(package: Any) -> Any:
    """`package` with the values its flows store for password variables (a non-empty `data`
    entry) replaced by MASK: a copy when it holds any, else `package` itself."""
    if not isinstance(package, Mapping) or not isinstance(package.get("flow"), Mapping):
        return package
    _, by_flow = password_names(package)
    flows = dict(package["flow"])
    for flow_id, names in by_flow.items():
        flow = flows.get(flow_id)
        data = flow.get("data") if isinstance(flow, Mapping) else None
        if not isinstance(flow, Mapping) or not isinstance(data, Mapping):
            continue
        hidden = {k: MASK for k in names if k in data and data[k] not in (None, "")}
        if hidden:
            flows[flow_id] = {**flow, "data": {**data, **hidden}}
    return {**package, "flow": flows} if flows != package["flow"] else package
