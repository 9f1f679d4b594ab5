"""What the graph views redraw, and when (a performance probe's finds on 1,000-flow graphs):

- the run view's timeline is drawn after a flow starts, ends or changes status, not for log
  lines, and never while it is closed (it was redrawn every second of a live run, shown or not);
- a node's selection and status change its box's colours, never its stroke's width: a width is
  geometry, and a geometry change in the graph with the panel a click opens laid out the whole
  graph (85-100 ms on dag1000);
- a click on a node in the editor changes nothing in the graph but classes (it rewrote the
  node's transform and its edges, which cost the same layout).
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import package, wait_for
from tests.console.conftest import GO_API, Console, go

LIVE = 60
# One line every 50 ms until the test says go (GO_API leaves the file UNTIL_GO waits for).
TALKER = (
    "import os, time\n_end = time.time() + 60\n_i = 0\n"
    "while not os.path.exists('go') and time.time() < _end:\n"
    "    print('line', _i, flush=True)\n    _i += 1\n    time.sleep(0.05)\n"
)
# How many times the timeline was drawn since COUNT: each drawing replaces its chart.
COUNT = """() => {
  window.__draws = 0;
  new MutationObserver(() => window.__draws++).observe(document.getElementById("timeline"), {childList: true});
}"""
DRAWS = "() => window.__draws"
STROKE = (
    "(id) => getComputedStyle(document.querySelector(`g.node[data-id='${id}'] .box`)).strokeWidth"
)
# Every attribute the graph's SVG sees changed from now on, as "tag attribute".
WATCH = """() => {
  window.__changed = [];
  new MutationObserver((records) => {
    for (const r of records) window.__changed.push(`${r.target.tagName} ${r.attributeName}`);
  }).observe(document.querySelector("svg.dag"), {attributes: true, subtree: true});
}"""


def lines(page: Any) -> int:
    return int(page.locator("#flow-log .line").count())


def talking_run(console: Console) -> str:
    """A run of `talk` (printing until the test says go) -> `then`."""
    apps = {
        "talk": {"code": TALKER + "v = 1\n", "outputs": ["v"]},
        "then": {"code": "pass\n", "inputs": ["v"]},
    }
    flows = {"talk": {"app": "talk"}, "then": {"app": "then", "in": {"v": [("talk", "v")]}}}
    pkg = package(apps, flows)
    pkg["apps"]["talk"]["api"] = GO_API  # (its call takes the worker's other slot)
    made = console.api("POST", "/workflows", {"title": "talking", "package": pkg})
    return str(console.api("POST", "/runs", {"workflow_id": made["id"]})["run_id"])


def test_selection_and_status_change_a_nodes_colours_not_its_stroke_width(
    admin_page: Any, console: Console
) -> None:
    run_id = talking_run(console)
    page = admin_page
    page.goto(f"/runs/{run_id}")
    talk = page.locator('g.node[data-id="talk"]')
    talk.click()
    expect(talk).to_have_class(re.compile(r"\bst-running\b"), timeout=LIVE * 1000)
    expect(talk).to_have_class(re.compile(r"\bselected\b"))
    assert page.evaluate(STROKE, "talk") == page.evaluate(STROKE, "then")  # idle
    go(console, run_id, "talk")
    ready = re.compile(r"\bst-ready\b")
    expect(page.locator('g.node[data-id="then"]')).to_have_class(ready, timeout=LIVE * 1000)
    assert page.evaluate(STROKE, "talk") == page.evaluate(STROKE, "then")


def test_the_timeline_is_drawn_on_a_status_change_and_only_while_open(
    admin_page: Any, console: Console
) -> None:
    run_id = talking_run(console)
    page = admin_page
    page.goto(f"/runs/{run_id}")
    page.evaluate(COUNT)
    page.locator('g.node[data-id="talk"]').click()
    expect(page.locator("#timeline g.bar.st-running")).to_have_count(1, timeout=LIVE * 1000)
    # log lines are no change of the timeline (once a drawing still due is done)
    wait_for(lambda: lines(page) >= 30, LIVE)
    drawn = page.evaluate(DRAWS)
    seen = lines(page)
    wait_for(lambda: lines(page) >= seen + 60, LIVE)  # 3 s of lines
    assert page.evaluate(DRAWS) == drawn
    # closed, the timeline is not drawn; opened again, it is, with what changed meanwhile
    page.click("#timeline-box > summary")
    go(console, run_id, "talk")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE * 1000)
    assert page.evaluate(DRAWS) == drawn
    page.click("#timeline-box > summary")
    wait_for(lambda: page.evaluate(DRAWS) == drawn + 1, 10)
    expect(page.locator("#timeline g.bar.st-ready")).to_have_count(2)


def test_a_click_on_a_node_in_the_editor_changes_only_classes_in_the_graph(
    admin_page: Any, console: Console
) -> None:
    apps = {"a": {"code": "v = 1\n", "outputs": ["v"]}, "b": {"code": "pass\n", "inputs": ["v"]}}
    flows = {
        "a": {"app": "a", "pos_x": 40, "pos_y": 40},
        "b": {"app": "b", "pos_x": 340, "pos_y": 40, "in": {"v": [("a", "v")]}},
    }
    made = console.api("POST", "/workflows", {"title": "clicks", "package": package(apps, flows)})
    page = admin_page
    page.goto(f"/workflows/{made['id']}/edit")
    page.locator('g.node[data-id="b"]').wait_for()
    page.evaluate(WATCH)
    for flow in ("a", "b"):
        page.locator(f'g.node[data-id="{flow}"] rect.box').click()
        expect(page.locator("#flow h2")).to_have_text(flow)
    assert set(page.evaluate("() => window.__changed")) == {"g class"}
    assert page.evaluate("() => window.dizestEditor.doc.pkg.flow.a.pos_x") == 40  # not moved
