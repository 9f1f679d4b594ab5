"""Users' drives on the server: one directory per user, `<drive_root>/<username>`, with quotas.

Invariants:
- Every path a caller names goes through `drive_rules.clean` (relative, "/"-separated, no "..",
  no empty part, no NUL or backslash, within the depth and length limits; a move also checks the
  paths it would make below its destination) and then through `dizest_core.drive.Drive`, which
  resolves symlinks and refuses anything outside the user's root: one rule for flows and for the
  API. A refused path stores nothing.
- A file reaches its final name only whole: it is written to `<drive_root>/.partial/` first
  (outside every user's drive, so never listed nor read by a run) and renamed in once complete;
  one a crash left there is deleted at start-up (`dizest_api.partials`).
- Usage counts every entry against the files quota (a file, a folder and a link count one each)
  and the bytes of files against the bytes quota, plus what the user attached to runs that still
  hold it (`attached`, see `dizest_api.attachments`). It is measured on disk by a walk that skips
  nothing (`dizest_core.tree`), and the check and the change happen under a per-user lock (`fcntl` on
  a file beside the drives), so simultaneous uploads, from threads or from several API processes
  sharing the directory, cannot pass a quota together.
- Nothing is written while the disk holding the drives has less free space than the disk
  guard's reserve (DIZEST_DISK_RESERVE_MB): 507, and nothing is left of the write.

The drive root is a shared directory like `DIZEST_ARTIFACT_DIR` (`DIZEST_DRIVE_ROOT`): workers on
other machines read a run's files from there, at the same path. Runs only ever read a drive
(`dizest_core.confine` exposes it read-only); only this module writes to it, and deletes it when
its user is removed (`remove_drive`: renamed into `.partial` at once, then deleted; a deletion
cut short is finished by the next removal, or at start-up, `finish_removals`).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from dizest_api.attachments import ATTACHED, Attachments
from dizest_api.drive_rules import (
    LIST_MAX_ENTRIES,
    MAX_DEPTH,
    BadPath,
    CutShort,
    DiskFull,
    Extent,
    NoSuchPath,
    PathConflict,
    QuotaBytes,
    QuotaFiles,
    TooLarge,
    clean,
    fits_below,
)
from dizest_api.partials import PARTIAL, partial_file
from dizest_core.diskguard import free_mb
from dizest_core.drive import Drive, DriveError
from dizest_core.tree import remove_alone, remove_tree, walk

CHUNK = 1 << 20
MB = 1 << 20
RESERVE_EVERY = 8 << 20  # an upload looks at the disk reserve again each time it passes this
LOCKS = ".locks"  # beside the users' drives (and ATTACHED, PARTIAL)
REMOVED = ".removed."  # `<user>.removed.<hex>` in PARTIAL: a drive being deleted
log = logging.getLogger("dizest.api")


@dataclass(frozen=True)
class Usage:
    """What counts against a user's quotas: `bytes` and `files` (entries: files, folders and
    links) in all; of them, what files attached to their live runs hold."""

    bytes: int
    files: int
    attached_bytes: int = 0
    attached_files: int = 0

    def to_dict(self, quota_bytes: int, quota_files: int) -> dict[str, int]:
        return {
            "bytes": self.bytes,
            "files": self.files,
            "quota_bytes": quota_bytes,
            "quota_files": quota_files,
            "attached_bytes": self.attached_bytes,
            "attached_files": self.attached_files,
        }


def drive_path(root: str, username: str) -> str:
    """Where `username`'s drive lives: what their runs read as `drive` (a worker mounts it only
    if it is a folder right under its own drive root)."""
    return os.path.join(os.path.realpath(root), username)


class UserDrive:
    """One user's drive: list, read, store, move and delete, within its quotas."""

    def __init__(
        self,
        root: str,
        username: str,
        quota_bytes: int,
        quota_files: int,
        workdir_root: str | None = None,
        reserve_mb: int = 0,
    ) -> None:
        self.base = os.path.realpath(root)
        self.username = username
        self.path = drive_path(root, username)
        self.quota_bytes = quota_bytes
        self.quota_files = quota_files
        self.reserve_mb = reserve_mb
        os.makedirs(self.path, mode=0o755, exist_ok=True)
        self.drive = Drive(self.path)
        self.attached = Attachments(self.base, username, workdir_root)

    # -- reading ----------------------------------------------------------------------
    def resolve(self, path: str) -> str:
        """The real path of `path` in this drive; BadPath if it would leave it."""
        rel = clean(path, allow_root=True)
        try:
            return self.drive.abspath(rel)
        except DriveError:
            raise BadPath(f"path {path!r} leads outside your drive", {"path": path}) from None

    def entry(self, real: str) -> dict[str, Any]:
        rel = os.path.relpath(real, self.path).replace(os.sep, "/")
        return _entry("" if rel == "." else rel, os.stat(real))

    def listing(self, path: str, recursive: bool = False) -> tuple[list[dict[str, Any]], bool]:
        """The entries of folder `path` (`recursive`: to the depth limit, below the drive's
        top), at most LIST_MAX_ENTRIES; and whether some were left out."""
        real = self.resolve(path)
        if not os.path.isdir(real):
            raise NoSuchPath(f"no folder {path!r} in your drive")
        prefix = os.path.relpath(real, self.path).replace(os.sep, "/").removeprefix(".")
        below = MAX_DEPTH - (prefix.count("/") + 1 if prefix else 0)
        depth = max(1, below) if recursive else 1
        items: list[dict[str, Any]] = []
        cut = False
        with self.locked():
            for node in walk(real, depth, mark_cut=recursive):
                if len(items) >= LIST_MAX_ENTRIES:
                    cut = True
                    break
                cut = cut or node.cut
                rel = f"{prefix}/{node.path}" if prefix else node.path
                info = node.info
                if stat.S_ISLNK(info.st_mode):  # as what it points to, if that is in the drive
                    try:
                        info = os.stat(self.drive.abspath(rel))
                    except (OSError, DriveError):
                        continue
                items.append(_entry(rel, info))
        items.sort(key=lambda i: i["path"] + ("/" if i["type"] == "directory" else ""))
        return items, cut

    def usage(self) -> Usage:
        with self.locked():
            return self._usage()

    def _usage(self) -> Usage:
        size = entries = 0
        for node in walk(self.path):
            entries += 1
            size += 0 if node.is_dir else node.info.st_size
        held_bytes, held_files = self.attached.held()
        return Usage(size + held_bytes, entries + held_files, held_bytes, held_files)

    # -- writing ----------------------------------------------------------------------
    def store(
        self, path: str, stream: IO[bytes], limit: int, expected: int | None = None
    ) -> dict[str, Any]:
        """Write `stream` to `path` (created or replaced) if it fits `limit` and the quotas, and
        holds `expected` bytes when given (a request's Content-Length: a client gone before its
        end left a stream that just ends, and its first part is no file of the user's)."""
        rel = clean(path)
        target = self.resolve(rel)
        if target == self.path or os.path.isdir(target):
            raise PathConflict(f"{path!r} is a folder", {"path": path})
        self.keep_reserve(self.base)
        replaced = _file_size(target)
        room = self.quota_bytes - self.usage().bytes + replaced  # an upload stops past it
        with partial_file(self.base, self.username) as (partial, fd):
            size = _copy(
                stream, fd, min(limit, room), lambda: self.keep_reserve(self.base),
                None if room >= limit else QuotaBytes(
                    f"your drive quota is {self.quota_bytes} bytes; {max(0, room)} are free",
                    {"free": max(0, room), "quota_bytes": self.quota_bytes},
                ),
            )  # fmt: skip
            if expected is not None and size != expected:
                raise CutShort(
                    f"the upload ended after {size} of its {expected} bytes; nothing was stored",
                    {"received": size, "content_length": expected},
                )
            with self.locked():
                self._check_parents(rel)
                target = self.resolve(rel)  # again, under the lock: a folder may have moved
                if target == self.path or os.path.isdir(target):  # made meanwhile
                    raise PathConflict(f"{path!r} is a folder", {"path": path})
                old = os.path.getsize(target) if os.path.isfile(target) else None
                adds = 0 if old is not None else 1 + self._missing(os.path.dirname(rel))
                self.fits(size - (old or 0), adds)
                self.keep_reserve(self.base)  # with the upload on disk
                os.makedirs(os.path.dirname(target), exist_ok=True)
                os.replace(partial, target)
                return self.entry(target)  # under the lock: the drive may go right after it

    def mkdir(self, path: str) -> dict[str, Any]:
        rel = clean(path)
        target = self.resolve(rel)
        with self.locked():
            self._check_parents(rel)
            if os.path.exists(target) and not os.path.isdir(target):
                raise PathConflict(f"{path!r} is a file", {"path": path})
            self._make_parents(rel, target)
            return self.entry(target)

    def move(self, src: str, dst: str) -> dict[str, Any]:
        rel = clean(dst)
        source, target = self.resolve(clean(src)), self.resolve(rel)
        with self.locked():
            if not os.path.lexists(source):
                raise NoSuchPath(f"no {src!r} in your drive")
            if os.path.lexists(target):
                raise PathConflict(f"{dst!r} already exists", {"path": dst})
            if os.path.commonpath([source, target]) == source:
                raise BadPath(f"cannot move {src!r} into itself", {"path": dst})
            self._check_parents(rel)
            fits_below(rel, _extent(source), dst)
            self._make_parents(os.path.dirname(rel), os.path.dirname(target))
            os.rename(source, target)
            return self.entry(target)

    def delete(self, path: str) -> None:
        rel = clean(path)
        self.resolve(rel)
        with self.locked():
            entry = os.path.join(self.resolve(os.path.dirname(rel)), os.path.basename(rel))
            if not os.path.lexists(entry):
                raise NoSuchPath(f"no {path!r} in your drive")
            remove_tree(entry)  # a link itself, never what it points to

    # -- quotas -----------------------------------------------------------------------
    def fits(self, size: int, entries: int) -> None:
        """QuotaBytes / QuotaFiles unless `size` more bytes and `entries` more entries fit
        (under the lock)."""
        used = self._usage()
        details = {"size": size, "entries": entries, **used.to_dict(self.quota_bytes, self.quota_files)}  # fmt: skip
        if used.bytes + size > self.quota_bytes:
            raise QuotaBytes(
                f"your drive quota is {self.quota_bytes} bytes; {used.bytes} are used", details
            )
        if used.files + entries > self.quota_files:
            raise QuotaFiles(
                f"your drive holds at most {self.quota_files} files and folders; "
                f"{used.files} are used",
                details,
            )

    def keep_reserve(self, where: str, size: int = 0) -> None:
        """DiskFull if writing `size` more bytes at `where` would leave less free space than the
        disk guard's reserve."""
        free = free_mb(where) if self.reserve_mb else None
        if free is not None and free - size / MB < self.reserve_mb:
            details = {"free_mb": int(free), "reserve_mb": self.reserve_mb, "retry_after": 60}
            raise DiskFull("the server's disk is nearly full; retry later", details)

    # -- internals --------------------------------------------------------------------
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

    def _missing(self, rel: str) -> int:
        """How many folders of `rel` (a folder's path) do not exist yet."""
        parts = rel.split("/") if rel else []
        here = [os.path.join(self.path, *parts[: i + 1]) for i in range(len(parts))]
        return sum(not os.path.lexists(p) for p in here)

    def _make_parents(self, rel: str, target: str) -> None:
        """Create folder `rel` (real path `target`) and its parents, counted (under the lock)."""
        missing = self._missing(rel)
        if missing:
            self.fits(0, missing)
            self.keep_reserve(self.base)
        os.makedirs(target, exist_ok=True)


