"""The console's origin against a hostile user, in a real Chromium on a real `dizest serve`: an
app's UI shows in its run's page but never as a page of its own (no fake login form at the
console's address), an output cannot run as a script of the console, and a page listing many
unfinished runs does not take every connection the browser allows to the origin."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from dizest_api.client import Client
from tests.conftest import package, wait_for
from tests.console.conftest import USER_PASSWORD, Console, log_in
from tests.serve_process import PASSWORD, call

LIVE_MS = 60_000
PHISH_HTML = """<h2 id="phish">Your session expired. Log in again.</h2>
<input id="u"> <input id="p" type="password"> <button id="go" type="button">Log in</button>"""
PHISH_JS = 'document.title = "Log in · dizest"; window.__ui_ran = true;'
GADGET = "document.title = 'GADGET RAN';"
UNFINISHED = 8  # more than the 6 connections per host Chromium allows over HTTP/1.1
SLEEPER = package({"nap": {"code": "import time\ntime.sleep(600)"}}, {"nap": {"app": "nap"}})
COUNTERS = """(() => {
  window.__streams = 0;
  window.__lists = 0;
  const Stream = window.EventSource;
  window.EventSource = class extends Stream {
    constructor(...args) { super(...args); window.__streams += 1; }
  };
  const fetch = window.fetch;
  window.fetch = (input, init) => {
    if (String(input).startsWith("/api/v1/runs?")) window.__lists += 1;
    return fetch(input, init);
  };
})();"""


def client(console: Console, name: str) -> Client:
    return Client(console.base, console.token(name)["Authorization"].removeprefix("Bearer "), 60)


def finished(console: Console, name: str, body: dict[str, Any]) -> str:
    """A run of `name`'s, ended ready."""
    run_id = str(console.api("POST", "/runs", body, name)["run_id"])
    assert client(console, name).wait(run_id, timeout=120)["status"] == "ready"
    return run_id


def headers_of(console: Console, path: str, name: str) -> Any:
    request = urllib.request.Request(console.base + path, headers=console.token(name))
    with urllib.request.urlopen(request, timeout=30) as answer:
        answer.read()
        return answer.headers


def without_fetch_metadata(route: Any) -> None:
    """As a browser asks over plain http (not localhost): no Sec-Fetch-* headers. (Chromium adds
    them back to a request continued, so the context's own client asks instead.)"""
    sent = route.request.all_headers()
    kept = {k: v for k, v in sent.items() if not k.startswith("sec-fetch-")}
    route.fulfill(response=route.fetch(headers=kept))


