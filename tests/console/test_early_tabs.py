"""What a user reaches for while a page still loads. A side-panel tab clicked then is the one
shown once it has loaded: the tabs were wired after the page's first fetch, so a click before it
answered did nothing, and the panel asked for stayed hidden while its content was drawn into it
(the full suite's test_packages_panel clicked Info that early on a busy machine, then waited 30
s on a summary nobody could see). A button wired by that fetch is disabled until then, and a link
leads where it says from the first: the editor's Run all and Save, and a run's Cancel, looked
ready and did nothing (a loaded console run clicked Run all that early and waited 60 s for a
run), the workflow's Download and Runs led to "#". Each test holds the page's first fetch."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_for
from tests.console.conftest import ROOT_DATA, Console


@pytest.fixture(scope="module")
def made(console: Console) -> dict[str, str]:
    package = json.loads((ROOT_DATA / "c01_variables.dwp").read_text())
    wf_id = console.api("POST", "/workflows", {"title": "early tabs", "package": package})["id"]
    run_id = console.api("POST", "/runs", {"workflow_id": wf_id})["run_id"]
    return {"wf": wf_id, "run": str(run_id)}


@contextlib.contextmanager
def loading(page: Any, url: str, held_path: str) -> Iterator[None]:
    """Open `url` with its fetch of `held_path` held while the block runs, then let it go."""
    held: list[Any] = []  # (one each time the page asks)
    page.route(f"**/api/v1{held_path}", lambda route: held.append(route))
    page.goto(url)
    # (Playwright's sync API hands the route over while the test calls into it: evaluate does)
    wait_for(lambda: page.evaluate("() => true") and held, timeout=30)
    yield
    for route in held:
        route.continue_()
    page.unroute(f"**/api/v1{held_path}")


def clicked_while_loading(page: Any, url: str, held_path: str, tab: str) -> None:
    """Open `url` with its fetch of `held_path` held, click the `tab` button, then let it go."""
    with loading(page, url, held_path):
        page.click(f'.tabs button[data-tab="{tab}"]')


@pytest.mark.parametrize(
    ("page_of", "held", "tab", "content"),
    [
        ("/workflows/{wf}", "/workflows/{wf}", "info", "#info-title"),
        ("/workflows/{wf}", "/workflows/{wf}", "api", "#api h2"),
        ("/workflows/{wf}/edit", "/workflows/{wf}", "info", "#info-title"),
        ("/runs/{run}", "/runs/{run}/dwp", "params", "#params h2"),
    ],
    ids=["workflow-info", "workflow-api", "editor-info", "run-inputs"],
)
def test_a_tab_clicked_before_the_page_loaded_is_shown_with_its_content(
    admin_page: Any, made: dict[str, str], page_of: str, held: str, tab: str, content: str
) -> None:
    page = admin_page
    clicked_while_loading(page, page_of.format(**made), held.format(**made), tab)
    panel = page.locator(f"section.tab#{tab}")
    expect(panel).to_be_visible()
    expect(page.locator(f'.tabs button[data-tab="{tab}"]')).to_have_class("active")
    expect(page.locator(content).first).to_be_visible()


def test_the_editors_run_and_save_wait_for_the_workflow(
    admin_page: Any, made: dict[str, str]
) -> None:
    page = admin_page
    with loading(page, "/workflows/{wf}/edit".format(**made), "/workflows/{wf}".format(**made)):
        expect(page.locator("#run-all")).to_be_disabled()
        expect(page.locator("#save")).to_be_disabled()
    page.click("#run-all")  # (once enabled: wired by then)
    expect(page.locator("#run-state")).to_contain_text("run ")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=60_000)


def test_a_runs_cancel_waits_for_its_report(admin_page: Any, made: dict[str, str]) -> None:
    page = admin_page
    with loading(page, "/runs/{run}".format(**made), "/runs/{run}".format(**made)):
        expect(page.locator("#run-cancel")).to_be_disabled()
    expect(page.locator("#run-status")).not_to_have_text("…")


def test_a_workflows_links_lead_somewhere_before_it_loads(
    admin_page: Any, made: dict[str, str]
) -> None:
    page = admin_page
    with loading(page, "/workflows/{wf}".format(**made), "/workflows/{wf}".format(**made)):
        download = page.locator("#wf-download").get_attribute("href")
        runs = page.locator("#wf-runs").get_attribute("href")
    assert download == "/api/v1/workflows/{wf}/dwp".format(**made)
    assert runs == "/runs?workflow_id={wf}".format(**made)
    answer = page.request.get(download)
    assert answer.status == 200 and json.loads(answer.body())["flow"]
