"""Following runs in the run view and the editor (a console probe's finds): a flow's status reads
the same on its node and in its panel (skipped, "error: cancelled"); Run all marks every node's
last status stale at once; a reload of the editor mid-run picks the run up again; the selected
flow is kept in the URL; long words wrap in the log and a result box is enlarged on demand; the
runs list offers the runs of workflows shared with the user."""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

from playwright.sync_api import expect

from tests.conftest import DATA as CORE_DATA
from tests.conftest import package, wait_for
from tests.console.conftest import GO_API, UNTIL_GO, USER_PASSWORD, Console, go, log_in

LIVE_MS = 60_000


def stored(console: Console, title: str, pkg: dict[str, Any]) -> str:
    return str(console.api("POST", "/workflows", {"title": title, "package": pkg})["id"])


def finished(console: Console, body: dict[str, Any]) -> str:
    run_id = str(console.api("POST", "/runs", body)["run_id"])
    wait_for(lambda: console.api("GET", f"/runs/{run_id}")["status"] != "running", timeout=60)
    return run_id


def test_a_skipped_or_cancelled_flow_reads_the_same_on_its_node_and_in_its_panel(
    admin_page: Any, console: Console
) -> None:
    c04 = json.loads((CORE_DATA / "c04_error.dwp").read_text())
    run_id = finished(console, {"workflow_id": stored(console, "labels", c04)})
    page = admin_page
    page.goto(f"/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("error", timeout=LIVE_MS)
    expect(page.locator('g.node[data-id="a2"] .badge')).to_have_text("skipped")
    page.locator('g.node[data-id="a2"]').click()
    expect(page.locator("#flow-status")).to_have_text("skipped")

    wf_id = console.workflow("ticker", "ticker to label")
    body = {"workflow_id": wf_id, "inputs": {"count": 600, "delay": 0.1}}
    run_id = str(console.api("POST", "/runs", body)["run_id"])
    page.goto(f"/runs/{run_id}")
    page.locator('g.node[data-id="ticker"]').click()
    expect(page.locator("#flow-log")).to_contain_text("tick 2", timeout=LIVE_MS)
    page.click("#run-cancel")
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=LIVE_MS)
    expect(page.locator('g.node[data-id="ticker"] .badge')).to_have_text("cancelled")
    expect(page.locator("#flow-status")).to_have_text("cancelled")


def held_then_after() -> dict[str, Any]:
    """`hold` holds still until cancelled (60 s at most); `after`, below it, waits for it."""
    return package(
        {
            "hold": {"code": UNTIL_GO + "v = 1\n", "outputs": ["v"]},
            "after": {"code": "pass", "inputs": ["v"]},
        },
        {
            "hold": {"app": "hold", "pos_x": 40, "pos_y": 40},
            "after": {"app": "after", "pos_x": 340, "pos_y": 40, "in": {"v": [("hold", "v")]}},
        },
    )


CANCELLED = re.compile(r"\bst-cancelled\b")
RAN = "cancelled while it ran (stopped)"
NEVER_RAN = "cancelled before it started"


