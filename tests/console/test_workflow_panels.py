"""The workflow's Info and API panels, as DIZEST's UI has them: the description is another user's
text and stays text, an edit in the editor is one undo step saved with the package and shown on
the workflow page, a viewer edits nothing; the API panel lists the inputs the workflow takes from
outside, and its snippets, run exactly as shown with a real token (curl, the CLI, the Python
client), give the outputs its Test button shows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.conftest import package, wait_for
from tests.console.conftest import USER_PASSWORD, Console, log_in

ROOT = Path(__file__).resolve().parents[2]
LIVE_S = 60_000
HOSTILE = 'Says hello.\nSecond line <img src=x onerror="window.__pwned = 1"> <b>bold?</b>'
GREET = "greeting = 'hello ' + str(dizest.input('name', 'world'))"


def greeters() -> dict[str, Any]:
    """Two flows that take `name` from outside, one whose `name` is wired (not an API input)."""
    pkg = package(
        {
            "greet": {"code": GREET, "inputs": ["name"], "outputs": ["greeting"]},
            "loud": {"code": "greeting = 'HI'", "outputs": ["greeting"]},
        },
        {
            "f1": {"app": "greet"},
            "f2": {"app": "loud"},
            "f3": {"app": "greet"},
            "f4": {"app": "greet", "in": {"name": [("f2", "greeting")]}},
        },
    )
    return {**pkg, "description": HOSTILE, "version": "1.2.0"}


def test_info_keeps_the_description_text_and_saves_an_editor_edit_a_viewer_cannot_make(
    browser: Any, console: Console
) -> None:
    console.user("iris")
    console.user("vera")
    made = console.api("POST", "/workflows", {"title": "greeters", "package": greeters()}, "iris")
    wf_id = made["id"]
    console.api("PUT", f"/workflows/{wf_id}/grants", {"grants": {"vera": "viewer"}}, "iris")

    page = log_in(browser, console.base, "iris")
    page.goto(f"/workflows/{wf_id}")
    page.click('.tabs button[data-tab="info"]')
    shown = page.locator("#info-description")
    expect(shown).to_have_text(HOSTILE)  # the markup is text: no image, no bold, no handler ran
    assert "Says hello.\nSecond line" in shown.inner_text()  # its line break is kept
    expect(page.locator("#info img, #info b")).to_have_count(0)
    assert page.evaluate("window.__pwned") is None
    expect(page.locator("#info-version")).to_have_text("1.2.0")
    expect(page.locator("#info-owner")).to_have_text("iris")
    expect(page.locator("#info-apps li")).to_have_count(2)
    expect(page.locator('#info-apps li[data-app="greet"]')).to_contain_text("3 flows")

    page.goto(f"/workflows/{wf_id}/edit")
    expect(page.locator("g.node")).to_have_count(4)
    page.click('.tabs button[data-tab="info"]')
    field = page.locator("textarea#info-description")
    expect(field).to_have_value(HOSTILE)
    field.fill("What it is for:\nit greets.")
    page.locator("#info-version").fill("2.0.0")
    expect(page.locator("#ed-state")).to_have_text("unsaved changes")
    page.click("#undo")  # the version's typing, one step
    expect(page.locator("#info-version")).to_have_value("1.2.0")
    expect(page.locator("textarea#info-description")).to_have_value("What it is for:\nit greets.")
    page.click("#redo")
    expect(page.locator("#info-version")).to_have_value("2.0.0")
    page.click("#save")
    expect(page.locator("#ed-state")).to_have_text("saved · v2")
    stored = console.api("GET", f"/workflows/{wf_id}", name="iris")["package"]
    assert (stored["description"], stored["version"]) == ("What it is for:\nit greets.", "2.0.0")
    page.goto(f"/workflows/{wf_id}")
    page.click('.tabs button[data-tab="info"]')
    expect(page.locator("#info-description")).to_have_text("What it is for:\nit greets.")
    expect(page.locator("#info-version")).to_have_text("2.0.0")
    page.context.close()

    viewer = log_in(browser, console.base, "vera")
    viewer.goto(f"/workflows/{wf_id}/edit")
    expect(viewer.locator("g.node")).to_have_count(4)
    viewer.click('.tabs button[data-tab="info"]')
    expect(viewer.locator("#info-description")).to_have_text("What it is for:\nit greets.")
    expect(viewer.locator("#info textarea, #info input")).to_have_count(0)
    viewer.goto(f"/workflows/{wf_id}")
    viewer.click('.tabs button[data-tab="api"]')
    expect(viewer.locator(".api-input")).to_have_count(1)
    expect(viewer.locator("#api-test")).to_be_hidden()  # a run the API would refuse
    viewer.context.close()


README = """# Greeters

