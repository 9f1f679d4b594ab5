"""What one user may make a drive hold, against a real `dizest serve`: paths within the depth
and length limits (moves included), folders counted by the files quota, files attached to runs
counted by the drive quota, no write below the disk reserve, and trees made before the limits
(deeper than Python's recursion, longer than PATH_MAX) still counted, listed, deleted and
removed with their user."""

from __future__ import annotations

import json
import os
import random
import shutil
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dizest_api.drive_rules import MAX_DEPTH, MAX_PATH
from dizest_api.payloads import multipart
from dizest_core.tree import remove_tree
from tests.conftest import package, wait_for
from tests.core.test_tree import legacy_tree
from tests.serve_process import PASSWORD, call, password_session, serving

QUOTA_BYTES = 1_000_000
QUOTA_FILES = 50
FILE = b"x" * 900_000
PKG = package({"a": {"code": "v = 1", "outputs": ["v"]}}, {"f": {"app": "a"}})
Server = tuple[str, dict[str, str], Path]  # base URL, admin headers, data dir


def free_port_in(low: int = 18400, high: int = 18500) -> int:
    """A free port of the range this suite may use, tried in a random order."""
    ports = list(range(low, high))
    random.shuffle(ports)
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {low}-{high}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("bounds")
    quotas = {"drive_quota_bytes": str(QUOTA_BYTES), "drive_quota_files": str(QUOTA_FILES)}
    with serving(tmp, port=free_port_in(), max_upload_bytes=str(50 << 20), **quotas) as served:
        admin = bearer(served.base, "admin", PASSWORD, ("read", "run", "admin"))
        yield served.base, admin, served.data
    remove_tree(str(tmp))  # deep trees a failed test left: pytest's own cleanup would recurse


def request(base: str, method: str, path: str, headers: dict[str, str], data: bytes | None = None, kind: str = "application/octet-stream") -> tuple[int, Any]:  # fmt: skip
    sent = {**headers, "Content-Type": kind}
    made = urllib.request.Request(base + "/api/v1" + path, data=data, method=method, headers=sent)
    try:
        with urllib.request.urlopen(made, timeout=60) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        with exc:
            body = exc.read()
        return exc.code, json.loads(body) if body.startswith(b"{") else body


def new_user(server: Server, name: str) -> dict[str, str]:
    """Bearer headers of a new user `name` (made by the admin, logged in once)."""
    base, admin, _ = server
    password = "a long test password"
    status, made, _ = call(base, "POST", "/api/v1/users", {"username": name, "password": password}, admin)  # fmt: skip
    assert status == 201, made
    return bearer(base, name, password)


def bearer(base: str, name: str, password: str, scopes: tuple[str, ...] = ("read", "run")) -> dict[str, str]:  # fmt: skip
    session = password_session(base, name, password)[0]
    wanted = {"name": "t", "scopes": list(scopes)}
    status, token, _ = call(base, "POST", "/api/v1/tokens", wanted, session)
    assert status == 201, token
    return {"Authorization": f"Bearer {token['token']}"}


def usage(server: Server, who: dict[str, str]) -> dict[str, int]:
    status, listing = request(server[0], "GET", "/files", who)
    assert status == 200, listing
    return dict(listing["usage"])


