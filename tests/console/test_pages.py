"""The console in Chromium against a real `dizest serve`: log in, workflows, the graph, a run
watched live to the end with its rendered results, errors, cancel, and who sees what."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.conftest import DATA as TEST_DATA
from tests.console.conftest import DATA, USER_PASSWORD, Console, log_in

LIVE_S = 60_000
ROOT_DATA = (
    Path(__file__).resolve().parents[1] / "data"
)  # ms: a run's flows start child processes on a shared, busy machine


def test_login_shows_name_and_role_and_a_wrong_password_says_so(
    browser: Any, console: Console
) -> None:
    context = browser.new_context(base_url=console.base)
    page = context.new_page()
    page.goto("/runs")
    expect(page).to_have_url(re.compile(r"/login\?next=/runs"))
    page.fill("#username", "admin")
    page.fill("#password", "not the password")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
    context.close()
    page = log_in(browser, console.base, "admin", password=_admin_password())
    expect(page.locator("#me-role")).to_have_text("admin")
    page.click("#logout")
    expect(page).to_have_url(re.compile(r"/login$"))
    page.goto("/workflows")
    expect(page).to_have_url(re.compile(r"/login\?next=/workflows"))
    page.context.close()


def test_a_call_that_finds_the_session_gone_during_logout_does_not_redirect_back(
    admin_page: Any,
) -> None:
    # The interleaving CI once hit: the page's own call (a poll, a run event's refresh) comes back
    # 401 after the logout ended the session and the browser set off for /login; it sent the person
    # to /login?next=<this page> instead. Here that call is held until the logout's navigation is,
    # and the page reports (by a request, as scripts cannot be evaluated while a navigation is
    # pending) once the console's code has handled the 401.
    page = admin_page
    page.goto("/workflows")
    held: dict[str, Any] = {}
    handled: list[str] = []

    def seen(request: Any) -> None:
        if "handled=" in request.url:
            handled.append(request.url)

    page.on("request", seen)

    def hold(name: str) -> Any:
        return lambda route: held.__setitem__(name, route)

    page.route("**/api/v1/runs", hold("call"))
    page.route("**/login", hold("navigation"))
    page.evaluate(
        """() => { import("/console/static/js/api.js").then((api) => api.get("/runs"))
                     .catch((e) => fetch(`/console/static/js/dom.js?handled=${e.status}`)); }"""
    )
    _wait_for(page, lambda: "call" in held, "the page's call never went out")
    page.click("#logout", no_wait_after=True)
    _wait_for(page, lambda: "navigation" in held, "the logout never set off for /login")
    held["call"].continue_()  # the session is gone: the server answers 401
    _wait_for(page, lambda: bool(handled), "the page never handled the 401")
    assert handled[0].endswith("handled=401")
    held["navigation"].continue_()
    expect(page.locator("#login-submit")).to_be_visible()
    expect(page).to_have_url(re.compile(r"/login$"))


def _wait_for(page: Any, done: Any, what: str) -> None:
    deadline = time.monotonic() + 15
    while not done():
        assert time.monotonic() < deadline, what
        page.wait_for_timeout(20)  # lets Playwright deliver the held route to its handler


def _admin_password() -> str:
    from tests.serve_process import PASSWORD

    return PASSWORD


def test_upload_shows_the_graph_and_problems_one_per_line(
    admin_page: Any, console: Console, tmp_path: Path
) -> None:
    page = admin_page
    page.goto("/workflows")
    page.set_input_files("#wf-file", str(DATA / "plots.dwp"))
    row = page.locator("#wf-rows tr", has_text="plots")
    expect(row).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())  # the same file again: nothing stored
    page.set_input_files("#wf-file", str(DATA / "plots.dwp"))
    expect(page.locator("#toast")).to_contain_text("plots is v1 already: nothing stored")
    expect(row.locator("td").nth(2)).to_have_text("v1")
    changed = tmp_path / "plots.dwp"  # the same title, changed: its next version
    changed.write_text(
        json.dumps({**json.loads((DATA / "plots.dwp").read_text()), "description": "v2"})
    )
    page.once("dialog", lambda dialog: dialog.accept())
    page.set_input_files("#wf-file", str(changed))
    expect(row.locator("td").nth(2)).to_have_text("v2")
    expect(row).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.dismiss())  # or both kept
    page.set_input_files("#wf-file", str(DATA / "plots.dwp"))
    expect(row).to_have_count(2)
    bad = tmp_path / "bad.dwp"
    bad.write_text('{"apps": {}, "flow": {"f": {"id": "f", "app_id": "nope", "active": true}}}')
    page.set_input_files("#wf-file", str(bad))
    problems = page.locator("#upload-problems")
    expect(problems).to_be_visible()
    expect(problems).to_contain_text("bad.dwp:")
    # its flow named as its node would be: no title, an unknown app: the app's id
    expect(problems).to_contain_text("unknown app_id 'nope' (flow nope, app nope, field app_id)")
    page.fill("#wf-search", "no such title")
    expect(row).to_have_count(0)
    page.fill("#wf-search", "plo")
    row.first.locator("a.wf-title").click()
    for flow_id in ("numbers", "png", "chart", "table"):
        expect(page.locator(f'g.node[data-id="{flow_id}"]')).to_be_visible()
    expect(page.locator("path.edge")).to_have_count(3)
    page.locator('g.node[data-id="png"]').click()
    expect(page.locator("#node pre.code .tok-kw").first).to_be_visible()
    expect(page.locator("#node pre.code")).to_contain_text("matplotlib")


def test_run_with_inputs_live_to_the_end_with_png_plotly_and_table(
    admin_page: Any, console: Console
) -> None:
    wf_id = console.workflow("plots", "plots to run")
    page = admin_page
    page.goto(f"/workflows/{wf_id}")
    number = page.locator('input[name="numbers.n"]')
    expect(number).to_have_value("5")
    number.fill("7")
    page.click("#run-start")
    expect(page).to_have_url(re.compile(r"/runs/\w+$"))
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_S)
    for flow_id in ("numbers", "png", "chart", "table"):
        expect(page.locator(f'g.node[data-id="{flow_id}"]')).to_have_class(re.compile("st-ready"))
    page.locator('g.node[data-id="numbers"]').click()
    expect(page.locator("#flow-log")).to_contain_text("made 7 numbers")
    page.locator('g.node[data-id="png"]').click()
    image = page.locator("#flow-log img.result-image")
    expect(image).to_be_visible()
    assert image.evaluate("img => img.naturalWidth") > 50
    page.locator('g.node[data-id="chart"]').click()
    expect(page.locator("#flow-log .result-plotly .main-svg").first).to_be_visible(timeout=20_000)
    page.locator('g.node[data-id="table"]').click()
    frame = page.locator("#flow-log iframe.result-html")
    expect(frame).to_have_attribute("sandbox", "")
    expect(page.frame_locator("#flow-log iframe.result-html").locator("table")).to_contain_text(
        "square"
    )
    expect(page.locator("#flow-results")).to_contain_text('"total": 21')
    page.click('button[data-tab="params"]')
    expect(page.locator("#params")).to_contain_text('"numbers.n"' if False else "numbers.n")
    expect(page.locator("#timeline svg.gantt g.bar")).to_have_count(4)
    run_id = page.url.split("#")[0].rsplit("/", 1)[1]  # (the URL names the selected flow)
    # back on the workflow view: the last run's statuses on the nodes, its outputs per flow
    asked: list[str] = []
    page.on("request", lambda r: asked.append(r.url))
    page.goto(f"/workflows/{wf_id}")
    expect(page.locator('g.node[data-id="table"]')).to_have_class(re.compile("st-ready"))
    page.locator('g.node[data-id="numbers"]').click()
    expect(page.locator("#node")).to_contain_text("Last outputs")
    expect(page.locator(f'#node a[href="/runs/{run_id}"]')).to_be_visible()
    expect(page.locator("#node pre.result-json").first).to_contain_text(
        "6"
    )  # range(7), not the default 5
    # read as its states and the shown flow's outputs, not the whole report (a 100k-flow run's
    # is tens of MB)
    report = f"/api/v1/runs/{run_id}"
    assert any(u.endswith(report + "?flows=states") for u in asked), asked
    assert not any(u.endswith(report) for u in asked), asked


def test_a_flow_error_shows_its_traceback_and_the_reason_downstream(
    admin_page: Any, console: Console
) -> None:
    wf_id = console.workflow("broken", "broken")
    run = console.api("POST", "/runs", {"workflow_id": wf_id})
    page = admin_page
    page.goto(f"/runs/{run['run_id']}")
    expect(page.locator("#run-status")).to_have_text("error", timeout=LIVE_S)
    page.locator('g.node[data-id="fails"]').click()
    expect(page.locator("#flow-log")).to_contain_text("Traceback (most recent call last)")
    expect(page.locator("#flow-log")).to_contain_text("ValueError: the answer is wrong")
    expect(page.locator("#flow-reason")).to_have_text("ValueError: the answer is wrong")
    page.locator('g.node[data-id="after"]').click()
    expect(page.locator("#flow-reason")).to_have_text("upstream failed: fails")


def test_cancel_a_running_run(admin_page: Any, console: Console) -> None:
    wf_id = console.workflow("ticker", "ticker to cancel")
    run = console.api(
        "POST", "/runs", {"workflow_id": wf_id, "inputs": {"count": 600, "delay": 0.1}}
    )
    page = admin_page
    page.goto(f"/runs/{run['run_id']}")
    page.locator('g.node[data-id="ticker"]').click()
    expect(page.locator("#flow-log")).to_contain_text("tick 2", timeout=LIVE_S)
    page.click("#run-cancel")
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=LIVE_S)
    assert console.api("GET", f"/runs/{run['run_id']}")["status"] == "cancelled"


def test_another_users_run_and_workflow_are_the_same_not_found_page(
    browser: Any, console: Console
) -> None:
    console.user("alice")
    console.user("bob")
    wf_id = console.workflow("ticker", "alice's", owner="alice")
    run = console.api("POST", "/runs", {"workflow_id": wf_id}, name="alice")
    page = log_in(browser, console.base, "bob")
    missing = page.goto("/runs/0123456789abcdef0123456789abcdef")
    assert missing is not None and missing.status == 404
    missing_text = page.locator("main").inner_text()
    for path in (f"/runs/{run['run_id']}", f"/workflows/{wf_id}"):
        answer = page.goto(path)
        assert answer is not None and answer.status == 404, path
        assert page.locator("main").inner_text() == missing_text
    answer = page.goto("/no/such/page")
    assert answer is not None and answer.status == 404
    expect(page.locator("h1")).to_have_text("Not found")
    page.context.close()
    alice = log_in(browser, console.base, "alice", USER_PASSWORD)
    alice.goto(f"/runs/{run['run_id']}")
    expect(alice.locator("#run-status")).to_have_text("ready", timeout=LIVE_S)
    alice.context.close()


def test_dag1000_draws_every_flow_and_edge(admin_page: Any, console: Console) -> None:
    """Correctness of the large-graph drawing (its speed is bench/bench_console.py's)."""
    package = json.loads((ROOT_DATA / "dag1000.dwp").read_text())
    edges = sum(
        len(spec.get("connections", []))
        for flow in package["flow"].values()
        for spec in (flow.get("inputs") or {}).values()
    )
    made = console.api("POST", "/workflows", {"title": "dag1000", "package": package})
    page = admin_page
    page.goto(f"/workflows/{made['id']}")
    expect(page.locator("g.node")).to_have_count(1000)
    expect(page.locator("path.edge")).to_have_count(edges)
    assert page.locator("g.node .port-label").count() == 0  # far out: no detail yet
    for _ in range(25):  # zoom in until the flows are big enough to read
        page.click("#zoom-in")
        if page.locator("g.node .port-label").count():
            break
    expect(page.locator("g.node .port-label").first).to_be_attached()
    assert page.locator("g.node .port-label").count() < 1000  # only the flows in view


def test_a_user_is_offered_what_they_may_do_and_finds_their_tokens_and_the_api(
    browser: Any, console: Console
) -> None:
    """A user (not an admin) finds their tokens and the API reference from the header (and the
    way back), is not offered the admin scope, and on the workflow list a workflow shared with
    a runner grant offers no Delete, which the API would refuse."""
    console.user("owen")
    console.user("rory")
    pkg = json.loads((TEST_DATA / "c03_fanout.dwp").read_text())
    mine = console.api("POST", "/workflows", {"title": "owens", "package": pkg}, "owen")["id"]
    theirs = console.api("POST", "/workflows", {"title": "shared", "package": pkg}, "owen")["id"]
    console.api("PUT", f"/workflows/{theirs}/grants", {"grants": {"rory": "runner"}}, "owen")
    console.api("POST", "/workflows", {"title": "rorys", "package": pkg}, "rory")

    page = log_in(browser, console.base, "rory")
    page.goto("/workflows")
    expect(page.locator("#wf-rows tr")).to_have_count(2)  # owen's own is not listed to rory
    assert mine not in page.content()
    expect(page.locator(f'#wf-rows tr[data-id="{theirs}"]').get_by_role("button", name="Delete")).to_have_count(0)  # fmt: skip
    expect(page.locator("#wf-rows tr", has_text="rorys").get_by_role("button", name="Delete")).to_have_count(1)  # fmt: skip
    page.locator("header nav a", has_text="Tokens").click()
    expect(page).to_have_url(re.compile(r"/admin$"))
    expect(page.locator('#add-token [name="scope"]')).to_have_count(2)  # read, run: no admin
    expect(page.locator('#add-token [value="admin"]')).to_have_count(0)
    page.locator("header nav a", has_text="API").click()
    expect(page).to_have_url(re.compile(r"/api/docs$"))
    page.locator("#back").click()
    expect(page).to_have_url(re.compile(r"/workflows$"))
    page.context.close()


def test_a_session_that_ended_is_said_so_where_the_person_lands(
    browser: Any, console: Console
) -> None:
    """A session ended under an open page (an admin set the password; it expired): a call's
    error said only "HTTP 401" where the page stayed (the editor keeps unsaved work), and the
    login page it led to said nothing of why."""
    console.user("erin")
    page = log_in(browser, console.base, "erin")
    console.api("PUT", "/users/erin/password", {"password": USER_PASSWORD})  # ends its sessions
    sent: list[str] = []
    page.route("**/login?*", lambda route: (sent.append(route.request.url), route.abort()))
    message = page.evaluate(
        """() => import("/console/static/js/api.js").then((api) => api.get("/runs"))
                   .then(() => "answered", (e) => e.message)"""
    )
    assert message.startswith("Your session has ended: log in again"), message
    _wait_for(page, lambda: bool(sent), "the page never set off for the login page")
    assert sent[0].endswith("/login?next=%2Fworkflows&ended=1"), sent
    page.unroute("**/login?*")
    page.goto("/runs")  # its cookie still sent: the server's own redirect says it too
    expect(page).to_have_url(re.compile(r"/login\?next=/runs&ended=1$"))
    expect(page.locator("#login-ended")).to_have_text(re.compile("Your session has ended"))
    page.context.close()
    fresh = browser.new_context(base_url=console.base).new_page()  # never logged in: no note
    fresh.goto("/runs")
    expect(fresh).to_have_url(re.compile(r"/login\?next=/runs$"))
    expect(fresh.locator("#login-submit")).to_be_visible()
    expect(fresh.locator("#login-ended")).to_have_count(0)
    fresh.context.close()