def test_a_cancelled_flow_is_drawn_as_cancelled_not_as_an_error(
    admin_page: Any, console: Console
) -> None:
    wf_id = stored(console, "cancelled look", held_then_after())
    run_id = str(console.api("POST", "/runs", {"workflow_id": wf_id})["run_id"])
    flows = lambda: console.api("GET", f"/runs/{run_id}")["flows"]  # noqa: E731
    wait_for(lambda: flows()["hold"]["status"] == "running", timeout=60)
    console.api("POST", f"/runs/{run_id}/cancel")
    wait_for(lambda: console.api("GET", f"/runs/{run_id}")["status"] == "cancelled", timeout=60)
    # what the engine says: the flow it killed ended in error, the one it never started idle
    states = {f: (s["status"], s["reason"]) for f, s in flows().items()}
    assert states == {"hold": ("error", "cancelled"), "after": ("idle", "cancelled")}
    page = admin_page
    for view in (f"/runs/{run_id}", f"/workflows/{wf_id}"):  # the run's view, the workflow's
        page.goto(view)
        for flow_id in ("hold", "after"):
            node = page.locator(f'g.node[data-id="{flow_id}"]')
            expect(node).to_have_class(CANCELLED, timeout=LIVE_MS)
            assert "st-error" not in (node.get_attribute("class") or "")
            expect(node.locator(".badge")).to_have_text("cancelled")
        page.locator('g.node[data-id="hold"]').click()
        shown = page.locator("#flow-status" if view.startswith("/runs") else "#last-status")
        expect(shown).to_have_class(re.compile(r"\bstatus st-cancelled\b"))
    expect(page.locator("#last-status")).to_have_text(RAN)
    page.goto(f"/runs/{run_id}#flow=after")
    expect(page.locator("#flow-status")).to_have_text("cancelled")
    expect(page.locator("#flow-reason")).to_have_text(NEVER_RAN)
    expect(page.locator("#flow-reason")).not_to_have_class(re.compile(r"\berror\b"))
    page.locator('g.node[data-id="hold"]').click()
    expect(page.locator("#flow-reason")).to_have_text(RAN)
    expect(page.locator('#timeline g.bar[data-id="hold"]')).to_have_class(CANCELLED)
    fill = page.locator('#timeline g.bar[data-id="hold"] rect').evaluate(
        "r => getComputedStyle(r).fill"
    )
    badge = page.locator("#flow-status").evaluate("b => getComputedStyle(b).backgroundColor")
    assert fill == badge == "rgb(124, 58, 237)"  # console.css --cancelled: #7c3aed


def test_run_all_marks_every_nodes_last_status_pending_at_once(
    admin_page: Any, console: Console
) -> None:
    code = f"if seconds:\n{textwrap.indent(UNTIL_GO, '    ')}v = 1\n"
    pkg = package(
        {
            "slow": {"code": code, "inputs": [("seconds", "variable", "number")], "outputs": ["v"]},
            "bad": {"code": "raise ValueError('no')\n", "inputs": ["v"]},
        },
        {
            "slow": {"app": "slow", "pos_x": 40, "pos_y": 40, "data": {"seconds": "0"}},
            "bad": {"app": "bad", "pos_x": 340, "pos_y": 40, "in": {"v": [("slow", "v")]}},
        },
    )
    pkg["apps"]["slow"]["api"] = GO_API
    wf_id = stored(console, "stale colours", pkg)
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    bad = page.locator('g.node[data-id="bad"]')
    page.click("#run-all")
    expect(page.locator("#run-status")).to_have_text("error", timeout=LIVE_MS)
    expect(bad).to_have_class(re.compile(r"\bst-error\b"))
    page.locator('g.node[data-id="slow"] text.title').click()
    page.fill('input[name="slow.seconds"]', "4")
    page.click("#run-all")  # saves, then runs: `slow` holds still, `bad` has no event meanwhile
    status = page.locator('foreignObject[data-id="slow"] .node-result-status')
    expect(status).to_have_text("running", timeout=LIVE_MS)
    assert "st-pending" in (bad.get_attribute("class") or "")
    expect(bad.locator(".badge")).to_have_text("pending")
    run_id = (page.locator("#run-link").get_attribute("href") or "").rsplit("/", 1)[-1]
    go(console, run_id, "slow")
    expect(page.locator("#run-status")).to_have_text("error", timeout=LIVE_MS)
    expect(bad).to_have_class(re.compile(r"\bst-error\b"))


def test_a_reload_of_the_editor_mid_run_follows_that_run_again(
    admin_page: Any, console: Console
) -> None:
    wf_id = console.workflow("ticker", "ticker to pick up")
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    page.locator('g.node[data-id="ticker"] text.title').click()
    page.fill('input[name="ticker.count"]', "600")
    page.fill('input[name="ticker.delay"]', "0.1")
    page.click("#run-all")  # saves (version 2), then runs it
    expect(page.locator("#run-status")).to_have_text("running", timeout=LIVE_MS)
    run_link = page.locator("#run-link").get_attribute("href")
    page.reload()
    expect(page.locator("#run-link")).to_have_attribute("href", run_link or "", timeout=LIVE_MS)
    expect(page.locator("#run-status")).to_have_text("running")
    result = page.locator('foreignObject[data-id="ticker"] .node-result')
    expect(result).to_contain_text("tick 2")  # its log so far, replayed
    expect(page.locator('g.node[data-id="ticker"]')).to_have_class(re.compile(r"\bst-running\b"))
    page.click("#run-stop")
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=LIVE_MS)
    # a run of another version is not this editor's to follow
    runs = console.api("GET", f"/runs?workflow_id={wf_id}&limit=5")["items"]
    assert [r["version"] for r in runs] == [2]
    body = {"workflow_id": wf_id, "version": 1, "inputs": {"count": 600, "delay": 0.1}}
    old = str(console.api("POST", "/runs", body)["run_id"])
    page.reload()
    expect(page.locator("#ed-state")).to_have_text("saved · v2")
    assert page.evaluate("() => window.dizestEditor.runs.resumed.then(() => true)")
    # (the newest ended one is shown instead: test_last_run.py)
    expect(page.locator("#run-link")).to_have_attribute("href", run_link or "")
    expect(page.locator("#run-status")).to_have_text("cancelled")
    console.api("POST", f"/runs/{old}/cancel")


