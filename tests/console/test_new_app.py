"""A new app gets onto the canvas (a walkthrough's find: on an empty canvas Apps -> New app opened
the App tab and left the canvas empty, with no hint that the app had to be added from Apps). On
an empty canvas New app makes the app and a flow of it, one undo step; an app no flow uses yet
(a new one beside other flows) says so in its App tab, with an "Add to canvas" button."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.conftest import package
from tests.console.conftest import Console
from tests.console.test_editor import empty, pkg_of

NODES = "#graph g.node"


def test_new_app_on_an_empty_canvas_adds_its_flow_in_one_undo_step(
    admin_page: Any, console: Console
) -> None:
    page = admin_page
    page.goto(f"/workflows/{empty(console, 'new app, empty')}/edit")
    expect(page.locator("#ed-state")).to_have_text("saved · v1")
    page.click("#app-new")
    expect(page.locator("#app-title")).to_have_value("New app")  # the App tab, as before
    expect(page.locator(NODES)).to_have_count(1)
    pkg = pkg_of(page)
    [app_id] = pkg["apps"]
    assert [f["app_id"] for f in pkg["flow"].values()] == [app_id]
    expect(page.locator("#app-unused")).to_have_count(0)  # (it is on the canvas)
    assert "null" not in page.inner_text("#app")  # (nothing drawn in its place)
    page.click("#undo")
    expect(page.locator(NODES)).to_have_count(0)
    assert pkg_of(page) == {"apps": {}, "flow": {}}
    expect(page.locator("#undo")).to_be_disabled()
    page.click("#redo")
    expect(page.locator(NODES)).to_have_count(1)


def test_an_app_no_flow_uses_offers_to_add_it_to_the_canvas(
    admin_page: Any, console: Console
) -> None:
    pkg = package({"a": {"code": "pass"}}, {"a": {"app": "a", "pos_x": 40, "pos_y": 40}})
    page = admin_page
    page.goto(f"/workflows/{empty(console, 'new app, beside', pkg)}/edit")
    expect(page.locator(NODES)).to_have_count(1)
    page.click("#app-new")
    expect(page.locator(NODES)).to_have_count(1)  # a canvas with flows: no flow is placed for it
    add = page.locator("#app-unused #app-add-canvas")
    expect(add).to_be_visible()
    add.click()
    expect(page.locator(NODES)).to_have_count(2)
    new = [f for f in pkg_of(page)["flow"].values() if f["app_id"] != "a"]
    assert len(new) == 1
    page.click('button[data-tab="app"]')
    expect(page.locator("#app-unused")).to_have_count(0)  # it has a flow now
    page.click("#undo")  # the flow alone
    expect(page.locator(NODES)).to_have_count(1)
    assert len(pkg_of(page)["apps"]) == 2
