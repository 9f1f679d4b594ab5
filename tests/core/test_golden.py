"""Golden tests: every sample package runs to the results recorded from DIZEST (where DIZEST is
right) and to our stricter expectations (where it is not)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import DATA

BEHAVIOUR = ["c01_variables", "c03_fanout", "c04_error", "c13_reverse_order"]
SHAPES = ["chain10_noop", "chain10_sleep", "fan5_sleep", "dag100", "cpu_loop", "cpu2_parallel"]
STATUS = {"done": "ready", "error": "error", "skipped": "idle"}


def expected(name: str) -> dict:
    return json.loads((DATA / f"{name}.expected.json").read_text())


@pytest.mark.parametrize("name", BEHAVIOUR)
def test_behaviour_matches_expected(name: str, make_workflow, tmp_path: Path) -> None:
    spec = expected(name)
    report = make_workflow(DATA / spec["workflow"]).run(timeout=spec["timeout_s"], workdir=tmp_path)
    wants = {want["status"] for want in spec["expect"]["flows"].values()}
    assert report["status"] == ("error" if "error" in wants else "ready")
    for flow_id, want in spec["expect"]["flows"].items():
        got = report["flows"][flow_id]
        assert got["status"] == STATUS[want["status"]], (flow_id, got)
        if want["status"] == "skipped":
            assert got["reason"].startswith("upstream failed: ")
        for out, value in want.get("outputs", {}).items():
            if isinstance(value, dict) and value.get("$absent"):
                assert out not in got["outputs"], (flow_id, out)
            else:
                assert got["outputs"].get(out, "<missing>") == value, (flow_id, out)
        if "log_len" in want:
            assert len(got["log"]) == want["log_len"], got["log"]
        text = "\n".join(e if isinstance(e, str) else json.dumps(e) for e in got["log"])
        for fragment in want.get("log_contains", []):
            assert fragment in text
        assert "<br>" not in text and "&nbsp;" not in text  # plain text, never HTML


@pytest.mark.parametrize("name", SHAPES)
def test_shape_values(name: str, make_workflow, tmp_path: Path) -> None:
    spec = expected(name)
    report = make_workflow(DATA / spec["workflow"], concurrency=4).run(workdir=tmp_path)
    assert report["status"] == "ready"
    for flow_id, value in spec["values"].items():
        assert report["flows"][flow_id]["outputs"][spec["output_name"]] == value


@pytest.mark.parametrize("name", ["dag1000", "wide1000"])
def test_thousand_flow_shapes(name: str, make_workflow, tmp_path: Path) -> None:
    spec = expected(name)
    report = make_workflow(DATA / spec["workflow"]).run(workdir=tmp_path)
    assert report["status"] == "ready"
    got = {f: report["flows"][f]["outputs"][spec["output_name"]] for f in spec["sinks"]}
    assert got == spec["sinks"]
    indexes = sorted(f["index"] for f in report["flows"].values())
    assert indexes == list(range(1, len(report["flows"]) + 1))
