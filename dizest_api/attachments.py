"""Files attached to a submit: written into the new run's working directory, counted against
their user's drive quota while the run keeps them.

A user's attached files are files they keep on the server, as their drive's are: so they count
against the same quotas (`DIZEST_DRIVE_QUOTA_BYTES`; `_FILES` for the files and the folders they
make), from the submit until the run's files are deleted (the reaper, once the run has expired,
`DIZEST_TTL_S`). Each run's share is a record beside the drives (`Attachments`), made under the
user's drive lock with the check, before a byte is written; a submit refused (413 `quota_bytes`,
422 `quota_files`, 507 `insufficient_storage` below the disk reserve) or failing leaves neither
files nor record.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from typing import IO, TYPE_CHECKING, Any

from dizest_api.errors import BadInput
from dizest_core.tree import remove_tree

if TYPE_CHECKING:
    from dizest_api.drives import UserDrive

ATTACHED = ".attached"  # `<drive_root>/.attached/<username>/<run_id>`, beside the drives


class Attachments:
    """The files a user attached to runs, as their drive quota counts them: one record a run,
    `<drive_root>/.attached/<username>/<run_id>` ({"bytes", "files"}), that counts while the
    run's working directory (`<workdir_root>/<run_id>`, where the files are) exists: the reaper
    deletes it once the run has expired. Written under the user's drive lock only."""

    def __init__(self, base: str, username: str, workdir_root: str | None) -> None:
        self.folder = os.path.join(base, ATTACHED, username)
        self.workdir_root = workdir_root

    def held(self) -> tuple[int, int]:
        """The bytes and entries the user's attached files hold (the records of runs whose
        files are gone are dropped)."""
        size = files = 0
        with contextlib.suppress(FileNotFoundError):
            for run_id in os.listdir(self.folder):
                if self.workdir_root is None or not os.path.isdir(self.workdir(run_id)):
                    self.drop(run_id)  # the run's files are gone: so is their share
                    continue
                with open(os.path.join(self.folder, run_id), "rb") as fh:
                    record = json.load(fh)
                size, files = size + int(record["bytes"]), files + int(record["files"])
        return size, files

    def workdir(self, run_id: str) -> str:
        assert self.workdir_root is not None
        return os.path.join(self.workdir_root, run_id)

    def record(self, run_id: str, size: int, files: int) -> None:
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        with open(os.path.join(self.folder, run_id), "w") as fh:
            json.dump({"bytes": size, "files": files}, fh)

    def drop(self, run_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.folder, run_id))


class Attached:
    """Files attached to one submit. `prepare` (given to `Client.submit`) writes them into the
    new run's working directory (under `workdir_root`, which workers share) before any of its
    flows can start, once they fit `drive`'s quotas and the disk's reserve; `settle` drops that
    folder, and its share of the quota, when the submit failed or named an existing run instead
    (an idempotency key seen before)."""

    def __init__(self, parts: list[tuple[str, Any]], drive: UserDrive, workdir_root: str) -> None:
        files: set[str] = set()
        for rel, _ in parts:  # one path cannot be two files
            if rel in files:
                raise BadInput(f"attached files clash: {rel!r} twice", {"path": rel})
            files.add(rel)
        folders = {"/".join(rel.split("/")[:i]) for rel in files for i in range(1, rel.count("/") + 1)}  # fmt: skip
        clash = next(iter(sorted(folders & files)), None)  # nor a file and a folder
        if clash is not None:
            raise BadInput(f"attached files clash: {clash!r} is a file and a folder", {"path": clash})  # fmt: skip
        self.parts, self.drive, self.workdir_root = parts, drive, workdir_root
        self.size = sum(_size(storage.stream) for _, storage in parts)
        self.entries = len(files) + len(folders)
        self.prepared: str | None = None

    def prepare(self, run_id: str) -> None:
        workdir = os.path.join(self.workdir_root, run_id)
        os.makedirs(self.workdir_root, exist_ok=True)
        with self.drive.locked():
            self.drive.fits(self.size, self.entries)
            self.drive.keep_reserve(self.workdir_root, self.size)
            os.makedirs(workdir, exist_ok=True)
            self.prepared = workdir
            self.drive.attached.record(run_id, self.size, self.entries)
        try:
            for rel, storage in self.parts:
                target = os.path.join(workdir, rel)  # `rel` passed `clean`: no way out
                os.makedirs(os.path.dirname(target), exist_ok=True)
                storage.stream.seek(0)
                with open(target, "wb") as out:
                    shutil.copyfileobj(storage.stream, out)
                os.chmod(target, 0o644)
        except BaseException:
            self.settle(None)
            raise

    def settle(self, run_id: str | None) -> None:
        if self.prepared and os.path.basename(self.prepared) != run_id:
            remove_tree(self.prepared)
            with self.drive.locked():
                self.drive.attached.drop(os.path.basename(self.prepared))
            self.prepared = None


def _size(stream: IO[bytes]) -> int:
    """The bytes of an uploaded part (spooled: the whole request has been read)."""
    size = stream.seek(0, os.SEEK_END)
    stream.seek(0)
    return size
