"""The limits on run inputs (dizest_core.limits), fuzzed against the job's wire encoding: a value
the checker lets through always serializes into a FlowJob; any other is an InputError naming
its limit, never another exception, a hang or a RecursionError."""

from __future__ import annotations

import json
import pickle
import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dizest_core import limits, wire
from dizest_core.errors import InputError
from dizest_core.job import FlowJob
from dizest_core.settings import Settings

SMALL = Settings(
    concurrency=1,
    max_input_depth=8,
    max_input_bytes=4096,
    max_input_nodes=300,
    max_input_string=512,
    max_input_keys=20,
)
DEFAULT = Settings(concurrency=1)

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=600)
)
json_like = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=30)
        | st.dictionaries(st.text(max_size=10), inner, max_size=30)
        | st.tuples(inner, inner)
    ),
    max_leaves=120,
)
unpicklable = st.sampled_from(
    [
        lambda: lambda: 1,
        threading.Lock,
        lambda: (i for i in range(3)),
        object,
        lambda: b"bytes",
        lambda: {1, 2},
        lambda: 1j,
    ]
).map(lambda make: make())


def nested(depth: int, kind: str) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = {"k": value} if kind == "dict" else [value]
    return value


def job_with(value: Any) -> FlowJob:
    return FlowJob("r", "f", "a", "", (), (), "/tmp", params={"x": value})


def passes(value: Any, config: Settings) -> bool:
    try:
        limits.check_inputs({"x": value}, config)
    except InputError as exc:
        assert exc.code.startswith("input_") and exc.details["name"] == "input 'x'"
        return False
    return True


@settings(  # derandomized: a random draw of a huge nested value once outran the 120 s timeout
    max_examples=200,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.one_of(json_like, unpicklable, st.lists(unpicklable, min_size=1)))
def test_what_passes_the_checker_always_encodes_as_a_job(value: Any) -> None:
    if passes(value, SMALL):
        body = wire.encode_job(job_with(value))
        assert pickle.loads(body[wire.HEADER.size :]).params == {"x": value}
        text = json.dumps(value, allow_nan=False)
        assert len(text.encode("utf-8", "surrogatepass")) <= SMALL.max_input_bytes


@settings(max_examples=300, deadline=None, database=None)
@given(st.integers(1, 3000), st.sampled_from(["list", "dict"]))
def test_depth_is_refused_above_the_limit_and_only_there(depth: int, kind: str) -> None:
    value = nested(depth, kind)
    if depth <= DEFAULT.max_input_depth:
        assert passes(value, DEFAULT)
        return
    with pytest.raises(InputError) as caught:
        limits.check_inputs({"x": value}, DEFAULT)
    assert caught.value.code == "input_too_deep"
    assert str(caught.value) == "input 'x' is nested deeper than 32 levels (or contains itself)"
    assert caught.value.details["limit"] == "max_input_depth"


def test_a_value_too_deep_for_the_job_encoding_is_what_the_door_stops() -> None:
    """Why the door exists: 500 levels parse as JSON, yet cannot be pickled into a job."""
    deep = nested(500, "dict")
    json.loads(json.dumps(deep))
    with pytest.raises(RecursionError):
        wire.encode_job(job_with(deep))
    assert not passes(deep, DEFAULT)


@settings(max_examples=200, deadline=None, database=None)
@given(json_like, st.data())
def test_a_value_that_contains_itself_is_refused_never_walked_forever(
    value: Any, data: st.DataObject
) -> None:
    holder: list[Any] = [value]
    inner = data.draw(st.sampled_from(["list", "dict"]))
    if inner == "list":
        holder.append(holder)
    else:
        holder.append({"self": holder, "other": value})
    with pytest.raises(InputError) as caught:
        limits.check_inputs({"x": holder}, SMALL)
    assert caught.value.code in {"input_too_deep", "input_too_large"} or not passes(value, SMALL)


@settings(max_examples=100, deadline=None, database=None)
@given(st.integers(2, 50), st.integers(1, 400))
def test_all_inputs_of_a_run_share_one_size_budget(count: int, length: int) -> None:
    inputs = {f"i{n}": "x" * length for n in range(count)}
    size = sum(len(json.dumps(v)) for v in inputs.values())
    try:
        limits.check_inputs(inputs, SMALL)
    except InputError as exc:
        assert exc.code == "input_too_large" and size > SMALL.max_input_bytes
        assert exc.details["limit"] in {"max_input_bytes", "max_input_nodes"}
    else:
        assert size <= SMALL.max_input_bytes


def test_each_limit_is_named() -> None:
    cases = {
        "input_string_too_long": "y" * 513,
        "input_too_many_keys": {str(n): n for n in range(21)},
        "input_too_large": list(range(301)),
        "input_not_json": float("inf"),
    }
    for code, value in cases.items():
        with pytest.raises(InputError) as caught:
            limits.check_inputs({"x": value}, SMALL)
        assert caught.value.code == code, value
    with pytest.raises(InputError) as caught:
        limits.check_inputs({"x": 10**5000}, DEFAULT)
    assert caught.value.code == "input_not_json"
    with pytest.raises(InputError) as caught:
        limits.check_value(nested(9, "list"), "the package", "package", SMALL)
    assert caught.value.code == "package_too_deep"


def test_the_limits_are_settings() -> None:
    config = Settings.from_env({"DIZEST_MAX_INPUT_DEPTH": "4", "DIZEST_MAX_INPUT_BYTES": "100"})
    assert (config.max_input_depth, config.max_input_bytes) == (4, 100)
    assert passes(nested(4, "list"), config) and not passes(nested(5, "list"), config)
