"""Users' drives on the server: one directory per user, `<drive_root>/<username>`, with quotas.

Invariants:
- Every path a caller names goes through `clean` (relative, "/"-separated, no "..", no empty or
  hidden-by-dot-dot parts, no NUL or backslash, bounded length) and then through
  `dizest_core.drive.Drive`, which resolves symlinks and refuses anything outside the user's
  root: one rule for flows and for the API. A refused path stores nothing.
- A file reaches its final name only whole: it is written to `<drive_root>/.partial/` first
  (outside every user's drive, so never listed nor read by a run) and renamed in once complete.
- Usage (bytes and files) is measured on disk, and the check and the rename happen under a
  per-user lock (`fcntl` on a file beside the drives), so simultaneous uploads, from threads or
  from several API processes sharing the directory, cannot pass a quota together.

The drive root is a shared directory like `DIZEST_ARTIFACT_DIR` (`DIZEST_DRIVE_ROOT`): workers on
other machines read a run's files from there, at the same path. Runs only ever read a drive
(`dizest_core.confine` exposes it read-only); only this module writes to it, and deletes it when
its user is removed (`remove_drive`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from dizest_api.errors import ApiError
from dizest_core.drive import Drive, DriveError

CHUNK = 1 << 20
MAX_PATH = 1024
MAX_PART = 255


class DriveProblem(ApiError):
    """A refused drive operation; `status` and `code` say how the API answers it."""


class BadPath(DriveProblem):
    status, code = 400, "bad_path"


class NoSuchPath(DriveProblem, LookupError):
    status, code = 404, "not_found"


class PathConflict(DriveProblem):
    status, code = 409, "conflict"


class QuotaBytes(DriveProblem):
    status, code = 413, "quota_bytes"


class QuotaFiles(DriveProblem):
    status, code = 422, "quota_files"


class TooLarge(DriveProblem):
    status, code = 413, "too_large"


@dataclass(frozen=True)
class Usage:
    bytes: int
    files: int

    def to_dict(self, quota_bytes: int, quota_files: int) -> dict[str, int]:
        return {
            "bytes": self.bytes,
            "files": self.files,
            "quota_bytes": quota_bytes,
            "quota_files": quota_files,
        }


def clean(path: str, allow_root: bool = False) -> str:
    """`path` as a normalized relative drive path; BadPath for anything that could escape."""
    raw = path.strip("/") if allow_root else path
    if raw in ("", ".") and allow_root:
        return ""
    if not raw or len(raw) > MAX_PATH or "\x00" in raw or "\\" in raw:
        raise BadPath(f"invalid path {path!r}", {"path": path})
    if raw.startswith("/"):
        raise BadPath(f"path {path!r} must be relative to your drive", {"path": path})
    parts = [p for p in raw.rstrip("/").split("/")]
    if any(p in ("", ".", "..") or len(p) > MAX_PART for p in parts):
        raise BadPath(f"path {path!r} has an empty, '.' or '..' part", {"path": path})
    return "/".join(parts)


def drive_path(root: str, username: str) -> str:
    """Where `username`'s drive lives: what their runs read as `drive` (a worker mounts it only
    if it is a folder right under its own drive root)."""
    return os.path.join(os.path.realpath(root), username)


class UserDrive:
    """One user's drive: list, read, store, move and delete, within its quotas."""

    def __init__(self, root: str, username: str, quota_bytes: int, quota_files: int) -> None:
        self.base = os.path.realpath(root)
        self.username = username
        self.path = drive_path(root, username)
        self.quota_bytes = quota_bytes
        self.quota_files = quota_files
        os.makedirs(self.path, mode=0o755, exist_ok=True)
        self.drive = Drive(self.path)

    # -- reading ----------------------------------------------------------------------
    def resolve(self, path: str) -> str:
        """The real path of `path` in this drive; BadPath if it would leave it."""
        rel = clean(path, allow_root=True)
        try:
            return self.drive.abspath(rel)
        except DriveError:
            raise BadPath(f"path {path!r} leads outside your drive", {"path": path}) from None

    def entry(self, real: str) -> dict[str, Any]:
        info = os.stat(real)
        rel = os.path.relpath(real, self.path).replace(os.sep, "/")
        kind = "directory" if stat.S_ISDIR(info.st_mode) else "file"
        return {
            "name": os.path.basename(real),
            "path": "" if rel == "." else rel,
            "type": kind,
            "size": info.st_size if kind == "file" else None,
            "modified": info.st_mtime,
        }

    def listing(self, path: str, recursive: bool = False) -> list[dict[str, Any]]:
        real = self.resolve(path)
        if not os.path.isdir(real):
            raise NoSuchPath(f"no folder {path!r} in your drive")
        names = self.drive.ls(os.path.relpath(real, self.path), recursive=recursive)
        out = []
        for name in names:
            with contextlib.suppress(OSError, DriveError):  # deleted meanwhile, or a bad link
                out.append(self.entry(self.drive.abspath(os.path.join(real, name))))
        return out

    def usage(self) -> Usage:
        size = files = 0
        for top, _, names in os.walk(self.path):
            for name in names:
                with contextlib.suppress(OSError):
                    info = os.lstat(os.path.join(top, name))
                    size += info.st_size
                    files += 1
        return Usage(size, files)

    # -- writing ----------------------------------------------------------------------
    def store(self, path: str, stream: IO[bytes], limit: int) -> dict[str, Any]:
        """Write `stream` to `path` (created or replaced) if it fits `limit` and the quotas."""
        rel = clean(path)
        target = self.resolve(rel)
        if target == self.path or os.path.isdir(target):
            raise PathConflict(f"{path!r} is a folder", {"path": path})
        partial = self._partial()
        try:
            size = _copy(stream, partial, min(limit, self.quota_bytes))
            with self.locked():
                self._check_parents(rel)
                self._fits(size, replacing=target)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                target = self.resolve(rel)  # again, under the lock: a folder may have moved
                os.replace(partial, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
        return self.entry(target)

    def mkdir(self, path: str) -> dict[str, Any]:
        rel = clean(path)
        target = self.resolve(rel)
        with self.locked():
            self._check_parents(rel)
            if os.path.exists(target) and not os.path.isdir(target):
                raise PathConflict(f"{path!r} is a file", {"path": path})
            os.makedirs(target, exist_ok=True)
        return self.entry(target)

    def move(self, src: str, dst: str) -> dict[str, Any]:
        source, target = self.resolve(clean(src)), self.resolve(clean(dst))
        with self.locked():
            if not os.path.lexists(source):
                raise NoSuchPath(f"no {src!r} in your drive")
            if os.path.lexists(target):
                raise PathConflict(f"{dst!r} already exists", {"path": dst})
            if os.path.commonpath([source, target]) == source:
                raise BadPath(f"cannot move {src!r} into itself", {"path": dst})
            self._check_parents(clean(dst))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.rename(source, target)
        return self.entry(target)

    def delete(self, path: str) -> None:
        rel = clean(path)
        self.resolve(rel)
        with self.locked():
            if not os.path.lexists(os.path.join(self.path, rel)):
                raise NoSuchPath(f"no {path!r} in your drive")
            self.drive.delete(rel)

    # -- internals --------------------------------------------------------------------
    def _partial(self) -> str:
        folder = os.path.join(self.base, ".partial")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        return os.path.join(folder, f"{self.username}.{secrets.token_hex(8)}")

    def locked(self) -> contextlib.AbstractContextManager[None]:
        """This user's drive lock, across threads and processes (flock on an open file)."""
        return _locked(self.base, self.username)

    def _check_parents(self, rel: str) -> None:
        """Every existing parent of `rel` must be a folder (a file cannot hold a file)."""
        current = self.path
        for part in rel.split("/")[:-1]:
            current = os.path.join(current, part)
            if os.path.lexists(current) and not os.path.isdir(current):
                raise PathConflict(f"{os.path.relpath(current, self.path)!r} is a file")

    def _fits(self, size: int, replacing: str) -> None:
        used = self.usage()
        old = os.path.getsize(replacing) if os.path.isfile(replacing) else None
        after_bytes = used.bytes - (old or 0) + size
        after_files = used.files + (0 if old is not None else 1)
        details = {"size": size, **used.to_dict(self.quota_bytes, self.quota_files)}
        if after_bytes > self.quota_bytes:
            raise QuotaBytes(
                f"your drive quota is {self.quota_bytes} bytes; {used.bytes} are used", details
            )
        if after_files > self.quota_files:
            raise QuotaFiles(f"your drive holds at most {self.quota_files} files", details)


def remove_drive(root: str, username: str) -> str | None:
    """Delete `username`'s drive (their user is removed); the path it had, if it existed. It
    leaves at once (renamed out, under the drive lock), then its files are deleted."""
    if not username or os.sep in username or username.startswith("."):
        raise ValueError(f"not a user's drive name: {username!r}")
    base = os.path.realpath(root)
    path = os.path.join(base, username)
    if not os.path.isdir(base):
        return None
    with _locked(base, username):
        if not os.path.lexists(path):
            return None
        folder = os.path.join(base, ".partial")
        os.makedirs(folder, mode=0o700, exist_ok=True)
        doomed = os.path.join(folder, f"{username}.removed.{secrets.token_hex(8)}")
        os.rename(path, doomed)
    if os.path.isdir(doomed) and not os.path.islink(doomed):
        shutil.rmtree(doomed)  # never follows a link inside
    else:
        os.unlink(doomed)
    return path


@contextlib.contextmanager
def _locked(base: str, username: str) -> Iterator[None]:
    folder = os.path.join(base, ".locks")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(folder, username), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _copy(stream: IO[bytes], path: str, limit: int) -> int:
    """Copy `stream` to a new file at `path`; TooLarge (file removed) past `limit` bytes."""
    size = 0
    with open(path, "xb") as out:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the upload is larger than {limit} bytes", {"limit": limit})
            out.write(chunk)
    os.chmod(path, 0o644)
    return size