def test_a_node_card_runs_its_flow_and_stops_its_run(admin_page: Any, console: Console) -> None:
    ticks = "import time\nfor i in range(600):\n    print('tick', i)\n    time.sleep(0.1)\n"
    pkg = package(
        {
            "tick": {"code": ticks},
            "other": {"code": "print('other ran')\n"},
        },
        {
            "tick": {"app": "tick", "pos_x": 40, "pos_y": 40},
            "other": {"app": "other", "pos_x": 340, "pos_y": 40},
        },
    )
    wf_id = stored(console, "node buttons", pkg)
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    tick = page.locator('g.node[data-id="tick"]')
    expect(tick.locator("text.stop")).to_be_hidden()
    tick.locator("text.run").click()
    expect(page.locator("#run-status")).to_have_text("running", timeout=LIVE_MS)
    expect(tick).to_have_class(re.compile(r"\bst-running\b"), timeout=LIVE_MS)
    expect(tick.locator("text.run")).to_be_hidden()
    expect(page.locator("#flow-title")).to_have_count(0)  # a click on ▶ selects nothing
    tick.locator("text.stop").click()
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=LIVE_MS)
    expect(tick.locator("text.run")).to_be_visible()
    expect(tick.locator("text.stop")).to_be_hidden()
    run_id = (page.locator("#run-link").get_attribute("href") or "").rsplit("/", 1)[-1]
    flows = console.api("GET", f"/runs/{run_id}")["flows"]
    assert flows["other"]["status"] == "idle" and not flows["other"]["log"]  # that flow alone


def test_the_selected_flow_is_kept_in_the_url_and_an_unknown_one_is_ignored(
    admin_page: Any, console: Console
) -> None:
    c04 = json.loads((CORE_DATA / "c04_error.dwp").read_text())
    wf_id = stored(console, "hash", c04)
    run_id = finished(console, {"workflow_id": wf_id})
    flows = console.api("GET", f"/runs/{run_id}")["flows"]
    failed = next(f for f in c04["flow"] if flows[f]["status"] == "error")  # in package order
    page = admin_page
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    for path, panel in (
        (f"/runs/{run_id}", "#flow"),
        (f"/workflows/{wf_id}", "#node"),
        (f"/workflows/{wf_id}/edit", "#flow"),
    ):
        page.goto(path)
        page.locator('g.node[data-id="b"]').click()
        expect(page.locator(f"{panel} h2")).to_be_visible()
        heading = page.locator(f"{panel} h2").text_content()
        wait_for(lambda: page.evaluate("location.hash") == "#flow=b", timeout=30)
        page.reload()
        expect(page.locator('g.node[data-id="b"]')).to_have_class(re.compile(r"\bselected\b"))
        expect(page.locator(f"{panel} h2")).to_have_text(heading or "")
        expect(page.locator(f"{panel} h2")).to_be_visible()
        page.goto(f"{path}#flow=nope")
        page.reload()  # (a change of the hash alone does not load the page again)
        expect(page.locator("g.node")).to_have_count(len(c04["flow"]))
        if panel == "#flow" and "/edit" not in path:  # the failed run opens on its failed flow
            wait_for(lambda: page.evaluate("location.hash") == f"#flow={failed}", timeout=30)
            expect(page.locator("g.node.selected")).to_have_count(1)
            continue
        wait_for(lambda: page.evaluate("location.hash") == "", timeout=30)
        expect(page.locator("g.node.selected")).to_have_count(0)
    assert errors == [], errors


