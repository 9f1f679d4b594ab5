"""What one user's flow may plant in another's console, in a real Chromium on a real `dizest
serve`: a flow of a shared workflow that emits thousands of HTML outputs (an iframe each)
must not freeze the tab of whoever opens its run."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.conftest import package, wait_for
from tests.console.conftest import Console, log_in

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
