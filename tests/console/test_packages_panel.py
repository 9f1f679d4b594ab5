"""What a workflow's flows can import, in its Info panel (DIZEST's packages panel, read-only):
its requirements.txt checked line by line against the live workers' environment, and the
packages of that environment, filtered as typed. In the editor the check follows the typing,
and an import no worker can satisfy is marked at its line as it is typed (a warning: the
workflow still saves and runs)."""

from __future__ import annotations

import re
from importlib import metadata
from typing import Any

from playwright.sync_api import expect

from tests.conftest import package, wait_for
from tests.console.conftest import Console, log_in
from tests.console.test_editor import empty, new_app, node
from tests.console.test_workflow_panels import greeters

LIVE_MS = 30_000


def test_info_checks_requirements_against_the_workers_and_lists_their_packages(
    browser: Any, console: Console
) -> None:
    console.user("pat")
    celery, flask = metadata.version("celery"), metadata.version("flask")
    pkg = {**greeters(), "requirementstxt": f"celery>={celery}\nno-such-package-here\nflask<1"}
    wf_id = console.api("POST", "/workflows", {"title": "reqs", "package": pkg}, "pat")["id"]
    # said by the worker's beating thread within a beat of its start
    environments = wait_for(lambda: console.api("GET", "/packages", name="pat")["environments"])
    names = [p["name"] for env in environments for p in env["packages"]]
    page = log_in(browser, console.base, "pat")
    page.goto(f"/workflows/{wf_id}")
    page.click('.tabs button[data-tab="info"]')
    rows = page.locator("#info-requirements-check tbody tr")
    expect(rows).to_have_count(3, timeout=LIVE_MS)
    expect(rows.nth(0).locator("td.req-ok")).to_have_text(f"✓ {celery}")
    expect(rows.nth(1).locator("td.req-missing")).to_have_text("✗ not installed")
    expect(rows.nth(2).locator("td.req-missing")).to_have_text(f"✗ {flask} installed")
    expect(page.locator("#info-requirements")).to_be_hidden()  # the table says each line
    page.click("#info-requirements-check details.as-written summary")
    expect(page.locator("#info-requirements")).to_have_text(pkg["requirementstxt"])

    listed = page.locator("#info-packages tr[data-name]")
    expect(listed).to_have_count(0)  # folded: nothing asked for yet
    page.click("#info-packages summary")
    expect(listed).to_have_count(len(names))
    expect(page.locator('#info-packages tr[data-name="celery"] td').nth(1)).to_have_text(celery)
    page.fill("#packages-filter", "FLASK")
    shown = page.locator("#info-packages tr[data-name]:visible")
    expect(shown).to_have_count(sum("flask" in n.lower() for n in names))

    page.goto(f"/workflows/{wf_id}/edit")
    page.click('.tabs button[data-tab="info"]')
    expect(rows).to_have_count(3, timeout=LIVE_MS)
    page.locator("#info-requirements").fill("no-such-package-here\ncelery")
    expect(rows).to_have_count(2)
    expect(rows.nth(1).locator("td.req-ok")).to_have_text(f"✓ {celery}")
    page.context.close()


def test_an_import_no_worker_has_is_marked_at_its_line(admin_page: Any, console: Console) -> None:
    wait_for(lambda: console.api("GET", "/packages")["environments"])
    wf_id = empty(console, "imports")
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    code = "import json\nimport no_such_module_xyz\nfrom celery import Celery\no = 1\n"
    new_app(page, "importer", [], ["o"], code)
    expect(page.locator("#problems")).to_contain_text("line 2: imports 'no_such_module_xyz'")
    expect(node(page, "importer")).to_have_class(re.compile("problem"))
    node(page, "importer").locator("text.title").click()
    page.click("#flow-edit-app")
    expect(page.locator("#app-code .cm-lint-marker-warning")).to_have_count(1)
    expect(page.locator("#app-code .cm-lint-marker-error")).to_have_count(0)
    page.click("#save")  # a warning: saved all the same
    expect(page.locator("#ed-state")).to_have_text("saved · v2")


def test_a_flow_that_could_not_import_a_module_says_where_to_look(
    admin_page: Any, console: Console
) -> None:
    pkg = package(
        {"needs": {"code": "import no_such_module_xyz.sub\nv = 1", "outputs": ["v"]},
         "fails": {"code": "raise ValueError('not a module')", "outputs": ["v"]}},
        {"f1": {"app": "needs"}, "f2": {"app": "fails"}},
    )  # fmt: skip
    run_id = console.api("POST", "/runs", {"package": pkg})["run_id"]
    ended = lambda: console.api("GET", f"/runs/{run_id}")  # noqa: E731
    assert wait_for(lambda: (r := ended())["status"] != "running" and r, 60)["status"] == "error"
    page = admin_page
    page.goto(f"/runs/{run_id}#flow=f1")
    expect(page.locator("#flow-reason")).to_contain_text("ModuleNotFoundError")
    hint = page.locator("#flow-module-hint")
    expect(hint).to_contain_text("no_such_module_xyz is not installed where flows run")
    page.locator('g.node[data-id="f2"]').click()
    expect(page.locator("#flow-reason")).to_contain_text("ValueError")
    expect(hint).to_be_hidden()
