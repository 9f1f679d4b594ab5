"""A run's report keeps, per flow, the last of its log and results that fit the flow's share of
REPORT_BYTES: a flow may print 16 MB, and a probe's run of 8 such flows made one report
request hold 3.4x that in the API process."""

from __future__ import annotations

from pathlib import Path

from dizest_core import events as ev
from dizest_core.events import Event
from dizest_core.report import FLOW_REPORT_BYTES_MAX, FLOW_REPORT_BYTES_MIN, ReportBuilder
from tests.conftest import package


def logged(builder: ReportBuilder, flow: str, n: int, size: int, start: int = 0) -> None:
    for i in range(start, start + n):
        text = f"{i:06d}" + "x" * (size - 6)
        builder.apply(Event(f"{i}-0", "r", ev.LOG_APPEND, flow, {"entry": text}))


def held(report: dict, flow: str) -> int:
    entries = report["flows"][flow]["log"] + [r["value"] for r in report["flows"][flow]["results"]]
    return sum(len(e if isinstance(e, str) else e.get("data", "")) for e in entries)


def test_each_flows_log_keeps_its_newest_lines_within_its_share() -> None:
    builder = ReportBuilder("r", ["a", "b"])
    assert builder.flow_bytes == FLOW_REPORT_BYTES_MAX  # two flows: the most each may keep
    logged(builder, "a", 400, 100_000)  # 40 MB printed
    logged(builder, "b", 3, 10)
    report = builder.report(lambda flow: {})
    assert held(report, "a") <= FLOW_REPORT_BYTES_MAX
    assert report["flows"]["a"]["log"][-1].startswith("000399")  # the newest stays
    assert [e[:6] for e in report["flows"]["b"]["log"]] == ["000000", "000001", "000002"]
    builder.apply(Event("9-0", "r", ev.LOG_CLEAR, "a", {}))
    logged(builder, "a", 2, 10, start=500)  # after a clear, the count starts again
    assert [e[:6] for e in builder.report(lambda flow: {})["flows"]["a"]["log"]] == [
        "000500",
        "000501",
    ]


def test_a_run_of_many_flows_shares_the_budget_and_results_count_too() -> None:
    builder = ReportBuilder("r", [f"f{i}" for i in range(2000)])
    assert builder.flow_bytes == FLOW_REPORT_BYTES_MIN  # 32 MB / 2000, but never below this
    result = {"mime": "text/html", "data": "<b>" + "y" * 50_000}
    for i in range(5):
        builder.apply(Event(f"{i}-1", "r", ev.RESULT, "f0", {"name": f"t{i}", "value": result}))
    logged(builder, "f0", 10, 30_000)
    report = builder.report(lambda flow: {})
    assert held(report, "f0") <= FLOW_REPORT_BYTES_MIN + 100
    assert report["flows"]["f0"]["log"][-1].startswith("000009")


def test_a_local_runs_report_keeps_a_loud_flows_last_lines(make_workflow, tmp_path: Path) -> None:
    code = "for i in range(60):\n    print(f'{i:06d}' + 'z' * 99_994)\nv = 1"
    pkg = package({"a": {"code": code, "outputs": ["v"]}}, {"f": {"app": "a"}})
    report = make_workflow(pkg).run(workdir=tmp_path)
    log = report["flows"]["f"]["log"]
    assert report["flows"]["f"]["status"] == "ready"
    assert sum(len(e) for e in log) <= FLOW_REPORT_BYTES_MAX  # 6 MB printed
    assert log[-1].startswith("000059") and not log[0].startswith("000000")
