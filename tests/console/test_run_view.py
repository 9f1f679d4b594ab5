"""Following runs as a user does (a run-view probe's finds): a flow's `dizest.clear()` redraws
only its log, leaving the tab the user is on; in the editor, a result box under a node never
covers the node below it, and a flow's output of the run before stays under it until the flow
starts again (as DIZEST keeps it); a viewer of a shared workflow sees its owner's runs on the workflow
page."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import package, wait_for
from tests.console.conftest import GO_API, UNTIL_GO, USER_PASSWORD, Console, go, log_in, views

LIVE_MS = 60_000
# The text of a flow's result box in the editor while it is marked stale (else null).
STALE_TEXT = """(id) => {
  const box = document.querySelector(`foreignObject[data-id="${id}"] .node-result`);
  return box && box.classList.contains("stale") ? box.textContent : null;
}"""


def stored(console: Console, title: str, pkg: dict[str, Any], owner: str = "admin") -> str:
    made = console.api("POST", "/workflows", {"title": title, "package": pkg}, owner)
    return str(made["id"])


def test_a_log_clear_redraws_the_log_and_leaves_the_users_tab(
    admin_page: Any, console: Console
) -> None:
    code = f"print('old line')\n{UNTIL_GO}dizest.clear()\nprint('new line')\n"
    pkg = package({"c": {"code": code}}, {"c": {"app": "c"}})
    pkg["apps"]["c"]["api"] = GO_API  # the clear comes when the test says
    wf_id = stored(console, "clears", pkg)
    run = console.api("POST", "/runs", {"workflow_id": wf_id})
    page = admin_page
    page.goto(f"/runs/{run['run_id']}")
    page.locator('g.node[data-id="c"]').click()
    log = page.locator("#flow-log")
    expect(log).to_have_text("old line", timeout=LIVE_MS)
    page.click('.tabs button[data-tab="params"]')
    go(console, run["run_id"], "c")  # now the clear
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    expect(page.locator("#params")).to_be_visible()  # the user's tab: not taken back to Flow
    assert log.locator(".line").all_text_contents() == ["new line"]


def test_a_result_box_in_the_editor_does_not_cover_the_node_below(
    admin_page: Any, console: Console
) -> None:
    loud = "for i in range(40):\n    print('line', i)\n"
    pkg = package(
        {"loud": {"code": loud}, "quiet": {"code": "pass\n"}},
        {  # `quiet` sits where `loud`'s result box goes (150 px under its node)
            "loud": {"app": "loud", "pos_x": 40, "pos_y": 40},
            "quiet": {"app": "quiet", "pos_x": 40, "pos_y": 150},
        },
    )
    wf_id = stored(console, "stacked", pkg)
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    page.click("#run-all")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    expect(page.locator('foreignObject[data-id="loud"]')).to_contain_text("line 39")
    box = page.locator('g.node[data-id="quiet"] rect.box').bounding_box()
    centre = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
    hit = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y)?.closest('g.node')?.dataset.id ?? null",
        centre,
    )
    assert hit == "quiet"
    page.mouse.click(*centre)
    expect(page.locator('g.node[data-id="quiet"]')).to_have_class(re.compile(r"\bselected\b"))


def test_the_editor_keeps_a_flows_last_output_until_it_starts_again(
    admin_page: Any, console: Console
) -> None:
    pkg = package(
        {
            "slow": {"code": "import time\ntime.sleep(3)\nv = 1\n", "outputs": ["v"]},
            "talk": {"code": "print('talk says hi')\n", "inputs": ["v"]},
        },
        {
            "slow": {"app": "slow", "pos_x": 40, "pos_y": 40},
            "talk": {"app": "talk", "pos_x": 340, "pos_y": 40, "in": {"v": [("slow", "v")]}},
        },
    )
    wf_id = stored(console, "kept output", pkg)
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    talk = page.locator('foreignObject[data-id="talk"] .node-result')
    page.click("#run-all")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    expect(talk).to_contain_text("talk says hi")
    first = page.locator("#run-link").get_attribute("href")
    page.click("#run-all")
    expect(page.locator("#run-link")).not_to_have_attribute("href", first or "", timeout=LIVE_MS)
    status = page.locator('foreignObject[data-id="slow"] .node-result-status')
    expect(status).to_have_text("running", timeout=LIVE_MS)
    # `slow` sleeps 3 s: `talk` has not started, and shows what it said last time, dimmed
    kept = wait_for(lambda: page.evaluate(STALE_TEXT, "talk"), timeout=30)
    assert "talk says hi" in kept and "output of the run before" in kept
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    expect(talk).not_to_have_class(re.compile(r"\bstale\b"))
    assert talk.locator(".line").all_text_contents() == ["talk says hi"]


def test_a_viewer_sees_the_owners_runs_on_a_shared_workflows_page(
    browser: Any, console: Console
) -> None:
    console.user("wanda")
    console.user("vic")
    pkg = package({"w": {"code": "v = 7\n", "outputs": ["v"]}}, {"w": {"app": "w"}})
    wf_id = stored(console, "wanda's", pkg, owner="wanda")
    console.api("PUT", f"/workflows/{wf_id}/grants", {"grants": {"vic": "viewer"}}, "wanda")
    run_id = console.api("POST", "/runs", {"workflow_id": wf_id}, "wanda")["run_id"]
    wait_for(
        lambda: console.api("GET", f"/runs/{run_id}", name="wanda")["status"] == "ready",
        timeout=60,
    )
    page = log_in(browser, console.base, "vic", USER_PASSWORD)
    page.goto(f"/workflows/{wf_id}")
    expect(page.locator('g.node[data-id="w"]')).to_have_class("node st-ready", timeout=LIVE_MS)
    page.locator('g.node[data-id="w"]').click()
    expect(page.locator("#node")).to_contain_text(f"From run {run_id}")
    page.click("#wf-runs")
    expect(page.locator(f'#run-rows tr[data-id="{run_id}"]')).to_be_visible(timeout=LIVE_MS)
    page.context.close()


TABLE = """class Table:
    def _repr_html_(self):
        return '<table><tr><th>a</th></tr><tr><td>1</td></tr></table>'
