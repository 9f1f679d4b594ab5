"""The list pages' paper cuts a browser walkthrough found: the runs page's filters apply as they
change (a typed one as its typing pauses: no Filter button) and take a workflow by its title; a
user's Tokens page is theirs (no service cards) and its once-shown token has a Copy button; at a
phone's width a table that scrolls sideways says so."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import wait_for
from tests.console.conftest import USER_PASSWORD, Console, log_in
from tests.serve_process import PASSWORD

LIVE_MS = 60_000


def test_the_runs_filters_apply_as_they_change_and_take_a_workflow_by_title(
    browser: Any, console: Console
) -> None:
    console.user("ada")
    tick = console.workflow("ticker", "ada's ticker", owner="ada")
    other = console.workflow("ticker", "ada's other ticker", owner="ada")
    runs = {wf: str(console.api("POST", "/runs", {"workflow_id": wf}, "ada")["run_id"]) for wf in (tick, other)}  # fmt: skip
    page = log_in(browser, console.base, "ada", USER_PASSWORD)
    page.goto("/runs")
    expect(page.locator("#run-rows tr")).to_have_count(2, timeout=LIVE_MS)
    field = page.locator("#f-workflow")
    field.fill("other")  # the list offers the workflows whose title holds it, by title
    expect(page.locator("#f-workflows option")).to_have_count(1)
    expect(page.locator("#f-workflows option")).to_have_attribute("value", "ada's other ticker")
    field.fill("ada's ticker")  # a title typed whole, then Enter
    field.press("Enter")
    expect(page.locator("#run-rows tr")).to_have_count(1)
    expect(page.locator(f'#run-rows tr[data-id="{runs[tick]}"]')).to_be_visible()
    wait_for(lambda: f"workflow_id={tick}" in page.url, timeout=10)
    page.reload()  # the address keeps the workflow, shown by its title
    expect(page.locator(f'#run-rows tr[data-id="{runs[tick]}"]')).to_be_visible(timeout=LIVE_MS)
    expect(field).to_have_value("ada's ticker")
    expect(page.locator("#run-rows tr")).to_have_count(1)
    field.fill(other)  # an id still works
    field.press("Enter")
    expect(page.locator(f'#run-rows tr[data-id="{runs[other]}"]')).to_be_visible()
    page.select_option("#f-status", "cancelled")  # a select applies at once: no Filter pressed
    expect(page.locator("#runs-empty")).to_be_visible()
    wait_for(lambda: "status=cancelled" in page.url, timeout=10)
    page.go_back()  # left for the page before: Back returns to the same filters
    page.go_forward()
    expect(page.locator("#f-status")).to_have_value("cancelled")
    expect(page.locator("#runs-empty")).to_be_visible(timeout=LIVE_MS)
    page.select_option("#f-status", "")
    expect(page.locator(f'#run-rows tr[data-id="{runs[other]}"]')).to_be_visible()
    assert re.search(r"status=", page.url) is None
    page.context.close()


def test_the_runs_typed_filters_apply_as_the_typing_pauses_or_on_enter(
    browser: Any, console: Console
) -> None:
    """The selects applied as they changed, yet a typed user or workflow waited for a Filter
    button (or Enter): the page had two ways to say "apply". (Users of this test alone: the
    serve is shared, and an owner's filter lists every run of theirs.)"""
    console.user("uma8")
    console.user("ugo8")
    runs = {}
    for user in ("uma8", "ugo8"):
        wf = console.workflow("ticker", f"{user}'s ticker", owner=user)
        runs[user] = str(console.api("POST", "/runs", {"workflow_id": wf}, user)["run_id"])
    for run in runs.values():  # ended: the page asks for nothing again meanwhile
        status = lambda run=run: console.api("GET", f"/runs/{run}?flows=states")["status"]  # noqa: E731
        wait_for(lambda status=status: status() in ("ready", "error", "cancelled"), timeout=60)
    page = log_in(browser, console.base, "admin", PASSWORD)
    try:
        page.goto("/runs")
        row = lambda user: page.locator(f'#run-rows tr[data-id="{runs[user]}"]')  # noqa: E731
        expect(row("uma8")).to_be_visible(timeout=LIVE_MS)
        expect(row("ugo8")).to_be_visible()
        expect(page.locator("#run-filters button")).to_have_count(0)
        asked: list[str] = []
        page.on("request", lambda r: asked.append(r.url) if "/api/v1/runs?" in r.url else None)
        page.locator("#f-owner").press_sequentially("uma8")  # no Enter, the field kept
        expect(page.locator("#run-rows tr")).to_have_count(1)
        expect(row("uma8")).to_be_visible()
        # as the typing paused, not a keystroke at a time: once, or twice where a busy machine
        # held a keystroke past the pause (a fresh CI's asked for "owner=u" first)
        assert len(asked) < len("uma8") and "owner=uma8" in asked[-1], asked
        wait_for(lambda: "owner=uma8" in page.url, timeout=10)
        page.locator("#f-workflow").press_sequentially("ugo8's ticker")
        expect(page.locator("#runs-empty")).to_be_visible()  # uma ran no ugo8's ticker
        owner = page.locator("#f-owner")
        owner.press("Control+a")
        owner.press("Backspace")
        owner.press("Enter")
        expect(row("ugo8")).to_be_visible()
        expect(page.locator("#run-rows tr")).to_have_count(1)
        assert "owner=" not in page.url
    finally:
        page.context.close()


def test_a_users_tokens_page_is_theirs_and_copies_the_once_shown_token(
    browser: Any, console: Console
) -> None:
    console.user("tess")
    page = log_in(browser, console.base, "tess", USER_PASSWORD)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.locator("header nav a", has_text="Tokens").click()
    expect(page).to_have_title(re.compile(r"^Tokens"))
    first = page.locator("main h2").first
    expect(first).to_have_text("My API tokens")  # not Service, Ready, Workers
    expect(page.locator("#health, #workers, #add-user")).to_have_count(0)
    form = page.locator("#add-token")
    form.locator('[name="name"]').fill("laptop")
    form.locator('button[type="submit"]').click()
    secret = page.locator("#token-value")
    expect(secret).to_have_text(re.compile(r"^dz_"))
    expect(page.locator("#token-secret")).to_contain_text("Shown once")
    page.locator("#token-copy").click()
    expect(page.locator("#toast")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret.inner_text()
    page.context.close()


# A table's scroll box: whether it scrolls, which of its edges fade (console.css: more lies
# beyond them), and whether a fade is drawn (its mask).
CUES = """(box) => [box.scrollWidth > box.clientWidth, ["more-left", "more-right"].filter((c) => box.classList.contains(c)),
  getComputedStyle(box).maskImage !== "none"]"""  # fmt: skip


def test_a_table_that_scrolls_sideways_on_a_phone_fades_where_more_lies(
    browser: Any, console: Console
) -> None:
    """At 390 px the files table's Download, Rename and Delete lay off-screen, beyond an edge
    that looked like the table's own. (The list pages' tables fit a phone now, test_narrow: the
    admin page's workers table, eight columns of measures, still lies beyond its edge there.)"""
    page = log_in(browser, console.base, "admin", PASSWORD, viewport={"width": 390, "height": 844})
    page.goto("/admin")
    expect(page.locator("#worker-rows td.beat").first).to_be_attached(timeout=LIVE_MS)
    box = page.locator("div.scroll-x:has(#worker-rows)")
    wait_for(lambda: box.evaluate(CUES) == [True, ["more-right"], True], timeout=5)
    box.evaluate("(el) => { el.scrollLeft = el.scrollWidth; }")  # at its end: the last beats
    wait_for(lambda: box.evaluate(CUES) == [True, ["more-left"], True], timeout=5)
    expect(page.locator("#worker-rows td.beat").first).to_be_in_viewport()
    box.evaluate("(el) => { el.scrollLeft = (el.scrollWidth - el.clientWidth) / 2; }")
    wait_for(lambda: box.evaluate(CUES) == [True, ["more-left", "more-right"], True], timeout=5)
    page.set_viewport_size({"width": 1440, "height": 900})  # room for all of it: no fade
    wait_for(lambda: box.evaluate(CUES) == [False, [], False], timeout=5)
    page.context.close()
