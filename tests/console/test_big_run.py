"""A run of more flows than the graph draws (TOO_MANY, flowlist.js) is read in parts: its flows'
states alone (`GET /runs/<id>?flows=states`: counts by status and `last_event_id`), and one
flow's part of the report (`GET /runs/<id>/flows/<flow>`) when its panel opens. Its page never
reads the whole report (every flow's log and results: 10-12 s before a 100,000-flow run's list
showed) nor replays the run's events from the start; it follows the events after the states it
read. Real `dizest serve`, real Chromium."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from dizest_api.client import Client
from tests.conftest import package, wait_for
from tests.console.conftest import GO_API, UNTIL_GO, Console, go

FLOWLIST = Path(__file__).parents[2] / "dizest_api/console/static/js/flowlist.js"
match = re.search(r"TOO_MANY = (\d+)", FLOWLIST.read_text())
assert match, "flowlist.js names the threshold TOO_MANY"
N = int(match.group(1)) + 1
LIVE = 60
READY = re.compile(r"^ready\b")  # "ready: #2" (its completion order)
# f(i) is fed by f(i // 2): a run of f3 runs f0, f1, f3; a run of f5 runs f0, f1, f2, f5
APPS = {
    "root": {"code": "print('root line')\nv = 1\n", "outputs": ["v"]},
    "node": {"code": "v = 1\n", "inputs": ["x"], "outputs": ["v"]},
    "leaf": {"code": "print('leaf line')\nv = 3\n", "inputs": ["x"], "outputs": ["v"]},
    "hold": {"code": f"print('waiting')\n{UNTIL_GO}print('went')\nv = 2\n", "inputs": ["x"],
             "outputs": ["v"]},
}  # fmt: skip


@pytest.fixture(scope="module")
def big(console: Console) -> str:
    """A workflow of N flows, f1..f(N-1) each fed by f(i // 2); f2 holds until told to go."""
    flows: dict[str, dict[str, Any]] = {"f0": {"app": "root"}}
    for i in range(1, N):
        app = {2: "hold", 3: "leaf"}.get(i, "node")
        flows[f"f{i}"] = {"app": app, "in": {"x": [(f"f{i // 2}", "v")]}}
    pkg = package(APPS, flows)
    pkg["apps"]["hold"]["api"] = GO_API
    return str(console.api("POST", "/workflows", {"title": "big", "package": pkg})["id"])


@pytest.fixture(scope="module")
def ended(console: Console, big: str) -> str:
    """A finished run of `big` with f3 as its target: f0, f1 and f3 ran, the rest stayed idle."""
    run_id = str(console.api("POST", "/runs", {"workflow_id": big, "flows": ["f3"]})["run_id"])
    wait_for(lambda: console.api("GET", f"/runs/{run_id}")["status"] == "ready", LIVE)
    return run_id


def read(console: Console, path: str, name: str = "admin") -> tuple[int, Any]:
    """(status, JSON body) of GET /api/v1`path` as `name`, errors included."""
    headers = console.admin if name == "admin" else console.token(name)
    request = urllib.request.Request(f"{console.base}/api/v1{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_the_states_report_has_each_flows_state_counts_and_the_newest_event(
    console: Console, ended: str
) -> None:
    status, states = read(console, f"/runs/{ended}?flows=states")
    assert status == 200, states
    assert states["status"] == "ready" and states["started_at"] and states["finished_at"]
    assert states["owner"] == "admin" and states["rights"] == ["read", "rerun", "cancel"]
    assert states["inputs"] == {} and states["options"] == {}
    assert len(states["flows"]) == N
    assert states["counts"] == {"ready": 3, "idle": N - 3}
    ran = {f: states["flows"][f] for f in ("f0", "f1", "f3")}
    assert sorted(s["index"] for s in ran.values()) == [1, 2, 3]  # completion order
    assert all(s["status"] == "ready" and s["duration_s"] >= 0 for s in ran.values())
    assert states["flows"]["f2"] == {"status": "idle", "reason": None, "index": -1, "duration_s": None}  # fmt: skip
    token = console.admin["Authorization"].split()[1]
    events = list(Client(console.base, token).events(ended))
    assert states["last_event_id"] == events[-1]["id"]
    full = console.api("GET", f"/runs/{ended}")  # the same states as the whole report's
    for flow_id, state in states["flows"].items():
        assert state == {k: full["flows"][flow_id][k] for k in state}, flow_id


def test_flows_other_than_states_is_refused_naming_what_is_allowed(
    console: Console, ended: str
) -> None:
    for asked in ("all", "", "STATES"):
        status, answer = read(console, f"/runs/{ended}?flows={asked}")
        assert status == 400, (asked, answer)
        assert answer["error"]["details"] == {"allowed": ["states"]}
        assert "states" in answer["error"]["message"]


def test_one_flows_part_is_the_reports_and_only_for_who_may_read_the_run(
    console: Console, ended: str
) -> None:
    status, part = read(console, f"/runs/{ended}/flows/f3")
    assert status == 200, part
    whole = console.api("GET", f"/runs/{ended}")["flows"]["f3"]
    assert part == {**whole, "run_id": ended, "flow_id": "f3", "last_event_id": part["last_event_id"]}  # fmt: skip
    assert part["log"] == ["leaf line"]
    assert part["outputs"] == {"v": 3} and part["last_event_id"]
    status, missing = read(console, f"/runs/{ended}/flows/nope")
    assert status == 404 and missing["error"]["code"] == "not_found"
    console.user("mallory")
    for path in (f"/runs/{ended}/flows/f3", f"/runs/{ended}?flows=states"):
        status, hidden = read(console, path, "mallory")
        assert status == 404 and hidden["error"]["code"] == "not_found", path


def reads_of(page: Any, run_id: str) -> list[str]:
    """The API reads the page makes of the run from now on (path and query)."""
    seen: list[str] = []
    prefix = f"/api/v1/runs/{run_id}"

    def record(request: Any) -> None:
        url = urllib.parse.urlsplit(request.url)
        if url.path.startswith(prefix):
            seen.append(url.path[len(prefix) :] + (f"?{url.query}" if url.query else ""))

    page.on("request", record)
    return seen


def test_an_ended_big_runs_view_reads_states_and_the_selected_flows_part(
    admin_page: Any, console: Console, ended: str
) -> None:
    page = admin_page
    seen = reads_of(page, ended)
    page.goto(f"/runs/{ended}")
    expect(page.locator("#run-counts")).to_have_text(f"3 ready · {N - 3:,} idle", timeout=30_000)
    expect(page.locator('tr[data-id="f0"] .flow-status')).to_have_text(READY)
    expect(page.locator('tr[data-id="f2"] .flow-status')).to_have_text("idle")
    expect(page.locator("#run-status")).to_have_text("ready")
    page.fill("#flow-search", "f3")
    page.click('tr[data-id="f3"]')
    expect(page.locator("#flow-log")).to_contain_text("leaf line", timeout=10_000)
    expect(page.locator("#flow-outputs")).to_contain_text("3")
    assert "/flows/f3" in seen
    assert [s for s in seen if s.startswith(("?", "/events")) or s == ""] == ["?flows=states"]


def test_a_live_big_runs_view_follows_the_events_after_its_states(
    admin_page: Any, console: Console, big: str
) -> None:
    run_id = str(console.api("POST", "/runs", {"workflow_id": big, "flows": ["f5"]})["run_id"])
    page = admin_page
    seen = reads_of(page, run_id)
    page.goto(f"/runs/{run_id}#flow=f2")  # f2 holds until it is told to go
    expect(page.locator("#flow-log")).to_contain_text("waiting", timeout=LIVE * 1000)
    expect(page.locator("#run-counts")).to_have_text(f"1 running · 2 ready · {N - 3:,} idle")
    go(console, run_id, "f2")
    expect(page.locator("#flow-log")).to_contain_text("went", timeout=LIVE * 1000)
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE * 1000)
    expect(page.locator("#run-counts")).to_have_text(f"4 ready · {N - 4:,} idle")
    expect(page.locator('tr[data-id="f2"] .flow-status')).to_have_text(READY)
    assert page.locator("#flow-log .line").all_inner_texts() == ["waiting", "went"]  # once each
    follows = [s for s in seen if s.startswith("/events")]
    assert follows and all(s.startswith("/events?after=") for s in follows), follows
    assert "" not in seen  # never the whole report


def test_a_big_runs_cancelled_flows_are_listed_and_counted_as_cancelled(
    admin_page: Any, console: Console, big: str
) -> None:
    run_id = str(console.api("POST", "/runs", {"workflow_id": big, "flows": ["f5"]})["run_id"])
    page = admin_page
    page.goto(f"/runs/{run_id}#flow=f2")  # f2 holds until it is told to go: it is cancelled
    expect(page.locator("#flow-log")).to_contain_text("waiting", timeout=LIVE * 1000)
    console.api("POST", f"/runs/{run_id}/cancel")
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=LIVE * 1000)
    for _ in range(2):  # as it followed the cancel, then as its states say once it ended
        counts = f"2 ready · 2 cancelled · {N - 4:,} idle"  # f2 killed, f5 never started
        expect(page.locator("#run-counts")).to_have_text(counts, timeout=LIVE * 1000)
        for flow_id in ("f2", "f5"):
            cell = page.locator(f'tr[data-id="{flow_id}"] .flow-status .status')
            expect(cell).to_have_text("cancelled")
            expect(cell).to_have_class(re.compile(r"\bst-cancelled\b"))
        page.reload()
