"""The workflow editor in Chromium against a real `dizest serve`: a workflow built from nothing
by adding apps, dragging connections and typing code, saved and run; a cycle refused with its
path; a renamed output keeps its connections; a reload shows what was saved; two editors saving
the same version (the second gets 409 and saves a copy); unknown fields survive a save."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from dizest_core import dwp
from tests.console.conftest import Console, log_in
from tests.serve_process import PASSWORD

LIVE_S = 60_000


def empty(console: Console, title: str, package: dict[str, Any] | None = None) -> str:
    made = console.api(
        "POST", "/workflows", {"title": title, "package": package or {"apps": {}, "flow": {}}}
    )
    return str(made["id"])


def node(page: Any, app_title: str) -> Any:
    return page.locator(
        "g.node", has=page.locator("text.app", has_text=re.compile(f"^{app_title}$"))
    )


def new_app(page: Any, title: str, inputs: list[str], outputs: list[str], code: str) -> None:
    page.click('button[data-tab="apps"]')
    first = page.locator("#graph g.node").count() == 0  # then its flow comes with it
    page.click("#app-new")
    expect(page.locator("#app-title")).to_be_visible()
    page.fill("#app-title", title)
    for name in inputs:
        page.fill("#add-input-name", name)
        page.click("#add-input button[type=submit]")
        expect(page.locator(f'#app-inputs tr[data-input="{name}"]')).to_have_count(1)
    for name in outputs:
        page.fill("#add-output-name", name)
        page.click("#add-output button[type=submit]")
        expect(page.locator(f'#app-outputs tr[data-output="{name}"]')).to_have_count(1)
    editor = page.locator("#app-code .cm-content")
    editor.click()
    page.keyboard.insert_text(code)
    expect(editor).to_contain_text(code.splitlines()[0])
    page.click('button[data-tab="apps"]')
    if not first:
        page.locator("#app-list li", has_text=title).locator(".app-add").click()
    expect(node(page, title)).to_have_count(1)


def connect(page: Any, src: str, out: str, dst: str, inp: str) -> None:
    node(page, src).locator(f'circle.port.out[data-name="{out}"]').drag_to(
        node(page, dst).locator(f'circle.port.in[data-name="{inp}"]')
    )


def drag_by(page: Any, node_box: Any, dx: float, dy: float) -> None:
    """Drag a node by its box (a locator) from a point inside it, `dx`, `dy` pixels."""
    box = node_box.bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 60 + dx, box["y"] + 20 + dy, steps=5)
    page.mouse.up()


def pkg_of(page: Any) -> dict[str, Any]:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.dizestEditor.doc.pkg))")


def flow_id(page: Any, app_title: str) -> str:
    return str(node(page, app_title).get_attribute("data-id"))


def test_build_connect_code_save_and_run_a_three_flow_workflow(
    admin_page: Any, console: Console
) -> None:
    wf_id = empty(console, "built in the editor")
    page = admin_page
    page.goto(f"/workflows/{wf_id}")
    page.click("#wf-edit")  # the editor is a mode of the workflow view
    expect(page).to_have_url(re.compile(f"/workflows/{wf_id}/edit$"))
    expect(page.locator("#ed-state")).to_have_text("saved · v1")
    new_app(page, "source", [], ["n"], "n = 6\nprint('n is', n)")
    new_app(page, "double", ["x"], ["y"], "y = dizest.input('x') * 2\nprint('y is', y)")
    new_app(
        page,
        "total",
        ["a", "b"],
        ["s"],
        "s = dizest.input('a') + dizest.input('b')\nprint('s is', s)",
    )
    expect(page.locator("#ed-state")).to_have_text("unsaved changes")
    connect(page, "source", "n", "double", "x")
    connect(page, "source", "n", "total", "a")
    connect(page, "double", "y", "total", "b")
    expect(page.locator("path.edge")).to_have_count(3)
    expect(page.locator("#problems li")).to_have_count(0)
    page.click("#save")
    expect(page.locator("#ed-state")).to_have_text("saved · v2")
    stored = console.api("GET", f"/workflows/{wf_id}")
    assert stored["version"] == 2 and len(stored["package"]["flow"]) == 3
    total = flow_id(page, "total")
    conns = stored["package"]["flow"][total]["inputs"]["b"]["connections"]
    assert conns == [{"node": flow_id(page, "double"), "input": "y"}]
    page.click("#run-all")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_S)
    expect(page.locator(f'foreignObject[data-id="{total}"] .node-result')).to_contain_text(
        "s is 18"
    )
    expect(node(page, "total")).to_have_class(re.compile("st-ready"))
    run_id = str(page.locator("#run-link").get_attribute("href")).rsplit("/", 1)[1]
    outputs = console.api("GET", f"/runs/{run_id}/flows/{total}/outputs")["outputs"]
    assert json.dumps(outputs["s"]).find("18") >= 0, outputs
    # One flow again: the existing rerun, reusing the upstream outputs of that run.
    node(page, "total").locator("text.title").click()
    page.click("#flow-run")
    expect(page.locator("#run-link")).not_to_have_attribute("href", f"/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_S)
    expect(page.locator(f'foreignObject[data-id="{total}"] .node-result')).to_contain_text(
        "s is 18"
    )


def test_a_cycle_is_refused_with_its_path_and_a_renamed_output_keeps_its_connections(
    admin_page: Any, console: Console
) -> None:
    wf_id = empty(console, "cycle and rename")
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    new_app(page, "first", ["i"], ["o"], "o = 1")
    new_app(page, "second", ["i"], ["o"], "o = 2")
    connect(page, "first", "o", "second", "i")
    expect(page.locator("path.edge")).to_have_count(1)
    connect(page, "second", "o", "first", "i")
    message = page.locator("#cycle-msg")
    expect(message).to_be_visible()
    first, second = flow_id(page, "first"), flow_id(page, "second")
    expect(message).to_contain_text(f"{first} → {second} → {first}")
    expect(page.locator("g.node.cycle")).to_have_count(2)
    expect(page.locator("path.edge.cycle")).to_have_count(1)
    expect(page.locator("path.edge")).to_have_count(1)  # nothing was added
    # Undo and redo the connection.
    page.click("#undo")
    expect(page.locator("path.edge")).to_have_count(0)
    page.click("#redo")
    expect(page.locator("path.edge")).to_have_count(1)
    # Rename the output of "first": the connection follows it, in the engine's and Drawflow's shape.
    node(page, "first").locator("text.title").click()
    page.click("#flow-edit-app")
    name = page.locator('#app-outputs tr[data-output="o"] input[name="name"]')
    name.fill("renamed")
    name.press("Enter")
    expect(page.locator('path.edge[data-out="renamed"]')).to_have_count(1)
    expect(node(page, "first").locator('circle.port.out[data-name="renamed"]')).to_have_count(1)
    package = pkg_of(page)
    assert package["flow"][second]["inputs"]["i"]["connections"] == [
        {"node": first, "input": "renamed"}
    ]
    assert package["flow"][first]["outputs"] == {
        "renamed": {"connections": [{"node": second, "output": "i"}]}
    }
    # Removing the output leaves the connection, flagged on the node that reads it.
    page.locator('#app-outputs tr[data-output="renamed"] button[title="remove"]').click()
    expect(page.locator("path.edge.bad")).to_have_count(1)
    expect(node(page, "second")).to_have_class(re.compile("problem"))
    expect(page.locator("#problems")).to_contain_text("no longer exists")
    page.click("#undo")
    expect(page.locator("path.edge.bad")).to_have_count(0)
    # A clicked connection is removed by the Delete key.
    page.locator("path.edge").click()
    expect(page.locator("path.edge.selected")).to_have_count(1)
    page.keyboard.press("Delete")
    expect(page.locator("path.edge")).to_have_count(0)
    assert pkg_of(page)["flow"][second]["inputs"]["i"]["connections"] == []


def test_syntax_error_shows_on_the_node_and_at_its_line(admin_page: Any, console: Console) -> None:
    wf_id = empty(console, "syntax")
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    new_app(page, "broken", [], ["o"], "o = 1\nif o\n    pass\n")
    expect(node(page, "broken")).to_have_class(re.compile("problem"))
    expect(page.locator("#problems")).to_contain_text("line 2")
    node(page, "broken").locator("text.title").click()
    page.click("#flow-edit-app")
    expect(page.locator("#app-code .cm-lint-marker-error")).to_have_count(1)


@pytest.mark.parametrize("version", ["-1", "999"])
def test_a_version_that_does_not_exist_says_so_and_offers_no_save(
    admin_page: Any, console: Console, version: str
) -> None:
    """A probe's ?version=-1 showed the error in a toast while the state said "loading..."
    and Save and Run stayed offered (doing nothing)."""
    wf_id = empty(console, f"missing version {version}")
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit?version={version}")
    expect(page.locator("#ed-state")).to_contain_text("not loaded:")
    expect(page.locator("#save")).to_be_disabled()
    expect(page.locator("#run-all")).to_be_disabled()


def test_save_reload_is_the_same_and_a_second_editor_gets_409(
    browser: Any, admin_page: Any, console: Console
) -> None:
    wf_id = empty(console, "two editors")
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    new_app(page, "solo", [], ["o"], "o = 1")
    solo = flow_id(page, "solo")
    placed = pkg_of(page)["flow"][solo]
    drag_by(page, node(page, "solo").locator("rect.box"), 100, 80)
    page.click("#save")
    expect(page.locator("#ed-state")).to_have_text("saved · v2")
    before = pkg_of(page)
    stored = console.api("GET", f"/workflows/{wf_id}")["package"]["flow"][solo]
    assert stored["pos_x"] > placed["pos_x"] and stored["pos_y"] > placed["pos_y"]
    page.reload()
    expect(page.locator("g.node")).to_have_count(1)
    assert pkg_of(page) == before
    # A second editor opens version 2 too; the first saves, then the second: 409.

    other = log_in(browser, console.base, "admin", PASSWORD)
    other.goto(f"/workflows/{wf_id}/edit")
    expect(other.locator("g.node")).to_have_count(1)
    page.locator("g.node text.toggle").click()
    page.click("#save")
    expect(page.locator("#ed-state")).to_have_text("saved · v3")
    other.locator("g.node text.del").click()
    expect(other.locator("g.node")).to_have_count(0)
    other.click("#save")
    expect(other.locator("#conflict")).to_be_visible()
    expect(other.locator("#conflict-text")).to_contain_text("version 3")
    assert console.api("GET", f"/workflows/{wf_id}")["version"] == 3
    other.click("#conflict-copy")
    expect(other).to_have_url(re.compile(rf"/workflows/(?!{wf_id})\w+/edit$"))
    copy_id = other.url.rsplit("/", 2)[1]
    assert console.api("GET", f"/workflows/{copy_id}")["package"]["flow"] == {}
    other.context.close()
    # Unsaved changes: leaving asks first.
    page.locator("g.node text.toggle").click()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.type), d.dismiss()))
    page.close(run_before_unload=True)
    expect(page.locator("body")).to_be_attached()
    assert dialogs == ["beforeunload"]


def test_a_saved_package_keeps_every_field_it_did_not_touch(
    admin_page: Any, console: Console, tmp_path: Path
) -> None:
    package = {
        "title": "odd", "kernel_id": "k1", "extra": {"keep": [1, 2]}, "favorite": True,
        "apps": {
            "a": {"id": "a", "title": "A", "version": "1.0.0", "code": "o = 1", "inputs": [], "outputs": [{"name": "o"}],
                  "api": "def ping():\n    return 1\n", "html": "<b>x</b>", "js": "", "css": "", "cdn": {"js": [], "css": []}, "mine": 7},
            "b": {"id": "b", "title": "B", "code": "print(dizest.input('i'))", "inputs": [{"type": "output", "name": "i"}], "outputs": []},
        },
        "flow": {
            "fa": {"id": "fa", "app_id": "a", "active": True, "pos_x": 40, "pos_y": 40, "data": {}, "inputs": {}, "outputs": {"o": {"connections": []}}, "class": "c", "width": 260, "unknown": {"x": 1}},
            "fb": {"id": "fb", "app_id": "b", "active": True, "pos_x": 400, "pos_y": 40, "data": {}, "inputs": {"i": {"connections": []}}, "outputs": {}},
        },
    }  # fmt: skip
    wf_id = empty(console, "odd fields", package)
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    page.locator('g.node[data-id="fa"] circle.port.out[data-name="o"]').drag_to(
        page.locator('g.node[data-id="fb"] circle.port.in[data-name="i"]')
    )
    expect(page.locator("path.edge")).to_have_count(1)
    page.click("#save")
    expect(page.locator("#ed-state")).to_have_text("saved · v2")
    status, body = _download(console, wf_id)
    assert status == 200
    path = tmp_path / "saved.dwp"
    path.write_bytes(body)
    loaded = dwp.load(path)
    raw = loaded.raw
    assert raw["kernel_id"] == "k1" and raw["extra"] == {"keep": [1, 2]} and raw["favorite"] is True
    assert raw["apps"]["a"]["api"] == package["apps"]["a"]["api"] and raw["apps"]["a"]["mine"] == 7
    assert raw["flow"]["fa"]["unknown"] == {"x": 1} and raw["flow"]["fa"]["class"] == "c"
    assert raw["flow"]["fb"]["inputs"]["i"]["connections"] == [{"node": "fa", "input": "o"}]
    assert loaded.flows["fb"].connections["i"][0].node == "fa"


def _download(console: Console, wf_id: str) -> tuple[int, bytes]:
    import urllib.request

    request = urllib.request.Request(
        f"{console.base}/api/v1/workflows/{wf_id}/dwp", headers=console.admin
    )
    with urllib.request.urlopen(request) as answer:
        return answer.status, answer.read()


def test_plugin_apps_are_searchable_and_variables_get_inputs_of_their_type(
    browser: Any, console: Console
) -> None:
    wf_id = empty(console, "plugins and variables")
    context = browser.new_context(base_url=console.base, viewport={"width": 1440, "height": 900})
    # Every CSP violation and page error is collected: CodeMirror must need neither eval nor
    # inline script.
    context.add_init_script(
        "window.__csp = []; document.addEventListener('securitypolicyviolation',"
        " (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
    )
    errors: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/login")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    expect(page.locator("#me-name")).to_have_text("admin")
    answer = page.goto(f"/workflows/{wf_id}/edit")
    assert answer is not None
    csp = answer.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-eval" not in csp
    page.fill("#app-search", "filter rows")
    expect(page.locator("#app-list li")).to_have_count(1)
    page.locator("#app-list li", has_text="Filter rows").locator(".app-add").click()
    flow = node(page, "Filter rows")
    expect(flow.locator('circle.port.in[data-name="df"]')).to_have_count(1)
    flow.locator("text.title").click()
    page.fill('#flow-vars input[name$=".query"]', "units > 5")
    package = pkg_of(page)
    (fid,) = package["flow"]
    assert package["flow"][fid]["data"] == {"query": "units > 5"}
    assert "table.filter" in package["apps"] and package["apps"]["table.filter"]["code"]
    # A variable of kind "check" is a checkbox storing a JSON bool; "number" a number field.
    page.click('button[data-tab="apps"]')
    page.fill("#app-search", "")
    new_app(page, "kinds", [], [], "pass")
    page.click('button[data-tab="app"]')
    for name, kind in (("flag", "check"), ("count", "number")):
        page.fill("#add-input-name", name)
        page.select_option("#add-input-type", "variable")
        page.click("#add-input button[type=submit]")
        page.locator(f'#app-inputs tr[data-input="{name}"] select[name="inputtype"]').select_option(
            kind
        )
    node(page, "kinds").locator("text.title").click()
    kinds = flow_id(page, "kinds")
    page.check(f'#flow-vars input[type="checkbox"][name="{kinds}.flag"]')
    page.fill(f'#flow-vars input[type="number"][name="{kinds}.count"]', "7")
    assert pkg_of(page)["flow"][kinds]["data"] == {"flag": True, "count": "7"}
    page.click("#flow-edit-app")
    page.locator("#app-code .cm-content").click()
    page.keyboard.press("Control+f")
    expect(page.locator(".cm-search input[name=search]")).to_be_visible()
    assert page.evaluate("() => window.__csp") == []
    assert errors == []
    context.close()
