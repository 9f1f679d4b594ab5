"""What one user's flow may plant in another's console, in a real Chromium on a real `dizest
serve`: a flow of a shared workflow that emits thousands of HTML outputs (an iframe each)
must not freeze the tab of whoever opens its run; an app's UI that reads its own address (the
frame key of a console over plain http) cannot have it shown as a page of the console."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.conftest import package, wait_for
from tests.console.conftest import CHROMIUM, CHROMIUM_ARGS, USER_PASSWORD, Console, log_in

LIVE_MS = 60_000
HTML_LINES = 3000  # shown all at once, 20-40 s of a frozen tab (7-15 ms an iframe)
FLOODER = package(
    {
        "flood": {
            "code": (
                "import time\n"
                "class Html:\n"
                "    def __init__(self, i): self.i = i\n"
                "    def _repr_html_(self): return f'<b>html {self.i}</b>'\n"
                "time.sleep(float(pause))\n"  # the viewer follows it live, then
                f"for i in range({HTML_LINES}):\n"
                "    display(Html(i))\n"
                "    dizest.result(f'r{i}', Html(i))\n"
                "print('last line')\n"
            ),
            "inputs": [("pause", "variable", "number")],
        }
    },
    {"flood": {"app": "flood", "data": {"pause": "3"}}},
)
COUNTS = """() => ({
  logFrames: document.querySelectorAll('#flow-log iframe').length,
  logEntries: document.querySelector('#flow-log').childElementCount,
  folded: document.querySelectorAll('#flow-log .folded').length,
  resultFrames: document.querySelectorAll('#flow-results iframe').length,
  results: document.querySelectorAll('#flow-results figure').length,
  cut: document.querySelector('#flow-log-cut').hidden ? '' : document.querySelector('#flow-log-cut').textContent,
  last: document.querySelector('#flow-log').lastElementChild?.textContent || '',
})"""


def test_thousands_of_html_outputs_are_folded_live_and_on_opening(
    browser: Any, console: Console
) -> None:
    """A probe's flow displayed 20,000 HTML values: opening its run froze the viewer's tab for
    24 s, one sandboxed iframe a value. The panel keeps the newest 1,000 entries, of which the
    newest 20 HTML ones (and 20 of the newest 100 results) unfolded; a folded one shows on a
    click."""
    console.user("mallet")
    console.user("ava")
    made = console.api("POST", "/workflows", {"title": "flood", "package": FLOODER}, "mallet")
    console.api("PUT", f"/workflows/{made['id']}/grants", {"grants": {"ava": "viewer"}}, "mallet")
    run_id = console.api("POST", "/runs", {"workflow_id": made["id"]}, "mallet")["run_id"]
    page = log_in(browser, console.base, "ava")
    try:
        for opened in ("live", "after"):
            page.goto(f"/runs/{run_id}")
            page.locator('g.node[data-id="flood"]').click()  # live: while it sleeps
            expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
            counts = wait_for(
                lambda: (c := page.evaluate(COUNTS))["last"] == "last line" and c, timeout=60
            )
            assert counts["logFrames"] == 20 and counts["resultFrames"] == 20, (opened, counts)
            assert counts["logEntries"] == 1000 and counts["results"] == 100, (opened, counts)
            assert counts["folded"] == 1000 - 20 - 1, (opened, counts)  # "last line" is text
            assert counts["cut"].startswith(f"{HTML_LINES + 1 - 1000} earlier"), (opened, counts)
        folded = page.locator("#flow-log .folded").last
        expect(folded).to_contain_text("HTML output")
        folded.click()
        assert page.evaluate(COUNTS)["logFrames"] == 21
    finally:
        page.context.close()


LEAKY_UI = package({"ui": {"code": "v = 1", "outputs": ["v"]}}, {"f": {"app": "ui"}})
LEAKY_UI["apps"]["ui"].update(
    html='<h2 id="phish">Your session expired. Log in again.</h2><p id="address"></p>',
    js='document.getElementById("address").textContent = location.href;',  # sent to its author
)


def test_an_app_ui_that_reads_its_frame_key_still_shows_only_in_its_run(
    browser: Any, console: Console
) -> None:
    """Over plain http (no fetch metadata) the run page gives its app frames a key in their
    address, which the UI's script reads (and could send to its author through a `cdn` URL).
    A probe opened that address, key and all, as a page (a link its author sent): the author's
    page at the console's address. The run page's own frame is still the only place."""
    console.user("mallet")
    console.user("ava")
    made = console.api("POST", "/workflows", {"title": "leaky", "package": LEAKY_UI}, "mallet")
    console.api("PUT", f"/workflows/{made['id']}/grants", {"grants": {"ava": "viewer"}}, "mallet")
    run_id = console.api("POST", "/runs", {"workflow_id": made["id"]}, "mallet")["run_id"]
    port = console.base.rsplit(":", 1)[1]
    mapped = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP dizest.test 127.0.0.1"]
    other = browser.browser_type.launch(executable_path=CHROMIUM, args=mapped)  # plain http
    try:
        page = log_in(other, f"http://dizest.test:{port}", "ava", USER_PASSWORD)
        shown = page.goto(f"/runs/{run_id}")
        # and a link the flow planted in the run page sends no Referer when opened elsewhere
        assert shown is not None and shown.headers["referrer-policy"] == "no-referrer"
        expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
        page.locator('g.node[data-id="f"]').click()
        address = page.frame_locator("iframe.app-ui").locator("#address")
        expect(address).to_contain_text("frame=", timeout=LIVE_MS)
        leaked = address.inner_text()
        for opened in (page.context.new_page(), page):  # a new tab; the run page's own tab
            answer = opened.goto(leaked)
            assert answer is not None and answer.status == 403, leaked
            expect(opened.locator("body")).to_contain_text("Shown in its run only")
            expect(opened.locator("#phish")).to_have_count(0)
    finally:
        other.close()
