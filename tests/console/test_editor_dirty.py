"""The editor's "unsaved changes" means that the package differs from the last one saved: edits
undone back to it (by Undo, or by making the same change twice: a flow switched off and on) read
"saved" again, and leaving then asks nothing (an undone toggle kept the page "unsaved changes"
and its leave prompt)."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.console.conftest import Console
from tests.console.test_editor import empty
from tests.console.test_editor_edits import fanout, toggle


def test_undoing_back_to_the_saved_package_reads_saved_and_leaving_asks_nothing(
    admin_page: Any, console: Console
) -> None:
    wf_id = empty(console, "undo to saved", fanout())
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    state = page.locator("#ed-state")
    expect(page.locator("g.node")).to_have_count(4)
    expect(state).to_have_text("saved · v1")
    toggle(page, "k1")
    expect(state).to_have_text("unsaved changes")
    page.click("#undo")
    expect(state).to_have_text("saved · v1")
    page.click("#redo")
    expect(state).to_have_text("unsaved changes")
    toggle(page, "k1")  # on again: the saved package, though not by Undo
    expect(state).to_have_text("saved · v1")
    page.locator('g.node[data-id="k2"] text.title').click()  # typing: one step, undone whole
    page.locator("#flow-title").press_sequentially("renamed")
    expect(state).to_have_text("unsaved changes")
    page.click("#undo")
    expect(state).to_have_text("saved · v1")
    toggle(page, "k3")
    page.click("#save")
    expect(state).to_have_text("saved · v2")
    page.click("#undo")  # back to version 1's package: not what is saved now
    expect(state).to_have_text("unsaved changes")
    page.click("#redo")
    expect(state).to_have_text("saved · v2")
    page.click("#save")  # nothing to store
    expect(page.locator("#toast")).to_have_text("No changes to save: this is version 2")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.type), d.dismiss()))
    page.close(run_before_unload=True)
    page.wait_for_event("close")
    assert dialogs == []
