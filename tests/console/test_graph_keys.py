"""A workflow's graph by keyboard (a walkthrough's find): a flow's node could not be focused, so
Tab went from the canvas to the Timeline and Enter did nothing, in the workflow view, the run
view and the editor. Each node is now a button (tabindex 0, role button, its title and status
as its name): Tab reaches it, Enter or Space opens its panel, a ring shows where the focus is,
and a node Tab reaches out of view is brought into view. (A large workflow's list of flows:
test_large_graph.py.)"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.console.conftest import views

LIVE_MS = 60_000
FOCUSED = "() => document.activeElement?.closest('g.node')?.dataset.id ?? null"
PANEL = {"workflow": "#node", "editor": "#flow", "run": "#flow"}  # a flow's panel, per view


@pytest.mark.parametrize("view", ["workflow", "editor", "run"])
def test_tab_reaches_a_flow_and_enter_or_space_opens_its_panel(
    admin_page: Any, fanout: tuple[str, str], view: str
) -> None:
    page = admin_page
    page.goto(views(fanout)[view])
    if view == "run":  # an ended run: its flows' statuses are final
        expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    page.locator('g.node[data-id="k3"]').wait_for()
    page.focus("#graph")
    page.keyboard.press("Tab")
    first = page.evaluate(FOCUSED)
    assert first is not None  # from the canvas to a flow, not past the graph
    page.keyboard.press("Tab")
    second = page.evaluate(FOCUSED)
    assert second not in (None, first)
    node = page.locator(f'g.node[data-id="{second}"]')
    expect(node).to_have_attribute("role", "button")
    label = node.get_attribute("aria-label") or ""
    assert label.startswith(second), label
    if view == "run":
        assert "ready" in label, label
    ring = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert ring not in ("", "none"), ring  # the focused flow is shown as such
    page.keyboard.press("Enter")
    expect(page.locator(f"{PANEL[view]} h2")).to_have_text(second)
    expect(node).to_have_class(re.compile(r"\bselected\b"))
    assert page.evaluate(FOCUSED) == second  # the keyboard user's place is kept
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Space")
    expect(page.locator(f"{PANEL[view]} h2")).to_have_text(first)


def test_a_flow_tab_reaches_out_of_view_is_brought_into_view(
    admin_page: Any, fanout: tuple[str, str]
) -> None:
    page = admin_page
    page.goto(views(fanout)["workflow"])
    page.locator('g.node[data-id="k3"]').wait_for()
    for _ in range(4):
        page.click("#zoom-in")  # on the middle of the row: src and k3 leave the view
    inside = """(id) => { const n = document.querySelector(`g.node[data-id="${id}"]`).getBoundingClientRect();
      const g = document.getElementById("graph").getBoundingClientRect();
      return n.left >= g.left && n.right <= g.right && n.top >= g.top && n.bottom <= g.bottom; }"""
    assert not page.evaluate(inside, "src")
    page.focus("#graph")
    page.keyboard.press("Tab")
    assert page.evaluate(FOCUSED) == "src"
    assert page.evaluate(inside, "src")
