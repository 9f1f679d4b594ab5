"""Following runs as a user does (a run-view probe's finds): a flow's `dizest.clear()` redraws
only its log, leaving the tab the user is on."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.conftest import package
from tests.console.conftest import Console

LIVE_MS = 60_000


def stored(console: Console, title: str, pkg: dict[str, Any], owner: str = "admin") -> str:
    made = console.api("POST", "/workflows", {"title": title, "package": pkg}, owner)
    return str(made["id"])


def test_a_log_clear_redraws_the_log_and_leaves_the_users_tab(
    admin_page: Any, console: Console
) -> None:
    code = "import time\nprint('old line')\ntime.sleep(3)\ndizest.clear()\nprint('new line')\n"
    wf_id = stored(console, "clears", package({"c": {"code": code}}, {"c": {"app": "c"}}))
    run = console.api("POST", "/runs", {"workflow_id": wf_id})
    page = admin_page
    page.goto(f"/runs/{run['run_id']}")
    page.locator('g.node[data-id="c"]').click()
    log = page.locator("#flow-log")
    expect(log).to_have_text("old line", timeout=LIVE_MS)
    page.click('.tabs button[data-tab="params"]')
    assert log.text_content() == "old line"  # (the clear comes 3 s after: still to come)
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    expect(page.locator("#params")).to_be_visible()  # the user's tab: not taken back to Flow
    assert log.locator(".line").all_text_contents() == ["new line"]
