"""A folder tree on disk, walked and deleted without recursion and without whole paths.

Python 3.11's `os.walk` and `shutil.rmtree` recurse once per level and join paths: a tree a
thousand levels deep raises RecursionError, and `os.walk` silently skips a folder whose path
passes PATH_MAX (ENAMETOOLONG), so whatever lies below it goes uncounted. Here a walk holds one
directory open at a time and opens the next relative to it (`openat`, never following a link);
going back up opens `..` and checks it is the very directory it came from (device and inode), so
a folder moved meanwhile ends the walk with `TreeChanged` rather than leading it elsewhere.
Depth costs the names still to visit on each level: no stack frame, no path. Nothing it cannot
read is skipped: the error is raised (an entry deleted meanwhile is simply gone).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class TreeChanged(OSError):
    """A folder being walked was moved or replaced meanwhile."""


@dataclass(frozen=True)
class Node:
    """One entry of a walk: its parts below the walk's top and its `lstat`; `cut`: a folder
    the walk did not enter (its depth limit) that holds entries."""

    parts: tuple[str, ...]
    info: os.stat_result
    cut: bool = False

    @property
    def path(self) -> str:
        return "/".join(self.parts)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.info.st_mode)


@dataclass
class _Level:
    parts: tuple[str, ...]
    todo: list[tuple[str, os.stat_result]] = field(default_factory=list)


def _ident(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _entries(fd: int) -> list[tuple[str, os.stat_result]]:
    """The entries of the directory open as `fd`, last name first (popped in order)."""
    found = []
    with os.scandir(fd) as names:
        for entry in names:
            with contextlib.suppress(FileNotFoundError):  # deleted meanwhile: nothing there
                found.append((entry.name, entry.stat(follow_symlinks=False)))
    found.sort(key=lambda pair: pair[0], reverse=True)
    return found


class _Cursor:
    """The one open directory of a walk, and the identities of the folders above it."""

    def __init__(self, top: str) -> None:
        self.fd = os.open(top, _DIR)
        self.above = [_ident(os.fstat(self.fd))]

    def down(self, name: str, seen: os.stat_result) -> None:
        child = os.open(name, _DIR, dir_fd=self.fd)
        self._switch(child, _ident(seen))
        self.above.append(_ident(seen))

    def up(self) -> None:
        self.above.pop()
        self._switch(os.open("..", _DIR, dir_fd=self.fd), self.above[-1])

    def _switch(self, fd: int, expected: tuple[int, int]) -> None:
        if _ident(os.fstat(fd)) != expected:
            os.close(fd)
            raise TreeChanged(errno.ESTALE, "a folder moved while it was walked")
        os.close(self.fd)
        self.fd = fd

    def close(self) -> None:
        os.close(self.fd)


def _holds_entries(parent: int, name: str) -> bool:
    fd = os.open(name, _DIR, dir_fd=parent)
    try:
        with os.scandir(fd) as names:
            return next(names, None) is not None
    finally:
        os.close(fd)


def walk(top: str, max_depth: int | None = None, mark_cut: bool = False) -> Iterator[Node]:
    """Every entry below the folder `top`, a folder before what it holds, names in order;
    folders `max_depth` parts below `top` are not entered (`mark_cut`: say which hold entries).
    Links are entries, never followed; a `top` that is gone holds nothing."""
    try:
        cursor = _Cursor(top)
    except FileNotFoundError:
        return
    try:
        levels = [_Level((), _entries(cursor.fd))]
        while levels:
            level = levels[-1]
            if not level.todo:
                levels.pop()
                if levels:
                    cursor.up()
                continue
            name, info = level.todo.pop()
            parts = (*level.parts, name)
            node = Node(parts, info)
            if not node.is_dir:
                yield node
            elif max_depth is not None and len(parts) >= max_depth:
                yield Node(parts, info, mark_cut and _holds_entries(cursor.fd, name))
            else:
                yield node
                cursor.down(name, info)
                levels.append(_Level(parts, _entries(cursor.fd)))
    finally:
        cursor.close()


def remove_tree(path: str) -> None:
    """Delete `path`: a file, a link (not what it points to) or a folder with everything in it,
    however deep; a path already gone is no error."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        _gone_ok(os.unlink, path)
        return
    cursor = _Cursor(path)
    try:
        levels = [_Level((), _entries(cursor.fd))]
        while levels:
            level = levels[-1]
            if not level.todo:
                levels.pop()
                if levels:
                    cursor.up()
                    _gone_ok(os.rmdir, level.parts[-1], dir_fd=cursor.fd)
                continue
            name, info = level.todo.pop()
            if stat.S_ISDIR(info.st_mode):
                cursor.down(name, info)
                levels.append(_Level((*level.parts, name), _entries(cursor.fd)))
            else:
                _gone_ok(os.unlink, name, dir_fd=cursor.fd)
    finally:
        cursor.close()
    _gone_ok(os.rmdir, path)


def remove_alone(path: str) -> bool:
    """`remove_tree(path)` unless another process is deleting it (a lock on the folder itself):
    False when it was busy, True once it is gone."""
    try:
        is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
        fd = os.open(path, _DIR) if is_dir else -1
    except FileNotFoundError:
        return True
    if fd < 0:
        _gone_ok(os.unlink, path)
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        remove_tree(path)
        return True
    finally:
        os.close(fd)


def _gone_ok(remove: Callable[..., None], name: str, **kw: int) -> None:
    with contextlib.suppress(FileNotFoundError):
        remove(name, **kw)
