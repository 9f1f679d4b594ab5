"""The order the suite runs in: the test files that took longest in a recorded run first
(`weights.json`: seconds per file, setup and teardown included), each file's tests together
and in their own order.

With `--dist loadfile` (pyproject's addopts) an xdist worker takes a whole file at a time, the
next one in this order when it is free: the long files are shared out first, and the workers
end together on short ones rather than one running a long file alone at the end. A file the
record does not know yet weighs as the median file. `pytest --record-weights` writes what this
run's files took into the record (files that no longer exist leave it; files not run keep
theirs): after a whole run, when files have grown or moved.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

import pytest

RECORD = Path(__file__).with_name("weights.json")
ROOT = Path(__file__).resolve().parents[1]


def file_of(nodeid: str) -> str:
    """The test file of a node id, as xdist's `loadfile` groups them."""
    return nodeid.split("::", 1)[0]


def load() -> dict[str, float]:
    try:
        found: dict[str, float] = json.loads(RECORD.read_text())
    except FileNotFoundError:
        return {}
    return found


def order(items: list[pytest.Item]) -> None:
    """Sort `items` in place: heaviest file first; stable, so each file's tests keep their order."""
    weights = load()
    default = statistics.median(weights.values()) if weights else 0.0
    first: dict[str, int] = {}
    for index, item in enumerate(items):
        first.setdefault(file_of(item.nodeid), index)
    items.sort(
        key=lambda item: (-weights.get(file_of(item.nodeid), default), first[file_of(item.nodeid)])
    )


class Recorder:
    """Adds up each file's reported durations (in xdist's main process: every worker's), and
    writes them into the record at the end."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[file_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self) -> None:
        record = {name: s for name, s in load().items() if (ROOT / name).exists()}
        record.update({name: round(s, 1) for name, s in self.seconds.items()})
        RECORD.write_text(json.dumps(dict(sorted(record.items())), indent=0) + "\n")
