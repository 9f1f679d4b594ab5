"""The workflow's Info panel, as DIZEST's UI has it: the description is another user's text and
stays text, an edit in the editor is one undo step saved with the package and shown on the
workflow page, a viewer edits nothing."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.conftest import package
from tests.console.conftest import Console, log_in

HOSTILE = 'Says hello.\nSecond line <img src=x onerror="window.__pwned = 1"> <b>bold?</b>'
GREET = "greeting = 'hello ' + str(dizest.input('name', 'world'))"


def greeters() -> dict[str, Any]:
    """Two flows that take `name` from outside, one whose `name` is wired (not an API input)."""
    pkg = package(
        {
            "greet": {"code": GREET, "inputs": ["name"], "outputs": ["greeting"]},
            "loud": {"code": "greeting = 'HI'", "outputs": ["greeting"]},
        },
        {
            "f1": {"app": "greet"},
            "f2": {"app": "loud"},
            "f3": {"app": "greet"},
            "f4": {"app": "greet", "in": {"name": [("f2", "greeting")]}},
        },
    )
    return {**pkg, "description": HOSTILE, "version": "1.2.0"}


def test_info_keeps_the_description_text_and_saves_an_editor_edit_a_viewer_cannot_make(
    browser: Any, console: Console
) -> None:
    console.user("iris")
    console.user("vera")
    made = console.api("POST", "/workflows", {"title": "greeters", "package": greeters()}, "iris")
    wf_id = made["id"]
    console.api("PUT", f"/workflows/{wf_id}/grants", {"grants": {"vera": "viewer"}}, "iris")

    page = log_in(browser, console.base, "iris")
    page.goto(f"/workflows/{wf_id}")
    page.click('.tabs button[data-tab="info"]')
    shown = page.locator("#info-description")
    expect(shown).to_have_text(HOSTILE)  # the markup is text: no image, no bold, no handler ran
    assert "Says hello.\nSecond line" in shown.inner_text()  # its line break is kept
    expect(page.locator("#info img, #info b")).to_have_count(0)
    assert page.evaluate("window.__pwned") is None
    expect(page.locator("#info-version")).to_have_text("1.2.0")
    expect(page.locator("#info-owner")).to_have_text("iris")
    expect(page.locator("#info-apps li")).to_have_count(2)
    expect(page.locator('#info-apps li[data-app="greet"]')).to_contain_text("3 flows")

    page.goto(f"/workflows/{wf_id}/edit")
    expect(page.locator("g.node")).to_have_count(4)
    page.click('.tabs button[data-tab="info"]')
    field = page.locator("textarea#info-description")
    expect(field).to_have_value(HOSTILE)
    field.fill("What it is for:\nit greets.")
    page.locator("#info-version").fill("2.0.0")
    expect(page.locator("#ed-state")).to_have_text("unsaved changes")
    page.click("#undo")  # the version's typing, one step
    expect(page.locator("#info-version")).to_have_value("1.2.0")
    expect(page.locator("textarea#info-description")).to_have_value("What it is for:\nit greets.")
    page.click("#redo")
    expect(page.locator("#info-version")).to_have_value("2.0.0")
    page.click("#save")
    expect(page.locator("#ed-state")).to_have_text("saved · v2")
    stored = console.api("GET", f"/workflows/{wf_id}", name="iris")["package"]
    assert (stored["description"], stored["version"]) == ("What it is for:\nit greets.", "2.0.0")
    page.goto(f"/workflows/{wf_id}")
    page.click('.tabs button[data-tab="info"]')
    expect(page.locator("#info-description")).to_have_text("What it is for:\nit greets.")
    expect(page.locator("#info-version")).to_have_text("2.0.0")
    page.context.close()

    viewer = log_in(browser, console.base, "vera")
    viewer.goto(f"/workflows/{wf_id}/edit")
    expect(viewer.locator("g.node")).to_have_count(4)
    viewer.click('.tabs button[data-tab="info"]')
    expect(viewer.locator("#info-description")).to_have_text("What it is for:\nit greets.")
    expect(viewer.locator("#info textarea, #info input")).to_have_count(0)
    viewer.context.close()
