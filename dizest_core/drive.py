"""The file-system handle apps get from `dizest.drive()`; invariant: every path resolves inside root.

A `Drive` is rooted at a directory (the run's working directory). Every method turns its
path argument into a real path through `Drive.abspath`, which follows symlinks and raises
`DriveError` unless the result is the root or lies beneath it. So `..`, absolute paths
outside the root and symlinks pointing outside cannot be used to read, write, list or
delete anything elsewhere.

A Drive may have a read-only `fallback` layer (on a server: the drive of the user who started
the run). Lookup order for reads (`read`, `exists`, `isfile`, `abspath`, `ls`, `copy` source):
the root first (files attached to the run, what its flows wrote), then the fallback. Writes,
moves, deletes and new folders always act on the root alone, so a flow never changes a user's
drive, and a file written in the root hides the drive's file of the same path from then on.

`drive.read` and `drive.write` are callable objects that also carry per-format methods,
matching DIZEST's `FileSystem`:

    drive.write("out/a.json", {"x": 1})       # dict/list -> JSON, str -> text, bytes -> binary
    drive.read.json("out/a.json", default={})

Runs in the worker's child process: only stdlib at module level; pandas is imported lazily.
"""

from __future__ import annotations

import contextlib
import csv
import json
import mimetypes
import os
import pickle
import shutil
from typing import IO, Any

from dizest_core.tree import remove_tree

StrPath = str | os.PathLike
Binary = bytes | bytearray | memoryview


class DriveError(PermissionError):
    """A path given to a Drive resolves outside its root (or targets the root itself)."""


def _pandas() -> Any:
    """The pandas module, or None when it is not installed."""
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def _join(path: tuple[StrPath, ...]) -> str:
    return os.path.join("", *(os.fspath(p) for p in path)) if path else ""


class Drive:
    """A directory handle whose every path resolves inside `root`."""

    def __init__(self, root: StrPath, fallback: StrPath | None = None) -> None:
        self.root = os.path.realpath(os.fspath(root))
        self.fallback = Drive(fallback) if fallback is not None else None
        self.read = Reader(self)
        self.write = Writer(self)

    def __repr__(self) -> str:
        return f"Drive({self.root!r})"

    # -- paths -------------------------------------------------------------------------

    def abspath(self, path: StrPath = "") -> str:
        """The real absolute path of `path`; DriveError unless it is root or inside it. With a
        fallback: the fallback's file when the root has nothing at `path` and it has."""
        own = self._own(path)
        if self.fallback is None or os.path.lexists(own):
            return own
        try:
            other = self.fallback.abspath(path)
        except DriveError:
            return own
        return other if os.path.exists(other) else own

    def _own(self, path: StrPath = "") -> str:
        """abspath in the root alone (what writes use)."""
        raw = os.fspath(path)
        resolved = os.path.realpath(os.path.join(self.root, raw))
        if not self._contains(resolved):
            raise DriveError(f"path {raw!r} resolves outside the drive root {self.root!r}")
        return resolved

    def _contains(self, resolved: str) -> bool:
        return os.path.commonpath([self.root, resolved]) == self.root

    def _entry(self, path: StrPath) -> str:
        """Like _own, but a final symlink names the link itself, not its target."""
        target = self._own(path)
        raw = os.path.join(self.root, os.fspath(path)).rstrip(os.sep)
        name = os.path.basename(raw)
        if name in ("", ".", "..") or not os.path.islink(raw):
            return target
        return os.path.join(self._own(os.path.dirname(raw)), name)

    def _for_write(self, path: StrPath) -> str:
        """abspath of a file about to be written, with its parent directories created."""
        target = self._own(path)
        if target == self.root:
            raise DriveError(f"cannot write a file over the drive root {self.root!r}")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        return target

    def _destination(self, path: StrPath) -> str:
        """abspath of a move/copy destination; the root itself is allowed (as a directory)."""
        return self.root if self._own(path) == self.root else self._for_write(path)

    def cd(self, *path: StrPath) -> Drive:
        """A new Drive rooted at `path` below this one (created if missing), with the same
        path below the fallback as its fallback."""
        target = self._own(_join(path))
        os.makedirs(target, exist_ok=True)
        below = None
        if self.fallback is not None:
            with contextlib.suppress(DriveError):
                below = self.fallback.abspath(_join(path))
        return Drive(target, below if below and os.path.isdir(below) else None)

    use = cd

    # -- queries -----------------------------------------------------------------------

    def exists(self, path: StrPath = "") -> bool:
        return os.path.exists(self.abspath(path))

    def isfile(self, path: StrPath) -> bool:
        return os.path.isfile(self.abspath(path))

    def isdir(self, path: StrPath = "") -> bool:
        return os.path.isdir(self.abspath(path))

    def mimetype(self, path: StrPath) -> str | None:
        return mimetypes.guess_type(self.abspath(path))[0]

    def ls(self, path: StrPath = "", recursive: bool = False) -> list[str]:
        """Sorted names relative to `path` ("/"-separated); directories end with "/". With a
        fallback: the names of both layers."""
        names = set(_listing(self._own(path), recursive))
        if self.fallback is not None:
            with contextlib.suppress(DriveError):
                names.update(self.fallback.ls(path, recursive))
        return sorted(names)

    def count(self, path: StrPath = "") -> int:
        """Number of entries directly inside directory `path` (0 if it is not one)."""
        return len(self.ls(path))

    # -- changes -----------------------------------------------------------------------

    def makedirs(self, path: StrPath) -> None:
        os.makedirs(self._own(path), exist_ok=True)

    def delete(self, path: StrPath) -> None:
        """Remove a file, symlink or directory tree; missing paths are ignored."""
        target = self._entry(path)
        if target == self.root:
            raise DriveError(f"refusing to delete the drive root {self.root!r}")
        remove_tree(target)  # a file, a link or a tree however deep; gone already: nothing

    def move(self, src: StrPath, dst: StrPath) -> None:
        source = self._entry(src)
        if source == self.root:
            raise DriveError(f"refusing to move the drive root {self.root!r}")
        shutil.move(source, self._destination(dst))

    def copy(self, src: StrPath, dst: StrPath) -> None:
        """Copy a file or a directory tree (symlinks are copied as links, not followed)."""
        source = self.abspath(src)
        target = self._destination(dst)
        if os.path.isdir(source):
            if os.path.commonpath([source, target]) == source:
                raise ValueError(f"cannot copy {os.fspath(src)!r} into itself")
            shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(source, target)


