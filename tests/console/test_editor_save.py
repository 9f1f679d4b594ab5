"""Save and Run all in the editor, as a user expects them: work in progress whose code does not
compile yet is saved (a walkthrough's `x = = 1` kept the page "unsaved changes" and Run all did
nothing); a run of it fails that flow with its syntax error and skips what is below it, the rest
running; and a Save or Run all with nothing changed stores no version (one walkthrough made
v2..v8, every grantee's Version menu listing them)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.api.test_workflow_edit import HALF_DONE
from tests.console.conftest import Console
from tests.console.test_editor import LIVE_S, connect, empty, flow_id, new_app, node


def versions(console: Console, wf_id: str) -> int:
    return int(console.api("GET", f"/workflows/{wf_id}")["version"])


def result(page: Any, flow: str) -> Any:
    return page.locator(f'foreignObject[data-id="{flow}"] .node-result')


def test_code_that_does_not_compile_is_saved_and_runs_as_dizest_runs_it(
    admin_page: Any, console: Console
) -> None:
    wf_id = empty(console, "half done")
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    new_app(page, "free", [], ["o"], "o = 1\nprint('free ran')")
    new_app(page, "broken", [], ["x"], "x = = 1")
    new_app(page, "below", ["x"], [], "print(dizest.input('x'))")
    connect(page, "broken", "x", "below", "x")
    expect(page.locator("path.edge")).to_have_count(1)
    expect(page.locator("#problems")).to_contain_text("syntax error")
    expect(node(page, "broken")).to_have_class(re.compile("problem"))
    page.click("#save")
    expect(page.locator("#ed-state")).to_have_text("saved · v2")
    expect(page.locator("#toast")).to_contain_text("syntax errors in 1 app(s)")
    stored = console.api("GET", f"/workflows/{wf_id}")["package"]
    assert "x = = 1" in [a["code"] for a in stored["apps"].values()]
    expect(page.locator("#problems")).to_contain_text("syntax error")  # shown as before
    broken, below, free = (flow_id(page, t) for t in ("broken", "below", "free"))
    page.click("#run-all")
    expect(page.locator("#run-status")).to_have_text("error", timeout=LIVE_S)
    expect(node(page, "broken")).to_have_class(re.compile("st-error"))
    expect(result(page, broken)).to_contain_text("SyntaxError: invalid syntax")
    expect(result(page, below)).to_contain_text("upstream failed: broken")  # by its name
    expect(node(page, "free")).to_have_class(re.compile("st-ready"))
    expect(result(page, free)).to_contain_text("free ran")
    run_id = str(page.locator("#run-link").get_attribute("href")).rsplit("/", 1)[1]
    flows = console.api("GET", f"/runs/{run_id}")["flows"]
    assert flows[broken]["reason"] == f"SyntaxError: invalid syntax (<flow {broken}>, line 1)"
    assert (flows[below]["status"], flows[free]["status"]) == ("idle", "ready")
    # Save right after Run all, nothing changed: no version (it made v3 before).
    page.click("#save")
    expect(page.locator("#toast")).to_contain_text("No changes to save: this is version 2")
    expect(page.locator("#ed-state")).to_have_text("saved · v2")
    assert versions(console, wf_id) == 2


def test_save_and_run_all_with_nothing_changed_store_no_version(
    admin_page: Any, console: Console
) -> None:
    wf_id = empty(console, "unchanged")
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    new_app(page, "one", [], ["o"], "o = 1")
    page.click("#run-all")  # a change: saved first, then run
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_S)
    expect(page.locator("#ed-state")).to_have_text("saved · v2")
    first = page.locator("#run-link").get_attribute("href")
    puts: list[str] = []  # nothing changed: nothing is even sent
    page.on("request", lambda r: r.method == "PUT" and puts.append(r.url))
    page.click("#save")
    expect(page.locator("#toast")).to_contain_text("No changes to save: this is version 2")
    page.click("#run-all")  # the saved version again, not a new one
    expect(page.locator("#run-link")).not_to_have_attribute("href", str(first))
    expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_S)
    assert versions(console, wf_id) == 2
    runs = console.api("GET", f"/runs?workflow_id={wf_id}")["items"]
    assert [r["version"] for r in runs] == [2, 2] and puts == []
    # A change undone is no change either: the API stores no version of the same package.
    node(page, "one").locator("text.toggle").click()
    expect(page.locator("#ed-state")).to_have_text("unsaved changes")
    page.click("#undo")
    page.click("#save")
    expect(page.locator("#ed-state")).to_have_text("saved · v2")
    expect(page.locator("#toast")).to_contain_text("No changes to save: this is version 2")
    assert versions(console, wf_id) == 2


def test_an_upload_of_code_that_does_not_compile_is_stored_and_warned_of(
    admin_page: Any, console: Console, tmp_path: Path
) -> None:
    path = tmp_path / "half done.dwp"
    path.write_text(json.dumps(HALF_DONE))
    page = admin_page
    page.goto("/workflows")
    page.set_input_files("#wf-file", str(path))
    expect(page.locator("#toast")).to_contain_text("Uploaded half done (v1)")
    problems = page.locator("#upload-problems")
    expect(problems).to_be_visible()
    expect(problems).to_contain_text("half done.dwp: warning: syntax error in the app's code")
    expect(problems).to_contain_text("(flow bad, app bad, field code)")  # (flow f: its app's title)
    # the same file again, as the next version of it: nothing to store
    page.once("dialog", lambda dialog: dialog.accept())
    page.set_input_files("#wf-file", str(path))
    expect(page.locator("#toast")).to_contain_text("half done is v1 already: nothing stored")
