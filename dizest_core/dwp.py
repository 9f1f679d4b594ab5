"""The .dwp file format: the only module that knows how DIZEST writes a workflow package.

Reading is lenient where DIZEST is (unknown keys kept, `data` optional, 3.x `inactive` and 4.x
`active` flags, a flow with neither is active) and strict where DIZEST would hang or crash:
`load` collects every problem at once and raises one ValidationError naming flow, app and field.
Saving writes the original JSON back with only the fields the caller changed.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dizest_core import gcpause, interpreter
from dizest_core.code_check import syntax_problems
from dizest_core.errors import Problem, ValidationError
from dizest_core.graph import Graph, format_cycle
from dizest_core.job import unsafe_flow_id
from dizest_core.model import OUTPUT, VARIABLE, App, Connection, Flow, InputSpec, Package

Source = str | os.PathLike[str] | Mapping[str, Any] | Package


def load(source: Source, *, extra_apps: Mapping[str, App] | None = None) -> Package:
    """Read and validate a package from a path, JSON text, dict or Package; raise on any error."""
    with gcpause.paused():  # millions of acyclic objects at once (see gcpause)
        package, problems = parse(source, extra_apps=extra_apps)
        problems += validate(package)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise ValidationError(errors)
    return package


def check(source: Source, *, extra_apps: Mapping[str, App] | None = None) -> list[Problem]:
    """Every problem of a package (errors and warnings), without raising."""
    return checked(source, extra_apps=extra_apps)[1]


def checked(
    source: Source, *, extra_apps: Mapping[str, App] | None = None
) -> tuple[Package, list[Problem]]:
    """The package as far as it could be built, with every problem of it (as `check`)."""
    with gcpause.paused():
        package, problems = parse(source, extra_apps=extra_apps)
        if any(
            p.code in ("not_json", "not_object", "missing_apps", "missing_flow") for p in problems
        ):
            return package, problems
        return package, problems + validate(package)


def parse(
    source: Source, *, extra_apps: Mapping[str, App] | None = None
) -> tuple[Package, list[Problem]]:
    """Build the model as far as possible, returning it with the structural problems found."""
    if isinstance(source, Package):
        return source, []
    obj, problems = _read_json(source)
    if problems:
        return Package({}, {}, {}), problems
    assert isinstance(obj, dict)
    for key, code in (("apps", "missing_apps"), ("flow", "missing_flow")):
        if not isinstance(obj.get(key), dict):
            problems.append(Problem(code, f"top-level '{key}' must be an object", field=key))
    if problems:
        return Package({}, {}, obj), problems
    apps = {k: parse_app(k, v, problems) for k, v in obj["apps"].items()}
    for app_id, app in (extra_apps or {}).items():
        apps.setdefault(app_id, app)
    flows = {k: _parse_flow(k, v, problems) for k, v in obj["flow"].items()}
    return Package(apps, flows, obj), problems


def _read_json(source: Source) -> tuple[Any, list[Problem]]:
    if isinstance(source, Mapping):
        obj: Any = source
    else:
        text = source
        if isinstance(source, os.PathLike) or (
            isinstance(source, str) and _looks_like_path(source)
        ):
            try:
                text = Path(source).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                return None, [Problem("unreadable", f"cannot read {os.fspath(source)}: {exc}")]
        try:
            obj = json.loads(text)  # type: ignore[arg-type]
        except (ValueError, RecursionError) as exc:
            return None, [Problem("not_json", f"not valid JSON: {exc}")]
    if not isinstance(obj, Mapping):
        return None, [Problem("not_object", "a package must be a JSON object")]
    return dict(obj), []


def _looks_like_path(text: str) -> bool:
    return not text.lstrip().startswith(("{", "[", '"')) and "\n" not in text and len(text) < 4096


def parse_app(key: str, raw: Any, problems: list[Problem]) -> App:
    if not isinstance(raw, dict):
        problems.append(Problem("bad_app", "app must be an object", app=key))
        return App(id=key, code="", raw={})
    code = raw.get("code")
    if not isinstance(code, str):
        problems.append(Problem("missing_code", "app has no 'code' string", app=key, field="code"))
        code = ""
    inputs = []
    for i, spec in enumerate(_list(raw, "inputs", key, problems)):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str) or not spec["name"]:
            problems.append(
                Problem("bad_input", "input needs a name", app=key, field=f"inputs[{i}]")
            )
            continue
        kind = spec.get("type", OUTPUT)
        if kind not in (OUTPUT, VARIABLE):
            problems.append(
                Problem(
                    "bad_input",
                    f"input type {kind!r} is not output or variable",
                    app=key,
                    field=f"inputs[{i}].type",
                )
            )
            kind = VARIABLE
        inputtype = spec.get("inputtype")
        inputs.append(
            InputSpec(
                spec["name"],
                kind,
                inputtype if isinstance(inputtype, str) else None,
                _text(spec.get("description")),
            )
        )
    outputs = []
    for i, spec in enumerate(_list(raw, "outputs", key, problems)):
        name = spec.get("name") if isinstance(spec, dict) else None
        if not isinstance(name, str) or not name:
            problems.append(
                Problem("bad_output", "output needs a name", app=key, field=f"outputs[{i}]")
            )
            continue
        outputs.append(name)
    title = _title(raw, problems, app=key)
    return App(key, code, tuple(inputs), tuple(outputs), title, raw)


# A flow's id travels in each of its events and Redis fields (DIZEST makes them app id + a time)
MAX_FLOW_ID = 256


def _parse_flow(key: str, raw: Any, problems: list[Problem]) -> Flow:
    unsafe = unsafe_flow_id(key)
    if unsafe:
        problems.append(Problem("bad_flow_id", unsafe, flow=key[:MAX_FLOW_ID], field="id"))
    if len(key) > MAX_FLOW_ID:
        problems.append(
            Problem(
                "long_id",
                f"flow id of {len(key)} characters: at most {MAX_FLOW_ID}",
                flow=key[:MAX_FLOW_ID] + "...",
                field="id",
            )
        )
    if not isinstance(raw, dict):
        problems.append(Problem("bad_flow", "flow must be an object", flow=key))
        return Flow(id=key, app_id="", raw={})
    if raw.get("id", key) != key:
        problems.append(
            Problem(
                "id_mismatch",
                f"flow id {raw.get('id')!r} differs from its key",
                flow=key,
                field="id",
            )
        )
    app_id = raw.get("app_id")
    if not isinstance(app_id, str) or not app_id:
        problems.append(Problem("missing_app_id", "flow has no app_id", flow=key, field="app_id"))
        app_id = ""
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        problems.append(Problem("bad_data", "flow data must be an object", flow=key, field="data"))
        data = {}
    title = _title(raw, problems, flow=key)
    return Flow(
        key, app_id, is_active(raw), title, data, _parse_connections(key, raw, problems), raw
    )


def _list(raw: Mapping[str, Any], name: str, app: str, problems: list[Problem]) -> list[Any]:
    value = raw.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(Problem(f"bad_{name}", f"app {name} must be a list", app=app, field=name))
        return []
    return value


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _title(raw: Mapping[str, Any], problems: list[Problem], **where: str) -> str:
    """A title is text or absent (null): the console shows it as text, and a probe's object
    title made every viewer's workflow, editor and run page fail."""
    value = raw.get("title")
    if value is not None and not isinstance(value, str):
        problems.append(Problem("bad_title", "title must be text", field="title", **where))
    return _text(value)


