"""Live views: a run's log survives a dropped connection with no gap and no repeat, the runs
list filters, paginates and follows running runs, and the admin page manages users and tokens."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_for
from tests.console.conftest import USER_PASSWORD, Console, log_in
from tests.console.proxy import CuttingProxy

LIVE_S = 60_000


@pytest.fixture
def proxy(console: Console) -> Iterator[CuttingProxy]:
    found = CuttingProxy(int(console.base.rsplit(":", 1)[1]))
    yield found
    found.close()


def test_a_dropped_connection_mid_run_resumes_with_no_gap_in_the_log(
    browser: Any, console: Console, proxy: CuttingProxy
) -> None:
    console.user("carol")
    wf_id = console.workflow("ticker", "long ticker", owner="carol")
    run = console.api("POST", "/runs", {"workflow_id": wf_id, "inputs": {"count": 300, "delay": 0.02}}, "carol")  # fmt: skip
    page = log_in(browser, proxy.base, "carol", USER_PASSWORD)
    page.goto(f"/runs/{run['run_id']}")
    page.locator('g.node[data-id="ticker"]').click()
    log = page.locator("#flow-log")
    expect(log).to_contain_text("tick 20", timeout=LIVE_S)
    assert proxy.cut() > 0
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_S)
    expect(log.locator(".line")).to_have_count(300)
    lines = log.locator(".line").all_inner_texts()
    assert lines == [f"tick {i}" for i in range(1, 301)]
    streams = [r for r in proxy.requests if b"/events" in r]
    assert len(streams) >= 2, streams  # it really reconnected (with Last-Event-ID or ?after=)
    page.context.close()


def test_runs_list_filters_paginates_and_follows_a_running_run(
    browser: Any, console: Console
) -> None:
    console.user("dave")
    wf_id = console.workflow("ticker", "dave's ticker", owner="dave")
    done = [
        console.api("POST", "/runs", {"workflow_id": wf_id}, "dave")["run_id"] for _ in range(2)
    ]
    failing = console.workflow("broken", "dave's broken", owner="dave")
    broken = console.api("POST", "/runs", {"workflow_id": failing}, "dave")["run_id"]
    # ended first: a list of no unfinished run does not poll, so it would never gain the row
    wait_for(lambda: console.api("GET", f"/runs/{broken}", name="dave")["status"] == "error", timeout=60)  # fmt: skip
    page = log_in(browser, console.base, "dave", USER_PASSWORD)
    page.goto("/runs?status=error")
    expect(page.locator("#run-rows tr")).to_have_count(1, timeout=LIVE_S)
    expect(page.locator(f'#run-rows tr[data-id="{broken}"]')).to_be_visible()
    page.goto(f"/runs?workflow_id={wf_id}&limit=1")
    expect(page.locator("#runs-page")).to_have_text("1\u20131 of 2")
    page.click("#runs-next")
    expect(page.locator("#runs-page")).to_have_text("2\u20132 of 2")
    expect(page.locator(f'#run-rows tr[data-id="{done[0]}"]')).to_be_visible()
    slow = console.api("POST", "/runs", {"workflow_id": wf_id, "inputs": {"count": 40, "delay": 0.1}}, "dave")  # fmt: skip
    page.goto("/runs")
    row = page.locator(f'#run-rows tr[data-id="{slow["run_id"]}"]')
    expect(row.locator(".status")).to_have_text(re.compile("pending|running"))
    expect(row.locator(".status")).to_have_text("ready", timeout=LIVE_S)  # no reload
    # an admin sees everyone's, filtered by user
    admin = log_in(browser, console.base, "admin", password=_admin())
    admin.goto("/runs?owner=dave")
    expect(admin.locator("#run-rows tr")).to_have_count(4, timeout=LIVE_S)
    page.context.close()
    admin.context.close()


def _admin() -> str:
    from tests.serve_process import PASSWORD

    return PASSWORD


def test_admin_manages_users_and_tokens_and_sees_workers(admin_page: Any, console: Console) -> None:
    page = admin_page
    page.goto("/admin")
    expect(page.locator("#worker-rows tr[data-worker]")).to_have_count(1)  # test_workers_view
    expect(page.locator('dd[data-metric="Queue dizest"]')).to_have_text(
        re.compile(r"^\d+ waiting$")
    )
    expect(page.locator('dd[data-metric="Live workers"]')).to_have_text("1")
    expect(page.locator("#health")).not_to_contain_text("dizest_")  # words, not metric names
    expect(page.locator('dd[data-metric="Ready"] .status.st-ready')).to_have_text("ready")
    form = page.locator("#add-user")
    form.locator('[name="username"]').fill("erin")
    form.locator('[name="password"]').fill("erin's first password")
    form.locator('button[type="submit"]').click()
    row = page.locator('#user-rows tr[data-user="erin"]')
    expect(row).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept("erin's new password"))
    row.get_by_role("button", name="Reset password").click()
    expect(page.locator("#toast")).to_have_text("Password of erin changed")
    erin = log_in(page.context.browser, console.base, "erin", "erin's new password")
    erin.context.close()
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Remove").click()
    expect(row).to_have_count(0)
    tokens = page.locator("#add-token")
    tokens.locator('[name="name"]').fill("ci token")
    tokens.locator('button[type="submit"]').click()
    secret = page.locator("#token-value")
    expect(secret).to_have_text(re.compile(r"^dz_"))
    token_row = page.locator("#token-rows tr", has_text="ci token")
    expect(token_row).to_contain_text("read, run")
    value = secret.inner_text()
    page.reload()
    expect(page.locator("#token-value")).to_have_count(0)  # shown once
    assert value not in page.content()
    token_row.get_by_role("button", name="Revoke").click()
    expect(token_row).to_have_count(0)


def test_a_server_not_ready_stands_out_on_the_admin_page(admin_page: Any) -> None:
    """ "Ready: no live worker" (every run refused) was plain text among the figures (a user
    review's find): it is drawn as an error is. (/readyz answers as it does with no worker.)"""
    page = admin_page
    refused = {
        "error": {"code": "not_ready", "message": "no live worker", "details": {"workers": []}}
    }
    page.route("**/readyz", lambda route: route.fulfill(status=503, json=refused))
    page.goto("/admin")
    expect(page.locator('dd[data-metric="Ready"] .status.st-error')).to_have_text("no live worker")
