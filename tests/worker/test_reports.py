"""Run reports folded once (dizest_worker.reports): a report read again folds only the events
that came since, and is the same document a fresh fold of the whole stream gives."""

from __future__ import annotations

import threading
from typing import Any

from dizest_core import events as ev
from dizest_core.events import Event, EventFactory
from dizest_worker.client import Client
from dizest_worker.reports import REPORT_BATCH, Reports, Source
from tests.conftest import package, wait_for

SLOW = package(
    {"talk": {"code": "import time\nprint('one')\ndizest.clear()\nprint('two')\n"
                      "dizest.result('r', 5)\nx = 3\nprint('start')\ntime.sleep(60)\n",
              "outputs": ["x"]},
     "use": {"code": "z = dizest.input('x')", "inputs": ["x"], "outputs": ["z"]},
     "quick": {"code": "q = 7\nprint('q')\n", "outputs": ["q"]}},
    {"s": {"app": "talk"}, "u": {"app": "use", "in": {"x": [("s", "x")]}}, "k": {"app": "quick"}},
)  # fmt: skip


def fresh(client: Client, run_id: str) -> dict[str, Any]:
    """The report as a reader that never saw the run folds it: the whole stream at once."""
    other = Client(client.settings, redis_client=client.redis, celery_app=client.app)
    return other.get(run_id)


def test_a_report_read_again_folds_only_the_new_events(cluster: Any) -> None:
    cluster("w1", concurrency=2)
    client: Client = cluster.client
    run_id = client.submit(SLOW)
    wait_for(lambda: "start" in str(client.get(run_id)["flows"]["s"]["log"]), timeout=60)
    wait_for(lambda: client.get(run_id)["flows"]["k"]["status"] == "ready", timeout=60)
    mid = client.get(run_id)
    assert mid["flows"]["s"]["log"] == ["two", "start"]  # the clear folded: "one" is gone
    assert mid["flows"]["k"]["outputs"] == {"q": 7}
    assert mid == fresh(client, run_id)
    client.cancel(run_id)
    done = client.wait(run_id, timeout=60)
    assert done["status"] == "cancelled" and done["flows"]["u"]["status"] != "ready"
    last = client.get(run_id)
    assert last == fresh(client, run_id)
    total = len(client.event_batch(run_id, count=100_000))
    # each event read once, however many reads there were (the waits above read it dozens of times)
    assert client.reports.events_folded == total


def source_of(events: list[Event], states: dict[str, dict[str, Any]]) -> tuple[Source, list[int]]:
    """A run's stored parts as lists; `reads` counts the previews read per call."""
    reads: list[int] = []

    def after(last: str | None, n: int) -> list[Event]:
        start = 0 if last is None else int(last)
        return events[start : start + n]

    def previews(flows: list[str]) -> dict[str, dict[str, Any]]:
        reads.append(len(flows))
        return {f: {"n": states.get(f, {}).get("index")} for f in flows}

    source = Source(
        lambda: ["a", "b"], after, lambda flows: {f: states[f] for f in flows if f in states},
        previews,
    )  # fmt: skip
    return source, reads


def test_previews_are_read_again_only_for_flows_whose_state_changed() -> None:
    make = EventFactory("r1")
    events = [make(ev.LOG_APPEND, "a", entry=f"{i}") for i in range(600)]
    states = {"a": {"status": "running", "reason": None, "index": 1, "duration_s": None}}
    source, reads = source_of(events, states)
    reports = Reports(max_log_entries=1000)
    first = reports.report("r1", source)
    assert len(first["flows"]["a"]["log"]) == 600 and reads == [2]
    events += [
        make(ev.LOG_CLEAR, "a"),
        make(ev.LOG_APPEND, "a", entry="x"),
    ]
    states["a"] = {"status": "ready", "reason": None, "index": 1, "duration_s": 0.5}
    second = reports.report("r1", source)
    assert second["flows"]["a"]["log"] == ["x"]
    assert second["flows"]["a"]["status"] == "ready" and reads == [2, 1]  # a's alone
    assert reports.events_folded == 602 > REPORT_BATCH
    assert Reports(1000).report("r1", source_of(events, states)[0]) == second


def test_the_cache_keeps_at_most_its_bytes_and_runs() -> None:
    make = EventFactory("r")
    line = "x" * 1000
    events = [make(ev.LOG_APPEND, "a", entry=line) for _ in range(50)]
    reports = Reports(max_log_entries=1000, max_runs=2, max_bytes=120_000)
    for run in ("r1", "r2", "r3"):
        reports.report(run, source_of(events, {})[0])
    assert list(reports._folds) == ["r2", "r3"]  # two runs at most, the oldest read out
    big = [make(ev.LOG_APPEND, "a", entry=line) for _ in range(150)]
    reports.report("r4", source_of(big, {})[0])  # alone over the bytes: never kept
    assert list(reports._folds) == ["r2", "r3"]
    reports.report("r5", source_of(events, {})[0])
    assert list(reports._folds) == ["r3", "r5"]


def test_two_readers_of_a_run_being_folded_fold_its_events_once() -> None:
    """Two request threads read a run no fold had yet: each made its own fold and read and
    folded every event (twice the work the cache is there to save, and `events_folded` counted
    both). The first reader pauses between reading its events and storing them; the second
    must wait for that fold, then read only what came after it."""
    make = EventFactory("r1")
    events = [make(ev.LOG_APPEND, "a", entry=f"{i}") for i in range(300)]
    states = {"a": {"status": "running", "reason": None, "index": 1, "duration_s": None}}
    source, _ = source_of(events, states)
    read, go = threading.Event(), threading.Event()
    reads: list[tuple[str, str | None]] = []

    def paused(last: str | None, n: int) -> list[Event]:
        batch = source_of(events, states)[0].events(last, n)
        reads.append((threading.current_thread().name, last))
        if threading.current_thread().name == "first" and not read.is_set():
            read.set()  # read, not yet stored: the second reader comes now
            assert go.wait(30)
        return batch

    reports = Reports(max_log_entries=1000)
    shared = Source(source.flow_ids, paused, source.states, source.previews)
    answers: dict[str, dict[str, Any]] = {}

    def reader() -> None:
        answers[threading.current_thread().name] = reports.report("r1", shared)

    first = threading.Thread(target=reader, name="first")
    second = threading.Thread(target=reader, name="second")
    first.start()
    assert read.wait(30)
    second.start()
    # the second reader waits for the first's fold (or, folding beside it, is done already)
    wait_for(lambda: getattr(reports, "fold_waits", 0) == 1 or not second.is_alive())
    go.set()
    first.join(30)
    second.join(30)
    assert reports.events_folded == len(events)  # each event read and folded once
    last = events[-1].id
    assert reads == [("first", None), ("first", events[REPORT_BATCH - 1].id), ("second", last)]
    fresh_report = Reports(1000).report("r1", source_of(events, states)[0])
    assert answers["first"] == answers["second"] == fresh_report
    assert len(fresh_report["flows"]["a"]["log"]) == 300
