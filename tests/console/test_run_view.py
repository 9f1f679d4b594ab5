"""Following runs as a user does (a run-view probe's finds): a flow's `dizest.clear()` redraws
only its log, leaving the tab the user is on; in the editor, a result box under a node never
covers the node below it; a viewer of a shared workflow sees its owner's runs on the workflow
page."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import package, wait_for
from tests.console.conftest import USER_PASSWORD, Console, log_in

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


def test_a_result_box_in_the_editor_does_not_cover_the_node_below(
    admin_page: Any, console: Console
) -> None:
    loud = "for i in range(40):\n    print('line', i)\n"
    pkg = package(
        {"loud": {"code": loud}, "quiet": {"code": "pass\n"}},
        {  # `quiet` sits where `loud`'s result box goes (150 px under its node)
            "loud": {"app": "loud", "pos_x": 40, "pos_y": 40},
            "quiet": {"app": "quiet", "pos_x": 40, "pos_y": 150},
        },
    )
    wf_id = stored(console, "stacked", pkg)
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    page.click("#run-all")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    expect(page.locator('foreignObject[data-id="loud"]')).to_contain_text("line 39")
    box = page.locator('g.node[data-id="quiet"] rect.box').bounding_box()
    centre = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
    hit = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y)?.closest('g.node')?.dataset.id ?? null",
        centre,
    )
    assert hit == "quiet"
    page.mouse.click(*centre)
    expect(page.locator('g.node[data-id="quiet"]')).to_have_class(re.compile(r"\bselected\b"))


def test_a_viewer_sees_the_owners_runs_on_a_shared_workflows_page(
    browser: Any, console: Console
) -> None:
    console.user("wanda")
    console.user("vic")
    pkg = package({"w": {"code": "v = 7\n", "outputs": ["v"]}}, {"w": {"app": "w"}})
    wf_id = stored(console, "wanda's", pkg, owner="wanda")
    console.api("PUT", f"/workflows/{wf_id}/grants", {"grants": {"vic": "viewer"}}, "wanda")
    run_id = console.api("POST", "/runs", {"workflow_id": wf_id}, "wanda")["run_id"]
    wait_for(
        lambda: console.api("GET", f"/runs/{run_id}", name="wanda")["status"] == "ready",
        timeout=60,
    )
    page = log_in(browser, console.base, "vic", USER_PASSWORD)
    page.goto(f"/workflows/{wf_id}")
    expect(page.locator('g.node[data-id="w"]')).to_have_class("node st-ready", timeout=LIVE_MS)
    page.locator('g.node[data-id="w"]').click()
    expect(page.locator("#node")).to_contain_text(f"From run {run_id}")
    page.click("#wf-runs")
    expect(page.locator(f'#run-rows tr[data-id="{run_id}"]')).to_be_visible(timeout=LIVE_MS)
    page.context.close()
