"""A workflow too large to draw (more than TOO_MANY flows, flowlist.js) is listed, not drawn:
drawing 100,000 flows froze the tab of whoever opened it (19 s for the workflow page, 50 s for
the editor, seconds per zoom). The workflow page, the editor (read-only) and the run view say
so, list the flows (searchable, paged; the run view with their live status), open a flow's
panel from the list, and draw the graph after all on "Draw anyway"."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import package, wait_for
from tests.console.conftest import Console

FLOWLIST = Path(__file__).parents[2] / "dizest_api/console/static/js/flowlist.js"
match = re.search(r"TOO_MANY = (\d+)", FLOWLIST.read_text())
assert match, "flowlist.js names the threshold TOO_MANY"
TOO_MANY = int(match.group(1))  # (the threshold's one place)
N = TOO_MANY + 1
NOTE = f"{N:,} flows: too many to draw here"
LIVE = 60


@pytest.fixture(scope="module")
def large(console: Console) -> str:
    """A workflow of N flows, f1..f(N-1) each fed by f(i // 2) (a binary tree under f0)."""
    flows: dict[str, dict] = {"f0": {"app": "root", "title": "the root"}}
    for i in range(1, N):
        flows[f"f{i}"] = {"app": "node", "in": {"x": [(f"f{i // 2}", "v")]}}
    apps = {
        "root": {"code": "dizest.output('v', 1)\n", "outputs": ["v"]},
        "node": {"code": "dizest.output('v', 1)\n", "inputs": ["x"], "outputs": ["v"]},
    }
    pkg = package(apps, flows)
    pkg["apps"]["root"]["title"] = "Root app"  # (the list names an app by its title)
    made = console.api("POST", "/workflows", {"title": "large", "package": pkg})
    return str(made["id"])


def listed(page: Any) -> list[str]:
    ids: list[str] = page.evaluate(
        "() => [...document.querySelectorAll('table.flows tbody tr')].map((r) => r.dataset.id)"
    )
    return ids


def open_run(page: Any, console: Console, large: str) -> None:
    """The run view of a run of `large` (its root flow alone), once it lists the flows."""
    run = console.api("POST", "/runs", {"workflow_id": large, "flows": ["f0"]})
    page.goto(f"/runs/{run['run_id']}")
    page.locator("#too-many").wait_for(timeout=30_000)


def search(page: Any, text: str, expect_ids: list[str]) -> None:
    page.fill("#flow-search", text)
    wait_for(lambda: listed(page) == expect_ids, 10)


def test_the_workflow_page_lists_a_large_workflow_and_draws_it_on_demand(
    admin_page: Any, large: str
) -> None:
    page = admin_page
    page.goto(f"/workflows/{large}")
    page.locator("#too-many").wait_for(timeout=30_000)
    assert NOTE in page.inner_text("#too-many")
    assert page.locator("svg.dag").count() == 0  # not drawn
    assert len(listed(page)) == 100  # a page of them
    assert page.inner_text("#flow-count") == f"1\u2013100 of {N:,}"
    page.click("#flow-next")
    wait_for(lambda: listed(page)[0] == "f100", 10)
    search(page, "the root", ["f0"])
    app = page.locator('tr[data-id="f0"] td .app-name')  # its title, its id in the tooltip
    assert (app.inner_text(), app.get_attribute("title")) == ("Root app", "root")
    search(page, "root app", ["f0"])  # found by its app's title too
    page.click('tr[data-id="f0"]')
    wait_for(lambda: page.inner_text("#node h2") == "the root", 10)
    assert "#flow=f0" in page.url
    page.click("#draw-anyway")
    wait_for(lambda: page.locator("g.node").count() == N, 60)
    assert page.locator('g.node.selected[data-id="f0"]').count() == 1  # the selection stays
    assert page.locator("#too-many").count() == 0


def test_a_shared_link_to_a_flow_opens_its_page_of_the_list(admin_page: Any, large: str) -> None:
    page = admin_page
    page.goto(f"/workflows/{large}#flow=f2500")
    wait_for(lambda: page.locator('tr.selected[data-id="f2500"]').count() == 1, 30)
    # every flow of it is titled "node": its panel tells which, its id in the tooltip
    assert re.fullmatch(r"node \(\d+\)", page.inner_text("#node h2"))
    assert page.get_attribute("#node h2", "title") == "f2500"


def test_the_editor_opens_a_large_workflow_read_only_with_the_list(
    admin_page: Any, large: str
) -> None:
    page = admin_page
    page.goto(f"/workflows/{large}/edit")
    page.locator("#too-many").wait_for(timeout=30_000)
    assert NOTE in page.inner_text("#too-many")
    assert "too many to edit here" in page.inner_text("#ed-state")
    assert page.locator("#save").is_disabled()
    assert page.locator("#run-all").is_disabled()
    search(page, "f1234", ["f1234"])
    page.click('tr[data-id="f1234"]')
    wait_for(lambda: page.locator("#flow-title").count() == 1, 10)
    assert page.locator("#flow-title").is_disabled()  # read-only
    assert page.locator("#flow-conns li").count() == 3  # from f617, to f2468 and f2469
    page.click("#draw-anyway")
    wait_for(lambda: page.locator("g.node").count() == N, 90)
    assert page.locator('g.node.selected[data-id="f1234"]').count() == 1


def test_the_run_view_lists_a_large_run_with_live_statuses(
    admin_page: Any, console: Console, large: str
) -> None:
    page = admin_page
    open_run(page, console, large)
    assert NOTE in page.inner_text("#too-many")

    def status_of_f0() -> str:
        cell = page.locator('tr[data-id="f0"] .flow-status')
        return str(cell.inner_text()) if cell.count() else ""

    wait_for(lambda: status_of_f0().startswith("ready"), LIVE)
    search(page, "ready", ["f0"])  # a status is searched too
    page.click('tr[data-id="f0"]')
    wait_for(lambda: page.inner_text("#flow h2") == "the root", 10)
    wait_for(lambda: page.inner_text("#flow-status") == "ready", 10)


def test_a_listed_flow_is_reached_and_opened_by_keyboard(
    admin_page: Any, console: Console, large: str
) -> None:
    # the rows took a click only: Tab went from the pager past the whole table
    page = admin_page
    open_run(page, console, large)
    search(page, "the root", ["f0"])
    row = "() => document.activeElement?.closest('tr[data-id]')?.dataset.id ?? null"
    for _ in range(4):  # the search box, the pager's buttons, the row
        if page.evaluate(row):
            break
        page.keyboard.press("Tab")
    assert page.evaluate(row) == "f0"
    page.keyboard.press("Enter")
    wait_for(lambda: page.inner_text("#flow h2") == "the root", 10)
    assert page.locator('tr.selected[data-id="f0"]').count() == 1