def _entry(rel: str, info: os.stat_result) -> dict[str, Any]:
    kind = "directory" if stat.S_ISDIR(info.st_mode) else "file"
    return {
        "name": rel.rsplit("/", 1)[-1],
        "path": rel,
        "type": kind,
        "size": info.st_size if kind == "file" else None,
        "modified": info.st_mtime,
    }


def _file_size(path: str) -> int:
    """The size of the file at `path`; 0 for none (or none any more: the drive may go)."""
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return 0
    return info.st_size if stat.S_ISREG(info.st_mode) else 0


def _extent(real: str) -> Extent:
    """How far the tree at `real` reaches below it (a file or a link: nowhere)."""
    found = Extent()
    if os.path.isdir(real) and not os.path.islink(real):
        for node in walk(real):
            found = found.add(node.parts)
    return found


def remove_drive(root: str, username: str) -> str | None:
    """Delete `username`'s drive (their user is removed); the path it had, if it existed. It
    leaves at once (renamed out, under the drive lock), then its files are deleted, with what
    earlier removals left (`finish_removals`)."""
    if not username or os.sep in username or username.startswith("."):
        raise ValueError(f"not a user's drive name: {username!r}")
    base = os.path.realpath(root)
    path = os.path.join(base, username)
    if not os.path.isdir(base):
        return None
    with _locked(base, username):
        remove_tree(os.path.join(base, ATTACHED, username))
        if not os.path.lexists(path):
            return None
        folder = os.path.join(base, PARTIAL)
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.rename(path, os.path.join(folder, f"{username}{REMOVED}{secrets.token_hex(8)}"))
    finish_removals(root)
    return path


