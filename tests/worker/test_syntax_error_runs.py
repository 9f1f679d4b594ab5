"""A package whose app code does not compile runs as DIZEST runs it (a warning, never a refusal):
the flows of that app end in error with the SyntaxError as their reason, the flows below them
are not run (as below any failed flow), the others run, and no attempt is retried (it would
fail alike); locally and on real workers alike (one rule set). Any other error of a package
still refuses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from dizest_core import dwp
from dizest_core.errors import ValidationError
from dizest_core.workflow import Workflow
from tests.conftest import package


def half_done() -> dict:
    made = package(
        {
            "bad": {"code": "x = 1\nx = = 2\n", "outputs": ["x"]},
            "use": {"code": "y = dizest.input('x')", "inputs": ["x"], "outputs": ["y"]},
            "ok": {"code": "z = 3", "outputs": ["z"]},
        },
        {
            "broken": {"app": "bad"},
            "below": {"app": "use", "in": {"x": [("broken", "x")]}},
            "free": {"app": "ok"},
        },
    )
    # retries of its own: an attempt again would fail alike, so none is made
    made["flow"]["broken"]["dizest"] = {"retries": 2}
    return made


EXPECTED = {
    "broken": ("error", "SyntaxError: invalid syntax (<flow broken>, line 2)"),
    "below": ("idle", "upstream failed: broken"),
    "free": ("ready", None),
}


def ends(report: dict) -> dict:
    return {f: (d["status"], d["reason"]) for f, d in report["flows"].items()}


def retried(events: list) -> list:
    return [e.data["reason"] for e in events if "retrying" in str(e.data.get("reason"))]


def test_a_syntax_error_is_a_warning_and_a_local_run_fails_only_its_flows(tmp_path: Path) -> None:
    (problem,) = dwp.check(half_done())
    assert (problem.code, problem.app, problem.severity) == ("syntax_error", "bad", "warning")
    assert "line 2" in problem.message and "flow(s) 'bad' (broken)" in problem.message
    with Workflow(half_done()) as wf:
        events = list(wf.stream(workdir=tmp_path))
        report = wf.runner.report()
    assert report["status"] == "error" and ends(report) == EXPECTED
    assert retried(events) == []
    assert report["flows"]["free"]["outputs"] == {"z": 3}


def test_other_errors_still_refuse_the_package() -> None:
    pkg = half_done()
    pkg["flow"]["gone"] = {"app_id": "nowhere"}
    with pytest.raises(ValidationError) as caught:
        dwp.load(pkg)
    assert [p.code for p in caught.value.problems] == ["unknown_app"]


def test_a_distributed_run_ends_the_same(cluster) -> None:
    cluster("w1", concurrency=2)
    run_id = cluster.client.submit(half_done())
    report = cluster.client.wait(run_id, timeout=60)
    assert report["status"] == "error" and ends(report) == EXPECTED
    assert retried(list(cluster.client.runs.events(run_id))) == []
    assert report["flows"]["free"]["outputs"] == {"z": 3}


def test_code_too_deep_to_compile_is_a_warning_not_a_crash(tmp_path: Path) -> None:
    """`x = 1+1+...+1` of 100,000 terms (a 200 kB body) makes compile() raise RecursionError:
    it escaped the check, a 500 on every validate, save and submit of it. It is that app's
    syntax_error, and its flow fails alone on it, as a flow of code that does not compile."""
    deep = "x = " + "+".join(["1"] * 100_000) + "\n"
    made = package(
        {"bad": {"code": deep, "outputs": ["x"]}, "ok": {"code": "z = 3", "outputs": ["z"]}},
        {"broken": {"app": "bad"}, "free": {"app": "ok"}},
    )
    (problem,) = dwp.check(made)
    assert (problem.code, problem.app, problem.severity) == ("syntax_error", "bad", "warning")
    assert "maximum recursion depth exceeded during compilation" in problem.message
    with Workflow(made) as wf:
        list(wf.stream(workdir=tmp_path))
        report = wf.runner.report()
    assert report["flows"]["broken"]["status"] == "error"
    assert report["flows"]["free"]["outputs"] == {"z": 3}


KEYS = ", ".join(f"{i}: a{i}" for i in range(5000))


def uncompilable() -> dict:
    """Apps whose code does not compile without a SyntaxError of the usual shape: too deep for
    the compiler, too deep for the parser, a NUL byte; or that validate says would take too long
    to compile (a mapping pattern of 5,000 keys, ~3 s of the compiler's quadratic checks; a
    dotted name of 2,000 parts): a flow compiled them anyway, for minutes at 20,000 keys, and
    was retried (a probe's find). Each flow with retries of its own."""
    made = package(
        {
            "deep": {"code": "x = " + "+".join(["1"] * 100_000) + "\n"},
            "neg": {"code": "x = " + "-" * 100_000 + "1\n"},
            "nul": {"code": "x = 1\x00\n"},
            "crowded": {"code": "match 1:\n    case {" + KEYS + "}: pass\n"},
            "dotted": {"code": "import " + ".".join(["a"] * 2000) + "\n"},
            "ok": {"code": "z = 3", "outputs": ["z"]},
        },
        {
            "deep": {"app": "deep"},
            "neg": {"app": "neg"},
            "nul": {"app": "nul"},
            "crowded": {"app": "crowded"},
            "dotted": {"app": "dotted"},
            "free": {"app": "ok"},
        },
    )
    for flow_id in ("deep", "neg", "nul", "crowded", "dotted"):
        made["flow"][flow_id]["dizest"] = {"retries": 2}
    return made


UNCOMPILED = {
    "deep": ("error", "RecursionError: maximum recursion depth exceeded during compilation"),
    "neg": ("error", "MemoryError"),
    "nul": ("error", "SyntaxError: source code string cannot contain null bytes"),
    "crowded": (
        "error",
        "SyntaxError: 5,000 keys in one mapping pattern: too many to compile in time "
        "(<flow crowded>, line 2)",
    ),
    "dotted": (
        "error",
        "SyntaxError: a dotted name of more than 1000 parts, too long to compile "
        "(<flow dotted>, line 1)",
    ),
    "free": ("ready", None),
}


def test_code_that_does_not_compile_for_any_reason_is_not_retried(tmp_path: Path) -> None:
    """Whatever compiling a flow's code raises, no attempt can run it: it fails once, with what
    compile() said and no frame of the engine's. (Only a SyntaxError naming the flow's own file
    was recognised: these three were each tried three times.)"""
    with Workflow(uncompilable()) as wf:
        events = list(wf.stream(workdir=tmp_path))
        report = wf.runner.report()
    assert ends(report) == UNCOMPILED
    assert retried(events) == []
    logs = [str(e.data.get("entry")) for e in events if e.flow_id == "deep" and e.data.get("entry")]
    assert logs == [UNCOMPILED["deep"][1]]  # the whole log: no traceback through dizest_core


def test_code_that_does_not_compile_is_not_retried_on_workers(cluster) -> None:
    cluster("w1", concurrency=2)
    run_id = cluster.client.submit(uncompilable())
    report = cluster.client.wait(run_id, timeout=60)
    assert ends(report) == UNCOMPILED
    assert retried(list(cluster.client.runs.events(run_id))) == []
