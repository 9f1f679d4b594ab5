"""A view's Arrange: DIZEST's own files may keep every flow on one row (c03_fanout does), their
edges then passing behind the cards between them, so a fan-out reads as a chain. Arrange lays
the flows out by their dependencies for this view (nothing saved), As saved goes back; an edge
to a flow on its parent's left goes around under both, not into empty space. As saved, an edge
past the flows between its two goes around them (under or over), in every view, and in the
editor still after a flow is moved into its way."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import DATA
from tests.console.conftest import Console

# Every edge's path, walked 4 px at a time: where it passes over a node other than its own two
# ("<from> -> <to> over <node>"), the nodes' boxes as drawn.
CROSSINGS = """() => {
  const svg = document.querySelector("#graph svg.dag:not(.overlay)");
  const boxes = [...svg.querySelectorAll("g.node")].map((g) => {
    const [x, y] = g.getAttribute("transform").match(/-?[\\d.]+/g).map(Number);
    const r = g.querySelector("rect.box");
    return {id: g.dataset.id, x, y, w: Number(r.getAttribute("width")), h: Number(r.getAttribute("height"))};
  });
  const found = new Set();
  for (const p of svg.querySelectorAll("path.edge")) {
    const length = p.getTotalLength();
    for (let s = 0; s <= length; s += 4) {
      const pt = p.getPointAtLength(s);
      for (const b of boxes) {
        if (b.id === p.dataset.from || b.id === p.dataset.to) continue;
        if (pt.x > b.x && pt.x < b.x + b.w && pt.y > b.y && pt.y < b.y + b.h) found.add(`${p.dataset.from} -> ${p.dataset.to} over ${b.id}`);
      }
    }
  }
  return [...found].sort();
}"""


def test_arrange_lays_a_one_row_workflow_out_by_dependencies_for_the_view(
    admin_page: Any, console: Console
) -> None:
    pkg = json.loads((DATA / "c03_fanout.dwp").read_text())
    wf_id = console.api("POST", "/workflows", {"title": "one row", "package": pkg})["id"]
    page = admin_page
    page.goto(f"/workflows/{wf_id}")
    expect(page.locator("g.node")).to_have_count(4)

    def origin(flow: str) -> tuple[float, float]:
        box = page.locator(f'g.node[data-id="{flow}"]').get_attribute("transform") or ""
        x, y = re.findall(r"-?[\d.]+", box)[:2]
        return float(x), float(y)

    assert {origin(f)[1] for f in ("src", "k1", "k2", "k3")} == {100.0}  # as stored: one row
    page.click("#arrange")
    expect(page).to_have_url(re.compile(r"\?layout=auto$"))
    expect(page.locator("#arrange")).to_have_text("As saved")
    expect(page.locator("g.node")).to_have_count(4)
    src, kids = origin("src"), [origin(f) for f in ("k1", "k2", "k3")]
    assert len({x for x, _ in kids}) == 1 and kids[0][0] > src[0], (src, kids)  # one column
    assert len({y for _, y in kids}) == 3, kids  # one above another
    stored = console.api("GET", f"/workflows/{wf_id}")
    assert stored["version"] == 1 and stored["package"]["flow"]["k1"]["pos_y"] == 100  # unsaved
    page.click("#arrange")
    expect(page).not_to_have_url(re.compile(r"layout=auto"))
    expect(page.locator("#arrange")).to_have_text("Arrange")


def test_an_edge_to_a_flow_on_its_parents_left_goes_around_under_both(
    admin_page: Any, console: Console
) -> None:
    pkg = json.loads((DATA / "c03_fanout.dwp").read_text())
    pkg["flow"]["k1"]["pos_x"] = 100  # left of src (400)
    wf_id = console.api("POST", "/workflows", {"title": "backward", "package": pkg})["id"]
    page = admin_page
    page.goto(f"/workflows/{wf_id}")
    edge = page.locator('path.edge[data-from="src"][data-to="k1"]')
    expect(edge).to_have_count(1)
    d = edge.get_attribute("d") or ""
    assert " L" in d, d  # out to the right, under both nodes, in from the left
    box = edge.evaluate("(p) => { const b = p.getBBox(); return [b.x, b.y + b.height]; }")
    node = page.locator('g.node[data-id="k1"] rect.box').evaluate("(r) => r.getBBox().height")
    assert box[1] > 100 + node, (box, node)  # it passes below the row


@pytest.mark.parametrize("sample", ["c04_error", "c03_fanout"])
def test_an_edge_past_the_flows_between_goes_around_them(
    admin_page: Any, console: Console, sample: str
) -> None:
    """c04: o -> e2 ran straight through the four flows between (c03: src -> k2, k3 through k1,
    k2), read as a chain through them."""
    pkg = json.loads((DATA / f"{sample}.dwp").read_text())
    wf_id = console.api("POST", "/workflows", {"title": f"around {sample}", "package": pkg})["id"]
    page = admin_page
    page.goto(f"/workflows/{wf_id}")
    expect(page.locator("g.node")).to_have_count(len(pkg["flow"]))
    assert page.evaluate(CROSSINGS) == []
    page.goto(f"/workflows/{wf_id}/edit")
    expect(page.locator("g.node")).to_have_count(len(pkg["flow"]))
    assert page.evaluate(CROSSINGS) == []
    if sample == "c03_fanout":  # k1 moved down into the way of src -> k2 and k3, which go under it
        page.locator('g.node[data-id="k1"] text.title').click()
        for _ in range(3):
            page.keyboard.press("Shift+ArrowDown")
        expect(page.locator('g.node[data-id="k1"]')).to_have_attribute(
            "transform", re.compile(r"translate\(700,160\)")
        )
        assert page.evaluate(CROSSINGS) == []
