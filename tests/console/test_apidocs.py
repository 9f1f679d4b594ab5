"""The API reference page (/api/docs) in a real browser against a real `dizest serve`: Swagger UI
renders the served OpenAPI document, offline, with no CSP violation and no inline script."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from playwright.sync_api import expect

from tests.console.conftest import Console
from tests.console.test_security import page_html

# Swagger UI reports violations to the console; the event listener catches what it does not.
LISTEN = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(e.violatedDirective + " " + e.blockedURI));
"""


def test_the_reference_renders_an_operation_offline_under_the_csp(
    browser: Any, console: Console
) -> None:
    context = browser.new_context(base_url=console.base)  # anonymous: the page is public
    page = context.new_page()
    page.add_init_script(LISTEN)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on(
        "response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None
    )
    hosts: set[str] = set()
    page.on("request", lambda r: hosts.add(urlsplit(r.url).netloc))
    try:
        page.goto("/api/docs")
        run = page.locator(".opblock", has_text="/api/v1/runs/{run_id}").filter(
            has_text="The run report"
        )
        expect(run.first).to_be_visible(timeout=30_000)
        run.first.locator(".opblock-summary").click()
        # the operation's documented answers: the run report's fields, the error table's shape
        answers = run.first.locator(".responses-table")
        expect(answers).to_contain_text('"flow_inputs"', timeout=10_000)
        expect(answers).to_contain_text('"message"')
        expect(answers).to_contain_text("Not Found")
        assert page.locator(".opblock").count() >= 40
        assert page.evaluate("window.__violations") == []
        assert problems == []
        assert hosts == {urlsplit(console.base).netloc}  # nothing fetched from elsewhere
    finally:
        context.close()


def test_the_reference_page_has_no_inline_script_and_the_strict_csp(console: Console) -> None:
    status, html, headers = page_html(console, "/api/docs", "")
    assert status == 200
    directives = dict(
        d.strip().split(" ", 1) for d in headers["Content-Security-Policy"].split(";")
    )
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["style-src"] == "'self'"  # stricter than the console's other pages
    assert directives["connect-src"] == "'self'" and directives["frame-ancestors"] == "'none'"
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in s for s in scripts)
    bundle = page_html(console, "/console/static/vendor/swagger-ui-bundle.js", "")
    assert bundle[0] == 200 and "swagger" in bundle[1][:5000].lower()
