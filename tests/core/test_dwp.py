"""Tests for dizest_core.dwp: loading, validation (every problem at once), flags, round-trip."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dizest_core import dwp
from dizest_core.errors import Problem, ValidationError, WorkflowError
from dizest_core.model import App, Package

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLES = sorted(DATA.glob("*.dwp"))


def app(app_id: str, inputs=("x",), outputs=("v",), **extra: Any) -> dict[str, Any]:
    return {
        "id": app_id,
        "title": app_id,
        "code": "pass\n",
        "inputs": [{"type": "output", "name": n} for n in inputs],
        "outputs": [{"name": n} for n in outputs],
        **extra,
    }


def flow(flow_id: str, app_id: str = "node", sources=(), **extra: Any) -> dict[str, Any]:
    """A flow whose input `x` reads output `v` of each source (or (source, output) pairs)."""
    conns = [
        {"node": s, "input": "v"} if isinstance(s, str) else {"node": s[0], "input": s[1]}
        for s in sources
    ]
    raw = {"id": flow_id, "app_id": app_id, "active": True, "data": {}}
    raw["inputs"] = {"x": {"connections": conns}} if conns else {}
    raw.update(extra)
    return raw


def pkg(*flows: dict[str, Any], apps: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apps": apps if apps is not None else {"node": app("node")},
        "flow": {f["id"]: f for f in flows},
    }


def by_code(problems: list[Problem], code: str) -> list[Problem]:
    return [p for p in problems if p.code == code]


def only(problems: list[Problem], code: str) -> Problem:
    found = by_code(problems, code)
    assert len(found) == 1, f"expected one {code!r} problem in {problems}"
    return found[0]


# --------------------------------------------------------------------------- samples


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_sample_loads_without_problems(path: Path) -> None:
    package = dwp.load(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert list(package.flows) == list(raw["flow"])
    assert set(package.apps) == set(raw["apps"])
    assert [p for p in dwp.check(path) if p.severity == "error"] == []


def test_load_accepts_path_string_text_dict_and_package() -> None:
    path = DATA / "chain10_noop.dwp"
    text = path.read_text(encoding="utf-8")
    from_path = dwp.load(path)
    for source in (str(path), text, json.loads(text), from_path):
        assert dwp.load(source).flows == from_path.flows


def test_sample_connections_are_parsed() -> None:
    package = dwp.load(DATA / "dag100.dwp")
    raw = json.loads((DATA / "dag100.dwp").read_text(encoding="utf-8"))
    for flow_id, raw_flow in raw["flow"].items():
        expected = {
            (c["node"], c["input"])
            for spec in raw_flow.get("inputs", {}).values()
            for c in spec.get("connections", [])
        }
        got = {
            (c.node, c.output)
            for conns in package.flows[flow_id].connections.values()
            for c in conns
        }
        assert got == expected


# --------------------------------------------------------------------------- structural problems


def test_not_json() -> None:
    problems = dwp.check("{not json")
    assert [p.code for p in problems] == ["not_json"]
    with pytest.raises(ValidationError) as info:
        dwp.load("{not json")
    assert [p.code for p in info.value.problems] == ["not_json"]
    assert isinstance(info.value, WorkflowError)


def test_top_level_not_an_object_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "list.dwp"
    path.write_text("[1, 2]")
    assert [p.code for p in dwp.check(path)] == ["not_object"]


def test_top_level_not_an_object_from_multiline_text() -> None:
    assert [p.code for p in dwp.check("[\n1, 2\n]")] == ["not_object"]


@pytest.mark.parametrize("text", ["[1, 2]", '[{"apps": {}, "flow": {}}]'])
def test_top_level_not_an_object_from_json_text(text: str) -> None:
    # JSON text is a documented source ("a path, JSON text, dict or Package"); a one-line
    # JSON array must be reported as not_object, not as "cannot read <text>: no such file".
    assert [p.code for p in dwp.check(text)] == ["not_object"]


def test_missing_apps_and_flow_are_both_reported() -> None:
    problems = dwp.check({"title": "x"})
    assert {(p.code, p.field) for p in problems} == {
        ("missing_apps", "apps"),
        ("missing_flow", "flow"),
    }


def test_missing_apps() -> None:
    problems = dwp.check({"flow": {}})
    assert [(p.code, p.field) for p in problems] == [("missing_apps", "apps")]


def test_missing_flow() -> None:
    problems = dwp.check({"apps": {}})
    assert [(p.code, p.field) for p in problems] == [("missing_flow", "flow")]


def test_deeply_nested_json_is_not_json_not_a_crash() -> None:
    depth = 100_000
    assert [p.code for p in dwp.check("[" * depth + "]" * depth)] == ["not_json"]
    nested = '{"apps": {}, "flow": {}, "x": ' + "[" * depth + "]" * depth + "}"
    assert [p.code for p in dwp.check(nested)] == ["not_json"]
    with pytest.raises(ValidationError):
        dwp.load(nested)


def test_unreadable_path_is_a_problem(tmp_path: Path) -> None:
    problems = dwp.check(tmp_path / "missing.dwp")
    assert [p.code for p in problems] == ["unreadable"]


# --------------------------------------------------------------------------- semantic problems


def test_unknown_app_id() -> None:
    p = only(dwp.check(pkg(flow("a", app_id="nope"))), "unknown_app")
    assert (p.flow, p.app, p.field) == ("a", "nope", "app_id")
    assert "nope" in p.message


def test_connection_to_unknown_flow() -> None:
    p = only(dwp.check(pkg(flow("a", sources=["ghost"]))), "unknown_source")
    assert (p.flow, p.app, p.field) == ("a", "node", "inputs.x")
    assert "ghost" in p.message


def test_connection_to_unknown_output_of_known_flow() -> None:
    p = only(dwp.check(pkg(flow("a"), flow("b", sources=[("a", "nothere")]))), "unknown_output")
    assert (p.flow, p.app, p.field) == ("b", "node", "inputs.x")
    assert "nothere" in p.message
    assert "flow 'node' (a)" in p.message  # named by its app (no title), its id after it
    assert p.severity == "warning"  # DIZEST runs it: code may output any name


def test_flow_id_differing_from_its_key() -> None:
    raw = pkg(flow("a"))
    raw["flow"]["a"]["id"] = "b"
    p = only(dwp.check(raw), "id_mismatch")
    assert (p.flow, p.field) == ("a", "id")


def test_self_loop() -> None:
    problems = dwp.check(pkg(flow("a", sources=["a"])))
    p = only(problems, "self_loop")
    assert (p.flow, p.app) == ("a", "node")
    assert "a -> a" in p.message
    assert by_code(problems, "cycle") == []


def test_three_cycle_names_the_path() -> None:
    problems = dwp.check(
        pkg(flow("a", sources=["c"]), flow("b", sources=["a"]), flow("c", sources=["b"]))
    )
    p = only(problems, "cycle")
    assert (p.flow, p.app) == ("a", "node")
    assert "a -> b -> c -> a" in p.message
    with pytest.raises(ValidationError, match="a -> b -> c -> a"):
        dwp.load(pkg(flow("a", sources=["c"]), flow("b", sources=["a"]), flow("c", sources=["b"])))


def test_app_missing_code() -> None:
    apps = {"node": app("node")}
    del apps["node"]["code"]
    p = only(dwp.check(pkg(flow("a"), apps=apps)), "missing_code")
    assert (p.app, p.field) == ("node", "code")


def test_flow_missing_app_id() -> None:
    raw = pkg(flow("a"))
    del raw["flow"]["a"]["app_id"]
    p = only(dwp.check(raw), "missing_app_id")
    assert (p.flow, p.field) == ("a", "app_id")


@pytest.mark.parametrize(
    ("connections", "field"),
    [
        ("a", "inputs.x.connections"),
        ({"node": "a"}, "inputs.x.connections"),
        ([{"node": "a"}], "inputs.x.connections[0]"),
        ([{"input": "v"}], "inputs.x.connections[0]"),
        (["a"], "inputs.x.connections[0]"),
        ([{"node": "a", "input": "v"}, {"node": 3, "input": "v"}], "inputs.x.connections[1]"),
    ],
)
def test_malformed_connections(connections: Any, field: str) -> None:
    raw = pkg(flow("a"), flow("b"))
    raw["flow"]["b"]["inputs"] = {"x": {"connections": connections}}
    p = only(dwp.check(raw), "bad_connection")
    assert (p.flow, p.field) == ("b", field)
    with pytest.raises(ValidationError):
        dwp.load(raw)


def test_flow_inputs_not_an_object() -> None:
    raw = pkg(flow("a"))
    raw["flow"]["a"]["inputs"] = ["x"]
    p = only(dwp.check(raw), "bad_inputs")
    assert (p.flow, p.field) == ("a", "inputs")


def test_connection_into_undeclared_input_is_only_a_warning() -> None:
    raw = pkg(flow("a"), flow("b"))
    raw["flow"]["b"]["inputs"] = {"y": {"connections": [{"node": "a", "input": "v"}]}}
    p = only(dwp.check(raw), "undeclared_input")
    assert p.severity == "warning"
    assert (p.flow, p.app, p.field) == ("b", "node", "inputs.y")
    package = dwp.load(raw)  # does not raise
    assert set(package.flows) == {"a", "b"}


# --------------------------------------------------------------------------- all at once


def several_problems() -> dict[str, Any]:
    apps = {"node": app("node"), "nocode": app("nocode")}
    del apps["nocode"]["code"]
    raw = pkg(
        flow("a", sources=["a"]),  # self-loop
        flow("b", app_id="ghost_app"),  # unknown app
        flow("c", sources=["ghost_flow"]),  # unknown source
        flow("d", sources=[("c", "nothere")]),  # unknown output
        flow("e", app_id="nocode"),  # app without code
        flow("f"),  # id mismatch below
        flow("g", sources=["h"]),
        flow("h", sources=["g"]),  # 2-cycle g <-> h
        apps=apps,
    )
    raw["flow"]["f"]["id"] = "not_f"
    return raw


EXPECTED_SEVERAL = {
    ("self_loop", "a"),
    ("unknown_app", "b"),
    ("unknown_source", "c"),
    ("unknown_output", "d"),
    ("missing_code", None),
    ("id_mismatch", "f"),
    ("cycle", "g"),
}


def test_check_returns_every_problem_at_once() -> None:
    problems = dwp.check(several_problems())
    assert {(p.code, p.flow) for p in problems} == EXPECTED_SEVERAL
    assert len(problems) == len(EXPECTED_SEVERAL)
    assert "g -> h -> g" in only(problems, "cycle").message


def test_load_raises_one_validation_error_listing_every_problem() -> None:
    with pytest.raises(ValidationError) as info:
        dwp.load(several_problems())
    err = info.value
    errors = EXPECTED_SEVERAL - {("unknown_output", "d")}  # a warning: it does not stop a load
    assert {(p.code, p.flow) for p in err.problems} == errors
    text = str(err)
    assert f"{len(errors)} problem(s)" in text
    for p in err.problems:
        assert str(p) in text
    assert "'ghost_app'" in text
    assert "'ghost_flow'" in text
    assert "a -> a" in text
    assert "g -> h -> g" in text


def test_warnings_are_not_raised_alongside_errors() -> None:
    raw = pkg(flow("a", app_id="ghost"), flow("b"))
    raw["flow"]["b"]["inputs"] = {"y": {"connections": [{"node": "b", "input": "v"}]}}
    with pytest.raises(ValidationError) as info:
        dwp.load(raw)
    assert all(p.severity == "error" for p in info.value.problems)
    assert {p.code for p in info.value.problems} == {"unknown_app", "self_loop"}


# --------------------------------------------------------------------------- flags and data


@pytest.mark.parametrize(
    ("flags", "active"),
    [
        ({"active": False}, False),
        ({"active": True}, True),
        ({"inactive": True}, False),
        ({"inactive": False}, True),
        ({}, True),
        ({"active": True, "inactive": True}, True),
        ({"active": False, "inactive": False}, False),
    ],
)
def test_activity_flags(flags: dict[str, bool], active: bool) -> None:
    raw = pkg(flow("a"))
    del raw["flow"]["a"]["active"]
    raw["flow"]["a"].update(flags)
    assert dwp.load(raw).flows["a"].active is active


@pytest.mark.parametrize("data", ["missing", None])
def test_missing_data_is_empty(data: Any) -> None:
    raw = pkg(flow("a"))
    if data == "missing":
        del raw["flow"]["a"]["data"]
    else:
        raw["flow"]["a"]["data"] = data
    assert dict(dwp.load(raw).flows["a"].data) == {}


def test_data_is_kept() -> None:
    raw = pkg(flow("a", data={"k": "3", "c": True}))
    assert dict(dwp.load(raw).flows["a"].data) == {"k": "3", "c": True}


# --------------------------------------------------------------------------- round trip


def with_unknown_fields() -> dict[str, Any]:
    raw = pkg(flow("a"), flow("b", sources=["a"]))
    raw["custom_top"] = {"nested": [1, 2, {"z": None}], "unicode": "한글"}
    raw["version"] = "9.9"
    raw["apps"]["node"]["weird"] = [True, 1.5]
    raw["apps"]["node"]["cdn"] = {"js": [], "css": []}
    raw["flow"]["a"]["pos_x"] = 123
    raw["flow"]["a"]["zz_unknown"] = {"k": ["v"]}
    raw["flow"]["b"]["outputs"] = {"v": {"connections": [{"node": "x", "output": "y"}]}}
    return raw


def test_to_dict_round_trips_c01_exactly() -> None:
    path = DATA / "c01_variables.dwp"
    original = json.loads(path.read_text(encoding="utf-8"))
    assert dwp.to_dict(dwp.load(path)) == original


def test_to_dict_keeps_unknown_fields_and_is_a_copy() -> None:
    raw = with_unknown_fields()
    snapshot = copy.deepcopy(raw)
    package = dwp.load(raw)
    out = dwp.to_dict(package)
    assert out == snapshot
    assert list(out) == list(snapshot)  # key order kept too
    out["custom_top"]["nested"].append("mutated")
    out["flow"]["a"]["pos_x"] = 0
    assert dwp.to_dict(package) == snapshot


@pytest.mark.parametrize("source", ["c01", "unknown_fields"])
def test_save_round_trips_every_field(tmp_path: Path, source: str) -> None:
    if source == "c01":
        original = json.loads((DATA / "c01_variables.dwp").read_text(encoding="utf-8"))
    else:
        original = with_unknown_fields()
    target = tmp_path / "out.dwp"
    dwp.save(dwp.load(copy.deepcopy(original)), target)
    assert json.loads(target.read_text(encoding="utf-8")) == original
    assert dwp.to_dict(dwp.load(target)) == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.dwp"]


def test_save_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "out.dwp"
    target.write_text("old content that is much longer than nothing " * 100)
    dwp.save(dwp.load(DATA / "chain10_noop.dwp"), target)
    assert json.loads(target.read_text(encoding="utf-8")) == json.loads(
        (DATA / "chain10_noop.dwp").read_text(encoding="utf-8")
    )


def _spy_renames(monkeypatch, fail: bool = False) -> list[tuple[Path, Path]]:
    """Record (and optionally fail) every rename, however save reaches os.replace/os.rename."""
    renames: list[tuple[Path, Path]] = []
    real = {"replace": os.replace, "rename": os.rename}

    def make(name: str):
        def spy(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            renames.append((Path(src), Path(dst)))
            if fail:
                raise OSError("rename failed")
            real[name](src, dst, *args, **kwargs)

        return spy

    monkeypatch.setattr(os, "replace", make("replace"))
    monkeypatch.setattr(os, "rename", make("rename"))
    return renames


def test_save_writes_a_sibling_then_renames_it_into_place(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.dwp"
    target.write_text("PREVIOUS")
    renames = _spy_renames(monkeypatch)
    dwp.save(dwp.load(DATA / "c03_fanout.dwp"), target)
    assert len(renames) == 1
    src, dst = renames[0]
    assert dst == target
    assert src.parent == target.parent and src != target  # same filesystem: atomic rename
    assert not src.exists()
    assert json.loads(target.read_text(encoding="utf-8")) == json.loads(
        (DATA / "c03_fanout.dwp").read_text(encoding="utf-8")
    )


def test_save_never_touches_the_target_before_the_rename(tmp_path: Path, monkeypatch) -> None:
    """If the final rename fails, the previous file is intact: nothing was written into it."""
    target = tmp_path / "out.dwp"
    target.write_text("PREVIOUS")
    _spy_renames(monkeypatch, fail=True)
    with pytest.raises(OSError):
        dwp.save(dwp.load(DATA / "c01_variables.dwp"), target)
    monkeypatch.undo()
    assert target.read_text() == "PREVIOUS"


# --------------------------------------------------------------------------- extra apps


def test_extra_apps_resolve_an_app_the_package_lacks() -> None:
    raw = pkg(flow("a", app_id="shared"), flow("b", sources=["a"]))
    assert {p.code for p in dwp.check(raw)} == {"unknown_app"}
    with pytest.raises(ValidationError):
        dwp.load(raw)
    shared = App("shared", "dizest.output('v', 1)\n", (), ("v",))
    package = dwp.load(raw, extra_apps={"shared": shared})
    assert isinstance(package, Package)
    assert package.app_of(package.flows["a"]) is shared
    assert dwp.check(raw, extra_apps={"shared": shared}) == []
    assert "shared" not in dwp.to_dict(package)["apps"]


def test_package_apps_win_over_extra_apps() -> None:
    raw = pkg(flow("a"))
    other = App("node", "other\n")
    package = dwp.load(raw, extra_apps={"node": other})
    assert package.apps["node"].code == "pass\n"


# --------------------------------------------------------------------------- never crash


@pytest.mark.parametrize("key", ["inputs", "outputs"])
@pytest.mark.parametrize("value", [5, True, 1.5])
def test_app_inputs_or_outputs_not_a_list_is_a_problem(key: str, value: Any) -> None:
    raw = pkg(flow("a"))
    raw["apps"]["node"][key] = value
    problems = dwp.check(raw)  # must report, not raise TypeError
    assert any(p.app == "node" and p.field and p.field.startswith(key) for p in problems)
    with pytest.raises(ValidationError):
        dwp.load(raw)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found += _paths(v, (*prefix, i))
    return found


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.data())
def test_check_never_raises_on_a_mutated_package(data) -> None:
    raw = pkg(flow("a"), flow("b", sources=["a"]), flow("c", sources=["a", "b"]))
    raw["apps"]["node"]["inputs"].append({"type": "variable", "name": "k", "inputtype": "number"})
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(raw)[1:]))
        value = data.draw(JSON_VALUES)
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    problems = dwp.check(copy.deepcopy(raw))
    assert all(isinstance(p, Problem) for p in problems)
    try:
        dwp.load(raw)
    except ValidationError as exc:
        assert exc.problems
