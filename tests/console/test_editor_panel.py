"""The editor's side panel with a long app (a walkthrough's find): once the App tab scrolled,
its tab bar scrolled away and the fold button sat over the app's fields; an input's move and
remove buttons stacked in three rows; an `output` input showed a disabled kind."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.console.conftest import Console
from tests.console.test_editor import empty, new_app


def test_a_long_apps_panel_keeps_its_tabs_in_view_and_its_rows_on_one_line(
    admin_page: Any, console: Console
) -> None:
    page = admin_page
    page.goto(f"/workflows/{empty(console, 'long app')}/edit")
    code = "\n".join(f"x{i} = {i}" for i in range(80)) + "\no = 1\n"
    new_app(page, "long one", ["a", "b", "c", "d", "e", "f"], ["o"], code)
    page.click('button[data-tab="app"]')
    side = page.locator(".side")
    side.evaluate("el => el.scrollTop = 600")
    tabs = page.locator(".side > .tabs").bounding_box()
    panel = side.bounding_box()
    assert tabs and panel and panel["y"] <= tabs["y"] <= panel["y"] + 12, (tabs, panel)
    page.click('.side > .tabs button[data-tab="info"]')  # still there to click
    expect(page.locator("#info")).to_be_visible()
    page.click('.side > .tabs button[data-tab="app"]')
    row = page.locator('#app-inputs tr[data-input="b"]')
    heights = row.locator("button").evaluate_all("bs => bs.map(b => b.getBoundingClientRect().top)")
    assert len(heights) == 3 and max(heights) - min(heights) < 2, heights  # side by side
    expect(row.locator('select[name="inputtype"]')).to_be_hidden()  # an output: no kind
