"""What an upload may write before it is refused: no more than the drive quota leaves free, and
never the disk past its reserve, even while other uploads run; and an upload racing a folder of
its name is a 409, not a 500 (probes, 2026-12-03)."""

from __future__ import annotations

import io
import os
import subprocess
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, api, make_api, session_prefix  # noqa: F401
from tests.api.test_user_removal import HeldBody
from tests.worker.conftest import make_settings

MB = 1 << 20


class Zeros(io.RawIOBase):
    """`size` zero bytes, never held in memory whole, counting what was read."""

    def __init__(self, size: int) -> None:
        self.size, self.at, self.read_bytes = size, 0, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        self.at = offset if whence == 0 else self.size + offset if whence == 2 else self.at + offset
        return self.at

    def tell(self) -> int:
        return self.at

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.size - self.at)
        buffer[:n] = b"\0" * n
        self.at += n
        self.read_bytes += n
        return n


def put(app: Api, who: dict[str, str], path: str, body: Any, size: int) -> Any:
    return app.http.put(
        f"/api/v1/files/{path}",
        headers={**who, "Content-Type": "application/octet-stream", "Content-Length": str(size)},
        input_stream=body,
    )


def test_an_upload_stops_where_the_quota_ends(
    redis_url: str,
    session_prefix: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """1 MB of quota left: a 200 MB upload is refused once it passes that, not after it was
    written whole (each request could write 256 MB, whatever its user's quota)."""
    app = make_api(redis_url, session_prefix, tmp_path, object(), {"drive_quota_bytes": 2 * MB})
    alice = app.user("alice")
    assert put(app, alice, "first.bin", io.BytesIO(b"x" * MB), MB).status_code == 201
    body = Zeros(200 * MB)
    answer = put(app, alice, "big.bin", body, 200 * MB)
    assert answer.status_code == 413 and answer.json["error"]["code"] == "quota_bytes"
    assert body.read_bytes <= 2 * MB + MB  # what was free, and a chunk


def test_an_upload_over_the_upload_limit_says_the_limit(
    redis_url: str,
    session_prefix: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Werkzeug's words for a body declared over the limit named no number (the console showed
    "The data value transmitted exceeds the capacity limit."): the answer says both."""
    limits = {"max_upload_bytes": 128 * 1024}
    app = make_api(redis_url, session_prefix, tmp_path, object(), limits)
    answer = put(app, app.user("alice"), "big.bin", Zeros(200 * 1024), 200 * 1024)
    assert answer.status_code == 413
    assert answer.json["error"] == {
        "code": "request_entity_too_large",
        "message": "the request body is 204800 bytes; this route takes at most 131072",
        "details": {"content_length": 204800, "limit": 131072},
    }
    assert app.call("GET", "/files", app.user("alice")).json["items"] == []


def test_an_upload_racing_a_folder_of_its_name_is_a_conflict(api: Api) -> None:  # noqa: F811
    """The exact interleaving: the upload is in its view, reading its body, when a folder of its
    path is made; its end finds the folder: 409, the folder and its contents untouched."""
    alice = api.user("alice")
    body = HeldBody(b"0123456789")
    answers: list[Any] = []
    upload = threading.Thread(target=lambda: answers.append(put(api, alice, "race1", body, 10)))
    upload.start()
    assert body.reading.wait(30)
    assert api.call("POST", "/files/race1", alice).status_code == 201  # a folder now
    body.go.set()
    upload.join(30)
    assert answers[0].status_code == 409, answers[0].json
    assert answers[0].json["error"]["code"] == "conflict"
    listed = api.call("GET", "/files", alice).json["items"]
    assert [(i["path"], i["type"]) for i in listed] == [("race1", "directory")]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a small tmpfs")
def test_an_upload_never_takes_the_disk_past_its_reserve(
    redis_url: str,
    session_prefix: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """A 48 MB disk with a 16 MB reserve: a 100 MB upload is refused while the disk still has
    its reserve's worth free, not once it has filled it (four at once took a probe's disk
    113 MB under its reserve: each looked at the reserve before writing, and at its end)."""
    engine = replace(make_settings(redis_url, tmp_path).engine, disk_reserve_mb=16)
    quota = {"drive_quota_bytes": 1 << 40}
    app = make_api(redis_url, session_prefix, tmp_path, object(), quota, engine=engine)
    drives = app.services.settings.worker.drive_root
    os.makedirs(drives, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", drives], check=True)
    try:
        alice = app.user("alice")
        body = Zeros(100 * MB)
        answer = put(app, alice, "big.bin", body, 100 * MB)
        assert answer.status_code == 507, answer.data[:300]
        assert answer.json["error"]["code"] == "insufficient_storage"
        assert body.read_bytes <= 40 * MB + MB  # refused by the reserve, not by a full disk
        left = [p for p in Path(drives).rglob("*") if p.is_file() and p.parent.name != ".locks"]
        assert left == [], left  # the partial upload is gone
    finally:
        subprocess.run(["umount", "-l", drives], check=True)
