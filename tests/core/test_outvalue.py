"""Large outputs (issue 12): written without an in-memory pickle, previewed without a full repr."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from dizest_core.outvalue import preview
from tests.conftest import package

MB = 1024 * 1024
# The flow records its own VmHWM before making the value and again each time it sends a frame
# (OUTPUT, DONE): the last sample comes after its output was serialized and previewed.
HWM = """
import sys
def _hwm():
    with open('/proc/self/status') as fp:
        return int([l.split()[1] for l in fp if l.startswith('VmHWM:')][0]) * 1024
def _profile(frame, event, arg):
    if event == 'call' and frame.f_code.co_name == 'send_frame':
        dizest.drive().write('hwm', str(_hwm() - base))
base = _hwm()
"""


def two_flows(make: str, use: str) -> dict:
    return package(
        {
            "make": {"code": make, "outputs": ["v"]},
            "use": {"code": use, "inputs": ["x"], "outputs": ["v"]},
        },
        {"m": {"app": "make"}, "u": {"app": "use", "in": {"x": [("m", "v")]}}},
    )


@pytest.mark.parametrize("sandbox", ["off", "on"])
def test_a_large_output_costs_the_producer_about_its_own_size(make_workflow, tmp_path, sandbox):
    size = 60 * MB
    make = HWM + f"v = b'x' * {size}\nsys.setprofile(_profile)\n"
    wf = make_workflow(two_flows(make, "v = len(dizest.input('x'))"), sandbox=sandbox)
    os.chmod(tmp_path, 0o777)  # a sandboxed flow runs as another uid
    report = wf.run(workdir=tmp_path)
    assert report["flows"]["u"]["outputs"] == {"v": size}, report
    grown = int((tmp_path / "hwm").read_text())
    assert grown <= 1.3 * size  # before: value + pickle + repr, over 3x
    shown = report["flows"]["m"]["outputs"]["v"]
    assert shown["$type"] == "builtins.bytes" and shown["$repr"].startswith("b'xxxx")
    stored = wf.runner.store.get(report["run_id"], "m", "v")
    assert Path(stored.path).stat().st_size == stored.size > size


def test_a_numpy_array_travels_through_an_artifact_intact(make_workflow, tmp_path):
    pytest.importorskip("numpy")
    make = "import numpy\nv = numpy.arange(2_000_000, dtype='float64')"
    use = "v = [float(dizest.input('x').sum()), dizest.input('x').dtype.str]"
    report = make_workflow(two_flows(make, use), inline_max_bytes=1024).run(workdir=tmp_path)
    assert report["flows"]["u"]["outputs"] == {"v": [float(sum(range(2_000_000))), "<f8"]}
    assert "array(" in report["flows"]["m"]["outputs"]["v"]["$repr"]


def test_a_value_plain_pickle_fails_on_midway_is_rewritten_whole_by_cloudpickle(
    make_workflow, tmp_path
):
    # The bytes go to the artifact file before pickle meets the flow's own function and fails;
    # cloudpickle then starts the same file again: one file, loadable, nothing partial left.
    make = f"def f(n):\n    return n + 1\nv = (b'y' * {3 * MB}, f)"
    use = "data, f = dizest.input('x')\nv = [len(data), data[:2].decode(), f(41)]"
    wf = make_workflow(two_flows(make, use), inline_max_bytes=1024)
    report = wf.run(workdir=tmp_path)
    assert report["flows"]["u"]["outputs"] == {"v": [3 * MB, "yy", 42]}, report
    stored = wf.runner.store.get(report["run_id"], "m", "v")
    assert os.listdir(Path(stored.path).parent) == [Path(stored.path).name]


def test_small_outputs_stay_inline(make_workflow, tmp_path):
    wf = make_workflow(two_flows("v = b'z' * 100", "v = len(dizest.input('x'))"))
    report = wf.run(workdir=tmp_path)
    assert report["flows"]["u"]["outputs"] == {"v": 100}
    assert wf.runner.store.get(report["run_id"], "m", "v")[:1] == b"\x80"  # inline pickle


@pytest.mark.parametrize(
    "value",
    [b"x" * 50_000_000, "s" * 50_000_000, bytearray(50_000_000), list(range(5_000_000))],
    ids=["bytes", "str", "bytearray", "list"],
)
def test_preview_of_a_huge_value_reads_only_what_it_shows(value):
    tracemalloc.start()
    try:
        shown = preview(value, 1000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(shown["$repr"]) <= 1000
    assert shown["$repr"][:3] in ("b'x", "'ss", "byt", "[0,")
    assert peak < 1_000_000  # a full repr (or json.dumps) would allocate tens of MB


def test_preview_of_small_values_is_unchanged():
    assert preview({"a": [1, 2.5, "x"]}, 1000) == {"a": [1, 2.5, "x"]}
    assert preview("s" * 10, 1000) == "s" * 10
    assert preview(b"ab", 1000) == {"$type": "builtins.bytes", "$repr": "b'ab'"}
    assert preview(list(range(2000)), 1000)["$repr"].endswith("...]")