TABLE = """
class Table:
    def _repr_html_(self):
        rows = ''.join(f'<tr><td>row {i}</td></tr>' for i in range(30))
        return f'<table>{rows}</table>'

print(Table())
print('w' * 3000)
"""


def test_a_long_word_wraps_in_the_log_and_a_result_box_is_enlarged_on_demand(
    admin_page: Any, console: Console
) -> None:
    pkg = package(
        {"t": {"code": TABLE}, "q": {"code": "print('quiet')\n"}},
        {"t": {"app": "t", "pos_x": 40, "pos_y": 40}, "q": {"app": "q", "pos_x": 340, "pos_y": 40}},
    )
    wf_id = stored(console, "big results", pkg)
    run_id = finished(console, {"workflow_id": wf_id})
    page = admin_page
    page.goto(f"/runs/{run_id}#flow=t")
    log = page.locator("#flow-log")
    expect(log).to_contain_text("wwwwwwww")
    assert log.evaluate("(el) => el.scrollWidth <= el.clientWidth")  # wrapped: no sideways scroll

    page.goto(f"/workflows/{wf_id}/edit")
    expect(page.locator("#run-state")).to_contain_text("last run")  # that run, shown again
    page.click("#run-all")
    # (that run's "ready" is not this one's)
    expect(page.locator("#run-state")).not_to_contain_text("last run")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    box = page.locator('foreignObject[data-id="t"]')
    frame = box.locator("iframe")
    expect(frame).to_have_count(1)
    height = "(el) => el.offsetHeight"  # CSS pixels, whatever the zoom
    assert frame.evaluate(height) == 100
    box.locator(".node-result-grow").click()
    wait_for(lambda: frame.evaluate(height) == 400, timeout=10)
    assert box.get_attribute("height") == "460"
    assert page.locator('foreignObject[data-id="q"]').get_attribute("height") == "150"
    box.locator(".node-result-grow").click()
    wait_for(lambda: frame.evaluate(height) == 100, timeout=10)
    assert box.get_attribute("height") == "150"


def test_the_runs_list_shows_the_runs_of_workflows_shared_with_me(
    browser: Any, console: Console
) -> None:
    console.user("sol")
    console.user("gus")
    wf_id = console.workflow("ticker", "sol's ticker", owner="sol")
    console.api("PUT", f"/workflows/{wf_id}/grants", {"grants": {"gus": "viewer"}}, "sol")
    sols = str(console.api("POST", "/runs", {"workflow_id": wf_id}, "sol")["run_id"])
    page = log_in(browser, console.base, "gus", USER_PASSWORD)
    page.goto("/runs")
    expect(page.locator("#runs-empty")).to_be_visible(timeout=LIVE_MS)  # gus ran nothing
    page.select_option("#f-shared", "1")  # (applies at once)
    row = page.locator(f'#run-rows tr[data-id="{sols}"]')
    expect(row).to_be_visible(timeout=LIVE_MS)
    expect(row.locator("td").nth(3)).to_have_text("sol")
    wait_for(lambda: "shared=1" in page.url, timeout=10)
    page.reload()  # the choice is kept in the URL
    expect(page.locator("#f-shared")).to_have_value("1")
    expect(row).to_be_visible(timeout=LIVE_MS)
    page.context.close()


def test_the_editor_draws_a_cancelled_flow_as_cancelled(admin_page: Any, console: Console) -> None:
    wf_id = stored(console, "cancelled in the editor", held_then_after())
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    page.click("#run-all")
    result = lambda flow_id: page.locator(f'foreignObject[data-id="{flow_id}"] .node-result')  # noqa: E731
    expect(result("hold").locator(".node-result-status")).to_have_text("running", timeout=LIVE_MS)
    page.click("#run-stop")
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=LIVE_MS)
    for flow_id, said in (("hold", RAN), ("after", NEVER_RAN)):
        expect(result(flow_id)).to_have_class(CANCELLED)
        expect(result(flow_id).locator(".node-result-status")).to_have_text(said)
        node = page.locator(f'g.node[data-id="{flow_id}"]')
        expect(node).to_have_class(CANCELLED)
        expect(node.locator(".badge")).to_have_text("cancelled")
