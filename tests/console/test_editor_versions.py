"""The editor opened at an older version (`/workflows/<id>/edit?version=N`) is that version,
throughout: its state says it is an older one ("v1 (older; latest v2)"), a run from it runs
exactly what it shows (version N, not the latest), and a Save makes N's content (with any
changes) the next version once the person confirms it. It showed "saved · v<latest>", Save said
"No changes", and Run all ran the latest version under a canvas drawing version N."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import package
from tests.console.conftest import Console

LIVE_MS = 60_000


def said(words: str) -> dict[str, Any]:
    """One flow `g` (app Greeter) that prints `words`."""
    pkg = package({"greet": {"code": f"print({words!r})"}}, {"g": {"app": "greet"}})
    pkg["apps"]["greet"]["title"] = "Greeter"
    return pkg


def two_versions(console: Console, title: str) -> str:
    """A workflow whose v1 prints "v1 ran" and whose v2 (the latest) prints "v2 ran"."""
    made = console.api("POST", "/workflows", {"title": title, "package": said("v1 ran")})
    console.api("PUT", f"/workflows/{made['id']}", {"package": said("v2 ran")})
    return str(made["id"])


def code_of(console: Console, wf_id: str, version: int | None = None) -> str:
    query = f"?version={version}" if version else ""
    return str(console.api("GET", f"/workflows/{wf_id}{query}")["package"]["apps"]["greet"]["code"])


def test_an_older_version_is_shown_run_and_saved_as_itself(
    admin_page: Any, console: Console
) -> None:
    wf_id = two_versions(console, "older version")
    page = admin_page
    page.goto(f"/workflows/{wf_id}?version=1")
    page.click("#wf-edit")  # the version shown is the one edited
    expect(page).to_have_url(re.compile(f"/workflows/{wf_id}/edit\\?version=1$"))
    expect(page.locator("g.node")).to_have_count(1)
    expect(page.locator("#ed-state")).to_have_text("v1 (older; latest v2)")
    expect(page.locator("#wf-view")).to_have_attribute("href", f"/workflows/{wf_id}?version=1")

    page.click("#run-all")  # what the canvas shows, as it is: no save, no question
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    expect(page.locator('foreignObject[data-id="g"] .node-result')).to_contain_text("v1 ran")
    runs = console.api("GET", f"/runs?workflow_id={wf_id}")["items"]
    assert [r["version"] for r in runs] == [1]
    assert console.api("GET", f"/workflows/{wf_id}")["version"] == 2

    asked: list[str] = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("#save")  # not confirmed: nothing stored
    expect(page.locator("#ed-state")).to_have_text("v1 (older; latest v2)")
    assert asked and "as version 3" in asked[0], asked
    assert console.api("GET", f"/workflows/{wf_id}")["version"] == 2

    page.once("dialog", lambda d: d.accept())
    page.click("#save")
    expect(page.locator("#ed-state")).to_have_text("saved · v3")
    assert code_of(console, wf_id) == code_of(console, wf_id, 1) == "print('v1 ran')"
    expect(page).to_have_url(re.compile(f"/workflows/{wf_id}/edit$"))  # a reload: the latest
    expect(page.locator("#wf-view")).to_have_attribute("href", f"/workflows/{wf_id}")
    page.click("#save")  # the latest now: nothing to ask, nothing to store
    expect(page.locator("#toast")).to_contain_text("No changes to save: this is version 3")


def test_a_change_to_an_older_version_is_saved_after_the_question(
    admin_page: Any, console: Console
) -> None:
    wf_id = two_versions(console, "older version changed")
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit?version=1")
    expect(page.locator("#ed-state")).to_have_text("v1 (older; latest v2)")
    page.locator('g.node[data-id="g"] text.toggle').click()  # inactive: a change
    expect(page.locator("#ed-state")).to_have_text("unsaved changes to v1 (older; latest v2)")
    page.once("dialog", lambda d: d.accept())
    page.click("#run-all")  # saved first (asked), then that version runs
    expect(page.locator("#ed-state")).to_have_text("saved · v3")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    stored = console.api("GET", f"/workflows/{wf_id}")
    assert stored["version"] == 3 and stored["package"]["flow"]["g"]["active"] is False
    assert stored["package"]["apps"]["greet"]["code"] == "print('v1 ran')"
    runs = console.api("GET", f"/runs?workflow_id={wf_id}")["items"]
    assert [r["version"] for r in runs] == [3]
