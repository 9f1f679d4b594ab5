"""A workflow's graph by keyboard (a walkthrough's find): a flow's node could not be focused, so
Tab went from the canvas to the Timeline and Enter did nothing, in the workflow view, the run
view and the editor. Each node is now a button (tabindex 0, role button, its title and status
as its name): Tab reaches it, Enter or Space opens its panel, a ring shows where the focus is,
and a node Tab reaches out of view is brought into view. (A large workflow's list of flows:
test_large_graph.py.)

A second walkthrough's find: with a node focused the arrow keys did nothing, so a keyboard user
tabbed through every flow in document order. An arrow now goes to the nearest node that way (the
view following it), Home and End to the first and last flow, and in the editor Shift+arrow moves
the node, one undo step, the document unsaved. (Two fingers and a trackpad: test_graph_touch.py.)"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import DATA
from tests.console.conftest import log_in, views
from tests.serve_process import PASSWORD

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


# Node `id` wholly inside the canvas's box, as the page shows it.
INSIDE = """(id) => { const n = document.querySelector(`g.node[data-id="${id}"]`).getBoundingClientRect();
  const g = document.getElementById("graph").getBoundingClientRect();
  return n.left >= g.left && n.right <= g.right && n.top >= g.top && n.bottom <= g.bottom; }"""


@pytest.mark.parametrize("view", ["workflow", "run"])
def test_the_arrow_keys_go_to_the_nearest_flow_that_way_and_home_and_end_to_the_ends(
    admin_page: Any, fanout: tuple[str, str], view: str
) -> None:
    # Arranged: src alone in the first column, k1 over k2 over k3 in the second.
    page = admin_page
    page.goto(f"{views(fanout)[view]}?layout=auto")
    page.locator('g.node[data-id="k3"]').wait_for()
    page.focus("#graph")
    page.keyboard.press("End")  # from the canvas itself
    assert page.evaluate(FOCUSED) == "k3"
    page.keyboard.press("Home")
    assert page.evaluate(FOCUSED) == "src"
    walk = [
        ("ArrowUp", "src"),  # none above: the focus stays
        ("ArrowRight", "k1"),  # the one on src's row, not k2 or k3 below it
        ("ArrowDown", "k2"),
        ("ArrowDown", "k3"),
        ("ArrowDown", "k3"),
        ("ArrowUp", "k2"),
        ("ArrowLeft", "src"),
        ("ArrowLeft", "src"),
    ]
    for key, expected in walk:
        page.keyboard.press(key)
        assert page.evaluate(FOCUSED) == expected, (key, expected)
    ring = page.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert ring not in ("", "none"), ring  # a focus the arrows moved shows its ring
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Enter")
    expect(page.locator(f"{PANEL[view]} h2")).to_have_text("k1")


MAIN = 'document.getElementById("main")'


def test_the_view_follows_an_arrow_out_of_it_and_the_page_does_not_scroll(
    browser: Any, console: Any, fanout: tuple[str, str]
) -> None:
    # 700 px wide: the canvas and the panel stacked in the page's main box, which scrolls as one
    # (an arrow's own default would scroll it).
    page = log_in(browser, console.base, "admin", PASSWORD, viewport={"width": 700, "height": 700})
    try:
        page.goto(f"{views(fanout)['workflow']}?layout=auto")
        page.locator('g.node[data-id="k3"]').wait_for()
        assert page.evaluate(f"() => {MAIN}.scrollHeight > {MAIN}.clientHeight")
        for _ in range(3):
            page.click("#zoom-in")  # one node's width in view
        page.focus("#graph")
        page.keyboard.press("Tab")
        assert page.evaluate(FOCUSED) == "src"
        scrolled = page.evaluate(f"() => [scrollY, {MAIN}.scrollTop]")
        for key, expected in [("ArrowRight", "k1"), ("ArrowDown", "k2"), ("ArrowLeft", "src")]:
            assert not page.evaluate(INSIDE, expected), expected  # out of view before the key
            page.keyboard.press(key)
            assert page.evaluate(FOCUSED) == expected
            assert page.evaluate(INSIDE, expected), expected
        page.keyboard.press("ArrowUp")  # no flow that way: nothing moves, the page neither
        assert page.evaluate(FOCUSED) == "src"
        assert page.evaluate(f"() => [scrollY, {MAIN}.scrollTop]") == scrolled
    finally:
        page.context.close()


def fanout_package() -> Any:
    return json.loads((DATA / "c03_fanout.dwp").read_text())


# The editor's document, read through the page (editor.js keeps it on window.dizestEditor).
STEPS = "() => window.dizestEditor.doc.undoStack.length"
POS = "(id) => { const f = window.dizestEditor.doc.pkg.flow[id]; return [f.pos_x, f.pos_y]; }"
PLACED = "(id) => document.querySelector(`g.node[data-id='${id}']`).getAttribute('transform')"
EDGE = "() => document.querySelector(\"path.edge[data-to='k1']\").getAttribute('d')"


def test_shift_arrow_moves_a_flow_in_the_editor_as_one_undo_step(
    admin_page: Any, fanout: tuple[str, str]
) -> None:
    page = admin_page
    page.goto(views(fanout)["editor"])  # the stored positions: four flows on one row
    page.locator('g.node[data-id="k3"]').wait_for()
    page.focus("#graph")
    page.keyboard.press("Tab")
    page.keyboard.press("ArrowRight")
    assert page.evaluate(FOCUSED) == "k1"
    x, y = page.evaluate(POS, "k1")
    edge = page.evaluate(EDGE)
    for _ in range(3):
        page.keyboard.press("Shift+ArrowDown")
    page.keyboard.press("Shift+ArrowRight")
    assert page.evaluate(POS, "k1") == [x + 20, y + 60]
    assert page.evaluate(PLACED, "k1") == f"translate({x + 20},{y + 60})"  # drawn where it is
    assert page.evaluate(EDGE) != edge  # its edge from src follows it
    assert page.evaluate(FOCUSED) == "k1"
    expect(page.locator("#ed-state")).to_have_text("unsaved changes")
    assert page.evaluate(STEPS) == 1  # the four steps are one move
    page.keyboard.press("Control+z")
    assert page.evaluate(POS, "k1") == [x, y]
    expect(page.locator('g.node[data-id="k1"]')).to_have_attribute(
        "transform", f"translate({x},{y})"
    )
    assert page.evaluate(EDGE) == edge
    assert page.evaluate(FOCUSED) == "k1"  # the keyboard's place is kept through the redraw
    # An arrow typed in the panel's field is the field's: its caret moves, the focus stays.
    page.keyboard.press("Enter")
    page.fill("#flow-title", "abc")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Shift+ArrowLeft")
    assert page.evaluate("() => document.activeElement.id") == "flow-title"
    assert page.evaluate(
        "() => [document.activeElement.selectionStart, document.activeElement.selectionEnd]"
    ) == [1, 2]
    assert page.evaluate(POS, "k1") == [x, y]


def test_in_the_editor_the_arrows_start_at_the_clicked_flow_and_delete_takes_the_focused_one(
    browser: Any, console: Any
) -> None:
    made = console.api("POST", "/workflows", {"title": "keys", "package": fanout_package()})
    page = log_in(browser, console.base, "admin", PASSWORD)
    try:
        page.goto(f"/workflows/{made['id']}/edit")
        page.locator(
            'g.node[data-id="k1"] text.title'
        ).click()  # selected; the canvas has the focus
        expect(page.locator('g.node[data-id="k1"]')).to_have_class(re.compile(r"\bselected\b"))
        page.keyboard.press("ArrowRight")
        assert page.evaluate(FOCUSED) == "k2"  # from the clicked flow, not the middle of the view
        page.keyboard.press("Delete")  # the flow with the ring goes, not the one clicked before
        expect(page.locator("g.node")).to_have_count(3)
        assert page.evaluate("() => Object.keys(window.dizestEditor.doc.pkg.flow).sort()") == [
            "k1",
            "k3",
            "src",
        ]
    finally:
        page.context.close()


@pytest.mark.parametrize("view", ["workflow", "editor", "run"])
def test_the_hint_says_the_keys(admin_page: Any, fanout: tuple[str, str], view: str) -> None:
    page = admin_page
    page.goto(views(fanout)[view])
    hint = page.locator(f"{PANEL[view]} p.keys")
    expect(hint).to_contain_text("arrow key")
    expect(hint).to_contain_text("Two fingers zoom")
    if view == "editor":
        expect(hint).to_contain_text("Shift+arrow to move it")
