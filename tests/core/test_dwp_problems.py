"""Tests for dizest_core.dwp's validation: structural and semantic problems, every problem
at once, and no crash on any mutated package.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dizest_core import dwp
from dizest_core.errors import Problem, ValidationError, WorkflowError
from tests.core.dwp_raw import app, by_code, flow, only, pkg

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
