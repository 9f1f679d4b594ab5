"""A view's Arrange: DIZEST's own files may keep every flow on one row (c03_fanout does), their
edges then passing behind the cards between them, so a fan-out reads as a chain. Arrange lays
the flows out by their dependencies for this view (nothing saved), As saved goes back; an edge
to a flow on its parent's left goes around under both, not into empty space."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import DATA
from tests.console.conftest import Console


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
