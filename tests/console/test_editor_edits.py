"""The editor keeps what the user did, and only what they may do (an editor probe's finds): a
change made while a save is under way stays unsaved, a second save waits for the first (no false
conflict), a copy of a long title fits, positions laid out for a package without any are the
ones saved, an undone drag puts the flow back, Delete removes only what is selected, an input made a variable leaves no link in its
source, a viewer changes nothing and a runner runs without saving, a skipped flow says so, a run
is stopped from the editor, and every page names its icon (no 404 in the browser's console)."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import DATA as CORE_DATA
from tests.conftest import wait_for
from tests.console.conftest import Console, log_in
from tests.console.test_editor import LIVE_S, drag_by, empty, pkg_of

# Every PUT of a workflow waits, while `__hold()` is in force, until `__release()`: a save is
# held under way exactly as long as the test needs, with no timing.
HOLD_PUTS = """
(() => {
  let gate = null;
  window.__puts = 0;
  window.__held = 0;
  window.__done = 0;
  window.__hold = () => { gate = new Promise((resolve) => (window.__release = () => { gate = null; resolve(); })); };
  const real = window.fetch.bind(window);
  window.fetch = async (url, options = {}) => {
    if ((options.method || "GET") === "PUT" && String(url).includes("/workflows/")) {
      window.__puts++;
      if (gate) { window.__held++; await gate; }
      const answer = await real(url, options);
      window.__done++;
      return answer;
    }
    return real(url, options);
  };
})();
"""


def fanout() -> dict[str, Any]:
    return json.loads((CORE_DATA / "c03_fanout.dwp").read_text())


def toggle(page: Any, flow: str) -> None:
    page.locator(f'g.node[data-id="{flow}"] text.toggle').click()


def test_a_change_during_a_save_stays_unsaved_and_a_second_save_waits(
    admin_page: Any, console: Console
) -> None:
    wf_id = empty(console, "saves under way", fanout())
    page = admin_page
    page.add_init_script(HOLD_PUTS)
    page.goto(f"/workflows/{wf_id}/edit")
    expect(page.locator("g.node")).to_have_count(4)
    toggle(page, "k1")
    page.evaluate("window.__hold()")
    page.keyboard.press("Control+s")
    wait_for(
        lambda: page.evaluate("window.__held") == 1, timeout=30
    )  # (no polling in the page: CSP)
    toggle(page, "k2")  # while version 2 is being stored
    page.evaluate("window.__release()")
    wait_for(lambda: page.evaluate("window.__done") == 1, timeout=30)  # (the state said so before)
    expect(page.locator("#ed-state")).to_have_text("unsaved changes")
    stored = console.api("GET", f"/workflows/{wf_id}")
    assert stored["version"] == 2
    assert stored["package"]["flow"]["k1"]["active"] is False
    assert stored["package"]["flow"]["k2"]["active"] is not False
    # Two saves asked at once: one PUT, then the second finds nothing left to save.
    page.evaluate("window.__hold()")
    page.keyboard.press("Control+s")
    wait_for(lambda: page.evaluate("window.__held") == 2, timeout=30)
    page.click("#save")
    page.evaluate("window.__release()")
    expect(page.locator("#ed-state")).to_have_text("saved · v3")
    assert page.evaluate("window.__puts") == 2
    expect(page.locator("#conflict")).to_be_hidden()
    assert console.api("GET", f"/workflows/{wf_id}")["package"]["flow"]["k2"]["active"] is False


def test_a_copy_of_a_long_title_fits_the_limit(admin_page: Any, console: Console) -> None:
    title = "t" * 200
    wf_id = empty(console, title, fanout())
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    expect(page.locator("g.node")).to_have_count(4)
    changed = {**fanout(), "description": "theirs"}
    console.api("PUT", f"/workflows/{wf_id}", {"package": changed})  # someone saved meanwhile
    toggle(page, "k1")
    page.click("#save")
    expect(page.locator("#conflict")).to_be_visible()
    page.click("#conflict-copy")
    expect(page).to_have_url(re.compile(rf"/workflows/(?!{wf_id})\w+/edit$"))
    copy = console.api("GET", f"/workflows/{page.url.rsplit('/', 2)[1]}")
    assert len(copy["title"]) == 200 and copy["title"].endswith(" (copy)")
    assert copy["package"]["flow"]["k1"]["active"] is False


def test_positions_laid_out_for_a_package_without_any_are_saved(
    admin_page: Any, console: Console
) -> None:
    package = fanout()
    for flow in package["flow"].values():
        del flow["pos_x"], flow["pos_y"]
    wf_id = empty(console, "no positions", package)
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    drag_by(page, page.locator('g.node[data-id="k2"] rect.box'), 80, 100)
    page.click("#save")
    expect(page.locator("#ed-state")).to_have_text("saved · v2")
    drawn = page.evaluate(
        "() => Object.fromEntries(window.dizestEditor.canvas.graph.nodes.map((n) => [n.id, [Math.round(n.x), Math.round(n.y)]]))"
    )
    stored = console.api("GET", f"/workflows/{wf_id}")["package"]["flow"]
    assert {k: [f["pos_x"], f["pos_y"]] for k, f in stored.items()} == drawn
    page.reload()
    expect(page.locator("g.node")).to_have_count(4)
    again = page.evaluate(
        "() => Object.fromEntries(window.dizestEditor.canvas.graph.nodes.map((n) => [n.id, [n.x, n.y]]))"
    )
    assert again == drawn  # the moved flow too, where it was dropped


def test_an_undone_drag_puts_the_flow_and_its_edge_back(admin_page: Any, console: Console) -> None:
    # The canvas moves a dragged node itself; the undo's redraw compared the document's markup
    # with what it had drawn before the drag, found them alike and left the node (and its edge)
    # where it was dropped, though the document had it back.
    wf_id = empty(console, "undo a drag", fanout())
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    k1 = page.locator('g.node[data-id="k1"]')
    edge = page.locator("path.edge[data-to='k1']")
    placed, line = k1.get_attribute("transform"), edge.get_attribute("d")
    drag_by(page, k1, 0, 80)
    expect(k1).not_to_have_attribute("transform", placed or "")
    assert pkg_of(page)["flow"]["k1"]["pos_y"] > 100
    page.keyboard.press("Control+z")
    assert pkg_of(page)["flow"]["k1"]["pos_y"] == 100
    expect(k1).to_have_attribute("transform", placed or "")
    expect(edge).to_have_attribute("d", line or "")


def test_delete_removes_only_what_is_selected(admin_page: Any, console: Console) -> None:
    wf_id = empty(console, "delete keys", fanout())
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    page.locator('g.node[data-id="k1"] text.title').click()
    expect(page.locator('g.node[data-id="k1"]')).to_have_class(re.compile("selected"))
    graph = page.locator("#graph").bounding_box()
    page.mouse.click(graph["x"] + 8, graph["y"] + graph["height"] - 8)  # the background
    expect(page.locator('g.node[data-id="k1"]')).not_to_have_class(re.compile("selected"))
    page.keyboard.press("Delete")
    page.locator('g.node[data-id="k2"] text.title').click()
    page.click("#zoom-in")  # the focus is on a button now: Backspace is not for the graph
    page.keyboard.press("Backspace")
    assert sorted(pkg_of(page)["flow"]) == ["k1", "k2", "k3", "src"]
    page.locator('g.node[data-id="k3"] text.title').click()
    page.keyboard.press("Delete")
    expect(page.locator("g.node")).to_have_count(3)
    assert "k3" not in pkg_of(page)["flow"]


def test_an_input_made_a_variable_leaves_no_link_in_its_source(
    admin_page: Any, console: Console
) -> None:
    wf_id = empty(console, "input type", fanout())
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    page.locator('g.node[data-id="k1"] text.title').click()
    page.click("#flow-edit-app")
    page.locator('#app-inputs tr[data-input="v"] select[name=type]').select_option("variable")
    flows = pkg_of(page)["flow"]
    assert "v" not in flows["k1"].get("inputs", {})
    assert {"node": "k1", "output": "v"} not in flows["src"]["outputs"]["v"]["connections"]
    assert len(flows["src"]["outputs"]["v"]["connections"]) == 2  # k2's and k3's stay
    expect(page.locator("#problems li")).to_have_count(0)


def test_a_viewer_changes_nothing_and_a_runner_runs_without_saving(
    browser: Any, console: Console
) -> None:
    console.user("olga")
    console.user("vic")
    console.user("rune")
    wf_id = console.api("POST", "/workflows", {"title": "olga's", "package": fanout()}, "olga")["id"]  # fmt: skip
    grants = {"vic": "viewer", "rune": "runner"}
    console.api("PUT", f"/workflows/{wf_id}/grants", {"grants": grants}, "olga")
    page = log_in(browser, console.base, "vic")
    page.goto(f"/workflows/{wf_id}/edit")
    expect(page.locator("g.node")).to_have_count(4)
    expect(page.locator('g.node[data-id="k1"] text.del')).to_be_hidden()
    drag_by(page, page.locator('g.node[data-id="k1"] rect.box'), 100, 120)
    page.locator('g.node[data-id="k1"] text.title').click()
    expect(page.locator("#flow-title")).to_be_disabled()
    expect(page.locator("#flow-remove")).to_be_hidden()
    expect(page.locator("#flow-run")).to_be_hidden()
    page.keyboard.press("Delete")
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+s")
    expect(page.locator("#ed-state")).to_contain_text("read-only")
    expect(page.locator("#ed-state")).to_contain_text("saved · v1")
    assert page.evaluate("window.dizestEditor.doc.dirty") is False
    assert len(pkg_of(page)["flow"]) == 4
    page.click("#flow-edit-app")
    expect(page.locator("#app-title")).to_be_disabled()
    expect(page.locator("#add-input")).to_be_hidden()
    page.context.close()

    runner = log_in(browser, console.base, "rune")
    runner.goto(f"/workflows/{wf_id}/edit")
    expect(runner.locator("g.node")).to_have_count(4)
    runner.click("#run-all")
    expect(runner.locator("#run-status")).to_have_text("ready", timeout=LIVE_S)
    assert console.api("GET", f"/workflows/{wf_id}", name="olga")["version"] == 1
    runner.context.close()


def test_skipped_flows_say_so_and_a_run_stops_from_the_editor(
    admin_page: Any, console: Console
) -> None:
    wf_id = empty(console, "errors", json.loads((CORE_DATA / "c04_error.dwp").read_text()))
    page = admin_page
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"/workflows/{wf_id}/edit")
    page.click("#run-all")
    expect(page.locator("#run-status")).to_have_text("error", timeout=LIVE_S)
    expect(page.locator("#run-stop")).to_be_hidden()
    skipped = page.locator('foreignObject[data-id="a2"] .node-result-status')
    expect(skipped).to_have_text(re.compile(r"^skipped: upstream"))
    expect(page.locator('g.node[data-id="a2"] .badge')).to_have_text("skipped")

    ticker = console.workflow("ticker", "ticker to stop")
    page.goto(f"/workflows/{ticker}/edit")
    page.locator('g.node[data-id="ticker"] text.title').click()
    page.fill('input[name="ticker.count"]', "600")
    page.fill('input[name="ticker.delay"]', "0.1")
    page.click("#run-all")
    expect(page.locator("#run-status")).to_have_text("running", timeout=LIVE_S)
    page.click("#run-stop")
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=LIVE_S)
    assert errors == [], errors  # no favicon 404 (nor anything else)
    icon = page.request.get(f"{console.base}/favicon.ico")
    assert icon.status == 200 and icon.headers["content-type"].startswith("image/svg+xml")


def test_an_apps_api_and_ui_sources_are_edited_in_their_tabs(
    admin_page: Any, console: Console
) -> None:
    """DIZEST's editor has a tab per source of an app (code, api, html, js, css); ours had the
    code alone, so a UI-mode app could not be written in the console (an editor probe's find)."""
    wf_id = empty(console, "sources", fanout())
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    page.locator('g.node[data-id="k1"] text.title').click()
    page.click("#flow-edit-app")
    expect(page.locator("#app-code .cm-content")).to_be_visible()
    typed = {
        "api": "def ping():\n    return 1",
        "html": "<b id='x'>hi</b>",
        "css": "b { color: red }",
    }
    for field, text in typed.items():
        page.click(f'#app-sources button[data-source="{field}"]')
        expect(page.locator(f'#app-sources button[data-source="{field}"]')).to_have_class("active")
        editor = page.locator("#app-code .cm-content")
        expect(editor).to_have_text("")
        editor.click()
        page.keyboard.insert_text(text)
    page.click('#app-sources button[data-source="code"]')
    expect(page.locator("#app-code .cm-content")).to_contain_text("dizest.input")
    page.click("#save")
    expect(page.locator("#ed-state")).to_have_text("saved · v2")
    app = console.api("GET", f"/workflows/{wf_id}")["package"]["apps"]["k1"]
    assert {field: app[field] for field in typed} == typed
    assert "dizest.input" in app["code"]  # the code itself untouched


def test_a_new_empty_workflow_opens_in_the_editor_and_a_title_is_renamed(
    admin_page: Any, console: Console
) -> None:
    """No blank workflow could be made in the console (only uploaded), and no title changed."""
    page = admin_page
    page.goto("/workflows")
    page.once("dialog", lambda dialog: dialog.accept("Quarterly"))  # its name, asked first
    page.click("#wf-new")
    expect(page).to_have_url(re.compile(r"/workflows/\w+/edit$"))
    expect(page.locator("#ed-state")).to_have_text("saved · v1")
    wf_id = page.url.rsplit("/", 2)[1]
    page.goto(f"/workflows/{wf_id}")
    expect(page.locator("#wf-title")).to_have_text("Quarterly")
    page.click("#wf-rename")
    page.fill("#wf-title-input", "Quarterly <report>")
    page.locator("#wf-rename-form button[type=submit]").click()
    expect(page.locator("#wf-title")).to_have_text("Quarterly <report>")
    stored = console.api("GET", f"/workflows/{wf_id}")
    # a title is the workflow's, not a version's: a rename adds no version (it made v2 of the
    # same package before, listed in every Version menu)
    assert stored["title"] == "Quarterly <report>" and stored["version"] == 1
    assert stored["package"] == {"apps": {}, "flow": {}}
