"""Text that travels in every status event of a flow and in its Redis fields (an error's reason,
the flow's id) is bounded: a flow's error text comes from the flow's own process, where hostile
code may send any length, and a flow id from the package."""

from __future__ import annotations

from pathlib import Path

import pytest

from dizest_core import dwp
from dizest_core.errors import ValidationError
from dizest_core.workflow import Workflow
from tests.conftest import package

FORGED = """
import os
from dizest_core import wire
dizest._emit((wire.ERROR, {'type': 'E' * 1_000_000, 'message': 'm' * 1_000_000, 'traceback': '',
              'compiled': True}))
os._exit(1)
"""


def test_a_forged_error_of_a_megabyte_gives_a_short_reason(tmp_path: Path) -> None:
    with Workflow(package({"a": {"code": FORGED}}, {"f": {"app": "a"}})) as wf:
        report = wf.run(workdir=tmp_path)
    reason = report["flows"]["f"]["reason"]
    assert report["flows"]["f"]["status"] == "error"
    assert reason == "E" * 200 + "...: " + "m" * 200 + "..."


def test_a_flow_id_longer_than_the_limit_is_refused() -> None:
    pkg = package({"a": {"code": "v = 1"}}, {"f" * 257: {"app": "a"}, "g" * 256: {"app": "a"}})
    with pytest.raises(ValidationError) as refused:
        dwp.load(pkg)
    problems = [p for p in refused.value.problems if p.code == "long_id"]
    assert [(p.message, p.flow) for p in problems] == [
        ("flow id of 257 characters: at most 256", "f" * 256 + "...")
    ]


def test_a_title_that_is_not_text_is_refused_where_it_is() -> None:
    """The console shows titles as text: a probe's `{"length": 1000}` title was stored and
    made every viewer's workflow, editor and run page fail. A null title is no title."""
    pkg = package({"a": {"code": "v = 1"}}, {"f": {"app": "a"}, "g": {"app": "a"}})
    pkg["flow"]["f"]["title"] = {"length": 1000}
    pkg["apps"]["a"]["title"] = 7
    pkg["flow"]["g"]["title"] = None
    with pytest.raises(ValidationError) as refused:
        dwp.load(pkg)
    found = {(p.code, p.flow, p.app, p.field) for p in refused.value.problems}
    assert found == {("bad_title", "f", None, "title"), ("bad_title", None, "a", "title")}
