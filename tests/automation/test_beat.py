"""Schedules against a real worker and real `dizest beat` processes: missed ticks run once or
are skipped as the schedule says, never twice, even with two beats; a tick whose owner lost the
right to run the workflow, or whose owner's runs hold their Redis quota, fails with a record
saying so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.automation.conftest import Stack
from tests.conftest import package, wait_for

# reads `k`: test_serve_beat's trigger and schedule give it (dizest_core.run_inputs)
PKG = package(
    {"a": {"code": "v = 1", "inputs": [("k", "variable", None)], "outputs": ["v"]}},
    {"f": {"app": "a"}},
)


def _workflow(stack: Stack, headers: dict[str, str]) -> str:
    answer = stack.api.call("POST", "/workflows", headers, json={"title": "t", "package": PKG})
    assert answer.status_code == 201, answer.json
    return str(answer.json["id"])


def _missed_daily(stack: Stack, wf_id: str, headers: dict[str, str], catchup: str) -> str:
    """A daily schedule whose tick was 5 minutes ago, with redbeat's entry set as if its last
    run was the day before: exactly one tick (today's) was missed while no beat ran."""
    fired = datetime.now(UTC) - timedelta(minutes=5)
    body = {"cron": f"{fired.minute} {fired.hour} * * *", "timezone": "UTC", "catchup": catchup}
    answer = stack.api.call("POST", f"/workflows/{wf_id}/schedules", headers, json=body)
    assert answer.status_code == 201, answer.json
    sid = str(answer.json["id"])
    entry = stack.auto.schedules.entry(sid)
    entry.reschedule(last_run_at=fired - timedelta(days=1))  # redbeat's own entry state
    return sid


def _history(stack: Stack, sid: str) -> list[dict[str, Any]]:
    return stack.auto.schedules.history(sid)


def test_a_missed_tick_runs_once_even_with_two_beats(stack: Stack) -> None:
    alice = stack.api.user("alice")
    wf_id = _workflow(stack, alice)
    once = _missed_daily(stack, wf_id, alice, "once")
    skip = _missed_daily(stack, wf_id, alice, "skip")
    before = {s: stack.auto.schedules.entry(s).last_run_at for s in (once, skip)}
    beats = [stack.start_beat(), stack.start_beat()]  # the second waits on redbeat's lock:
    history = wait_for(lambda: _history(stack, once), timeout=30)  # never fires too
    wait_for(lambda: _history(stack, skip), timeout=30)
    # both entries moved on: their next tick is tomorrow's
    for sid in (once, skip):
        entry = stack.auto.schedules.entry(sid)
        assert entry.last_run_at > before[sid]
        assert entry.due_at > datetime.now(UTC) + timedelta(hours=23)
    assert len(history) == 1 and "run_id" in history[0], history
    run_id = history[0]["run_id"]
    report = stack.api.call("GET", f"/runs/{run_id}", alice)
    assert report.status_code == 200 and report.json["owner"] == "alice"
    assert report.json["workflow_id"] == wf_id
    skipped = _history(stack, skip)
    assert len(skipped) == 1 and "skipped" in skipped[0] and "run_id" not in skipped[0]
    runs = stack.api.call("GET", "/runs", alice).json
    assert [r["run_id"] for r in runs["items"]] == [run_id]  # one run, not two
    assert runs["items"][0]["origin"] == {"kind": "schedule", "id": once}
    stack.api.services.client.wait(run_id, timeout=60)
    for beat in beats:  # started by a root serve: Celery's warning against root only misled
        assert " ready." in beat.log and "superuser" not in beat.log, beat.log


def test_a_tick_fails_with_a_record_when_the_owner_lost_the_right(stack: Stack) -> None:
    alice, bob = stack.api.user("alice"), stack.api.user("bob")
    wf_id = _workflow(stack, alice)
    grants = stack.api.call("PUT", f"/workflows/{wf_id}/grants", alice, json={"grants": {"bob": "runner"}})  # fmt: skip
    assert grants.status_code == 200
    sid = _missed_daily(stack, wf_id, bob, "once")
    # The API's revoke also deletes bob's schedules there (test_counted); a right lost any
    # other way (the store changed directly here) must still stop the tick at run time.
    stack.api.services.library.set_grants(wf_id, {})
    stack.start_beat()
    history = wait_for(lambda: _history(stack, sid), timeout=30)
    assert history[0]["error"] == f"owner 'bob' may no longer run workflow {wf_id!r}"
    assert stack.api.call("GET", "/runs", bob).json["items"] == []


def test_a_tick_is_refused_while_its_owners_runs_hold_their_quota(stack: Stack) -> None:
    alice = stack.api.user("alice")
    wf_id = _workflow(stack, alice)
    made = stack.api.call("POST", "/runs", alice, json={"workflow_id": wf_id})
    assert made.status_code == 201, made.json  # it holds a few kB of alice's Redis quota
    sid = _missed_daily(stack, wf_id, alice, "once")
    stack.env["DIZEST_RUN_QUOTA_BYTES"] = "1000"  # the beat's (the API's is the default 1 GiB)
    stack.start_beat()
    history = wait_for(lambda: _history(stack, sid), timeout=30)
    assert history[0]["error"].startswith("RunsQuota: your runs hold ")
    assert "your quota is 1000: new runs are refused" in history[0]["error"]
    runs = stack.api.call("GET", "/runs", alice).json["items"]
    assert [r["run_id"] for r in runs] == [made.json["run_id"]]  # the tick made none
    stack.api.services.client.wait(made.json["run_id"], timeout=60)


def test_a_tick_is_refused_while_its_owner_has_the_most_unfinished_runs(stack: Stack) -> None:
    """A probe had five every-minute schedules take a user past the 100 unfinished runs every
    submit is refused at: a tick counts them as a submit does."""
    alice = stack.api.user("alice")
    wf_id = _workflow(stack, alice)
    slow = package({"a": {"code": "import time\ntime.sleep(60)"}}, {"f": {"app": "a"}})
    made = stack.api.call("POST", "/runs", alice, json={"package": slow})  # unfinished
    assert made.status_code == 201, made.json
    sid = _missed_daily(stack, wf_id, alice, "once")
    stack.env["DIZEST_MAX_RUNS_PER_USER"] = "1"  # the beat's
    stack.start_beat()
    history = wait_for(lambda: _history(stack, sid), timeout=30)
    assert history[0]["error"] == "the owner already has 1 unfinished run(s)", history
    runs = stack.api.call("GET", "/runs", alice).json["items"]
    assert [r["run_id"] for r in runs] == [made.json["run_id"]]  # the tick made none
    stack.api.call("POST", f"/runs/{made.json['run_id']}/cancel", alice)
