"""Fit on a small workflow at DIZEST's wide positions (3 flows 2,000 px apart) zoomed out until
its titles were 3 px high, in a view mostly empty. Fit zooms out no further than where a title
is 9 px high, and starts at the graph's start (its leftmost flow); the rest is a drag, the wheel
or an arrow key away, and Fit pressed on that view shows all of it (again: the readable part).
A graph the canvas could not hold at that size anyway (dag100) is still fitted whole, an
overview."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import DATA, package
from tests.console.conftest import Console

READABLE = 9 / 13  # the scale where a title (13 px) is 9 px high
# The view (the SVG's viewBox), its scale (screen px a graph px) and each node's box.
VIEW = """() => {
  const svg = document.querySelector("#graph svg.dag");
  const [x, y, w, h] = svg.getAttribute("viewBox").split(" ").map(Number);
  const nodes = Object.fromEntries([...svg.querySelectorAll("g.node")].map((g) => {
    const [nx, ny] = g.getAttribute("transform").match(/-?[\\d.]+/g).map(Number);
    const box = g.querySelector("rect.box");
    return [g.dataset.id, {x: nx, y: ny, w: Number(box.getAttribute("width")), h: Number(box.getAttribute("height"))}];
  }));
  return {x, y, w, h, scale: svg.getBoundingClientRect().width / w, nodes};
}"""


def spread() -> dict[str, Any]:
    """a -> b -> c, 2,000 px apart on one row (DIZEST's canvas keeps flows that far apart)."""
    apps = {
        "src": {"code": "v = 1", "outputs": ["v"]},
        "mid": {"code": "v = x", "inputs": ["x"], "outputs": ["v"]},
        "end": {"code": "pass", "inputs": ["x"]},
    }
    flows = {
        "a": {"app": "src", "pos_x": 0, "pos_y": 100},
        "b": {"app": "mid", "pos_x": 2000, "pos_y": 100, "in": {"x": [("a", "v")]}},
        "c": {"app": "end", "pos_x": 4000, "pos_y": 100, "in": {"x": [("b", "v")]}},
    }
    return package(apps, flows)


def inside(node: dict[str, float], view: dict[str, Any]) -> bool:
    return (
        view["x"] <= node["x"]
        and node["x"] + node["w"] <= view["x"] + view["w"]
        and view["y"] <= node["y"]
        and node["y"] + node["h"] <= view["y"] + view["h"]
    )


@pytest.mark.parametrize("where", ["workflow", "editor"])
def test_fit_keeps_a_sparse_graph_readable_from_its_start(
    admin_page: Any, console: Console, where: str
) -> None:
    wf_id = console.api("POST", "/workflows", {"title": "spread", "package": spread()})["id"]
    page = admin_page
    page.goto(f"/workflows/{wf_id}" + ("/edit" if where == "editor" else ""))
    expect(page.locator("g.node")).to_have_count(3)
    fitted = page.evaluate(VIEW)
    # (0.99: the view is fitted to the canvas's border box, the SVG drawn 2 px narrower within it)
    assert fitted["scale"] >= 0.99 * READABLE, fitted  # was ~0.2: titles 3 px high
    assert inside(fitted["nodes"]["a"], fitted), fitted  # the start, in view
    assert not inside(fitted["nodes"]["c"], fitted), fitted
    page.locator('g.node[data-id="a"] text.title').click()  # in view: clicked where it is drawn
    expect(page.locator('g.node[data-id="a"]')).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("ArrowRight")  # the rest: an arrow key brings the next flow into view
    expect(page.locator('g.node[data-id="b"]')).to_be_focused()
    assert inside(page.evaluate(VIEW)["nodes"]["b"], page.evaluate(VIEW))
    page.click("#zoom-out")
    page.click("#zoom-fit")  # Fit again: the same view
    again = page.evaluate(VIEW)
    assert [round(again[k], 3) for k in "xywh"] == [round(fitted[k], 3) for k in "xywh"]
    # Fit on that view, which shows a part: all of it (a user pressed Fit on a ten-flow graph
    # half out of view and nothing moved); again: back to the readable part
    page.click("#zoom-fit")
    whole = page.evaluate(VIEW)
    assert all(inside(n, whole) for n in whole["nodes"].values()), whole
    assert whole["scale"] < READABLE, whole
    page.click("#zoom-fit")
    back = page.evaluate(VIEW)
    assert [round(back[k], 3) for k in "xywh"] == [round(fitted[k], 3) for k in "xywh"]


def test_fit_still_shows_a_large_graph_whole(admin_page: Any, console: Console) -> None:
    pkg = json.loads((DATA / "dag100.dwp").read_text())
    wf_id = console.api("POST", "/workflows", {"title": "dag100 fit", "package": pkg})["id"]
    page = admin_page
    page.goto(f"/workflows/{wf_id}")
    expect(page.locator("g.node")).to_have_count(100)
    fitted = page.evaluate(VIEW)
    assert fitted["scale"] < READABLE, fitted  # (else this would test nothing)
    assert all(inside(n, fitted) for n in fitted["nodes"].values())


def test_a_flow_added_far_from_the_start_stays_in_view(admin_page: Any, console: Console) -> None:
    """Adding a flow fits a small graph again: that fit must not leave the new flow (put in the
    middle of the view, here by the last flow) out of view, at the graph's start."""
    wf_id = console.api("POST", "/workflows", {"title": "spread add", "package": spread()})["id"]
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    expect(page.locator("g.node")).to_have_count(3)
    page.locator('g.node[data-id="a"] text.title').click()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(page.locator('g.node[data-id="c"]')).to_be_focused()
    page.click('.tabs button[data-tab="apps"]')
    page.locator('#app-list li[data-app="end"] .app-add').click()
    expect(page.locator("g.node")).to_have_count(4)
    view = page.evaluate(VIEW)
    (new,) = set(view["nodes"]) - {"a", "b", "c"}
    assert inside(view["nodes"][new], view), view
    assert view["scale"] >= 0.99 * READABLE, view
