"""An app's source tabs (Code, API, HTML, JS, CSS) show the last one clicked. Each tab waits for
CodeMirror, which loads on first use, and the waits do not end in the order they began: a tab
clicked while earlier ones still waited was drawn over by the last of them to end
(test_editor_ui flaked once with the wrong tab active after quick switching). Here CodeMirror is
held until Code (the panel's first) and HTML wait for it, and JS is clicked the moment the first
of them is drawn."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.conftest import wait_for
from tests.console.conftest import Console
from tests.console.test_editor_code_input import APP, workflow

CODEMIRROR = "**/console/static/vendor/codemirror.js"
# A click on the JS tab as soon as a source's editor is in the panel, while the other source
# asked for may still wait (a promise in an object: evaluate_handle would wait for it).
JS_ON_FIRST_DRAWN = """() => ({ clicked: new Promise((resolve) => {
  const box = document.getElementById("app-code");
  const observer = new MutationObserver(() => {
    if (!box.querySelector(".cm-editor")) return;
    observer.disconnect();
    document.querySelector('#app-sources button[data-source="js"]').click();
    resolve(true);
  });
  observer.observe(box, { childList: true, subtree: true });
}) })"""


def test_the_last_source_tab_clicked_is_the_one_shown(admin_page: Any, console: Console) -> None:
    wf_id = workflow(console)
    page = admin_page
    held: list[Any] = []
    page.route(CODEMIRROR, lambda route: held.append(route))
    page.goto(f"/workflows/{wf_id}/edit")
    wait_for(lambda: page.evaluate("() => Boolean(window.dizestEditor)"), timeout=30)
    flow = page.evaluate(
        "(app) => Object.values(window.dizestEditor.doc.pkg.flow).find((f) => f.app_id === app).id",
        APP,
    )
    page.evaluate("(id) => window.dizestEditor.canvas.select(id)", flow)
    page.click("#flow-edit-app")  # its Code tab waits for CodeMirror
    tab = lambda field: page.locator(f'#app-sources button[data-source="{field}"]')  # noqa: E731
    tab("html").click()  # and so does HTML
    wait_for(lambda: len(held) == 1, timeout=10)
    watch = page.evaluate_handle(JS_ON_FIRST_DRAWN)
    held[0].continue_()
    assert page.evaluate("(w) => w.clicked", watch)
    js = page.evaluate("(app) => window.dizestEditor.doc.pkg.apps[app].js", APP)
    wait_for(lambda: page.evaluate("() => window.dizestEditor.code.state.doc.toString()") == js, 10)
    expect(page.locator("#app-sources button.active")).to_have_count(1)
    expect(tab("js")).to_have_class("active")
    expect(page.locator("#app-code .cm-editor")).to_have_count(1)
