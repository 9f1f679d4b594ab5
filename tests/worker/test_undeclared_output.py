"""A connection to an output the producing app does not declare is a warning, not an error (as
DIZEST runs such files): the run proceeds, the consumer gets the value when the producer's code
outputs that name, else its default; locally and on real workers alike."""

from __future__ import annotations

from pathlib import Path

from dizest_core import dwp
from dizest_core.workflow import Workflow
from tests.conftest import package


def undeclared() -> dict:
    return package(
        {
            "make": {"code": "v = 1\ndizest.output('extra', 41)", "outputs": ["v"]},
            "use": {"code": "v = dizest.input('x', -1) + 1", "inputs": ["x"], "outputs": ["v"]},
        },
        {
            "m": {"app": "make"},
            "got": {"app": "use", "in": {"x": [("m", "extra")]}},
            "missing": {"app": "use", "in": {"x": [("m", "never")]}},
        },
    )


def outputs(report: dict) -> dict:
    return {f: (d["status"], d["outputs"].get("v")) for f, d in report["flows"].items()}


EXPECTED = {"m": ("ready", 1), "got": ("ready", 42), "missing": ("ready", 0)}


def test_check_warns_and_a_local_run_proceeds(tmp_path: Path) -> None:
    problems = dwp.check(undeclared())
    assert {(p.code, p.flow, p.severity) for p in problems} == {
        ("unknown_output", "got", "warning"),
        ("unknown_output", "missing", "warning"),
    }
    with Workflow(undeclared()) as wf:
        assert outputs(wf.run(workdir=tmp_path)) == EXPECTED


def test_a_distributed_run_proceeds_the_same(cluster) -> None:
    cluster("w1", concurrency=1)
    report = cluster.client.wait(cluster.client.submit(undeclared()), timeout=60)
    assert report["status"] == "ready" and outputs(report) == EXPECTED