def _listing(base: str, recursive: bool) -> list[str]:
    if not os.path.isdir(base):
        return []
    if not recursive:
        return [_name(e.name, e.is_dir()) for e in os.scandir(base)]
    return _walk(base)


def _name(rel: str, is_dir: bool) -> str:
    rel = rel.replace(os.sep, "/")
    return rel + "/" if is_dir else rel


def _walk(base: str) -> list[str]:
    """Every entry under `base`, relative to it; symlinked directories are not descended."""
    names: list[str] = []
    for top, dirs, files in os.walk(base):
        rel = os.path.relpath(top, base)
        prefix = "" if rel == os.curdir else rel + os.sep
        names.extend(_name(prefix + d, True) for d in dirs)
        names.extend(_name(prefix + f, False) for f in files)
    return names


class Reader:
    """`drive.read(path, default=None, mode="r")`, plus `.text/.bytes/.json/.pickle/.csv`."""

    def __init__(self, drive: Drive) -> None:
        self._drive = drive

    def _file(self, path: StrPath) -> str | None:
        target = self._drive.abspath(path)
        return target if os.path.isfile(target) else None

    def __call__(self, path: StrPath, default: Any = None, mode: str = "r") -> Any:
        target = self._file(path)
        if target is None:
            return default
        if "b" in mode:
            with open(target, mode) as f:
                return f.read()
        with open(target, mode, encoding="utf-8") as f:
            return f.read()

    def text(self, path: StrPath, default: str | None = None) -> str | None:
        return self(path, default=default, mode="r")

    def bytes(self, path: StrPath, default: Binary | None = None) -> Binary | None:
        return self(path, default=default, mode="rb")

    def json(self, path: StrPath, default: Any = None) -> Any:
        target = self._file(path)
        if target is None:
            return default
        with open(target, encoding="utf-8") as f:
            return json.load(f)

    def pickle(self, path: StrPath, default: Any = None) -> Any:
        target = self._file(path)
        if target is None:
            return default
        with open(target, "rb") as f:
            return pickle.load(f)

    def csv(self, path: StrPath, default: Any = None, **kw: Any) -> Any:
        """A pandas DataFrame (kw go to `pandas.read_csv`), or a list of rows without pandas."""
        target = self._file(path)
        if target is None:
            return default
        pd = _pandas()
        if pd is not None:
            return pd.read_csv(target, **kw)
        with open(target, newline="", encoding="utf-8") as f:
            return list(csv.reader(f))


class Writer:
    """`drive.write(path, data)`, plus `.text/.bytes/.json/.pickle/.csv/.file`."""

    def __init__(self, drive: Drive) -> None:
        self._drive = drive

    def __call__(self, path: StrPath, data: Any) -> None:
        """str -> text, bytes -> binary, dict/list -> JSON; parent directories are created."""
        if isinstance(data, str):
            self.text(path, data)
        elif isinstance(data, Binary):
            self.bytes(path, data)
        elif isinstance(data, dict | list):
            self.json(path, data)
        else:
            raise TypeError(f"cannot write {type(data).__name__} to {os.fspath(path)!r}")

    def text(self, path: StrPath, data: str) -> None:
        with open(self._drive._for_write(path), "w", encoding="utf-8") as f:
            f.write(data)

    def bytes(self, path: StrPath, data: Binary) -> None:
        with open(self._drive._for_write(path), "wb") as f:
            f.write(data)

    def json(self, path: StrPath, obj: Any, indent: int | None = 2) -> None:
        with open(self._drive._for_write(path), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=indent, ensure_ascii=False)

    def pickle(self, path: StrPath, obj: Any) -> None:
        with open(self._drive._for_write(path), "wb") as f:
            pickle.dump(obj, f)

    def csv(self, path: StrPath, data: Any) -> None:
        """A DataFrame (anything with `to_csv`) without its index, or an iterable of rows."""
        target = self._drive._for_write(path)
        if hasattr(data, "to_csv"):
            data.to_csv(target, index=False)
            return
        with open(target, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(data)

    def file(self, path: StrPath, fileobj: IO[Any]) -> None:
        """Copy the bytes of a readable file-like object to `path`."""
        with open(self._drive._for_write(path), "wb") as f:
            shutil.copyfileobj(fileobj, f)
