"""The console on narrow and medium screens (a walkthrough's finds).

At 390x844 (a phone) the side panel covered the whole canvas, the header overflowed (Log out
off-screen), no flow could be tapped and every page was ~100 px wider than the screen. At
900 px the panel kept 520 px and could not be folded away; at 1440 px the zoom buttons wrapped
to a line of their own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_for
from tests.console.conftest import Console, log_in, views
from tests.console.test_graph_keys import PANEL
from tests.serve_process import PASSWORD

PHONE = {"width": 390, "height": 844}
MEDIUM = {"width": 900, "height": 800}

# Every header link and Log out: inside the window and the element found at its centre (not
# off-screen, not under something else).
HEADER_REACH = """() => [...document.querySelectorAll("header.top nav a, #logout")].map((el) => {
  const r = el.getBoundingClientRect();
  const hit = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);
  const inside = r.width > 0 && r.left >= 0 && r.right <= innerWidth && r.top >= 0 && r.bottom <= innerHeight;
  return [el.textContent.trim(), inside && Boolean(hit) && (hit === el || el.contains(hit))];
})"""
# Nothing scrolls sideways as a whole: the document, and the page's main box.
SIDEWAYS = """() => [document.documentElement, document.getElementById("main")]
  .filter((el) => el.scrollWidth > el.clientWidth).map((el) => `${el.tagName} ${el.scrollWidth} > ${el.clientWidth}`)"""


@pytest.fixture
def phone(browser: Any, console: Console) -> Iterator[Any]:
    page = log_in(browser, console.base, "admin", PASSWORD, viewport=PHONE, has_touch=True)
    yield page
    page.context.close()


def test_every_page_fits_a_phone_and_keeps_its_header_in_reach(
    phone: Any, fanout: tuple[str, str]
) -> None:
    page = phone
    pages = {"workflows": "/workflows", **views(fanout), "runs": "/runs", "admin": "/admin"}
    pages["files"] = "/files"
    ready = {"files": "#files-rows tr, #files-empty:not([hidden])"}
    for name, path in pages.items():
        page.goto(path)
        shown = "g.node" if name in PANEL else ready.get(name, "table.list tbody tr")
        page.locator(shown).first.wait_for(timeout=30_000)
        assert page.evaluate(SIDEWAYS) == [], name
        reach = page.evaluate(HEADER_REACH)
        assert [label for label, ok in reach if not ok] == [], (name, reach)
        assert {"Workflows", "Runs", "Files", "API", "Log out"} <= {label for label, _ in reach}
    page.get_by_role("link", name="Workflows").click()
    expect(page).to_have_url(re.compile(r"/workflows$"))
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login$"))


@pytest.mark.parametrize("view", ["workflow", "editor", "run"])
def test_a_flow_tapped_on_a_phone_shows_its_panel(
    phone: Any, fanout: tuple[str, str], view: str
) -> None:
    page = phone
    page.goto(views(fanout)[view])
    # (the view starts at the graph's start at a size to read: k2 and k3 are a swipe away)
    page.locator('g.node[data-id="src"]').tap(timeout=10_000)
    title = page.locator(f"{PANEL[view]} h2")
    expect(title).to_have_text("src")
    # the panel, under the canvas, comes up to be read (not just its first line at the bottom)
    top = "() => document.querySelector('aside.side').getBoundingClientRect().top"
    wait_for(lambda: 0 <= page.evaluate(top) < PHONE["height"] / 3, 10)
    expect(title).to_be_in_viewport()
    expect(page.locator('g.node[data-id="src"]')).to_have_class(re.compile(r"\bselected\b"))


def test_the_side_panel_folds_away_at_900_px_and_stays_folded(
    browser: Any, console: Console, fanout: tuple[str, str]
) -> None:
    page = log_in(browser, console.base, "admin", PASSWORD, viewport=MEDIUM)
    graph = page.locator("#graph")
    toggle = page.locator("#side-toggle")

    def width() -> float:
        page.locator("g.node").first.wait_for()
        return float(graph.bounding_box()["width"])

    page.goto(views(fanout)["workflow"])
    wide = width()
    assert page.locator("aside.side").bounding_box()["width"] <= 0.4 * MEDIUM["width"] + 1
    expect(toggle).to_have_attribute("aria-expanded", "true")
    toggle.click()
    expect(toggle).to_have_attribute("aria-expanded", "false")
    expect(page.locator("aside.side .tabs")).to_be_hidden()
    folded = width()
    assert folded > wide + 250, (wide, folded)
    # the drawing follows its box: the view's shape is the canvas's (panning stays true)
    expect(page.locator("svg.dag")).to_have_attribute("viewBox", re.compile(r"."))
    ratio = page.evaluate(
        """() => { const v = document.querySelector("svg.dag").viewBox.baseVal;
        const r = document.getElementById("graph").getBoundingClientRect();
        return (v.width / v.height) / (r.width / r.height); }"""
    )
    assert abs(ratio - 1) < 0.02, ratio
    for path in [views(fanout)["workflow"], views(fanout)["run"], views(fanout)["editor"]]:
        page.goto(path)  # the choice holds across a reload and the other views
        expect(toggle).to_have_attribute("aria-expanded", "false")
        assert width() > wide + 250
    toggle.click()
    expect(page.locator("aside.side .tabs")).to_be_visible()
    page.reload()
    expect(toggle).to_have_attribute("aria-expanded", "true")
    page.context.close()


@pytest.mark.parametrize("view", ["workflow", "editor", "run"])
def test_the_toolbar_keeps_the_zoom_buttons_on_its_row_at_1440(
    admin_page: Any, fanout: tuple[str, str], view: str
) -> None:
    page = admin_page
    page.goto(views(fanout)[view])
    page.locator("g.node").first.wait_for()
    first = page.locator(".toolbar h1").bounding_box()
    zoom = page.locator("#zoom-in").bounding_box()
    row = (first["y"] + first["height"] / 2, zoom["y"] + zoom["height"] / 2)
    assert abs(row[0] - row[1]) < 8, row


# Each table's scroll box on the page that scrolls sideways: its table's id, and how far.
TABLES_SCROLLING = """() => [...document.querySelectorAll(".scroll-x")]
  .filter((box) => box.offsetParent && box.scrollWidth > box.clientWidth)
  .map((box) => `${box.querySelector("table")?.id || box.querySelector("th")?.textContent} ${box.scrollWidth} > ${box.clientWidth}`)"""  # fmt: skip


def test_every_list_pages_table_fits_a_phone(browser: Any, console: Console) -> None:
    """At 390 px the runs table scrolled sideways in its box, its Started column a full date
    and time ("12/5/2026, 10:34:12 AM"), as the files table's Modified did before it; the
    workflows' Updated and the tokens' Expires too. Each shows a short date there now (dom.js
    whenCell, the whole in its tooltip), and every list page's table fits."""
    console.user("lena")
    title = "lena's ticker, with a title long enough to wrap on a phone"
    wf_id = console.workflow("ticker", title, owner="lena")
    body = {"workflow_id": wf_id, "inputs": {"count": 1, "delay": 0}}
    run_id = console.api("POST", "/runs", body, "lena")["run_id"]
    wait_for(lambda: console.api("GET", f"/runs/{run_id}")["status"] == "ready", 60)
    token = {"name": "a phone's token", "scopes": ["read"], "expires_in_s": 86_400 * 30}
    console.api("POST", "/tokens", token, "lena")
    schedule = {"cron": "0 9 * * 1-5", "timezone": "America/Argentina/Buenos_Aires"}
    console.api("POST", f"/workflows/{wf_id}/schedules", schedule, "lena")
    console.api("POST", f"/runs/{run_id}/flows/{next(iter(_flows(console, run_id)))}/rerun", None, "lena")  # fmt: skip
    page = log_in(browser, console.base, "lena", viewport=PHONE, has_touch=True)
    try:
        for path, rows in (("/workflows", "#wf-rows tr"), ("/runs", "#run-rows tr"),
                           ("/admin", "#token-rows tr"), ("/schedules", "#schedule-rows tr")):  # fmt: skip
            page.goto(path)
            page.locator(rows).first.wait_for(timeout=30_000)
            assert page.evaluate(TABLES_SCROLLING) == [], path
            started = page.locator(f"{rows} time").first  # the whole date, in its tooltip
            expect(started.locator(".when-short")).to_be_visible()
            expect(started.locator(".when-long")).to_be_hidden()
    finally:
        page.context.close()


def _flows(console: Console, run_id: str) -> dict[str, Any]:
    return dict(console.api("GET", f"/runs/{run_id}")["flows"])
