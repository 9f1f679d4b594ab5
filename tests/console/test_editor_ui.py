"""App UI mode in the editor, as DIZEST's node cards have it: a flow whose app has a UI gets a
"UI" toggle on its node, which shows the app's UI under the node once the editor ran the flow:
the run view's sandboxed frame and bridge, fed with that run's results, its `api` calls
answered, loaded anew when the flow runs again; kept through redraws and zoom. Over plain http
the editor's frames carry the editor's own frame key and Referer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.conftest import package
from tests.console.conftest import Console, log_in
from tests.console.test_app_ui import API, HTML, JS
from tests.console.test_console_hardening import without_fetch_metadata
from tests.console.test_editor import LIVE_S

FLOW_UI = 'foreignObject[data-ui="f"]'


def press(button: Any) -> None:
    """Press a button of a UI with the keyboard: Playwright's click aims at where the button
    would be without the canvas's zoom (an iframe in a scaled SVG), hitting another element."""
    button.press("Enter")


def ui_workflow(console: Console, owner: str, title: str) -> str:
    """A source flow `s` without a UI feeding `f`, whose app has one (v = n + k)."""
    pkg = package(
        {
            "src": {"code": "n = 1", "outputs": ["n"]},
            "adder": {
                "code": "v = dizest.input('x') + int(dizest.input('k'))",
                "inputs": ["x", ("k", "variable", "number")],
                "outputs": ["v"],
            },
        },
        {
            "s": {"app": "src", "pos_x": 40, "pos_y": 60},
            "f": {
                "app": "adder",
                "in": {"x": [("s", "n")]},
                "data": {"k": "40"},
                "pos_x": 320,
                "pos_y": 60,
            },
        },
    )
    pkg["apps"]["adder"].update(html=HTML, js=JS, api=API)
    return str(console.api("POST", "/workflows", {"title": title, "package": pkg}, owner)["id"])


def test_a_flows_ui_shows_under_its_node_with_the_runs_results_and_its_api(
    browser: Any, console: Console
) -> None:
    console.user("una")
    wf_id = ui_workflow(console, "una", "ui in the editor")
    page = log_in(browser, console.base, "una")
    try:
        shown = page.goto(f"/workflows/{wf_id}/edit")
        assert shown is not None and shown.headers["referrer-policy"] == "no-referrer"
        expect(page.locator('g.node[data-id="s"]')).to_have_count(1)
        expect(page.locator('g.node[data-id="s"] .ui-toggle')).to_have_count(0)  # no UI, no toggle
        page.locator('g.node[data-id="f"] .ui-toggle text').click()
        expect(page.locator('g.node[data-id="f"]')).to_have_class(re.compile(r"\bui-on\b"))
        expect(page.locator(FLOW_UI)).to_contain_text("Run the flow to see its UI")

        page.click("#run-all")
        expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_S)
        frame_el = page.locator(f"{FLOW_UI} iframe.app-ui")
        expect(frame_el).to_have_attribute("sandbox", "allow-scripts")
        frame = page.frame_locator(f"{FLOW_UI} iframe.app-ui")
        expect(frame.locator("#v")).to_have_text("41", timeout=LIVE_S)  # 1 + 40, this run's
        expect(frame.locator("#status")).to_have_text("ready")
        press(frame.locator("#go"))
        expect(frame.locator("#out")).to_have_text("sum=43", timeout=LIVE_S)  # its api, answered
        expect(frame.locator("#iso")).to_have_text("cookie blocked, parent blocked, origin null")
        # the log and results box goes below the UI, not over it
        ui_box = page.locator(FLOW_UI).bounding_box()
        log_box = page.locator('foreignObject[data-id="f"]').bounding_box()
        assert ui_box and log_box and log_box["y"] >= ui_box["y"] + ui_box["height"]

        # a redraw of its node (made inactive, then active again) and zoom keep the UI as it is
        for _ in range(2):
            page.locator('g.node[data-id="f"] text.toggle').click()
        expect(page.locator('g.node[data-id="f"]')).not_to_have_class(re.compile("inactive"))
        page.click("#zoom-in")
        page.click("#zoom-out")
        expect(page.locator('g.node[data-id="f"]')).to_have_class(re.compile(r"\bui-on\b"))
        expect(frame.locator("#out")).to_have_text("sum=43")  # the same frame: not reloaded

        # the flow again with another input (the change saved first): the UI shows that run's
        page.locator('g.node[data-id="f"] text.title').click()
        page.fill('input[name="f.k"]', "50")
        page.click("#run-all")
        expect(page.locator("#ed-state")).to_have_text("saved · v2")
        expect(frame.locator("#v")).to_have_text("51", timeout=LIVE_S)
        run_id = str(page.locator("#run-link").get_attribute("href")).rsplit("/", 1)[1]
        assert run_id[:8] in page.locator(f"{FLOW_UI} .node-ui-status").inner_text()
        press(frame.locator("#go"))
        expect(frame.locator("#out")).to_have_text("sum=53", timeout=LIVE_S)

        # toggled off: the UI goes, the log box moves back under the node
        page.locator('g.node[data-id="f"] .ui-toggle text').click()
        expect(page.locator(FLOW_UI)).to_have_count(0)
        moved = page.locator('foreignObject[data-id="f"]').bounding_box()
        assert moved and moved["y"] < log_box["y"]
    finally:
        page.context.close()


