"""Hostile inputs to today's entry points that once got through: each is refused with a 4xx
JSON error and stores nothing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import urllib.parse
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from werkzeug.datastructures import FileStorage

from tests.api.conftest import Api, make_api
from tests.conftest import package
from tests.worker.conftest import make_settings

PACKAGE = package({"src": {"code": "y = 1", "outputs": ["y"]}}, {"a": {"app": "src"}})


@pytest.mark.parametrize(
    "options",
    [{"retries": -1}, {"retries": 10**9}, {"flow_timeout": -1}, {"memory_limit_mb": -5}],
)
def test_schedule_refuses_options_a_submit_would_refuse(api: Api, options: dict[str, Any]) -> None:
    """A schedule used to store options only type-checked (retries -1 was kept), so every one of
    its ticks failed at submit; now it is checked as a submit checks them, create and update."""
    alice = api.user("alice")
    wf = api.call("POST", "/workflows", alice, json={"title": "t", "package": PACKAGE}).json["id"]
    url = f"/workflows/{wf}/schedules"
    made = api.call("POST", url, alice, json={"cron": "* * * * *", "options": options})
    assert made.status_code == 422, made.json
    assert made.json["error"]["code"] == "invalid_options"
    assert api.call("GET", url, alice).json["items"] == []

    good = api.call("POST", url, alice, json={"cron": "* * * * *", "options": {"retries": 1}})
    assert good.status_code == 201, good.json
    sid = good.json["id"]
    changed = api.call("PATCH", f"/schedules/{sid}", alice, json={"options": options})
    assert changed.status_code == 422, changed.json
    assert changed.json["error"]["code"] == "invalid_options"
    assert api.call("GET", f"/schedules/{sid}", alice).json["options"] == {"retries": 1}


def test_a_workflow_title_is_bounded_and_nothing_is_stored(api) -> None:
    alice = api.user("alice")
    body = {"title": "t" * 201, "package": {"apps": {}, "flow": {}}}
    answer = api.call("POST", "/workflows", alice, json=body)
    assert answer.status_code == 422 and answer.json["error"]["code"] == "title_too_long"
    assert api.call("GET", "/workflows", alice).json["total"] == 0
    made = api.call("POST", "/workflows", alice, json={**body, "title": "ok"})
    assert made.status_code == 201, made.json
    renamed = api.call(
        "PUT", f"/workflows/{made.json['id']}", alice, json={**body, "title": "x" * 500}
    )
    assert renamed.status_code == 422
    assert api.call("GET", f"/workflows/{made.json['id']}", alice).json["title"] == "ok"


def test_a_lone_surrogate_in_json_is_a_400_not_a_500(api: Api) -> None:
    """json.loads takes "\\ud800" (no character: nothing can encode it); it used to fail later,
    when the name or title was encoded: a 500."""
    alice = api.user("alice")
    for path, body in (
        ("/auth/login", b'{"username": "\\ud800", "password": "x"}'),
        ("/workflows", b'{"title": "a\\udfff", "package": {"apps": {}, "flow": {}}}'),
        ("/tokens", b'{"name": "\\ud800x"}'),
    ):
        answer = api.call("POST", path, alice, data=body, content_type="application/json")
        assert answer.status_code == 400, (path, answer.status_code, answer.get_data()[:200])
        assert "lone UTF-16 surrogate" in answer.json["error"]["message"]
    paired = b'{"title": "\\ud83d\\ude00", "package": {"apps": {}, "flow": {}}}'  # one emoji
    made = api.call("POST", "/workflows", alice, data=paired, content_type="application/json")
    assert made.status_code == 201 and made.json["title"] == "\U0001f600", made.json


def test_a_page_offset_past_what_redis_takes_is_a_400(api: Api) -> None:
    alice = api.user("alice")
    for path in ("/runs?offset=9223372036854775807", "/workflows?offset=99999999999999999999"):
        answer = api.call("GET", path, alice)
        assert answer.status_code == 400, (path, answer.status_code)
        assert "must be between 0 and" in answer.json["error"]["message"]
    assert api.call("GET", "/runs?offset=2147483647", alice).status_code == 200


def test_event_ids_are_two_numbers_redis_can_hold() -> None:
    from dizest_api.streaming import STREAM_ID

    assert STREAM_ID.match("1700000000000-0") and STREAM_ID.match("9999999999999999999-12")
    assert not STREAM_ID.match("99999999999999999999999-0")  # Redis: "Invalid stream ID"


def test_attached_files_that_clash_are_refused_before_anything_is_written(tmp_path: Path) -> None:  # fmt: skip
    from dizest_api.attachments import Attached
    from dizest_api.drives import UserDrive
    from dizest_api.errors import BadInput

    drive, runs = UserDrive(str(tmp_path / "drives"), "u", 1 << 20, 100), str(tmp_path / "runs")
    for names in (["a", "a/b"], ["x/y/z", "x/y"], ["same.txt", "same.txt"]):
        with pytest.raises(BadInput, match="attached files clash"):
            Attached([(name, None) for name in names], drive, runs)
    parts = [(name, FileStorage(io.BytesIO(b"1"))) for name in ("a/b", "a/c", "ab")]
    fine = Attached(parts, drive, runs)
    assert (fine.size, fine.entries) == (3, 4)  # three files and the folder a
    assert not os.path.exists(runs)


def test_a_cross_site_form_cannot_log_a_browser_in(api: Api) -> None:
    """A form of another site can post text/plain (no preflight) that parses as JSON: logging
    the victim's browser into the attacker's account. Login takes application/json only."""
    api.user("mallory")
    form = b'{"username": "mallory", "password": "' + b"pw" + b'", "x": "="}'
    answer = api.http.post("/api/v1/auth/login", data=form, content_type="text/plain")
    assert answer.status_code == 400 and "application/json" in answer.json["error"]["message"]
    assert "Set-Cookie" not in answer.headers


def test_an_api_answer_is_inline_only_as_exactly_json_or_text() -> None:
    from dizest_api.routes.apicalls import _headers
    from dizest_worker.apicalls import Answer

    assert "Content-Security-Policy" not in _headers(Answer(200, "application/json; charset=utf-8", b""))  # fmt: skip
    for media in ("application/json, image/svg+xml", "text/plain+html", "text/html"):
        headers = _headers(Answer(200, media, b""))
        assert headers["Content-Security-Policy"].startswith("sandbox"), media
        assert headers["Content-Disposition"] == "attachment"


@pytest.mark.parametrize(
    ("path", "next_"),
    [
        ("/runs/a%0d%0aSet-Cookie:%20x=1", "/runs/a%0D%0ASet-Cookie:%20x=1"),
        ("/workflows?x=1&next=//evil.example", "/workflows?x=1&next=//evil.example"),
        # an address keeps its escapes: decoded, its "#" would end the path at "a "
        ("/runs/a%20%23%3F%25b%20%C3%A9?x=%23", "/runs/a%20%23%3F%25b%20%C3%A9?x=%23"),
    ],
)
def test_a_console_page_url_of_any_characters_redirects_to_login_quoted(
    api: Api, path: str, next_: str
) -> None:
    """A CR LF in a console page's path made the login redirect's Location header invalid: a
    500. It is sent quoted now, as one `next` value (its own `&` and `?` included), and that
    value is the page's URL, its path's escapes kept."""
    answer = api.http.get(path)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert "\r" not in location and "\n" not in location
    query = urllib.parse.urlsplit(location)
    assert query.path == "/login"
    assert urllib.parse.parse_qs(query.query) == {"next": [next_]}


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs")
def test_a_full_disk_is_a_507_and_leaves_no_partial_file(
    redis_url: str, session_prefix: str, tmp_path: Path
) -> None:
    """A disk filled (by a flow, say) made uploads and submits answer 500; it is the server's
    state, not a bug: 507 with a JSON body and Retry-After. The disk guard's reserve is off
    here: a write that runs out of space itself is what this looks at."""
    engine = replace(make_settings(redis_url, tmp_path).engine, disk_reserve_mb=0)
    api = make_api(redis_url, session_prefix, tmp_path, object(), engine=engine)
    drives = api.services.settings.worker.drive_root
    os.makedirs(drives, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", drives], check=True)
    try:
        alice = api.user("alice")
        upload = {"f": (io.BytesIO(b"x" * (1 << 20)), "big.bin")}
        answer = api.call(
            "POST", "/files/in", alice, data=upload, content_type="multipart/form-data"
        )
        assert answer.status_code == 507, answer.data[:300]
        assert answer.json["error"]["code"] == "insufficient_storage"
        assert answer.headers["Retry-After"] == "60"
        left = [p for p in Path(drives).rglob("*") if p.is_file() and p.parent.name != ".locks"]
        assert left == [], left  # the partial upload is gone (a user's lock file may stay)
        small = {"f": (io.BytesIO(b"fits"), "small.txt")}
        fine = api.call("POST", "/files/in", alice, data=small, content_type="multipart/form-data")
        assert fine.status_code == 201, fine.json
    finally:
        subprocess.run(["umount", "-l", drives], check=True)


def test_a_token_name_is_a_label_not_a_store(api: Api) -> None:
    """A token's name had no bound: 100 tokens of 9 MB names each were ~900 MB of Redis."""
    alice = api.user("alice")
    long = api.call("POST", "/tokens", alice, json={"name": "x" * 201, "scopes": ["read"]})
    assert long.status_code == 400 and "at most 200 characters" in long.json["error"]["message"]
    names = [t["name"] for t in api.call("GET", "/tokens", alice).json["items"]]
    assert "x" * 201 not in names
    fine = api.call("POST", "/tokens", alice, json={"name": "x" * 200, "scopes": ["read"]})
    assert fine.status_code == 201, fine.json


