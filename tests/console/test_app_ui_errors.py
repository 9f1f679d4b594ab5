"""An app UI's own errors show in the console, beside its frame, as text: a syntax error, an
exception at load or in an `onresults` function, a promise rejected with nobody to catch it, a
source the UI's policy blocked. A walkthrough found a UI whose script threw: a blank box, nothing
said why. The line is the one of the UI's js or html field; the author's text never becomes
markup of the console; a UI that throws in a loop, or posts "errors" past the bridge, floods
nothing; only a flow's own frame is heard, and only in its note."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import package
from tests.console.conftest import Console, log_in

NOTE = ".app-ui-errors"
LIVE_MS = 60_000

THROWS = """var shown = document.getElementById("s");
dizest.onresults(function (r) { shown.textContent = r.status; if (r.status === "ready") r.nothing.here; });
Promise.reject(new Error("<img src=x onerror=alert(1)>"));
new Image().src = "https://blocked.example/pixel.png";
notDefined();"""

SYNTAX = """var fine = 1;
var broken = ;"""

# 30 errors in ~0.2 s (the bridge reports 10 a second), then a message posted past the bridge
FLOOD = """var i = 0, loop = setInterval(function () {
  if (i < 30) throw new Error("again " + (i++));
  clearInterval(loop);
  parent.postMessage({dizest: "error", message: "<b>bold</b>".repeat(200), line: "7"}, "*");
}, 5);"""


def errors_package() -> dict[str, Any]:
    pkg = package(
        {
            "throws": {"code": "v = 1", "outputs": ["v"]},
            "syntax": {"code": "v = 2", "outputs": ["v"]},
            "flood": {"code": "v = 3", "outputs": ["v"]},
        },
        {
            "t": {"app": "throws", "pos_x": 40, "pos_y": 60},
            "y": {"app": "syntax", "pos_x": 320, "pos_y": 60},
            "z": {"app": "flood", "pos_x": 600, "pos_y": 60},
        },
    )
    pkg["apps"]["throws"].update(html='<p>status <span id="s">?</span></p>', js=THROWS)
    pkg["apps"]["syntax"].update(html="<p>one</p>\n<p>two</p>", js=SYNTAX)
    pkg["apps"]["flood"].update(html="<p>flood</p>", js=FLOOD)
    return pkg


def test_a_uis_errors_show_as_text_beside_its_frame_in_the_run_view(
    browser: Any, console: Console
) -> None:
    console.user("ulla")
    made = console.api(
        "POST", "/workflows", {"title": "ui errors", "package": errors_package()}, "ulla"
    )
    run = console.api("POST", "/runs", {"workflow_id": made["id"]}, "ulla")
    page = log_in(browser, console.base, "ulla")
    try:
        page.goto(f"/runs/{run['run_id']}")
        expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
        page.locator('g.node[data-id="t"]').click()
        note = page.locator(NOTE)
        expect(page.frame_locator("iframe.app-ui").locator("#s")).to_have_text("ready")
        expect(note).to_be_visible()
        expect(note).to_contain_text(
            "UI error: Uncaught ReferenceError: notDefined is not defined (js line 5)"
        )
        expect(note).to_contain_text("Uncaught (in promise) Error: <img src=x onerror=alert(1)>")
        expect(note).to_contain_text(
            "UI error: blocked by the UI's policy (img-src): https://blocked.example/pixel.png"
        )
        # ...and a results function that throws: reported, not only in the frame's console
        expect(note).to_contain_text("TypeError", timeout=LIVE_MS)
        expect(note).to_contain_text("in an onresults function")
        assert note.locator("img, b").count() == 0  # the author's text is text
        lines = note.locator(":scope > div:not(.more)")
        assert lines.count() <= 5
        # the note sits above its own frame
        note_box, frame_box = note.bounding_box(), page.locator("iframe.app-ui").bounding_box()
        assert note_box and frame_box and note_box["y"] + note_box["height"] <= frame_box["y"] + 1

        # a message from anything but the flow's frame (this very page) is not heard
        page.evaluate(
            '() => window.postMessage({dizest: "error", message: "forged by the page"}, "*")'
        )

        page.locator('g.node[data-id="y"]').click()  # a syntax error: its own note, its line
        expect(page.locator(NOTE)).to_have_text(
            re.compile(r"^UI error: Uncaught SyntaxError: Unexpected token '?;'? \(js line 2\)$")
        )

        page.locator('g.node[data-id="z"]').click()
        flood = page.locator(NOTE)
        forged = flood.locator(":scope > div", has_text="<b>bold</b>")
        expect(forged).to_have_count(1)  # posted past the bridge: text, cut, its "line" ignored
        expect(flood).to_contain_text("Error: again")
        # the loop's errors: the newest listed, the rest counted, and at most 20 of the 30 sent
        earlier = re.fullmatch(r"and (\d+) earlier", flood.locator(".more").inner_text())
        assert earlier and 0 < int(earlier[1]) <= 20 - 4
        assert len(forged.inner_text()) < 600 and "line" not in forged.inner_text()
        assert flood.locator("b").count() == 0
        assert flood.locator(":scope > div").count() <= 6
        assert "forged by the page" not in page.locator("#flow").inner_text()
    finally:
        page.context.close()


def test_a_uis_errors_show_in_its_box_in_the_editors_ui_mode(
    browser: Any, console: Console
) -> None:
    console.user("ugne")
    made = console.api(
        "POST", "/workflows", {"title": "ui errors ed", "package": errors_package()}, "ugne"
    )
    page = log_in(browser, console.base, "ugne")
    try:
        page.goto(f"/workflows/{made['id']}/edit")
        page.locator('g.node[data-id="y"] .ui-toggle text').click()
        page.click("#run-all")
        expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
        note = page.locator(f'foreignObject[data-ui="y"] {NOTE}')
        expect(note).to_have_text(re.compile(r"^UI error: Uncaught SyntaxError: .*\(js line 2\)$"))
        ui_box = page.locator('foreignObject[data-ui="y"]').bounding_box()
        note_box = note.bounding_box()
        assert ui_box and note_box
        assert (
            ui_box["y"] <= note_box["y"]
            and note_box["y"] + note_box["height"] <= ui_box["y"] + ui_box["height"]
        )
    finally:
        page.context.close()