def test_over_plain_http_the_editor_frames_the_ui_of_its_own_runs(
    browser: Any, console: Console
) -> None:
    """A browser sends no fetch metadata to a plain-http origin other than localhost: the
    editor's frames then carry the key of the editor's page and its address as their Referer,
    as the run page's do; the UI's address opened as a page is still refused."""
    console.user("ugo")
    wf_id = ui_workflow(console, "ugo", "ui over http")
    page = log_in(browser, console.base, "ugo")
    try:
        page.route("**/flows/f/ui?*", without_fetch_metadata)
        page.goto(f"/workflows/{wf_id}/edit")
        page.locator('g.node[data-id="f"] .ui-toggle text').click()
        page.click("#run-all")
        expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_S)
        frame = page.frame_locator(f"{FLOW_UI} iframe.app-ui")
        expect(frame.locator("#v")).to_have_text("41", timeout=LIVE_S)
        press(frame.locator("#go"))
        expect(frame.locator("#out")).to_have_text("sum=43", timeout=LIVE_S)
        address = str(page.locator(f"{FLOW_UI} iframe.app-ui").get_attribute("src"))
        direct = page.goto(address)
        assert direct is not None and direct.status == 403
        expect(page.locator("body")).to_contain_text("Shown in its run only")
    finally:
        page.context.close()


def test_which_flows_show_their_ui_is_kept_over_a_reload(browser: Any, console: Console) -> None:
    console.user("ursa")
    wf_id = ui_workflow(console, "ursa", "ui kept")
    page = log_in(browser, console.base, "ursa")
    node = page.locator('g.node[data-id="f"]')
    try:
        page.goto(f"/workflows/{wf_id}/edit")
        node.locator(".ui-toggle text").click()
        expect(node).to_have_class(re.compile(r"\bui-on\b"))
        page.reload()
        expect(page.locator(FLOW_UI)).to_contain_text("Run the flow to see its UI")
        expect(node).to_have_class(re.compile(r"\bui-on\b"))
        node.locator(".ui-toggle text").click()  # off, and so after the next reload
        expect(page.locator(FLOW_UI)).to_have_count(0)
        page.reload()
        expect(page.locator('g.node[data-id="s"]')).to_have_count(1)
        expect(node).not_to_have_class(re.compile(r"\bui-on\b"))
        expect(page.locator(FLOW_UI)).to_have_count(0)
    finally:
        page.context.close()


def test_a_node_gets_its_ui_toggle_as_its_apps_html_or_js_is_typed(
    admin_page: Any, console: Console
) -> None:
    """A walkthrough typed HTML into the Revenue flow's app of the sales report and saved: no
    "UI" toggle on its node until a reload (a source's change redrew no node)."""
    pkg = json.loads((Path(__file__).parents[2] / "examples" / "sales_report.dwp").read_text())
    wf_id = str(console.api("POST", "/workflows", {"title": "sales", "package": pkg})["id"])
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    toggle = page.locator('g.node[data-id="revenue"] g.ui-toggle')
    expect(page.locator("g.node")).to_have_count(len(pkg["flow"]))
    expect(page.locator("g.ui-toggle")).to_have_count(0)
    page.locator('g.node[data-id="revenue"] text.title').click()
    page.click("#flow-edit-app")
    for field in ("html", "js"):
        page.click(f'#app-sources button[data-source="{field}"]')
        expect(page.locator(f'#app-sources button[data-source="{field}"]')).to_have_class("active")
        page.locator("#app-code .cm-content").click()
        page.keyboard.type("<b>x</b>" if field == "html" else "x")
        expect(toggle).to_have_count(1)  # as it is typed, before a save
        expect(page.locator("g.ui-toggle")).to_have_count(1)  # no other app has a UI
        page.keyboard.press("Control+s")
        expect(page.locator("#ed-state")).to_have_text(re.compile(r"^saved · v\d+$"))
        expect(toggle).to_have_count(1)
        toggle.locator("text").click()
        expect(page.locator('foreignObject[data-ui="revenue"]')).to_contain_text(
            "Run the flow to see its UI"
        )
        toggle.locator("text").click()
        page.locator("#app-code .cm-content").click()
        page.keyboard.press("Control+a")
        page.keyboard.press("Backspace")  # the UI gone again: so is its toggle
        expect(toggle).to_have_count(0)
    page.keyboard.press("Control+s")
    expect(page.locator("#ed-state")).to_have_text("saved · v4")
    page.reload()
    expect(page.locator("g.node")).to_have_count(len(pkg["flow"]))
    expect(page.locator("g.ui-toggle")).to_have_count(0)