def test_a_dwp_sent_as_a_file_is_a_request_body_like_the_json_one(api: Api) -> None:
    """A .dwp uploaded as a multipart file to `POST /workflows` was read whole and parsed at the
    drive's upload limit (256 MiB), not the request limit (10 MiB) the same .dwp as JSON has: a
    probe's 100 MB one took a real `dizest serve`'s API process from 56 MB to 1.16 GB."""
    alice = api.user("alice")
    big = package({"src": {"code": "y = 1\n" + "#" * (100 << 10), "outputs": ["y"]}}, {"a": {"app": "src"}})  # fmt: skip
    raw = json.dumps(big).encode()  # 100 KB: past this app's 64 KB request limit
    as_json = api.call("POST", "/workflows", alice, data=raw, content_type="application/json")
    assert as_json.status_code == 413, as_json.json
    upload = {"file": (io.BytesIO(raw), "big.dwp")}
    as_file = api.call("POST", "/workflows", alice, data=upload, content_type="multipart/form-data")
    assert as_file.status_code == 413, as_file.json
    assert as_file.json["error"]["code"] == as_json.json["error"]["code"]
    assert api.call("GET", "/workflows", alice).json["items"] == []
    small = {"file": (io.BytesIO(json.dumps(PACKAGE).encode()), "small.dwp")}
    fine = api.call("POST", "/workflows", alice, data=small, content_type="multipart/form-data")
    assert fine.status_code == 201 and fine.json["title"] == "small", fine.json