def is_active(raw: Mapping[str, Any]) -> bool:
    """DIZEST's activity flags: 4.x `active`, else 3.x `inactive`; a flow with neither is active."""
    if "active" in raw:
        return bool(raw["active"])
    if "inactive" in raw:
        return not raw["inactive"]
    return True


def _parse_connections(
    key: str, raw: Mapping[str, Any], problems: list[Problem]
) -> dict[str, tuple[Connection, ...]]:
    inputs = raw.get("inputs") or {}
    result: dict[str, tuple[Connection, ...]] = {}
    if not isinstance(inputs, dict):
        problems.append(
            Problem("bad_inputs", "flow inputs must be an object", flow=key, field="inputs")
        )
        return result
    for name, spec in inputs.items():
        conns = spec.get("connections") if isinstance(spec, dict) else None
        if conns is None:
            continue
        field = f"inputs.{name}.connections"  # only for problems: a fast path per flow
        if not isinstance(conns, list):
            problems.append(
                Problem("bad_connection", "connections must be a list", flow=key, field=field)
            )
            continue
        parsed = []
        for i, conn in enumerate(conns):
            if isinstance(conn, dict):
                node, out = conn.get("node"), conn.get("input")
                if isinstance(node, str) and isinstance(out, str):
                    parsed.append(Connection(node, out))
                    continue
            problems.append(
                Problem(
                    "bad_connection",
                    "connection needs 'node' and 'input' strings",
                    flow=key,
                    field=f"{field}[{i}]",
                )
            )
        result[name] = tuple(parsed)
    return result


