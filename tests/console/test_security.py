"""The console's security rules, each against the real server: CSP without inline script and
no framing, the CSRF token on every mutating call, flow HTML kept out of the console's origin,
and WebSocket Origin checks for cookie-authenticated sockets."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import expect
from simple_websocket import ConnectionError as WsRefused

from tests.conftest import wait_for
from tests.console.conftest import DATA, TRUSTED, Console, log_in
from tests.serve_process import PASSWORD, call, password_session
from tests.ws_client import WsClient

PAGES = [
    "/login",
    "/workflows",
    "/runs",
    "/files",
    "/files/",
    "/files/a%20%23b/c",
    "/admin",
    "/no/such/page",
]
HOSTILE_HTML = (
    "<p id='mark'>flow html</p><img src='x' onerror=\"parent.document.title='owned'\">"
    "<script>parent.document.title = 'owned'; parent.window.stolen = document.cookie;</script>"
)


def session(console: Console, name: str = "admin", password: str = PASSWORD) -> dict[str, str]:
    return password_session(console.base, name, password)[0]


def page_html(console: Console, path: str, cookie: str) -> tuple[int, str, Any]:
    request = urllib.request.Request(console.base + path, headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode(), answer.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers


def test_pages_have_a_strict_csp_no_inline_script_and_cannot_be_framed(console: Console) -> None:
    cookie = session(console)["Cookie"]
    for path in PAGES:
        status, html, headers = page_html(console, path, cookie)
        assert status == (404 if "no/such" in path else 200), path
        csp = headers["Content-Security-Policy"]
        directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
        assert directives["script-src"] == "'self'", path  # no 'unsafe-inline', no 'unsafe-eval'
        assert directives["frame-ancestors"] == "'none'"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        for script in re.findall(r"<script\b[^>]*>", html):
            assert "src=" in script, (path, script)  # every script is a file of this origin
        assert not re.search(r"\son[a-z]+\s*=", html), path  # no inline event handlers
    for name in ("api.js", "run.js"):  # the modules themselves never build handlers from strings
        status, source, _ = page_html(console, f"/console/static/js/{name}", cookie)
        assert status == 200 and "eval(" not in source and "new Function" not in source


def test_unknown_paths_are_404_json_under_the_api_and_html_elsewhere(console: Console) -> None:
    status, body, headers = page_html(console, "/api/v1/no/such/route", "")
    assert status == 404 and json.loads(body)["error"]["code"] == "not_found"
    status, body, headers = page_html(console, "/no/such/page", "")
    assert status == 404 and headers.get_content_type() == "text/html" and "Not found" in body


def test_every_mutating_call_of_the_console_carries_the_csrf_token(
    admin_page: Any, console: Console
) -> None:
    page = admin_page
    sent: list[tuple[str, str, str | None]] = []
    page.on("request", lambda r: sent.append((r.method, r.url, r.headers.get("x-csrf-token"))))
    page.goto("/workflows")
    token = page.locator('meta[name="csrf-token"]').get_attribute("content")
    assert token
    page.set_input_files("#wf-file", str(DATA / "ticker.dwp"))
    row = page.locator("#wf-rows tr", has_text="ticker").first
    expect(row).to_be_visible()
    row.locator("a.wf-title").click()
    page.click("#run-start")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=60_000)
    page.locator('g.node[data-id="ticker"]').click()
    first_run = page.url
    page.click("#flow-rerun")
    # the rerun is a new run, opened in its own page: wait for it, not the old page's status
    expect(page).not_to_have_url(first_run, timeout=30_000)
    expect(page.locator("#run-status")).to_have_text("ready", timeout=60_000)
    page.click("#logout")
    expect(page).to_have_url(re.compile("/login$"))
    writes = [(m, u, t) for m, u, t in sent if m not in ("GET", "HEAD") and "/api/" in u]
    assert {u.split("/api/v1")[1].split("/")[1] for _, u, _ in writes} >= {
        "workflows",
        "runs",
        "auth",
    }
    assert all(t == token for _, _, t in writes), writes
    # and the API refuses the same session without it
    headers = session(console)
    del headers["X-CSRF-Token"]
    status, answer, _ = call(console.base, "POST", "/api/v1/runs", {"package": {}}, headers)
    assert status == 403, answer


def test_flow_html_never_runs_in_the_console_origin(admin_page: Any, console: Console) -> None:
    package = json.loads((DATA / "ticker.dwp").read_text())
    package["apps"]["ticker"]["code"] = (
        "class Page:\n    def _repr_html_(self):\n        return " + repr(HOSTILE_HTML) + "\n"
        "display(Page())\n"
    )
    run = console.api("POST", "/runs", {"package": package})
    page = admin_page
    page.goto(f"/runs/{run['run_id']}")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=60_000)
    page.locator('g.node[data-id="ticker"]').click()
    frame = page.locator("#flow-log iframe.result-html")
    expect(frame).to_have_attribute("sandbox", "")  # neither allow-scripts nor allow-same-origin
    expect(page.frame_locator("#flow-log iframe.result-html").locator("#mark")).to_have_text(
        "flow html"
    )
    assert page.title() != "owned"
    assert page.evaluate("() => window.stolen === undefined")
    # the frame's document is not the console's: reading it from the console fails
    assert page.evaluate(
        "() => { try { return document.querySelector('iframe.result-html').contentDocument === null; }"
        " catch (e) { return true; } }"
    )


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [("http://evil.example", False), (TRUSTED, True), (None, False), ("ws://HOST", False)],
)
def test_a_cookie_websocket_needs_an_allowed_origin(
    console: Console, origin: str | None, allowed: Any
) -> None:
    run = console.api("POST", "/runs", {"package": json.loads((DATA / "ticker.dwp").read_text())})
    url = console.base.replace("http", "ws") + f"/api/v1/runs/{run['run_id']}/ws"
    headers = {"Cookie": session(console)["Cookie"]}
    if origin is not None:  # HOST: this server's, under a scheme no page has
        headers["Origin"] = origin.replace("HOST", console.base.partition("://")[2])
    if not allowed:
        with pytest.raises(WsRefused):
            WsClient.connect(url, headers=headers)
        return
    ws = WsClient.connect(url, headers=headers)
    try:
        assert json.loads(ws.receive(timeout=15))["run_id"] == run["run_id"]
    finally:
        ws.close()


def test_the_console_page_may_open_a_cookie_websocket(admin_page: Any, console: Console) -> None:
    run = console.api("POST", "/runs", {"package": json.loads((DATA / "ticker.dwp").read_text())})
    admin_page.goto("/runs")
    first = admin_page.evaluate(
        """(id) => new Promise((resolve, reject) => {
            const ws = new WebSocket(`ws://${location.host}/api/v1/runs/${id}/ws`);
            ws.onmessage = (m) => { resolve(JSON.parse(m.data)); ws.close(); };
            ws.onerror = () => reject(new Error("refused"));
        })""",
        run["run_id"],
    )
    assert first["run_id"] == run["run_id"]


def test_a_bearer_websocket_needs_no_origin(console: Console) -> None:
    run = console.api("POST", "/runs", {"package": json.loads((DATA / "ticker.dwp").read_text())})
    url = console.base.replace("http", "ws") + f"/api/v1/runs/{run['run_id']}/ws"
    ws = WsClient.connect(url, headers=console.admin)
    try:
        assert json.loads(ws.receive(timeout=15))["run_id"] == run["run_id"]
    finally:
        ws.close()


@pytest.mark.parametrize(
    "next_",
    [
        "//evil.example/x",
        "/\\evil.example/x",
        "/\\/evil.example",
        "/.//evil.example/x",  # resolves to the path "//evil.example/x": another site's, relative
        "/a/..//evil.example/",
        "/api/v1/auth/logout",
        "/api",
        "/%61pi/v1/auth/me",  # the server decodes it to /api/v1/auth/me
    ],
)
def test_the_login_page_never_sends_a_user_to_another_site(
    browser: Any, console: Console, next_: str
) -> None:
    """`next` is resolved as the browser resolves it: "/\\evil" starts with one slash yet
    leads to another origin, "/.//evil" resolves to the path "//evil" (another site's, given
    back as a relative URL); and it is a console page (a probe landed on the API's JSON 405)."""
    context = browser.new_context(base_url=console.base)
    page = context.new_page()
    page.goto("/login?next=" + urllib.parse.quote(next_, safe=""))
    submit_login(page, console)
    context.close()


def submit_login(page: Any, console: Console) -> None:
    """The login form filled as the admin and sent: the workflows page, whatever `next` said."""
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    expect(page).to_have_url(console.base + "/workflows")


def test_the_login_button_waits_for_the_script_that_handles_it(
    browser: Any, console: Console
) -> None:
    """A click on Log in before login.js ran (a slow link; a loaded machine, where a test failed
    so once) posted the form natively and landed on the API's JSON. The button comes disabled
    and the script enables it: held back here, the page offers no click until it runs."""
    context = browser.new_context(base_url=console.base)
    page = context.new_page()
    held: list[Any] = []
    page.route("**/js/login.js", lambda route: held.append(route))
    page.goto("/login", wait_until="commit")
    expect(page.locator("#login-submit")).to_be_disabled()
    wait_for(lambda: page.evaluate("0") or held)  # (each evaluate lets the route handler run)
    expect(page.locator("#login-submit")).to_be_disabled()  # the script asked for, not run
    held[0].continue_()
    submit_login(page, console)
    context.close()


def test_the_admin_forms_wait_for_their_script_and_never_put_a_password_in_the_address(
    admin_page: Any, console: Console
) -> None:
    """The same race on the Admin page: its forms had the default GET, so Add user before
    admin.js ran put the new user's password in the address (history, access logs)."""
    page = admin_page
    held: list[Any] = []
    page.route("**/js/admin.js", lambda route: held.append(route))
    page.goto("/admin", wait_until="commit")
    buttons = page.locator("#add-user button, #add-token button")
    expect(buttons).to_have_count(2)
    wait_for(lambda: page.evaluate("0") or held)  # (each evaluate lets the route handler run)
    for n in range(2):
        expect(buttons.nth(n)).to_be_disabled()
    assert page.eval_on_selector_all("#add-user, #add-token", "fs => fs.map(f => f.method)") == ["post", "post"]  # fmt: skip
    held[0].continue_()
    page.fill('#add-user input[name="username"]', "newcomer")
    page.fill('#add-user input[name="password"]', "a long secret phrase")
    page.click("#add-user button")
    expect(page.locator("#user-rows")).to_contain_text("newcomer")
    assert "secret" not in page.url


def test_a_viewer_is_offered_only_what_their_grant_allows(browser: Any, console: Console) -> None:
    """A probe's viewer saw a Run form, Share and Remove buttons, an enabled Save, Cancel and
    Re-run: each refused by the API (403) only once clicked."""
    console.user("owen")
    console.user("vera")
    wf_id = console.workflow("ticker", "owen's ticker", owner="owen")
    console.api("PUT", f"/workflows/{wf_id}/grants", {"grants": {"vera": "viewer"}}, "owen")
    run = console.api("POST", "/runs", {"workflow_id": wf_id, "inputs": {"count": 3}}, "owen")
    page = log_in(browser, console.base, "vera")
    page.goto(f"/workflows/{wf_id}")
    expect(page.locator("#runform")).to_contain_text("not run it")
    expect(page.locator("#runform button")).to_have_count(0)
    expect(page.locator("#wf-edit")).to_be_hidden()
    expect(page.locator("#grants")).to_contain_text("Shared with you by owen")
    expect(page.locator("#grants button")).to_have_count(0)
    page.goto(f"/runs/{run['run_id']}")
    page.locator('g.node[data-id="ticker"]').click()
    expect(page.locator("#flow-log")).to_be_visible()
    expect(page.locator("#flow-rerun")).to_be_hidden()
    expect(page.locator("#run-cancel")).to_be_hidden()
    page.goto(f"/workflows/{wf_id}/edit")
    expect(page.locator("#ed-state")).to_contain_text("read-only")
    expect(page.locator("#save")).to_be_disabled()
    expect(page.locator("#run-all")).to_be_disabled()
    owner = log_in(browser, console.base, "owen")  # and the owner is offered all of it
    owner.goto(f"/workflows/{wf_id}")
    expect(owner.locator("#runform button[type=submit]")).to_be_visible()
    expect(owner.locator("#wf-edit")).to_be_visible()
    owner.goto(f"/workflows/{wf_id}/edit")
    expect(owner.locator("#save")).to_be_enabled()
    page.context.close()
    owner.context.close()


def test_an_upload_is_offered_as_a_new_version_of_the_uploaders_own_workflow_only(
    browser: Any, console: Console, tmp_path: Any
) -> None:
    """The workflows page offered a .dwp uploaded again as the next version of the newest
    workflow of its title the caller could write: another user's, shared with them as editor
    (for an admin, any user's), came before their own when newer. A probe's editor grantee
    uploading their own report.dwp was asked about the sharer's "report" and, on OK, gave the
    sharer their file (its code, its stored values) as a new version of the sharer's workflow,
    changed for everyone it is shared with; their own "report" stayed as it was."""
    console.user("shirin")
    console.user("uma")
    package = json.loads((DATA / "ticker.dwp").read_text())
    own = console.api("POST", "/workflows", {"title": "report", "package": package}, "uma")
    theirs = console.api("POST", "/workflows", {"title": "report", "package": package}, "shirin")
    console.api("PUT", f"/workflows/{theirs['id']}/grants", {"grants": {"uma": "editor"}}, "shirin")
    only = console.api(
        "POST", "/workflows", {"title": "shirin's only", "package": package}, "shirin"
    )
    asked: list[str] = []
    for name, title, password in (("uma", "report", None), ("admin", "shirin's only", PASSWORD)):
        upload = tmp_path / f"{name}.dwp"
        upload.write_text(json.dumps({**package, "title": title, "description": f"{name}'s"}))
        page = log_in(browser, console.base, name, **({"password": password} if password else {}))
        page.on("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        page.goto("/workflows")
        page.set_input_files("#wf-file", str(upload))
        expect(page.locator("#toast")).to_contain_text(f"Uploaded {title}")
        page.context.close()
    assert len(asked) == 1 and "report" in asked[0], asked  # uma's own, not shirin's
    assert console.api("GET", f"/workflows/{own['id']}", name="uma")["version"] == 2
    for wf in (theirs, only):  # shirin's two workflows are as she saved them
        stored = console.api("GET", f"/workflows/{wf['id']}", name="shirin")
        assert stored["version"] == 1 and "description" not in stored["package"], stored


def test_rerunning_another_users_run_asks_first(admin_page: Any, console: Console) -> None:
    """A re-run runs as its caller, with the caller's drive: an admin's click on a user's run
    ran that user's code over the admin's files without a word (a probe). Now it asks; a
    dismissed question starts nothing. (One's own run: no question, test above.)"""
    console.user("ursula")
    package = json.loads((DATA / "ticker.dwp").read_text())
    made = console.api("POST", "/runs", {"package": package}, "ursula")
    page = admin_page
    mine = lambda: len(console.api("GET", "/runs")["items"])  # noqa: E731
    before = mine()
    page.goto(f"/runs/{made['run_id']}#flow=ticker")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=60_000)
    asked: list[str] = []

    def answer(accept: bool) -> Any:
        def on_dialog(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return on_dialog

    page.once("dialog", answer(False))
    page.click("#flow-rerun")
    wait_for(lambda: asked)
    assert "ursula's" in asked[0] and "your drive" in asked[0], asked
    assert page.url.endswith(f"/runs/{made['run_id']}#flow=ticker") and mine() == before
    page.once("dialog", answer(True))
    page.click("#flow-rerun")
    expect(page).not_to_have_url(re.compile(made["run_id"]), timeout=30_000)
    assert mine() == before + 1


def test_sharing_says_what_a_grant_gives_before_it_is_given(
    admin_page: Any, console: Console
) -> None:
    """A walkthrough's grantee found the owner's every past run under "shared with me", with
    no word of it where the owner shared. The Sharing tab says it; sharing there works."""
    console.user("gina")
    wf_id = console.workflow("ticker", "to share")
    page = admin_page
    page.goto(f"/workflows/{wf_id}")
    page.click('.tabs button[data-tab="grants"]')
    expect(page.locator("#grants-note")).to_contain_text("also sees its runs, yours included")
    page.fill('#grants input[name="user"]', "gina")
    page.select_option('#grants select[name="level"]', "runner")
    page.click('#grants button[type="submit"]')
    expect(page.locator("#grants tbody tr")).to_have_text("ginarunnerRemove")
    assert console.api("GET", f"/workflows/{wf_id}/grants")["grants"] == {"gina": "runner"}