Says **hello** to `name`, see [the docs](https://example.com/docs).

- one
- two

[a trap](javascript:window.__pwned=1) <script>window.__pwned = 2</script>
<img src=x onerror="window.__pwned = 3">"""


def test_info_shows_the_readme_as_markdown_and_edits_category_and_requirements(
    browser: Any, console: Console
) -> None:
    """The description is DIZEST's README.md: shown as Markdown (headings, emphasis, code,
    lists, links that open elsewhere), with raw HTML shown as text and a javascript: link not a
    link; the editor previews it and saves the category and requirements.txt with the package."""
    console.user("rita")
    pkg = {
        **greeters(),
        "description": README,
        "category": "demo",
        "requirementstxt": "numpy>=1.26",
    }
    wf_id = console.api("POST", "/workflows", {"title": "readme", "package": pkg}, "rita")["id"]

    page = log_in(browser, console.base, "rita")
    page.goto(f"/workflows/{wf_id}")
    page.click('.tabs button[data-tab="info"]')
    shown = page.locator("#info-description")
    expect(shown.locator("h1")).to_have_text("Greeters")
    expect(shown.locator("strong")).to_have_text("hello")
    expect(shown.locator("code")).to_have_text("name")
    expect(shown.locator("li")).to_have_count(2)
    link = shown.locator('a[href="https://example.com/docs"]')
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
    expect(shown.locator("a")).to_have_count(1)  # the javascript: one is text
    expect(shown.locator("script, img")).to_have_count(0)
    expect(shown).to_contain_text('<img src=x onerror="window.__pwned = 3">')
    assert page.evaluate("window.__pwned") is None
    expect(page.locator("#info-category")).to_have_text("demo")
    expect(page.locator("#info-requirements")).to_have_text("numpy>=1.26")

    page.goto(f"/workflows/{wf_id}/edit")
    expect(page.locator("g.node")).to_have_count(4)
    page.click('.tabs button[data-tab="info"]')
    page.locator("textarea#info-description").fill("## Changed\n\n_it greets_")
    page.click("#info-preview-toggle")
    expect(page.locator("#info-preview h2")).to_have_text("Changed")
    expect(page.locator("#info-preview em")).to_have_text("it greets")
    expect(page.locator("textarea#info-description")).to_be_hidden()
    page.click("#info-preview-toggle")  # back to the text, as typed
    expect(page.locator("textarea#info-description")).to_have_value("## Changed\n\n_it greets_")
    page.locator("#info-category").fill("greeting")
    page.locator("#info-requirements").fill("numpy>=2\npandas")
    page.click("#save")
    expect(page.locator("#ed-state")).to_have_text("saved · v2")
    stored = console.api("GET", f"/workflows/{wf_id}", name="rita")["package"]
    assert stored["description"] == "## Changed\n\n_it greets_"
    assert (stored["category"], stored["requirementstxt"]) == ("greeting", "numpy>=2\npandas")
    page.context.close()


def _shell(snippet: str, token: str | None, bin_dir: Path, typed: str = "") -> str:
    """Run `snippet` in a shell as a person would paste it, with $DIZEST_TOKEN set (None: not
    set), in this checkout (where `dizest_api.client` is); `typed` is what they type at its
    prompts (its own session: no terminal, so a password prompt reads it too)."""
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    dropped = ("DIZEST_SERVER", "DIZEST_PROFILE", "DIZEST_TOKEN", "XDG_CONFIG_HOME")
    env = {k: v for k, v in env.items() if k not in dropped}
    env["HOME"] = str(bin_dir)  # no profile of the person running the tests
    if token is not None:
        env["DIZEST_TOKEN"] = token
    done = subprocess.run(
        ["sh", "-c", snippet],
        env=env,
        cwd=ROOT,
        input=typed,
        capture_output=True,
        text=True,
        timeout=120,
        start_new_session=True,
    )
    assert done.returncode == 0, (snippet, done.stdout, done.stderr)
    return done.stdout


def _ended(report: dict[str, Any]) -> dict[str, Any] | None:
    return report if report["status"] not in ("pending", "running") else None


def test_the_api_panel_s_snippets_run_as_shown_and_answer_as_its_test(
    browser: Any, console: Console, tmp_path: Path
) -> None:
    console.user("otto")
    made = console.api("POST", "/workflows", {"title": "api", "package": greeters()}, "otto")
    wf_id = made["id"]
    token = console.token("otto")["Authorization"].removeprefix("Bearer ")
    shim = tmp_path / "dizest"  # the CLI of this checkout, as `dizest` on the PATH
    shim.write_text(f'#!/bin/sh\ncd {ROOT} && exec {sys.executable} -m dizest_cli "$@"\n')
    shim.chmod(0o755)

    page = log_in(browser, console.base, "otto")
    page.goto(f"/workflows/{wf_id}")
    page.click('.tabs button[data-tab="api"]')
    expect(page.locator(".api-input")).to_have_count(1)
    fills = page.locator('.api-input[data-input="name"] small')
    # f1 and f3 (of f1, f3, f4, all titled greet) by name, their keys in its tooltip
    expect(fills).to_have_text(" fills greet (1), greet (2)")
    expect(fills).to_have_attribute("title", "f1.name, f3.name")
    expect(page.locator("#api-outputs li")).to_have_count(3)  # f1, f3, f4 (f2's is wired)
    expect(page.locator("#api-token-link")).to_have_attribute("href", "/admin#tokens")
    page.locator('.api-input[data-input="name"] input').fill("ada's")  # a quote, for the shell

    page.click("#api-test")
    expect(page.locator("#api-status")).to_have_text("HTTP 200", timeout=LIVE_S)
    tested = json.loads(page.locator("#api-answer").inner_text())
    want = {
        "f1": {"greeting": "hello ada's"},
        "f3": {"greeting": "hello ada's"},
        "f4": {"greeting": "hello HI"},
    }
    assert tested["outputs"] == want, tested

    snippet = {key: page.locator(f"#api-{key}").inner_text() for key in ("run", "runs", "cli", "python")}  # fmt: skip
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content")
    cookies = [c["value"] for c in page.context.cookies()]
    for text in snippet.values():  # a placeholder, never the session's credentials
        assert all(secret not in text for secret in [token, csrf, *cookies])
        assert console.base in text
    assert "$DIZEST_TOKEN" in snippet["run"]
    ran = json.loads(_shell(snippet["run"], token, tmp_path))
    assert ran["status"] == "ready" and ran["outputs"] == tested["outputs"]
    assert ran["run_id"] != tested["run_id"]

    started = json.loads(_shell(snippet["runs"], token, tmp_path))
    path = f"/runs/{started['run_id']}"
    report = wait_for(lambda: _ended(console.api("GET", path, name="otto")), LIVE_S / 1000, 0.2)
    assert {f: report["flows"][f]["outputs"] for f in want} == tested["outputs"], report

    printed = _shell(snippet["cli"], token, tmp_path)
    assert 'f1.greeting = "hello ada\'s"' in printed and 'f4.greeting = "hello HI"' in printed
    # without the token: its login line, as shown (it asks for the user and the password), then
    # the same command, with the token login stored
    (login,) = re.findall(r"dizest login[^)\n]*", snippet["cli"])
    _shell(login, None, tmp_path, typed=f"otto\n{USER_PASSWORD}\n")
    again = _shell(snippet["cli"], None, tmp_path)
    assert 'f1.greeting = "hello ada\'s"' in again and 'f4.greeting = "hello HI"' in again
    script = snippet["python"]
    done = _shell(f"{sys.executable} - <<'EOF'\n{script}\nEOF", token, tmp_path)
    assert done.startswith("ready ") and '"hello ada\'s"' in done, done
    page.context.close()


PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def test_a_readme_image_is_fetched_only_from_a_data_address_else_it_is_a_link(
    browser: Any, console: Console
) -> None:
    """A README's image was fetched by everyone who opened the Info panel: one of the console's
    own address as a GET of the viewer's session (its author chose the path and its query), one
    elsewhere refused by the CSP only (a tracking image wherever a proxy drops the policy). An
    image is now drawn from a data: address only; any other is a link named by its alt text."""
    console.user("ines")
    console.user("jon")
    readme = (
        "![badge](https://img.example/build.svg) ![usage](/api/v1/workflows/usage?from=readme)"
        f" ![dot](data:image/png;base64,{PIXEL})"
    )
    pkg = {**greeters(), "description": readme}
    wf_id = console.api("POST", "/workflows", {"title": "images", "package": pkg}, "ines")["id"]
    console.api("PUT", f"/workflows/{wf_id}/grants", {"grants": {"jon": "viewer"}}, "ines")
    page = log_in(browser, console.base, "jon")
    fetched: list[str] = []
    page.on("request", lambda r: fetched.append(r.url) if "example" in r.url or "readme" in r.url else None)  # fmt: skip
    try:
        page.goto(f"/workflows/{wf_id}")
        page.click('.tabs button[data-tab="info"]')
        shown = page.locator("#info-description")
        expect(shown.locator("img")).to_have_count(1)
        expect(shown.locator("img")).to_have_attribute("src", re.compile("^data:image/png"))
        for name, address in (("badge", "https://img.example/build.svg"), ("usage", "/api/v1/workflows/usage?from=readme")):  # fmt: skip
            link = shown.locator(f'a[href="{address}"]')
            expect(link).to_have_text(name)
            expect(link).to_have_attribute("rel", "noopener noreferrer nofollow")
        page.wait_for_load_state("networkidle")
        assert fetched == [], fetched
    finally:
        page.context.close()
