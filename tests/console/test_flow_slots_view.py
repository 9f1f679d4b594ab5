"""A user's flows past their flow slots (DIZEST_USER_FLOW_SLOTS, here 1) wait, and the run page
says so: a `waiting` badge and the reason, not an error, while another user's run goes on; once
the slot is free the waiting flow runs and the run ends ready. A real `dizest serve` and
Debian's Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from dizest_core.status import Reason
from tests.conftest import package, wait_for
from tests.console.conftest import TRUSTED, USER_PASSWORD, Console, bearer, log_in
from tests.serve_process import PASSWORD, serving

LIVE_S = 60_000
GATE = (
    "import os, time\n"
    "deadline = time.monotonic() + 60\n"
    "while not os.path.exists('open') and time.monotonic() < deadline:\n"
    "    time.sleep(0.02)\n"
    "v = 1\n"
)


@pytest.fixture(scope="module")
def one_slot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("slots")
    with serving(tmp, allowed_origins=TRUSTED, user_flow_slots="1") as served:
        admin = bearer(served.base, "admin", PASSWORD, ["read", "run", "admin"])
        yield Console(served, tmp, admin)


def test_a_flow_past_its_owners_slots_shows_waiting_and_then_runs(
    browser: Any, one_slot: Console
) -> None:
    console = one_slot
    console.user("erin")
    console.user("fred")
    gated = package(
        {"g": {"code": GATE, "outputs": ["v"]}}, {"one": {"app": "g"}, "two": {"app": "g"}}
    )
    made = console.api("POST", "/workflows", {"title": "two gates", "package": gated}, "erin")
    run_id = console.api("POST", "/runs", {"workflow_id": made["id"]}, "erin")["run_id"]

    page = log_in(browser, console.base, "erin", USER_PASSWORD)
    page.goto(f"/runs/{run_id}")
    nodes = page.locator("g.node")
    expect(nodes.filter(has=page.locator(".badge", has_text="waiting"))).to_have_count(
        1, timeout=LIVE_S
    )
    expect(page.locator("g.node.st-running")).to_have_count(1, timeout=LIVE_S)
    waiting = nodes.filter(has=page.locator(".badge", has_text="waiting"))
    waiting.click()
    reason = page.locator("#flow-reason")
    expect(reason).to_have_text(Reason.FLOW_SLOTS.format(slots=1))
    assert "error" not in (reason.get_attribute("class") or "")

    quick = package({"q": {"code": "v = 2", "outputs": ["v"]}}, {"q": {"app": "q"}})
    other = console.api("POST", "/runs", {"package": quick}, "fred")["run_id"]

    # fred's own slot: his run ends while erin's flows wait
    def ended() -> bool:
        return console.api("GET", f"/runs/{other}", name="fred")["status"] not in ("running", "pending")  # fmt: skip

    wait_for(ended, timeout=60)
    report = console.api("GET", f"/runs/{other}", name="fred")
    assert report["status"] == "ready", report
    expect(page.locator("g.node.st-running")).to_have_count(1)  # erin's still wait
    usage = console.api("GET", "/runs/usage", name="erin")
    assert (usage["flows_running"], usage["flows_parked"], usage["flow_slots"]) == (1, 1, 1)

    (console.served.data / "runs" / run_id / "open").touch()
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_S)
    expect(page.locator("g.node.st-ready")).to_have_count(2)
    expect(reason).to_be_hidden()
    page.context.close()
