"""Fixtures for the console's browser tests: one real `dizest serve` (embedded Redis, a worker,
gunicorn) for the session, Debian's Chromium driven by Playwright, and logged-in pages.

Chromium comes from apt (`/usr/bin/chromium`; scripts/setup installs it): browser downloads are
impossible here, so Playwright is pointed at it with `executable_path`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import DATA as ROOT_DATA
from tests.serve_process import PASSWORD, Served, call, password_session, serving

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
USER_PASSWORD = "console test password"
TRUSTED = "http://console.trusted.example"  # DIZEST_ALLOWED_ORIGINS of the test server
DATA = Path(__file__).parent / "data"

sync_api = pytest.importorskip("playwright.sync_api")


@dataclass
class Console:
    """The running server, with helpers to make users and call the API as them."""

    served: Served
    tmp: Path
    admin: dict[str, str]  # bearer headers with the admin scope
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.served.base

    def user(self, name: str, role: str = "user") -> str:
        body = {"username": name, "password": USER_PASSWORD, "role": role}
        status, answer, _ = call(self.base, "POST", "/api/v1/users", body, self.admin)
        assert status in (201, 409), answer
        return name

    def api(self, method: str, path: str, body: Any = None, name: str = "admin") -> Any:
        headers = self.admin if name == "admin" else self.token(name)
        status, answer, _ = call(self.base, method, f"/api/v1{path}", body, headers)
        assert 200 <= status < 300, (status, answer)
        return answer

    def token(self, name: str) -> dict[str, str]:
        if name not in self.tokens:
            self.tokens[name] = bearer(self.base, name, USER_PASSWORD, ["read", "run"])
        return self.tokens[name]

    def workflow(self, name: str, title: str, owner: str = "admin") -> str:
        package = json.loads((DATA / f"{name}.dwp").read_text())
        made = self.api("POST", "/workflows", {"title": title, "package": package}, owner)
        return str(made["id"])


# A flow that holds still until its test says go (no sleep standing in for the moment): the app's
# `GO_API` function, which runs in the run's working directory as its flows do, leaves the file
# `UNTIL_GO` waits for (60 s at most). `go(console, run_id, flow_id)` calls it.
UNTIL_GO = (
    "import os, time\n_end = time.time() + 60\n"
    "while not os.path.exists('go') and time.time() < _end:\n    time.sleep(0.05)\n"
)
GO_API = "def go():\n    open('go', 'w').close()\n    return {'ok': 1}\n"


def go(console: Console, run_id: str, flow_id: str) -> None:
    console.api("POST", f"/runs/{run_id}/flows/{flow_id}/api/go")


def bearer(base: str, name: str, password: str, scopes: list[str]) -> dict[str, str]:
    """Bearer headers for a new token of `name` (made through a password session)."""
    session = password_session(base, name, password)[0]
    status, made, _ = call(base, "POST", "/api/v1/tokens", {"name": "t", "scopes": scopes}, session)
    assert status == 201, made
    return {"Authorization": f"Bearer {made['token']}"}


# One serve for every console test an xdist worker runs (a session a worker): each module's own
# cost ~3.5 s of start and its share of two cores (tests/console, -n 3 on a loaded machine: 349 s
# with a serve a module, 291 s with one a worker). A test makes the workflows and runs it reads
# (a user made twice is kept: `Console.user` takes the 409), so it passes beside any others.
@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("console")
    with serving(tmp, allowed_origins=TRUSTED) as served:
        yield Console(served, tmp, bearer(served.base, "admin", PASSWORD, ["read", "run", "admin"]))


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def log_in(
    browser: Any, base: str, name: str, password: str = USER_PASSWORD, **options: Any
) -> Any:
    """A new browser context (with Playwright's context `options`; a 1440x900 viewport unless
    they say) logged in as `name`, on the page the login page leads to; its page. Where the
    test reaches the server itself (plain HTTP to 127.0.0.1), the session is the login API's,
    its cookie given to the context: the login page (a load, its scripts, a post and a
    redirect: ~0.3 s of the two cores, at every test) is the subject of test_pages's and
    test_security's login tests. Elsewhere (a host only the browser maps, the test's own
    certificate) it logs in through the page."""
    options.setdefault("viewport", {"width": 1440, "height": 900})
    context = browser.new_context(base_url=base, **options)
    page = context.new_page()
    address = urlsplit(base)
    if (address.scheme, address.hostname) == ("http", "127.0.0.1"):
        context.add_cookies([cookie(base, password_session(base, name, password)[1])])
        page.goto("/workflows")
    else:
        page.goto("/login")
        page.fill("#username", name)
        page.fill("#password", password)
        page.click("#login-submit")
    sync_api.expect(page.locator("#me-name")).to_have_text(name, timeout=15_000)
    return page


def cookie(base: str, header: str) -> dict[str, Any]:
    """A Set-Cookie header as Playwright's add_cookies takes it."""
    (name, morsel), *_ = SimpleCookie(header).items()
    return {
        "name": name,
        "value": morsel.value,
        "url": base,
        "httpOnly": bool(morsel["httponly"]),
        "sameSite": (morsel["samesite"] or "Lax").capitalize(),
    }


@pytest.fixture
def admin_page(browser: Any, console: Console) -> Iterator[Any]:
    page = log_in(browser, console.base, "admin", PASSWORD)
    yield page
    page.context.close()


@pytest.fixture(scope="module")
def fanout(console: Console) -> tuple[str, str]:
    """A workflow of four flows on one row (src feeding k1, k2, k3), with a long title, and a run
    of it: the graph views' (`views`) pages for test_graph_keys and test_narrow."""
    package = json.loads((ROOT_DATA / "c03_fanout.dwp").read_text())
    title = "c03 fan-out: one source feeding three keys, run on every push"
    made = console.api("POST", "/workflows", {"title": title, "package": package})
    run = console.api("POST", "/runs", {"workflow_id": made["id"]})
    return str(made["id"]), str(run["run_id"])


def views(fanout: tuple[str, str]) -> dict[str, str]:
    """The workflow view, the editor and the run view of `fanout`."""
    wf, run = fanout
    return {
        "workflow": f"/workflows/{wf}",
        "editor": f"/workflows/{wf}/edit",
        "run": f"/runs/{run}",
    }
