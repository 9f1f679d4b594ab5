"""People read names, not generated ids. The editor gives new flows DIZEST's ids (`<app id>-<ms>`)
and new apps 16-character ones: every view labels a node's app by its title (the workflow and
run views showed its id where the editor showed its title), and what the console writes of a
flow (its panel, the run form, the API panel, a skipped flow's reason, the editor's connections,
problems and refused runs) names it by its title, else its app's, told apart when two share one ("Producer
(1)", "Producer (2)"), its id in a tooltip. A save conflict names the workflow by its title."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import package, wait_for
from tests.console.conftest import Console, log_in
from tests.serve_process import PASSWORD

LIVE_S = 60
P, C, S = "bo6at79gelssrhfz", "f3whmslpq2x9abcd", "k2n8vq0wzr4ty7ue"  # apps, ids as the editor's
P1, P2 = f"{P}-1796458547289", f"{P}-1796458547290"  # two flows of one app, neither titled
CF, SF = f"{C}-1796458547300", f"{S}-1796458547400"


def named() -> dict[str, Any]:
    """Producer (twice) -> Consumer (fails) -> Sink (skipped); the second Producer has a
    connection into an input its app does not declare (a warning the editor lists)."""
    pkg = package(
        {
            P: {"code": "total = 1", "inputs": [("k", "variable", "number")], "outputs": ["total"]},
            C: {"code": "raise ValueError('no')", "inputs": ["value"], "outputs": ["total"]},
            S: {"code": "pass", "inputs": ["value"]},
        },
        {
            P1: {"app": P, "pos_x": 40, "pos_y": 40},
            P2: {"app": P, "pos_x": 40, "pos_y": 200, "in": {"extra": [(P1, "total")]}},
            CF: {"app": C, "pos_x": 320, "pos_y": 40, "in": {"value": [(P1, "total")]}},
            SF: {"app": S, "pos_x": 600, "pos_y": 40, "in": {"value": [(CF, "total")]}},
        },
    )
    for app, title in ((P, "Producer"), (C, "Consumer"), (S, "Sink")):
        pkg["apps"][app]["title"] = title
    for flow in pkg["flow"].values():
        flow["title"] = ""
    return pkg


def ran(console: Console, title: str) -> tuple[str, str]:
    """A workflow of `named()` and its run, ended."""
    wf_id = str(console.api("POST", "/workflows", {"title": title, "package": named()})["id"])
    run_id = str(console.api("POST", "/runs", {"workflow_id": wf_id})["run_id"])
    report = lambda: console.api("GET", f"/runs/{run_id}?flows=states")  # noqa: E731
    wait_for(lambda: report()["status"] in ("ready", "error", "cancelled"), LIVE_S, 0.2)
    return wf_id, run_id


def app_labels(page: Any) -> list[str]:
    return [page.locator(f'g.node[data-id="{f}"] text.app').text_content() for f in (P1, CF, SF)]


def test_the_views_name_flows_and_apps_by_their_titles(admin_page: Any, console: Console) -> None:
    wf_id, run_id = ran(console, "names in the views")
    page = admin_page
    page.goto(f"/workflows/{wf_id}")
    expect(page.locator("g.node")).to_have_count(4)
    assert app_labels(page) == ["Producer", "Consumer", "Sink"]  # (were the apps' ids)
    legends = page.locator("#runform legend")
    expect(legends).to_have_text(["Producer (1)", "Producer (2)"])
    expect(legends.first).to_have_attribute("title", P1)
    options = page.locator("#run-targets option")
    expect(options).to_have_text(["Producer (1)", "Producer (2)", "Consumer", "Sink"])
    expect(options.nth(1)).to_have_attribute("title", P2)
    page.click('.tabs button[data-tab="api"]')
    expect(page.locator("#api-outputs li")).to_have_text(["Producer (2): total"])
    expect(page.locator("#api-outputs li .flow-name")).to_have_attribute("title", P2)
    page.locator(f'g.node[data-id="{SF}"]').click()
    expect(page.locator("#last-status")).to_have_text("skipped: upstream failed: Consumer")

    page.goto(f"/runs/{run_id}")
    expect(page.locator("g.node")).to_have_count(4)
    assert app_labels(page) == ["Producer", "Consumer", "Sink"]
    page.locator(f'g.node[data-id="{SF}"]').click()
    expect(page.locator("#flow h2")).to_have_text("Sink")
    expect(page.locator("#flow-reason")).to_have_text("upstream failed: Consumer")
    page.locator(f'g.node[data-id="{P2}"]').click()
    expect(page.locator("#flow h2")).to_have_text("Producer (2)")
    expect(page.locator("#flow h2")).to_have_attribute("title", P2)


def test_the_editor_names_connections_problems_and_reasons(
    admin_page: Any, console: Console
) -> None:
    title = "names in the editor"
    wf_id = str(console.api("POST", "/workflows", {"title": title, "package": named()})["id"])
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    expect(page.locator("g.node")).to_have_count(4)
    assert app_labels(page) == ["Producer", "Consumer", "Sink"]
    problem = page.locator('#problems li[data-code="undeclared_input"]')
    expect(problem).to_have_text(
        "Producer (2): connection into input extra, which app Producer does not declare"
    )
    expect(problem).to_have_attribute("title", P2)
    page.locator(f'g.node[data-id="{CF}"] text.title').click()
    conns = page.locator("#flow-conns li")
    expect(conns).to_have_count(2)
    expect(conns.first).to_contain_text("Producer (1).total → Consumer.value")
    expect(conns.first).to_have_attribute("title", f"{P1}.total → {CF}.value")
    expect(conns.nth(1)).to_contain_text("Consumer.total → Sink.value")
    expect(page.locator("#flow h2")).to_have_text("Consumer")
    page.click("#run-all")
    skipped = page.locator(f'g.results foreignObject[data-id="{SF}"] .node-result-status .text')
    expect(skipped).to_have_text("skipped: upstream failed: Consumer", timeout=LIVE_S * 1000)

    theirs = {**named(), "description": "theirs"}  # (the same package would store nothing)
    console.api("PUT", f"/workflows/{wf_id}", {"package": theirs})  # someone saved meanwhile
    page.locator(f'g.node[data-id="{SF}"] text.toggle').click()
    page.click("#save")
    expect(page.locator("#conflict-text")).to_contain_text(f"workflow {title!r} is at")
    assert wf_id not in page.locator("#conflict-text").text_content()


def test_a_syntax_error_names_the_flows_of_its_app(admin_page: Any, console: Console) -> None:
    wf_id = str(console.api("POST", "/workflows", {"title": "names", "package": named()})["id"])
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    expect(page.locator("g.node")).to_have_count(4)
    page.locator(f'g.node[data-id="{CF}"] text.title').click()
    page.click("#flow-edit-app")
    page.locator("#app-code .cm-content").click()
    page.keyboard.press("Control+End")
    page.keyboard.insert_text("\nx = (\n")
    expect(page.locator(f'g.node[data-id="{CF}"]')).to_have_class(re.compile("problem"))
    problem = page.locator('#problems li[data-code="syntax_error"]')
    expect(problem).to_have_text(re.compile(r"^Consumer: syntax error in the app's code on line 2"))
    expect(problem).to_have_attribute("title", CF)  # its id, for who needs it
    page.click("#save")  # stored all the same: a warning
    expect(page.locator("#ed-state")).to_have_text("saved · v2")


def test_the_editor_names_the_flows_of_a_skip_and_runs_the_version_it_shows(
    browser: Any, console: Console
) -> None:
    """A flow that needs the output of an inactive one showed that flow's generated id under the
    node. An older version's editor ran the latest version, which the server refused for a flow
    only the older one has ("unknown flow(s): Sink"): it runs the version it shows now
    (test_editor_versions)."""
    console.user("rhea")
    wf_id = str(console.api("POST", "/workflows", {"title": "refused", "package": named()})["id"])
    console.api("PUT", f"/workflows/{wf_id}/grants", {"grants": {"rhea": "runner"}})
    page = log_in(browser, console.base, "admin", PASSWORD)
    try:
        page.goto(f"/workflows/{wf_id}/edit")
        expect(page.locator("g.node")).to_have_count(4)
        page.locator(f'g.node[data-id="{P1}"] text.toggle').click()  # inactive: no output
        page.click("#run-all")
        box = page.locator(f'g.results foreignObject[data-id="{CF}"] .node-result-status .text')
        expect(box).to_contain_text("needs output of inactive flow Producer (1), which has")
        assert P1 not in box.text_content()
    finally:
        page.context.close()
    without_sink = named()
    del without_sink["flow"][SF]  # version 3: no Sink (version 2 has P1 inactive)
    console.api("PUT", f"/workflows/{wf_id}", {"package": without_sink})
    runner = log_in(browser, console.base, "rhea")  # reads version 2, runs it
    try:
        runner.goto(f"/workflows/{wf_id}/edit?version=2")
        expect(runner.locator("g.node")).to_have_count(4)
        runner.locator(f'g.node[data-id="{SF}"] text.title').click()
        runner.click("#flow-run")
        box = runner.locator(f'g.results foreignObject[data-id="{SF}"] .node-result-status .text')
        expect(box).to_have_text(
            "skipped: needs output of inactive flow Producer (1), which has none",
            timeout=LIVE_S * 1000,
        )
        runs = console.api("GET", f"/runs?workflow_id={wf_id}&owner=rhea")["items"]
        assert [r["version"] for r in runs] == [2]
    finally:
        runner.context.close()


# Per node: its title's text, the number after it (null: none) and its accessible name.
NUMBERS = """() => Object.fromEntries([...document.querySelectorAll("#graph g.node")].map((g) => {
  const title = g.querySelector("text.title");
  return [g.dataset.id, [title.textContent, title.querySelector("tspan.nth")?.textContent ?? null,
    g.getAttribute("aria-label")]];
}))"""


def test_nodes_of_flows_that_share_a_title_show_the_number_messages_name_them_by(
    admin_page: Any, console: Console
) -> None:
    """The messages said "Producer (2)" of a node that showed "Producer", as its twin did."""
    wf_id, run_id = ran(console, "numbers on the canvas")
    page = admin_page
    for path in (f"/workflows/{wf_id}", f"/runs/{run_id}", f"/workflows/{wf_id}/edit"):
        page.goto(path)
        expect(page.locator("g.node")).to_have_count(4)
        if path.startswith("/runs/"):  # its statuses drawn: a badge takes room on the title's line
            expect(page.locator(f'g.node[data-id="{P2}"]')).to_have_class(re.compile("st-"))
        nodes = page.evaluate(NUMBERS)
        assert nodes[P1][:2] == ["Producer (1)", " (1)"], (path, nodes)
        assert nodes[P2][:2] == ["Producer (2)", " (2)"], (path, nodes)
        assert nodes[CF][:2] == ["Consumer", None] and nodes[SF][:2] == ["Sink", None], nodes
        assert nodes[P2][2].startswith("Producer (2)"), nodes  # as a screen reader says it

    def shown() -> list[str]:
        return [page.locator(f'g.node[data-id="{f}"] text.title').text_content() or "" for f in (P1, P2, CF)]  # fmt: skip

    page.locator(f'g.node[data-id="{P1}"] text.title').click()
    # the title of Consumer's flow: the two Consumers numbered, Producer alone
    page.fill("#flow-title", "Consumer")
    wait_for(lambda: shown() == ["Consumer (1)", "Producer", "Consumer (2)"], 10)
    label = re.compile(r"^Producer(: |$)")  # (its last run's status after it)
    expect(page.locator(f'g.node[data-id="{P2}"]')).to_have_attribute("aria-label", label)
    page.click("#undo")
    wait_for(lambda: shown() == ["Producer (1)", "Producer (2)", "Consumer"], 10)


@pytest.mark.parametrize("where", ["workflow", "edit"])
def test_a_large_graph_numbers_the_nodes_it_details_as_they_come_into_view(
    admin_page: Any, console: Console, where: str
) -> None:
    """Above 300 flows a node's detail is drawn as it comes into view, zoomed in: its number
    too (dag1000's 999 flows share a title; a number on every node drew it 20 ms slower)."""
    flows = {f"f{i:03d}": {"app": "a", "pos_x": 300 * (i % 20), "pos_y": 180 * (i // 20)} for i in range(320)}  # fmt: skip
    pkg = package({"a": {"code": "pass"}}, flows)
    wf_id = str(console.api("POST", "/workflows", {"title": "many", "package": pkg})["id"])
    page = admin_page
    page.goto(f"/workflows/{wf_id}" + ("/edit" if where == "edit" else ""))
    expect(page.locator("g.node")).to_have_count(320)
    assert page.locator("#graph tspan.nth").count() == 0  # the overview: no detail, no number
    for _ in range(5):
        page.click("#zoom-in")
    expect(page.locator("#graph tspan.nth").first).to_be_attached()
    numbered = page.evaluate(
        """() => [...document.querySelectorAll("#graph g.node")].filter((g) => g.querySelector("tspan.nth"))
          .map((g) => [g.dataset.id, g.querySelector("text.title").textContent])"""
    )
    assert 0 < len(numbered) < 320, numbered
    assert all(text == f"a ({int(flow[1:]) + 1})" for flow, text in numbered), numbered