def finish_removals(root: str) -> list[str]:
    """Delete the drives removals renamed out and did not finish deleting (a crash, an error);
    those another process is deleting are left to it. Returns the names deleted."""
    folder = os.path.join(os.path.realpath(root), PARTIAL)
    try:
        names = [n for n in os.listdir(folder) if REMOVED in n]
    except FileNotFoundError:
        return []
    done = []
    for name in sorted(names):
        try:
            if remove_alone(os.path.join(folder, name)):
                done.append(name)
        except OSError as exc:  # kept for the next try; the removal itself is done
            log.warning("could not delete a removed drive %s yet: %s", name, exc)
    return done


@contextlib.contextmanager
def _locked(base: str, username: str) -> Iterator[None]:
    folder = os.path.join(base, LOCKS)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(folder, username), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _copy(
    stream: IO[bytes], fd: int, limit: int, check: Callable[[], None], over: Exception | None
) -> int:
    """Copy `stream` to the new file open at `fd`; past `limit` bytes, `over` (TooLarge if None)
    is raised; `check()` (the disk reserve) every RESERVE_EVERY bytes: parallel uploads must not
    take the disk past its reserve before their ends are checked (a probe's four did)."""
    size = 0
    with open(fd, "wb", closefd=False) as out:
        while chunk := stream.read(CHUNK):
            size += len(chunk)
            if size > limit:
                raise over or TooLarge(f"the upload is larger than {limit} bytes", {"limit": limit})
            if size // RESERVE_EVERY != (size - len(chunk)) // RESERVE_EVERY:
                check()
            out.write(chunk)
    return size