def test_an_app_ui_shows_in_its_run_but_never_as_a_page_of_its_own(
    browser: Any, console: Console
) -> None:
    console.user("mallory")
    console.user("alice")
    pkg = package({"report": {"code": "v = 1", "outputs": ["v"]}}, {"f": {"app": "report"}})
    pkg["apps"]["report"].update(html=PHISH_HTML, js=PHISH_JS)
    made = console.api("POST", "/workflows", {"title": "quarterly", "package": pkg}, "mallory")
    console.api(
        "PUT", f"/workflows/{made['id']}/grants", {"grants": {"alice": "viewer"}}, "mallory"
    )
    run_id = finished(console, "mallory", {"workflow_id": made["id"]})
    ui = f"/runs/{run_id}/flows/f/ui"
    page = log_in(browser, console.base, "alice", USER_PASSWORD)
    try:
        page.goto(f"/runs/{run_id}")  # in the run's page, the iframe still shows the UI
        expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
        page.locator('g.node[data-id="f"]').click()
        expect(page.frame_locator("iframe.app-ui").locator("#phish")).to_be_visible()

        answer = page.goto(ui)  # the link mallory sends: nothing of the app
        assert answer is not None and answer.status == 403
        expect(page.locator("h1")).to_have_text("Shown in its run only")
        expect(page.locator("#phish, #p, #go")).to_have_count(0)
        assert page.title() == "Shown in its run only · dizest"
        assert page.evaluate("() => window.__ui_ran === undefined")
        assert page.url == console.base + ui

        # nor in a frame of another site (this server under another name: a page with no CSP)
        page.goto(console.base.replace("127.0.0.1", "localhost") + "/healthz")
        with page.expect_response(lambda r: r.url.endswith(ui)) as framed:
            page.set_content(f'<iframe src="{console.base}{ui}"></iframe>')
        # 401 when the session cookie stays home (SameSite), else the refusal: never the app.
        # Either is a page only the console may frame (frame-ancestors 'self'): the browser
        # shows its own error in this frame instead, so the answer's body cannot be read here
        assert framed.value.status in (401, 403)
        wait_for(lambda: len(page.frames) == 2 and page.frames[1].url != "about:blank", timeout=10)
        assert all("phish" not in frame.content() for frame in page.frames)

        # a console over plain http: no fetch metadata; the run's page still shows the UI (its
        # frame's Referer is that page), a visit from a link still does not
        plain = page.context.new_page()
        plain.route(f"**{ui}", without_fetch_metadata)
        plain.goto(f"/runs/{run_id}")
        plain.locator('g.node[data-id="f"]').click()
        expect(plain.frame_locator("iframe.app-ui").locator("#phish")).to_be_visible()
        direct = plain.goto(ui)
        assert direct is not None and direct.status == 403
        expect(plain.locator("#phish, #p, #go")).to_have_count(0)

        page.goto(ui)
        page.click("#run-page")  # the way to the run, for a link that was honest
        expect(page).to_have_url(console.base + f"/runs/{run_id}")
        expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    finally:
        page.context.close()


def test_an_output_cannot_run_as_a_script_of_the_console(browser: Any, console: Console) -> None:
    console.user("mallory")
    pkg = package({"gadget": {"code": f"v = {GADGET!r}", "outputs": ["v"]}}, {"f": {"app": "gadget"}})  # fmt: skip
    run_id = finished(console, "mallory", {"package": pkg})
    path = f"/api/v1/runs/{run_id}/flows/f/outputs/v"
    for query in ("?format=text", "?format=json", "?format=pickle"):
        sent = headers_of(console, path + query, "mallory")
        assert sent["X-Content-Type-Options"] == "nosniff", query
        assert sent["Cross-Origin-Resource-Policy"] == "same-origin", query
    page = log_in(browser, console.base, "mallory", USER_PASSWORD)
    try:
        page.goto("/workflows")
        loaded = page.evaluate(
            """(src) => new Promise((resolve) => {
                const script = document.createElement("script");
                script.src = src;
                script.onload = () => resolve("ran");
                script.onerror = () => resolve("refused");
                document.head.append(script);
            })""",
            path + "?format=text",
        )
        assert loaded == "refused"
        assert page.title() != "GADGET RAN"
    finally:
        page.context.close()


@pytest.fixture
def unfinished_runs(console: Console) -> Iterator[list[str]]:
    """UNFINISHED runs of user `sleeper` that sleep until cancelled (they are, afterwards)."""
    console.user("sleeper")
    runs = [
        str(console.api("POST", "/runs", {"package": SLEEPER}, "sleeper")["run_id"])
        for _ in range(UNFINISHED)
    ]
    try:
        yield runs
    finally:
        for run_id in runs:  # whatever the test did: none may keep the worker busy
            call(console.base, "POST", f"/api/v1/runs/{run_id}/cancel", None, console.admin)