def test_a_move_cannot_nest_a_tree_past_the_limits(server: Server) -> None:
    base, who = server[0], new_user(server, "mover")
    assert request(base, "PUT", "/files/t/x/f.bin", who, FILE)[0] == 201
    deep = "/".join(["d"] * (MAX_DEPTH - 1))
    assert request(base, "POST", f"/files/{deep}", who)[0] == 201  # within the limits
    status, refused = request(base, "POST", f"/files/{deep}/e/f", who)
    assert status == 400 and refused["error"]["code"] == "bad_path", refused
    status, refused = request(base, "PUT", f"/files/{deep}/e/f.bin", who, b"1")
    assert status == 400 and refused["error"]["code"] == "bad_path", refused
    # t/x/f.bin below d/.../d (31 levels) would be 34 deep: refused, and nothing moved
    status, refused = request(base, "PATCH", "/files/t", who, json.dumps({"to": f"{deep}/t"}).encode(), "application/json")  # fmt: skip
    assert status == 400 and refused["error"]["code"] == "bad_path", refused
    assert refused["error"]["details"]["max_depth"] == MAX_DEPTH
    # long names: within the depth, past the length once the moved tree is added
    long = "/".join(["n" * 255] * 3)  # 767 bytes
    assert request(base, "POST", f"/files/{long}", who)[0] == 201
    assert request(base, "PATCH", "/files/t/x", who, json.dumps({"to": "t/" + "y" * 255}).encode(), "application/json")[0] == 200  # fmt: skip
    assert len(f"{long}/t/{'y' * 255}/f.bin") > MAX_PATH  # what the next move would make
    status, refused = request(base, "PATCH", "/files/t", who, json.dumps({"to": f"{long}/t"}).encode(), "application/json")  # fmt: skip
    assert status == 400 and "bytes long" in refused["error"]["message"], refused
    assert usage(server, who)["bytes"] == len(FILE)  # still counted: it is where it was
    status, refused = request(base, "PUT", "/files/more.bin", who, FILE)
    assert status == 413 and refused["error"]["code"] == "quota_bytes", refused


def test_usage_counts_a_tree_past_path_max(server: Server) -> None:
    base, who, data = server[0], new_user(server, "longpaths"), server[2]
    # 500 levels of 10-byte names: 5,500 bytes of path below the drive, past PATH_MAX
    legacy_tree(data / "drives" / "longpaths" / "old", 500, "l" * 10, FILE)
    got = usage(server, who)
    assert got["bytes"] == len(FILE) and got["files"] == 1 + 500 + 1, got
    status, refused = request(base, "PUT", "/files/more.bin", who, FILE)
    assert status == 413 and refused["error"]["code"] == "quota_bytes", refused
    assert request(base, "DELETE", "/files/old", who)[0] == 204
    assert not (data / "drives" / "longpaths" / "old").exists()
    assert usage(server, who)["bytes"] == 0
    assert request(base, "PUT", "/files/more.bin", who, FILE)[0] == 201


def test_a_tree_deeper_than_recursion_is_listed_bounded_and_deleted(server: Server) -> None:
    base, who, data = server[0], new_user(server, "deeptree"), server[2]
    legacy_tree(data / "drives" / "deeptree" / "old", 1100, "l", b"1")  # 3,300 bytes of path
    status, listing = request(base, "GET", "/files?recursive=true", who)
    assert status == 200, listing
    assert listing["truncated"] is True and len(listing["items"]) == MAX_DEPTH
    assert max(i["path"].count("/") + 1 for i in listing["items"]) == MAX_DEPTH
    assert listing["usage"]["files"] == 1 + 1100 + 1
    status, moved = request(base, "PATCH", "/files/old", who, json.dumps({"to": "new"}).encode(), "application/json")  # fmt: skip
    assert status == 400 and moved["error"]["code"] == "bad_path", moved  # 1,101 deep
    assert request(base, "DELETE", "/files/old", who)[0] == 204
    assert not (data / "drives" / "deeptree" / "old").exists()


def test_folders_count_against_the_files_quota(server: Server) -> None:
    base, who = server[0], new_user(server, "folders")
    for n in range(QUOTA_FILES - 10):
        assert request(base, "POST", f"/files/d{n}", who)[0] == 201
    deep = "/".join(f"e{n}" for n in range(11))  # one request, 11 new folders: one too many
    status, refused = request(base, "POST", f"/files/{deep}", who)
    assert status == 422 and refused["error"]["code"] == "quota_files", refused
    assert "files and folders" in refused["error"]["message"]
    assert usage(server, who)["files"] == QUOTA_FILES - 10
    assert request(base, "POST", "/files/" + "/".join(f"e{n}" for n in range(10)), who)[0] == 201
    status, refused = request(base, "POST", "/files/one-more", who)
    assert status == 422 and refused["error"]["code"] == "quota_files", refused
    status, refused = request(base, "PUT", "/files/d0/f.txt", who, b"1")
    assert status == 422 and refused["error"]["code"] == "quota_files", refused


