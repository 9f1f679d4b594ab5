"""A side-panel tab clicked while its page still loads is the one shown once it has loaded. The
tabs were wired after the page's first fetch: a click before it answered did nothing, and the
panel asked for stayed hidden while its content was drawn into it (the full suite's
test_packages_panel clicked Info that early on a busy machine, then waited 30 s on a summary
nobody could see). Each test holds the page's first fetch, clicks, then lets it through."""

from __future__ import annotations

import json
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


def clicked_while_loading(page: Any, url: str, held_path: str, tab: str) -> None:
    """Open `url` with its fetch of `held_path` held, click the `tab` button, then let it go."""
    held: list[Any] = []  # (one each time the page asks)
    page.route(f"**/api/v1{held_path}", lambda route: held.append(route))
    page.goto(url)
    # (Playwright's sync API hands the route over while the test calls into it: evaluate does)
    wait_for(lambda: page.evaluate("() => true") and held, timeout=30)
    page.click(f'.tabs button[data-tab="{tab}"]')
    for route in held:
        route.continue_()
    page.unroute(f"**/api/v1{held_path}")


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
