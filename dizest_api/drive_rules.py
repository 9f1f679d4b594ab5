"""The rules of a drive: which paths it may hold, how much a listing shows, and the errors a
refused drive operation raises (each with its HTTP status and code).

The limits are defined here once; everything that writes to a drive, or names a path in one
(a file attached to a submit too), goes through `clean`, and a move through `fits_below`:

- `MAX_DEPTH` (32) parts in a path: its folders and its last name;
- `MAX_PATH` (1024) bytes in a path, as the file system sees it (UTF-8), `MAX_PART` (255,
  NAME_MAX) in one part.

So a drive's deepest path, below a drive root of up to ~2,900 bytes and a user's folder, stays
well under PATH_MAX (4096 bytes): every entry can be named whole, and no walk meets a path it
cannot open. A move checks the deepest and the longest path it would make: the destination's
own, plus those inside the moved folder (`Extent`). Trees made before these limits may be deeper
and longer: `dizest_core.tree` reads and deletes them without naming whole paths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from dizest_api.errors import ApiError

MAX_DEPTH = 32
MAX_PATH = 1024
MAX_PART = 255
LIST_MAX_ENTRIES = 10_000  # entries one listing answers at most (the files quota's default)


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


class CutShort(DriveProblem):
    """A body that ended before its Content-Length (the client went away or lied)."""

    status, code = 400, "body_cut_short"


class DiskFull(DriveProblem):
    """The server's disk is below its reserve (DIZEST_DISK_RESERVE_MB): nothing is written."""

    status, code = 507, "insufficient_storage"


@dataclass(frozen=True)
class Extent:
    """How far a tree reaches below its top: the parts and the bytes of its deepest and its
    longest path (a file: 0, 0)."""

    depth: int = 0
    length: int = 0

    def add(self, parts: tuple[str, ...]) -> Extent:
        """This extent, reaching at least as far as the path of `parts`."""
        length = size_of("/".join(parts))
        return Extent(max(self.depth, len(parts)), max(self.length, length))


def size_of(rel: str) -> int:
    """The bytes of `rel` as the file system sees it."""
    return len(os.fsencode(rel))


def limits() -> dict[str, int]:
    """The path limits, as an error's details give them."""
    return {"max_depth": MAX_DEPTH, "max_path_bytes": MAX_PATH, "max_part_bytes": MAX_PART}


def clean(path: str, allow_root: bool = False) -> str:
    """`path` as a normalized relative drive path; BadPath for anything that could escape, or
    that passes the limits."""
    raw = path.strip("/") if allow_root else path
    if raw in ("", ".") and allow_root:
        return ""
    if not raw or "\x00" in raw or "\\" in raw:
        raise BadPath(f"invalid path {path!r}", {"path": path})
    if raw.startswith("/"):
        raise BadPath(f"path {path!r} must be relative to your drive", {"path": path})
    parts = raw.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BadPath(f"path {path!r} has an empty, '.' or '..' part", {"path": path})
    rel = "/".join(parts)
    fits_below(rel, Extent(), path)
    return rel


def fits_below(rel: str, inner: Extent, shown: str) -> None:
    """BadPath unless `rel`, with a tree reaching `inner` below it, keeps within the limits."""
    parts = rel.split("/") if rel else []
    if any(size_of(p) > MAX_PART for p in parts):
        raise BadPath(f"path {shown!r} has a part over {MAX_PART} bytes", {"path": shown, **limits()})  # fmt: skip
    depth = len(parts) + inner.depth
    length = size_of(rel) + (inner.length + 1 if rel and inner.length else inner.length)
    if depth > MAX_DEPTH:
        what = f"{depth} levels deep (at most {MAX_DEPTH})"
        raise BadPath(f"path {shown!r} would make paths {what}", {"path": shown, **limits()})
    if length > MAX_PATH:
        what = f"{length} bytes long (at most {MAX_PATH})"
        raise BadPath(f"path {shown!r} would make paths {what}", {"path": shown, **limits()})
