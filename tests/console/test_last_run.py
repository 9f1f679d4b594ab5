"""The editor opened again shows the caller's last run of the workflow under its nodes, as DIZEST
keeps each node's output until its next run (a walkthrough's find: the editor came back empty
while the workflow view coloured its nodes from that run). Its statuses, log tail and results
show as if it had just happened, the toolbar links to the run, and a flow whose app changed
since shows its output as the run before's."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import package
from tests.console.conftest import Console

LIVE_MS = 60_000
STALE = "output of the run before"


def two_flows(b_code: str) -> dict[str, Any]:
    return package(
        {
            "a": {"code": "print('hello from a')\ndizest.result('answer', 42)\n"},
            "b": {"code": b_code},
        },
        {
            "a": {"app": "a", "pos_x": 40, "pos_y": 40},
            "b": {"app": "b", "pos_x": 400, "pos_y": 40},
        },
    )


def box(page: Any, flow: str) -> Any:
    return page.locator(f'foreignObject[data-id="{flow}"] .node-result')


def test_the_editor_opened_again_shows_the_last_run_under_its_nodes(
    admin_page: Any, console: Console
) -> None:
    pkg = two_flows("print('b was here')\n")
    wf_id = str(console.api("POST", "/workflows", {"title": "last run", "package": pkg})["id"])
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    page.click("#run-all")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    run_link = page.locator("#run-link").get_attribute("href")
    page.goto(f"/workflows/{wf_id}")  # away, and back
    page.goto(f"/workflows/{wf_id}/edit")
    expect(page.locator("#run-link")).to_have_attribute("href", run_link or "", timeout=LIVE_MS)
    expect(page.locator("#run-state")).to_contain_text("last run")
    expect(page.locator("#run-status")).to_have_text("ready")
    expect(page.locator("#run-stop")).to_be_hidden()
    expect(box(page, "a")).to_contain_text("hello from a", timeout=LIVE_MS)
    expect(box(page, "a")).to_contain_text("42")  # its result
    expect(box(page, "b")).to_contain_text("b was here")
    for flow in ("a", "b"):
        expect(page.locator(f'g.node[data-id="{flow}"]')).to_have_class(re.compile(r"\bst-ready\b"))
        expect(box(page, flow)).not_to_contain_text(STALE)

    # b's app changed in a later version: its output is the run before's, a's is still current
    current = console.api("GET", f"/workflows/{wf_id}")
    changed = two_flows("print('b changed')\n")
    for flow in ("a", "b"):  # (where the first layout put them, as a save would)
        stored = current["package"]["flow"][flow]
        changed["flow"][flow].update({k: stored[k] for k in ("pos_x", "pos_y")})
    body = {"package": changed, "base_version": current["version"]}
    console.api("PUT", f"/workflows/{wf_id}", body)
    page.reload()
    expect(page.locator("#ed-state")).to_have_text(f"saved · v{current['version'] + 1}")
    expect(page.locator("#run-link")).to_have_attribute("href", run_link or "", timeout=LIVE_MS)
    expect(box(page, "b")).to_contain_text(STALE, timeout=LIVE_MS)
    expect(box(page, "b")).to_contain_text("b was here")
    expect(box(page, "a")).to_contain_text("hello from a")
    expect(box(page, "a")).not_to_contain_text(STALE)
    # a flow's rerun is not made within a run of another version: Run this flow runs it anew
    assert page.evaluate("() => window.dizestEditor.runs.last.version") == current["version"]
