"""Uploads being written: each is a file in `<drive_root>/.partial/`, outside every user's drive,
locked (`flock`) by the request writing it from just after its creation until it is renamed into
the drive or deleted.

A crash (the API process killed mid-upload, the machine lost) leaves such a file behind, unlocked:
it held nobody's quota, but it held the disk for good. `sweep` deletes those at start-up: a file
nobody holds the lock of and older than ABANDONED_S (a file is locked microseconds after it is
made; the age covers that gap). An upload in progress in another API process sharing the
directory holds its lock, however slowly its client sends, so it is never taken for one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import stat
import time
from collections.abc import Iterator

PARTIAL = ".partial"  # beside the users' drives
ABANDONED_S = 60.0
log = logging.getLogger("dizest.api")


@contextlib.contextmanager
def partial_file(base: str, username: str) -> Iterator[tuple[str, int]]:
    """A new, locked file for `username`'s upload under `base` (the drive root): its path and an
    fd open for writing. Deleted on the way out unless it was renamed away meanwhile."""
    folder = os.path.join(base, PARTIAL)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, f"{username}.{secrets.token_hex(8)}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.fchmod(fd, 0o644)  # whatever the umask: flows (other uids) read the drive
        yield path, fd
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # renamed into the drive: nothing there any more
        os.close(fd)  # releases the lock, after the unlink


def sweep(root: str, now: float | None = None) -> list[str]:
    """Delete the uploads a crash left in `root`'s partial folder (unlocked, older than
    ABANDONED_S); returns their names. Drives being deleted (folders) are not looked at."""
    folder = os.path.join(os.path.realpath(root), PARTIAL)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    now = time.time() if now is None else now
    gone = []
    for name in sorted(names):
        path = os.path.join(folder, name)
        try:
            if _abandoned(path, now):
                gone.append(name)
        except OSError as exc:  # kept for the next start
            log.warning("could not delete a half-written upload %s: %s", name, exc)
    return gone


def _abandoned(path: str, now: float) -> bool:
    """Delete `path` if it is a regular file nobody holds locked, older than ABANDONED_S. Opened
    for writing (never truncated): over NFS, an exclusive lock needs that."""
    flags = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError as exc:  # gone, a link or a folder (a drive being deleted): not one of ours
        if exc.errno in (errno.ENOENT, errno.ELOOP, errno.EISDIR, errno.ENXIO):
            return False
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < ABANDONED_S:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # an upload in progress
            return False
        try:
            if os.lstat(path).st_ino != info.st_ino:  # replaced meanwhile
                return False
            os.unlink(path)
        except FileNotFoundError:  # its upload ended meanwhile
            return False
        return True
    finally:
        os.close(fd)
