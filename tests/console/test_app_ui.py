"""App UI mode in a real browser: an app's html/js/css shows in the run view in a sandboxed
iframe of its own origin, gets the flow's results, and calls its `api` function through the
bridge; the `api` route answers 404 to a user without the runner right."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from playwright.sync_api import expect

from tests.conftest import package
from tests.console.conftest import USER_PASSWORD, Console, log_in
from tests.serve_process import call

LIVE_MS = 60_000
FRAMED = {"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "same-origin"}  # as the run page's iframe

HTML = """<h1 id="title">Adder</h1>
<p>v = <span id="v">?</span> (<span id="status">?</span>)</p>
<button id="go" type="button">Add</button> <span id="out"></span>
<p id="iso"></p>"""

JS = """
dizest.onresults(function (r) {
  document.getElementById("status").textContent = r.status;
  if (r.outputs) document.getElementById("v").textContent = JSON.stringify(r.outputs.v);
});
document.getElementById("go").addEventListener("click", async function () {
  const out = document.getElementById("out");
  try {
    const answer = await dizest.api("add", {a: 2, b: Number(document.getElementById("v").textContent)});
    out.textContent = "sum=" + answer.sum;
  } catch (e) {
    out.textContent = "error " + e.status + ": " + e.message;
  }
});
let cookie, top_dom, fetched;
try { cookie = document.cookie === undefined ? "none" : "readable"; } catch (e) { cookie = "blocked"; }
try { top_dom = parent.document.title; } catch (e) { top_dom = "blocked"; }
document.getElementById("iso").textContent = "cookie " + cookie + ", parent " + top_dom + ", origin " + self.origin;
"""

API = """
def add(a, b):
    return {"sum": a + b}

def boom():
    raise RuntimeError("broken on purpose")
"""


def raw(
    base: str, method: str, path: str, body: Any, headers: dict[str, str]
) -> tuple[int, bytes, Any]:
    """(status, body bytes, headers) of one request, whatever its media type."""
    data = None if body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **headers}
    request = urllib.request.Request(base + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, answer.read(), answer.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def ui_package() -> dict[str, Any]:
    pkg = package(
        {"adder": {"code": "v = 40", "outputs": ["v"]}},
        {"f": {"app": "adder"}},
    )
    pkg["apps"]["adder"].update(html=HTML, js=JS, css="#title { color: rgb(200, 0, 0); }", api=API)
    return pkg


def test_app_ui_calls_its_api_through_the_bridge_and_strangers_get_404(
    browser: Any, console: Console
) -> None:
    console.user("uma")
    console.user("stranger")
    made = console.api("POST", "/workflows", {"title": "ui app", "package": ui_package()}, "uma")
    run = console.api("POST", "/runs", {"workflow_id": made["id"]}, "uma")
    page = log_in(browser, console.base, "uma", USER_PASSWORD)
    page.goto(f"/runs/{run['run_id']}")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
    page.locator('g.node[data-id="f"]').click()
    frame_el = page.locator("iframe.app-ui")
    expect(frame_el).to_have_attribute("sandbox", "allow-scripts")
    frame = page.frame_locator("iframe.app-ui")
    expect(frame.locator("#title")).to_have_css("color", "rgb(200, 0, 0)")  # its css applies
    expect(frame.locator("#v")).to_have_text("40", timeout=LIVE_MS)  # the flow's results
    expect(frame.locator("#status")).to_have_text("ready")
    frame.locator("#go").click()
    expect(frame.locator("#out")).to_have_text("sum=42", timeout=LIVE_MS)
    # its own opaque origin: no cookies, no console DOM
    expect(frame.locator("#iso")).to_have_text("cookie blocked, parent blocked, origin null")

    path = f"/api/v1/runs/{run['run_id']}/flows/f/api/add"
    status, answer, _ = call(console.base, "POST", path, {"a": 1, "b": 2}, console.token("uma"))
    assert (status, answer) == (200, {"sum": 3})
    status, answer, _ = call(
        console.base, "POST", path, {"a": 1, "b": 2}, console.token("stranger")
    )
    assert status == 404, answer
    # the UI document itself is not the stranger's either, even asked for as the console's frame
    ui = f"/runs/{run['run_id']}/flows/f/ui"
    assert raw(console.base, "GET", ui, None, {**console.token("stranger"), **FRAMED})[0] == 404
    page.context.close()


def test_ui_document_is_sandboxed_by_its_own_csp_and_api_errors_are_text(console: Console) -> None:
    console.user("uma")
    made = console.api("POST", "/workflows", {"title": "ui app 2", "package": ui_package()}, "uma")
    run = console.api("POST", "/runs", {"workflow_id": made["id"]}, "uma")
    headers = console.token("uma")
    status, body, answer_headers = raw(
        console.base, "GET", f"/runs/{run['run_id']}/flows/f/ui", None, {**headers, **FRAMED}
    )
    assert status == 200 and b'<button id="go"' in body
    csp = answer_headers["Content-Security-Policy"]
    assert csp.startswith("sandbox allow-scripts;") and "connect-src 'none'" in csp
    assert "allow-same-origin" not in csp
    assert answer_headers["X-Frame-Options"] == "SAMEORIGIN"
    path = f"/api/v1/runs/{run['run_id']}/flows/f/api/boom"
    wait = console.api("GET", f"/runs/{run['run_id']}", None, "uma")  # the run may still run:
    assert wait["run_id"] == run["run_id"]  # a call reads what the flow has output so far
    status, text, answer_headers = raw(console.base, "POST", path, {}, headers)
    assert status == 422 and answer_headers["Content-Type"].startswith("text/plain")
    assert b"RuntimeError: broken on purpose" in text and b'File "<api adder>", line 6' in text
    big = {"x": "y" * (1 << 20)}
    status, answer, _ = raw(console.base, "POST", path, big, headers)
    assert status == 413 and json.loads(answer)["error"]["code"] == "body_too_large"


def test_over_plain_http_the_ui_shows_in_its_run_and_nowhere_else(
    browser: Any, console: Console
) -> None:
    """A browser sends no fetch metadata to a plain-http origin other than localhost: the run
    page then hands its frames this session's key, and the UI's own address opened as a page
    (a link planted in the run, opened in a new tab) shows the console's refusal instead."""
    from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS

    console.user("uma")
    made = console.api("POST", "/workflows", {"title": "ui http", "package": ui_package()}, "uma")
    run = console.api("POST", "/runs", {"workflow_id": made["id"]}, "uma")
    port = console.base.rsplit(":", 1)[1]
    mapped = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP dizest.test 127.0.0.1"]
    # a second Chromium of the same Playwright, resolving dizest.test to this machine
    other = browser.browser_type.launch(executable_path=CHROMIUM, args=mapped)
    try:
        page = log_in(other, f"http://dizest.test:{port}", "uma", USER_PASSWORD)
        page.goto(f"/runs/{run['run_id']}")
        expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
        page.locator('g.node[data-id="f"]').click()
        frame = page.frame_locator("iframe.app-ui")
        expect(frame.locator("#v")).to_have_text("40", timeout=LIVE_MS)
        alone = page.context.new_page()  # the UI's address as a page of its own
        alone.goto(f"/runs/{run['run_id']}/flows/f/ui")
        expect(alone.locator("body")).to_contain_text("Shown in its run only")
        expect(alone.locator("#title")).to_have_count(0)
    finally:
        other.close()