def test_the_runs_page_polls_one_list_instead_of_a_stream_per_unfinished_run(
    browser: Any, console: Console, unfinished_runs: list[str]
) -> None:
    page = log_in(browser, console.base, "admin", PASSWORD)
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/events" in r.url else None)
    try:
        page.add_init_script(COUNTERS)
        page.clock.install()  # time flows as usual, until the test moves it on
        page.goto("/runs?owner=sleeper")
        rows = page.locator("#run-rows tr")
        expect(rows).to_have_count(UNFINISHED)
        for run_id in unfinished_runs:
            status = page.locator(f'#run-rows tr[data-id="{run_id}"] .status')
            expect(status).to_have_text(re.compile("^(pending|running)$"))

        # the same page, and another tab of the console, still get answers at once
        page.evaluate(
            "() => { window.__me = null; fetch('/api/v1/auth/me').then((r) => { window.__me = r.status; }); }"
        )
        page.wait_for_function("() => window.__me !== null", timeout=5_000)
        assert page.evaluate("() => window.__me") == 200
        other = page.context.new_page()
        other.goto("/workflows", timeout=10_000)
        expect(other.locator("#me-name")).to_have_text("admin", timeout=5_000)
        assert page.evaluate("() => window.__streams") == 0 and streams == []

        for run_id in unfinished_runs:  # statuses still turn final, without a reload
            client(console, "sleeper").cancel(run_id)
        for run_id in unfinished_runs:
            status = page.locator(f'#run-rows tr[data-id="{run_id}"] .status')
            expect(status).to_have_text("cancelled", timeout=LIVE_MS)
        asked = page.evaluate("() => window.__lists")
        assert asked >= 2  # the first load, then at least one poll
        page.clock.fast_forward(60_000)  # a minute on: all final, no poll is due any more
        assert page.evaluate("() => window.__lists") == asked
    finally:
        page.context.close()


LINKED_PLOT = """
import plotly.graph_objects as go
fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
fig.update_layout(title={'text': '<a href="http://127.0.0.1:9/evil" target="_top">Q3 results</a>'})
display(fig)
v = 1
"""


def test_a_link_in_a_plot_never_takes_the_consoles_tab_away(browser: Any, console: Console) -> None:
    """Plotly renders a figure's <a href target=_top> as a link in the console's own page: a
    click opened the author's page in the console's tab. It opens a new tab now."""
    console.user("mallory")
    pkg = package({"plot": {"code": LINKED_PLOT, "outputs": ["v"]}}, {"f": {"app": "plot"}})
    run_id = finished(console, "mallory", {"package": pkg})
    page = log_in(browser, console.base, "mallory", USER_PASSWORD)
    try:
        page.goto(f"/runs/{run_id}")
        page.locator('g.node[data-id="f"]').click()
        link = page.locator("#flow-log .result-plotly a", has_text="Q3 results").first
        expect(link).to_be_visible(timeout=20_000)
        with page.context.expect_page() as opened:  # a DOM click: plotly's drag layer covers it
            link.dispatch_event("click")
        # (the new tab shows a load error: nothing listens on port 9)
        opened.value.close()
        assert page.url == console.base + f"/runs/{run_id}#flow=f"  # the console stayed
    finally:
        page.context.close()


FETCHING_PLOT = """
import plotly.graph_objects as go
fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
fig.add_layout_image(source='/api/v1/auth/me?plot-image=1', x=0, y=1, sizex=1, sizey=1)
fig.add_layout_image(source='data:image/png;base64,iVBORw0KGgo=', x=1, y=1, sizex=1, sizey=1)
fig.update_layout(title={'text': 'fetches'})
display(fig)
v = 1
"""


def test_a_plot_fetches_nothing_of_its_authors_choosing(browser: Any, console: Console) -> None:
    """A figure's layout image (or map geojson or style) at an address of this server made each
    viewer's browser GET it with their session, a path its author chose. Only data: images are
    drawn now."""
    console.user("mallory")
    pkg = package({"plot": {"code": FETCHING_PLOT, "outputs": ["v"]}}, {"f": {"app": "plot"}})
    run_id = finished(console, "mallory", {"package": pkg})
    page = log_in(browser, console.base, "admin", PASSWORD)
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    try:
        page.goto(f"/runs/{run_id}")
        page.locator('g.node[data-id="f"]').click()
        expect(page.locator("#flow-log .result-plotly .gtitle")).to_have_text(
            "fetches", timeout=20_000
        )
        expect(page.locator("#flow-log .result-plotly image")).to_have_count(1)  # the data: one
        assert not [url for url in asked if "plot-image" in url], asked
    finally:
        page.context.close()
