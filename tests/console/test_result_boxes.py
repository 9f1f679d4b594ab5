"""The boxes under the editor's nodes after a run hide no other node. They were 150 px each
whatever they held: after Run all on dag100 (rows 180 px apart, nodes 66 px tall) each one,
saying only "ready", covered the top of the node below it. A flow with nothing to show now has
its status line alone; one with a log has the room down to the next node (at most 150 px). An
app's UI box (the editor's UI mode) was a fixed 240 px, over the next row: it has that room too,
less the status line of its result box."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.conftest import package
from tests.console.conftest import Console

LIVE_MS = 120_000
# Each result box against each node that is not its own: the pairs whose screen boxes intersect.
OVERLAPS = """() => {
  const nodes = [...document.querySelectorAll("#graph svg.dag g.node")].map((el) => [el.dataset.id, el.getBoundingClientRect()]);
  const hits = [];
  for (const fo of document.querySelectorAll("#graph g.results foreignObject")) {
    const r = fo.getBoundingClientRect();
    const own = fo.dataset.id ?? fo.dataset.ui;
    for (const [id, n] of nodes) {
      if (id !== own && r.left < n.right && n.left < r.right && r.top < n.bottom && n.top < r.bottom) hits.push(`${own} over ${id}`);
    }
  }
  return hits;
}"""
BOXES = "#graph g.results foreignObject[data-id]"
UI_BOXES = "#graph g.results foreignObject[data-ui]"


def run_all(page: Any, console: Console, pkg: dict[str, Any], ui: tuple[str, ...] = ()) -> None:
    """Run all of `pkg` in the editor, with the UI of the flows `ui` shown."""
    made = console.api("POST", "/workflows", {"title": "boxes", "package": pkg})
    page.goto(f"/workflows/{made['id']}/edit")
    if ui:  # (the toggles are not drawn this far out: the editor's kept ones)
        page.evaluate(
            "([key, ids]) => localStorage.setItem(key, JSON.stringify(ids))",
            [f"dizest.ui.{made['id']}", list(ui)],
        )
        page.reload()
        expect(page.locator(UI_BOXES)).to_have_count(len(ui))
    expect(page.locator("#graph g.node")).to_have_count(len(pkg["flow"]))
    page.click("#run-all")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    expect(page.locator(BOXES)).to_have_count(len(pkg["flow"]))


def dag100() -> dict[str, Any]:
    return dict(json.loads((Path(__file__).parents[1] / "data" / "dag100.dwp").read_text()))


def test_a_flow_with_nothing_to_show_has_a_status_line_that_covers_no_node(
    admin_page: Any, console: Console
) -> None:
    page = admin_page
    run_all(page, console, dag100())
    expect(page.locator(f"{BOXES} .node-result-status")).to_have_text(["ready"] * 100)
    assert page.evaluate(OVERLAPS) == []
    assert {page.locator(BOXES).nth(i).get_attribute("height") for i in range(100)} == {"24"}


def test_a_log_fills_the_room_down_to_the_next_node_and_scrolls_there(
    admin_page: Any, console: Console
) -> None:
    pkg = dag100()
    pkg["apps"]["node"]["code"] = (
        "for i in range(30):\n    print('line', i)\n" + pkg["apps"]["node"]["code"]
    )
    page = admin_page
    run_all(page, console, pkg)
    assert page.evaluate(OVERLAPS) == []
    # n0001 has a node 180 px below it: 180 - 66 (the node) - 4 - 4 (the gaps) = 106 px;
    # the last of its column has nothing below it: 150 px
    above = page.locator(f'{BOXES}[data-id="n0001"]')
    expect(above).to_contain_text("line 29")
    assert above.get_attribute("height") == "106"
    log = above.locator(".node-result")
    assert log.evaluate("(el) => el.scrollHeight > el.clientHeight")  # the rest scrolls
    column = [f for f in pkg["flow"].values() if f["pos_x"] == pkg["flow"]["n0001"]["pos_x"]]
    last = max(column, key=lambda f: f["pos_y"])["id"]
    assert page.locator(f'{BOXES}[data-id="{last}"]').get_attribute("height") == "150"


def test_a_ui_box_has_the_room_down_to_the_next_node_and_enlarges_on_demand(
    admin_page: Any, console: Console
) -> None:
    pkg = dag100()
    pkg["apps"]["node"].update(html="<p>ui</p>" + "<p>more</p>" * 30)
    column = [f for f in pkg["flow"].values() if f["pos_x"] == pkg["flow"]["n0001"]["pos_x"]]
    last = max(column, key=lambda f: f["pos_y"])["id"]
    page = admin_page
    run_all(page, console, pkg, ui=("n0001", "n0002", last))
    ui = page.locator(f'{UI_BOXES}[data-ui="n0001"]')
    expect(ui.locator("iframe.app-ui")).to_have_count(1)
    assert page.evaluate(OVERLAPS) == []
    # n0001: 106 px down to the next node (see above), less its result box's line and a gap
    assert ui.get_attribute("height") == "78"
    result = page.locator(f'{BOXES}[data-id="n0001"]')
    assert result.get_attribute("height") == "24"
    assert float(result.get_attribute("y") or 0) == float(ui.get_attribute("y") or 0) + 78 + 4
    inside = page.frame_locator(f'{UI_BOXES}[data-ui="n0001"] iframe.app-ui').locator("html")
    expect(inside).to_contain_text("more")
    assert inside.evaluate("(el) => el.scrollHeight > el.clientHeight")  # the UI scrolls inside
    assert page.locator(f'{UI_BOXES}[data-ui="{last}"]').get_attribute("height") == "240"
    grow = ui.locator("button.node-ui-grow")
    grow.press("Enter")  # enlarged: over what lies below, as its user asked
    expect(ui).to_have_attribute("height", "480")
    assert float(result.get_attribute("y") or 0) == float(ui.get_attribute("y") or 0) + 480 + 4
    grow.press("Enter")
    expect(ui).to_have_attribute("height", "78")
    assert page.evaluate(OVERLAPS) == []


def test_a_box_is_as_tall_as_its_log_and_an_error_reads_from_its_traceback_s_first_line(
    admin_page: Any, console: Console
) -> None:
    """A one-line log got the whole room (150 px, some 215 px on screen) of dark box; a long log
    that ended in an error showed the traceback's end, its first lines scrolled away under the
    status line."""
    broken = (
        "for i in range(30):\n    print('line', i)\n"
        "def inner():\n    raise ValueError('broke')\ndef outer():\n    inner()\nouter()\n"
    )
    apps = {"one": {"code": "print('one line')", "outputs": ["x"]}, "bad": {"code": broken, "inputs": ["x"]}}  # fmt: skip
    flows = {"a": {"app": "one", "pos_x": 100, "pos_y": 100}, "b": {"app": "bad", "pos_x": 400, "pos_y": 100, "in": {"x": [("a", "x")]}}}  # fmt: skip
    pkg = package(apps, flows)
    made = console.api("POST", "/workflows", {"title": "a line, a traceback", "package": pkg})
    page = admin_page
    page.goto(f"/workflows/{made['id']}/edit")
    page.click("#run-all")
    expect(page.locator("#run-status")).to_have_text("error", timeout=LIVE_MS)
    one = page.locator(f'{BOXES}[data-id="a"]')
    expect(one).to_contain_text("one line")
    assert one.get_attribute("height") == "150"  # its room: nothing below
    # the dark box: its status line and one line of log (11 px type), not its room
    assert one.locator(".node-result").evaluate("(el) => el.offsetHeight") < 50
    bad = page.locator(f'{BOXES}[data-id="b"] .node-result')
    expect(bad).to_contain_text("ValueError: broke")
    start = bad.locator(".line", has_text="Traceback (most recent call last)")  # (one entry)
    head = bad.locator(".node-result-status").bounding_box()
    line = start.bounding_box()
    shown = bad.bounding_box()
    assert head and line and shown
    assert head["y"] + head["height"] - 1 <= line["y"] < head["y"] + head["height"] + 4
    assert line["y"] + head["height"] <= shown["y"] + shown["height"]  # its first line in view


# The WCAG contrast ratio of an element's text against the background it is drawn on (its own,
# else its nearest ancestor's that is not transparent).
CONTRAST = """(el) => {
  const rgba = (c) => { const v = c.match(/[\\d.]+/g).map(Number); return v.length === 3 ? [...v, 1] : v; };
  let under = el;
  while (under && rgba(getComputedStyle(under).backgroundColor)[3] === 0) under = under.parentElement;
  const lum = (c) => { const [r, g, b] = rgba(c).slice(0, 3).map((x) => x / 255).map((x) => (x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4)); return 0.2126 * r + 0.7152 * g + 0.0722 * b; };
  const [a, b] = [lum(getComputedStyle(el).color), lum(getComputedStyle(under).backgroundColor)];
  return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
}"""
AA = 4.5  # WCAG AA, normal text


def test_a_json_result_under_a_node_reads_as_well_as_its_log(
    admin_page: Any, console: Console
) -> None:
    """A result of 42 (JSON to the console) drew as the dark box's light grey text on the light
    grey of the run view's JSON boxes: all but invisible under its node."""
    code = "print('text line')\ndizest.result('n', 42)\ndizest.result('answer', {'a': 1})\n"
    pkg = package({"one": {"code": code}}, {"a": {"app": "one", "pos_x": 100, "pos_y": 100}})
    page = admin_page
    run_all(page, console, pkg)
    box = page.locator(f'{BOXES}[data-id="a"] .node-result')
    expect(box.locator(".result-json")).to_have_text(["42", '{\n  "a": 1\n}'])
    assert box.locator(".line", has_text="text line").evaluate(CONTRAST) >= AA
    for shown in box.locator(".result-json").all():
        assert shown.evaluate(CONTRAST) >= AA
    run_id = str(page.locator("#run-link").get_attribute("href")).rsplit("/", 1)[1]
    page.goto(f"/runs/{run_id}#flow=a")  # the run view's light panel: as legible
    numbers = page.locator("#flow .result-json", has_text="42")
    expect(numbers.first).to_be_visible(timeout=LIVE_MS)
    for shown in page.locator("#flow .result-json").all():
        assert shown.evaluate(CONTRAST) >= AA
