"""The console's schedules page, and what started each run in the runs list. Schedules were the
CLI's and the API's alone: a user review found no page for them, and a per-minute schedule's
runs filled the runs page looking exactly like the user's own."""

from __future__ import annotations

import json
import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import DATA, wait_for
from tests.console.conftest import Console, log_in

FANOUT = json.loads((DATA / "c03_fanout.dwp").read_text())


def workflow(console: Console, owner: str, title: str) -> str:
    return str(console.api("POST", "/workflows", {"title": title, "package": FANOUT}, owner)["id"])


def test_add_switch_show_and_delete_a_schedule(browser: Any, console: Console) -> None:
    console.user("sally")
    wf_id = workflow(console, "sally", "nightly fanout")
    page = log_in(browser, console.base, "sally")
    page.click('nav a[data-nav="schedules"]')
    expect(page).to_have_url(re.compile(r"/schedules$"))
    expect(page.locator("#schedules-empty")).to_be_visible()
    page.select_option("#s-workflow", wf_id)
    page.fill("#s-cron", "61 * * * *")  # no minute 61: the server's words, nothing stored
    page.click("#add-schedule button")
    expect(page.locator("#schedule-error")).to_contain_text("invalid cron '61 * * * *'")
    assert console.api("GET", "/schedules", name="sally")["items"] == []
    page.fill("#s-cron", "0 9 * * 1-5")
    page.fill("#s-timezone", "Asia/Seoul")
    page.click("#add-schedule button")
    rows = page.locator("#schedule-rows > tr")
    expect(rows).to_have_count(1)
    expect(page.locator("#schedule-error")).to_be_hidden()
    (made,) = console.api("GET", "/schedules", name="sally")["items"]
    assert (made["workflow_id"], made["cron"], made["timezone"]) == (
        wf_id,
        "0 9 * * 1-5",
        "Asia/Seoul",
    )
    row = page.locator(f"#s-{made['id']}")
    expect(row.locator("td.wf a")).to_have_text("nightly fanout")
    expect(row.locator("td.cron")).to_have_text("0 9 * * 1-5 Asia/Seoul")
    expect(row.locator("td.next time")).to_have_attribute("datetime", re.compile(r"T00:00:00"))
    row.locator("input.enabled").uncheck()  # off: no next run
    expect(row.locator("td.next")).to_have_text("off")
    wait_for(lambda: not console.api("GET", f"/schedules/{made['id']}", name="sally")["enabled"])
    row = page.locator(f"#s-{made['id']}")
    row.locator("button.show-ticks").click()
    expect(page.locator("tr.ticks")).to_have_text("No ticks yet.")
    page.goto(f"/schedules#s-{made['id']}")  # where a run a schedule made links to
    expect(page.locator(f"#s-{made['id']}")).to_have_class(re.compile(r"\btarget\b"))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    for odd in ("#s-workflow", "#s-%", "#%E0%A4%A"):  # a form field's id, no percent-encoding
        page.goto(f"/schedules{odd}")
        expect(page.locator(".target")).to_have_count(0)
    page.goto(f"/schedules#s-{made['id']}")
    expect(page.locator(".target")).to_have_count(1)
    assert errors == [], errors  # (a probe's: "URI malformed" at each, the select marked)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"#s-{made['id']} button.delete").click()
    expect(page.locator("#schedule-rows > tr")).to_have_count(0)
    expect(page.locator("#schedules-empty")).to_be_visible()
    assert console.api("GET", "/schedules", name="sally")["items"] == []
    page.context.close()


def test_the_runs_list_says_what_started_a_run(browser: Any, console: Console) -> None:
    console.user("rita")
    wf_id = workflow(console, "rita", "rerun me")
    first = console.api("POST", "/runs", {"workflow_id": wf_id}, name="rita")["run_id"]
    wait_for(lambda: console.api("GET", f"/runs/{first}", name="rita")["status"] == "ready", 60)
    again = console.api("POST", f"/runs/{first}/flows/k3/rerun", name="rita")["run_id"]
    page = log_in(browser, console.base, "rita")
    page.goto("/runs")
    rerun = page.locator(f'#run-rows tr[data-id="{again}"] td.origin a')
    expect(rerun).to_have_text("rerun")
    expect(rerun).to_have_attribute("href", f"/runs/{first}")
    expect(page.locator(f'#run-rows tr[data-id="{first}"] td.origin')).to_have_text("")
    page.context.close()