def validate(package: Package) -> list[Problem]:
    """Semantic problems: unknown apps, dangling connections, cycles (with path), bad code."""
    problems: list[Problem] = []
    for flow in package.flows.values():
        app = package.apps.get(flow.app_id)
        if app is None:
            if flow.app_id:
                problems.append(
                    Problem(
                        "unknown_app",
                        f"unknown app_id {flow.app_id!r}",
                        flow=flow.id,
                        app=flow.app_id,
                        field="app_id",
                    )
                )
            continue
        problems += _connection_problems(package, flow, app)
    for cycle in Graph.from_package(package).find_cycles():
        problems.append(_cycle_problem(package, cycle))
    problems += interpreter.problems(package.raw)
    return problems + syntax_problems(package)


def _cycle_problem(package: Package, cycle: list[str]) -> Problem:
    """A self-loop or a cycle, named by its first flow and that flow's app (like every other
    problem, so an editor can point at both)."""
    flow, app = cycle[0], package.flows[cycle[0]].app_id or None
    if len(cycle) == 2:
        message = f"flow reads its own output: {format_cycle(cycle)}"
        return Problem("self_loop", message, flow=flow, app=app)
    return Problem("cycle", f"cycle: {format_cycle(cycle)}", flow=flow, app=app)


def _connection_problems(package: Package, flow: Flow, app: App) -> list[Problem]:
    problems: list[Problem] = []
    flows, apps = package.flows, package.apps  # once per flow: 100,000 flows, 300,000 edges
    for name, conns in flow.connections.items():
        if not conns:
            continue
        field = f"inputs.{name}"
        if app.input(name) is None:
            problems.append(
                Problem(
                    "undeclared_input",
                    f"connection into input {name!r} that app "
                    f"{app.id!r} does not declare (ignored)",
                    flow=flow.id,
                    app=app.id,
                    field=field,
                    severity="warning",
                )
            )
            continue
        for conn in conns:
            src = flows.get(conn.node)
            if src is None:
                problems.append(
                    Problem(
                        "unknown_source",
                        f"connection from unknown flow {conn.node!r}",
                        flow=flow.id,
                        app=app.id,
                        field=field,
                    )
                )
                continue
            src_app = apps.get(src.app_id)
            if src_app is not None and conn.output not in src_app.outputs:
                # a warning, as DIZEST runs it: app code may output any name (dizest.output),
                # and files edited over time carry such connections; the consumer gets the
                # value if the producer outputs that name, else its default
                problems.append(
                    Problem(
                        "unknown_output",
                        f"flow {package.flow_name(conn.node)} does not declare output "
                        f"{conn.output!r}: the input gets its default unless the code outputs it",
                        flow=flow.id,
                        app=app.id,
                        field=field,
                        severity="warning",
                    )
                )
    return problems


def to_dict(package: Package) -> dict[str, Any]:
    """The package as DIZEST JSON: the original document, deep-copied, every field kept."""
    return copy.deepcopy(dict(package.raw))


def save(package: Package, path: str | os.PathLike[str]) -> None:
    """Write the package to `path` atomically."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(to_dict(package), fh, ensure_ascii=False, indent=1)
    os.replace(tmp, target)
