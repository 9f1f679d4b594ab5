"""Half-written uploads: one a crash left is deleted at start-up; one being written (in this or
another API process) never is, however long its client takes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dizest_api import partials
from tests.api.conftest import Api, api, session_prefix  # noqa: F401
from tests.api.test_upload_limits import put
from tests.api.test_user_removal import HeldBody
from tests.conftest import wait_for

ROOT = Path(__file__).resolve().parents[2]
# an upload's writer that dies mid-write: it prints its partial file's path, then waits to be killed
CRASHING_WRITER = """
import signal, sys
from dizest_api.partials import partial_file
with partial_file(sys.argv[1], "alice") as (path, fd):
    import os
    os.write(fd, b"x" * 4096)
    print(path, flush=True)
    signal.pause()
"""


class SlowBody(HeldBody):
    """A body whose second read waits for `go`: the upload's partial file exists, locked and
    half written, while the test acts."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0

    def _held(self) -> None:
        self.reads += 1
        if self.reads == 2:
            super()._held()


def age(path: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_an_upload_a_crash_left_is_deleted_at_start_up(api: Api) -> None:  # noqa: F811
    """The writer is killed mid-write (its lock goes with it): the file stays, counted by no
    quota but holding the disk, until a start-up deletes it."""
    drives = api.services.settings.worker.drive_root
    os.makedirs(drives, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, drives], stdout=subprocess.PIPE, env=env
    )
    try:
        assert writer.stdout is not None
        left = Path(writer.stdout.readline().decode().strip())
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
    assert left.is_file() and left.stat().st_size == 4096
    api.services.bootstrap()
    assert left.exists()  # too new: it might be one whose writer has not locked it yet
    age(left, partials.ABANDONED_S + 1)
    api.services.bootstrap()
    assert not left.exists()


def test_an_upload_in_progress_survives_a_start_up(api: Api) -> None:  # noqa: F811
    """Another API process starting (`bootstrap`) while a slow client's upload is half written,
    its file older than the sweep's age: the upload is left alone and ends whole."""
    alice = api.user("alice")
    data = os.urandom(3 << 20)  # several of the upload's 1 MB reads
    body = SlowBody(data)
    answers: list[Any] = []
    upload = threading.Thread(
        target=lambda: answers.append(put(api, alice, "slow.bin", body, len(data)))
    )
    upload.start()
    try:
        assert body.reading.wait(30), "the upload never read its body"
        folder = Path(api.services.settings.worker.drive_root) / partials.PARTIAL
        (partial,) = wait_for(lambda: [p for p in folder.iterdir() if p.is_file()])
        age(partial, partials.ABANDONED_S + 60)
        api.services.bootstrap()
        assert partial.exists()
    finally:
        body.go.set()
        upload.join(30)
    assert not upload.is_alive() and len(answers) == 1
    assert answers[0].status_code == 201, answers[0].json
    stored = Path(api.services.settings.worker.drive_root) / "alice" / "slow.bin"
    assert stored.read_bytes() == data
    assert oct(stored.stat().st_mode & 0o777) == "0o644"  # flows, other uids, read it
    assert [p for p in folder.iterdir() if p.is_file()] == []


def test_only_regular_unlocked_old_files_are_swept(tmp_path: Path) -> None:
    folder = tmp_path / partials.PARTIAL
    folder.mkdir()
    old_file, new_file = folder / "a.0000000000000001", folder / "a.0000000000000002"
    old_file.write_bytes(b"x")
    new_file.write_bytes(b"y")
    (folder / "b.removed.0000000000000003").mkdir()  # a drive being deleted: not ours
    (folder / "link").symlink_to(old_file)
    age(old_file, partials.ABANDONED_S + 1)
    assert partials.sweep(str(tmp_path)) == ["a.0000000000000001"]
    assert sorted(p.name for p in folder.iterdir()) == [
        "a.0000000000000002", "b.removed.0000000000000003", "link"
    ]  # fmt: skip