def submit_with(server: Server, who: dict[str, str], files: dict[str, bytes]) -> tuple[int, Any]:
    parts = [("json", None, "application/json", json.dumps({"package": PKG}).encode())]
    parts += [("file", name, "application/octet-stream", body) for name, body in files.items()]
    body, kind = multipart(parts)
    return request(server[0], "POST", "/runs", who, body, kind)


def test_attached_files_count_against_the_drive_quota(server: Server) -> None:
    who, runs = new_user(server, "attacher"), server[2] / "runs"
    status, made = submit_with(server, who, {"in/a.bin": b"a" * 600_000})
    assert status == 201, made
    before = sorted(os.listdir(runs))
    status, refused = submit_with(server, who, {"b.bin": b"b" * 600_000})
    assert status == 413 and refused["error"]["code"] == "quota_bytes", refused
    assert sorted(os.listdir(runs)) == before  # nothing of the refused submit
    got = usage(server, who)
    assert (got["attached_bytes"], got["attached_files"]) == (600_000, 2), got
    assert (got["bytes"], got["files"]) == (600_000, 2), got
    status, refused = request(server[0], "PUT", "/files/c.bin", who, b"c" * 600_000)
    assert status == 413 and refused["error"]["code"] == "quota_bytes", refused
    # the run's files deleted (as the reaper does once the run has expired): its share is free
    wait_for(lambda: final(server, who, made["run_id"]), timeout=60)
    shutil.rmtree(runs / made["run_id"])
    assert usage(server, who)["attached_bytes"] == 0
    status, made = submit_with(server, who, {"b.bin": b"b" * 600_000})
    assert status == 201, made


def final(server: Server, who: dict[str, str], run_id: str) -> bool:
    status, run = request(server[0], "GET", f"/runs/{run_id}", who)
    assert status == 200, run
    return run["status"] not in {"pending", "running"}


def test_removing_a_user_with_a_deep_drive_leaves_nothing(server: Server) -> None:
    base, admin, data = server
    new_user(server, "carol")
    drives = data / "drives"
    legacy_tree(drives / "carol" / "deep", 1100, "c" * 8, b"1")
    legacy_tree(drives / ".partial" / "gone.removed.0123456789abcdef", 1100, "g" * 8)  # a crash's
    status, answer, _ = call(base, "DELETE", "/api/v1/users/carol", headers=admin)
    assert status == 204, answer
    assert not (drives / "carol").exists()
    assert [n for n in os.listdir(drives / ".partial") if ".removed." in n] == []


def test_no_write_below_the_disk_reserve(tmp_path: Path) -> None:
    reserve = str(1 << 40)  # MB: more than any disk has free
    with serving(tmp_path, port=free_port_in(), disk_reserve_mb=reserve) as served:
        base, data = served.base, served.data
        admin = bearer(base, "admin", PASSWORD)
        status, refused = request(base, "PUT", "/files/a.bin", admin, b"a" * 1000)
        assert status == 507 and refused["error"]["code"] == "insufficient_storage", refused
        status, refused = request(base, "POST", "/files/folder", admin)
        assert status == 507 and refused["error"]["code"] == "insufficient_storage", refused
        status, refused = submit_with((base, admin, data), admin, {"b.bin": b"b" * 1000})
        assert status == 507 and refused["error"]["code"] == "insufficient_storage", refused
        assert refused["error"]["details"]["reserve_mb"] == 1 << 40
        for left in (data / "drives" / "admin", data / "drives" / ".partial", data / "runs"):
            assert not left.exists() or os.listdir(left) == [], left