print(Table())
v = {3}
"""


def test_an_output_json_cannot_carry_shows_its_type_and_repr_and_html_tables_have_borders(
    admin_page: Any, console: Console
) -> None:
    """A set (as a DataFrame) has no JSON form: its preview is its type and its repr as text,
    not the {"$type", "$repr"} object's JSON; an HTML table a flow prints is drawn with
    collapsed borders and the console's font (a flow's own styles would come after). The run
    and the runs list name its workflow by title."""
    pkg = package({"t": {"code": TABLE, "outputs": ["v"]}}, {"t": {"app": "t"}})
    run = console.api("POST", "/runs", {"workflow_id": stored(console, "table", pkg)})
    page = admin_page
    page.goto(f"/runs/{run['run_id']}")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    page.locator('g.node[data-id="t"]').click()
    shown = page.locator("#flow-outputs .output-repr")
    expect(shown.locator("small")).to_have_text("builtins.set")
    expect(shown.locator("pre")).to_have_text("{3}")
    expect(page.locator("#flow-outputs")).not_to_contain_text("$repr")
    cell = page.frame_locator("#flow-log iframe.result-html").locator("td")
    expect(cell).to_have_text("1")
    style = cell.evaluate(
        "(td) => [getComputedStyle(td.closest('table')).borderCollapse, getComputedStyle(td).fontFamily]"
    )
    assert style[0] == "collapse" and "system-ui" in style[1], style
    expect(page.locator("#run-workflow")).to_have_text("table")  # its workflow, by title
    page.goto("/runs")
    cell = page.locator(f'#run-rows tr[data-id="{run["run_id"]}"] td').nth(2)
    expect(cell).to_have_text("table", use_inner_text=True)  # (its user under it on a phone)


def test_a_failed_run_opens_on_the_flow_that_failed(admin_page: Any, console: Console) -> None:
    """Of a run that failed, with no flow in its address, the page shows the first flow that
    failed (its traceback), not an empty panel: one that ended before the page opened, and one
    that fails while it is watched; a flow the address names is kept."""
    bad = f"{UNTIL_GO}raise ValueError('no')"
    pkg = package(
        {"ok": {"code": "v = 1", "outputs": ["v"]}, "bad": {"code": bad, "inputs": ["v"]}},
        {"a": {"app": "ok"}, "b": {"app": "bad", "in": {"v": [("a", "v")]}}, "c": {"app": "ok"}},
    )
    pkg["apps"]["bad"]["api"] = GO_API  # it fails when the test says
    wf_id = stored(console, "fails", pkg)
    page = admin_page
    shown = page.locator("#flow p.muted").first
    live = console.api("POST", "/runs", {"workflow_id": wf_id})["run_id"]
    page.goto(f"/runs/{live}")
    expect(page.locator("#run-live")).to_have_text("● live", timeout=LIVE_MS)
    go(console, live, "b")
    expect(page.locator("#run-status")).to_have_text("error", timeout=LIVE_MS)
    expect(shown).to_contain_text("flow b ·")
    expect(page.locator("#flow-reason")).to_contain_text("ValueError")
    assert page.url.endswith("#flow=b"), page.url
    page.goto(f"/runs/{live}#flow=c")  # (a change of the hash alone: no new page)
    page.reload()  # a flow the address names: kept
    expect(shown).to_contain_text("flow c ·")
    page.goto(f"/runs/{live}")
    page.reload()  # ended before the page opened
    expect(shown).to_contain_text("flow b ·")


# Each node of the run view's graph against the canvas: the ids of those not wholly in it.
CLIPPED = """() => {
  const c = document.getElementById("graph").getBoundingClientRect();
  return [...document.querySelectorAll("#graph g.node")].filter((el) => {
    const r = el.getBoundingClientRect();
    return r.top < c.top || r.bottom > c.bottom || r.left < c.left || r.right > c.right;
  }).map((el) => el.dataset.id);
}"""
HEIGHT = "() => document.getElementById('graph').getBoundingClientRect().height"
# The view's scale: canvas px a graph unit.
SCALE = """() => document.getElementById("graph").getBoundingClientRect().width
  / document.querySelector("#graph svg.dag").viewBox.baseVal.width"""


def test_the_timeline_opening_refits_a_fitted_graph_and_has_a_time_axis(
    admin_page: Any, console: Console
) -> None:
    """A column of six flows fitted to the canvas lost its top and bottom rows when the timeline
    filled below it (the view kept its scale); one the user zoomed keeps their scale. The bars
    had no time axis, only the total."""
    ids = [f"s{i}" for i in range(6)]
    flows: dict[str, dict[str, Any]] = {}
    # a column, each flow fed by the one above it; 150 px apart, it fits at a size to read with
    # the timeline open too (Fit zooms out no further: test_fit)
    for i, fid in enumerate(ids):
        flows[fid] = {"app": "a", "pos_x": 100, "pos_y": 150 * i}
        if i:
            flows[fid]["in"] = {"x": [(ids[i - 1], "x")]}
    pkg = package({"a": {"code": "x = 1", "inputs": ["x"], "outputs": ["x"]}}, flows)
    run_id = str(console.api("POST", "/runs", {"workflow_id": stored(console, "column", pkg)})["run_id"])  # fmt: skip
    wait_for(lambda: console.api("GET", f"/runs/{run_id}")["status"] == "ready", timeout=60)
    page = admin_page
    page.goto(f"/runs/{run_id}")
    expect(page.locator("#timeline svg.gantt g.bar")).to_have_count(6, timeout=LIVE_MS)
    wait_for(lambda: page.evaluate(CLIPPED) == [], timeout=10)
    ticks = page.locator("#timeline svg.gantt-axis text:not(.total)")
    assert ticks.count() >= 2
    expect(ticks.first).to_have_text("0")
    expect(page.locator("#timeline svg.gantt-axis .total")).to_have_text(re.compile(r"^total \d"))
    page.click("#zoom-in")  # the user's own view: kept through a resize, at their scale
    scale = page.evaluate(SCALE)
    height = page.evaluate(HEIGHT)
    page.click("#timeline-box summary")  # closed: the canvas takes its room
    wait_for(lambda: page.evaluate(HEIGHT) > height + 50, timeout=10)
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")  # fmt: skip
    assert abs(page.evaluate(SCALE) - scale) < 1e-6


# The canvas's heights as it is laid out once its graph is in it (a ResizeObserver set before the
# page's scripts run; before the graph, an empty canvas changes nothing a user sees).
HEIGHTS = """() => { window.__heights = [];
  new MutationObserver((_, seen) => { const graph = document.getElementById("graph");
    if (!graph) return; seen.disconnect();
    new ResizeObserver(() => graph.querySelector("svg.dag")
      && window.__heights.push(graph.getBoundingClientRect().height)).observe(graph);
  }).observe(document, { subtree: true, childList: true }); }"""


def test_the_graph_keeps_its_height_as_the_timeline_fills(
    admin_page: Any, console: Console, fanout: tuple[str, str]
) -> None:
    """The timeline took its room from the canvas as its bars came, a second after the graph
    was drawn: the graph jumped (a two-finger zoom begun meanwhile went astray). Its room is
    kept from the start, a bar a flow."""
    page = admin_page
    page.add_init_script(f"({HEIGHTS})()")
    page.goto(views(fanout)["run"])
    expect(page.locator("#timeline svg.gantt g.bar")).to_have_count(4, timeout=LIVE_MS)
    heights = page.evaluate("() => window.__heights")
    assert len(set(heights)) <= 1, heights
