"""A flow's log lines and displayed results are bounded per attempt (`DIZEST_MAX_LOG_BYTES`):
past it they are dropped with one engine line, the flow goes on, and other flows keep their logs.
A probe's flow printing 1 MB lines grew a worker's Redis by 380 MB in 16 s before."""

from __future__ import annotations

import time
from pathlib import Path

from dizest_core import events as ev
from dizest_core.logbudget import MIN_COST, LogBudget
from dizest_core.outcome import Finished, Signal
from tests.conftest import package

LOUD = """
for i in range(40):
    print(str(i).rjust(100_000, '.'))
v = 'finished'
"""
SHOWY = "for i in range(40):\n    dizest.result(f'r{i}', 'x' * 100_000)\nv = 1"
RICH = "for i in range(40):\n    display({'k': 'x' * 100_000})\nv = 1"
FLOOD = """
import os, time
end = time.monotonic() + 1.5
chunk = b"a\\n" * 32768
written = 0
while time.monotonic() < end:
    written += os.write(1, chunk)
v = written
"""


def test_a_loud_flow_is_cut_at_its_budget_and_others_keep_theirs(make_workflow, tmp_path: Path):
    pkg = package(
        {
            "loud": {"code": LOUD, "outputs": ["v"]},
            "showy": {"code": SHOWY, "outputs": ["v"]},
            "rich": {"code": RICH, "outputs": ["v"]},
            "quiet": {"code": "for i in range(5):\n    print(i)\nv = 1", "outputs": ["v"]},
        },
        {
            "loud": {"app": "loud"},
            "showy": {"app": "showy"},
            "rich": {"app": "rich"},
            "quiet": {"app": "quiet"},
        },
    )
    wf = make_workflow(pkg, max_log_bytes=1 << 20)
    events = list(wf.stream(workdir=tmp_path))
    report = wf.runner.report()
    loud = report["flows"]["loud"]
    assert loud["status"] == "ready" and loud["outputs"] == {"v": "finished"}
    printed = [e for e in loud["log"] if e.strip(".").isdigit()]
    assert 5 <= len(printed) <= 11  # ~10 lines of 100 KB fit in 1 MB
    notices = [e for e in loud["log"] if "DIZEST_MAX_LOG_BYTES" in e]
    assert len(notices) == 1 and "passed 1 MB" in notices[0]
    results = [e for e in events if e.type == ev.RESULT and e.flow_id == "showy"]
    assert 5 <= len(results) <= 11 and report["flows"]["showy"]["status"] == "ready"
    assert sum("DIZEST_MAX_LOG_BYTES" in e for e in report["flows"]["showy"]["log"]) == 1
    rich = [e for e in events if e.type == ev.LOG_APPEND and e.flow_id == "rich"]
    assert 5 <= len(rich) <= 12  # display()ed values count by their payload, notice included
    assert report["flows"]["rich"]["status"] == "ready"
    assert report["flows"]["quiet"]["log"] == ["0", "1", "2", "3", "4"]


def test_the_budget_counts_per_attempt_and_spares_engine_lines() -> None:
    budget = LogBudget()
    budget.start("f", 1000)
    line = Signal("f", "log", {"entry": "x" * 400, "stream": "print"})
    engine = Signal("f", "log", {"entry": "dizest: protocol error", "stream": "engine"})
    clear = Signal("f", "clear")
    got = budget.admit([line, line, engine, line, line, clear])
    assert got[:3] == [line, line, engine]
    assert "DIZEST_MAX_LOG_BYTES" in got[3].data["entry"] and len(got) == 4
    assert budget.admit([clear] * (1000 // MIN_COST)) == []  # clears cost too, once over
    done = Finished("f", True, None, {}, {}, None, 0.0)
    assert budget.admit([done]) == [done]
    budget.start("f", 1000)  # the next attempt starts afresh
    assert budget.admit([line]) == [line]
    # a rich entry (what display() and print() of a value send) costs its payload, and text
    # costs its UTF-8 bytes, not its characters
    budget.start("h", 1000)
    rich = Signal("h", "log", {"entry": {"mime": "text/html", "data": "z" * 600}, "stream": "print"})  # fmt: skip
    wide = Signal("h", "log", {"entry": "\ufffd" * 200, "stream": "print"})  # 600 bytes
    got = budget.admit([rich, wide])
    assert got[0] == rich and len(got) == 2 and "DIZEST_MAX_LOG_BYTES" in got[1].data["entry"]
    other = Signal("g", "log", {"entry": "y" * 5000, "stream": "print"})
    assert budget.admit([other]) == [other]  # a flow never started here is not counted


def test_what_a_flow_prints_past_its_budget_costs_the_engine_no_parsing(
    make_workflow, tmp_path: Path
):
    """The engine reads a flow's pipe outside the flow's cgroup: cutting 2-byte lines cost it
    ~1.5 us each, so a flow printing "a\\n" for ever made it spend 0.8 CPU (a probe, for a
    flow capped at 0.05). Past the budget it reads and drops, without cutting lines."""
    pkg = package({"flood": {"code": FLOOD, "outputs": ["v"]}}, {"f": {"app": "flood"}})
    wf = make_workflow(pkg, max_log_bytes=64 << 10)
    cpu = time.process_time()  # the engine runs in this process (its poll loop, the pipes)
    report = wf.run(workdir=tmp_path)
    cpu = time.process_time() - cpu
    assert report["flows"]["f"]["status"] == "ready", report
    mb = report["flows"]["f"]["outputs"]["v"] / 1e6
    # reading and dropping: ~0.6 ms a MB (1.5 GB in 1.5 s); cutting lines: ~700 ms a MB (the flow
    # then writes only as fast as the engine cuts, ~1-2 MB in its 1.5 s)
    assert cpu < 0.3 + 0.005 * mb, (cpu, mb)


LONE = "print('a\\ud800b')\ndisplay({'k': '\\udfff'})\ndizest.result('r', 'c\\ud800')\nv = 1"


def test_a_lone_surrogate_in_what_a_flow_prints_is_counted_not_fatal(make_workflow, tmp_path):
    """Flow code may print a lone surrogate (the wire keeps it, escaped): counting its UTF-8
    bytes raised UnicodeEncodeError in the engine's poll, which ended a worker's task, so the
    flow was retried and reported "worker lost" (found fuzzing `dizest serve`)."""
    pkg = package(
        {
            "lone": {"code": LONE, "outputs": ["v"]},
            "raises": {"code": "raise ValueError('bad \\ud800')", "outputs": ["v"]},
        },
        {"p": {"app": "lone"}, "r": {"app": "raises"}},
    )
    report = make_workflow(pkg, max_log_bytes=1 << 20).run(workdir=tmp_path)
    printed = report["flows"]["p"]
    assert printed["status"] == "ready" and printed["outputs"] == {"v": 1}, report
    assert printed["log"][0] == "a\ud800b"
    raised = report["flows"]["r"]
    assert raised["status"] == "error" and "ValueError: bad \ud800" in raised["log"][-1], raised
