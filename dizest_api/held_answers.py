"""Converted answers being downloaded: the disk their files hold, bounded per user.

A conversion's answer is a file in the converter's folder (`dizest_api.convert`). The folder is
deleted as its download starts, but the open file keeps its blocks until the response closes,
which a slow client decides: a probe's three raw-socket clients, reading slowly, held 3.1 GB of
disk with three answers of 1 GB, and more requests would have held more (the one-conversion-
per-user limit ends with the conversion, not with its download). So each API process counts,
per user, the bytes of the answers their downloads hold, from the end of the conversion to the
close of the response (or, should a response never be sent, the file's collection), and refuses
an answer that would take the user past `limit` bytes: 429 `too_many_downloads`, its file
closed at once.

Invariant: `held(user)` is the sum of the sizes of `user`'s answers handed out by `hold` and
not closed yet, and never more than `limit`.
"""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Callable
from typing import BinaryIO

from dizest_api.errors import ApiError


class TooManyDownloads(ApiError):
    status, code = 429, "too_many_downloads"


class HeldAnswers:
    """Per user, the bytes of converted answers their downloads in progress hold."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._bytes: dict[str, int] = {}
        self._lock = threading.Lock()

    def held(self, user: str) -> int:
        with self._lock:
            return self._bytes.get(user, 0)

    def hold(self, user: str, file: BinaryIO) -> BinaryIO:
        """`file` (an answer, opened; this call owns it) as a file whose close gives its bytes
        back to `user`; TooManyDownloads, `file` closed, if they would pass the limit."""
        try:
            size = os.fstat(file.fileno()).st_size
            fd = os.dup(file.fileno())
        finally:
            file.close()
        with self._lock:
            now = self._bytes.get(user, 0)
            if now + size > self.limit:
                os.close(fd)
                raise TooManyDownloads(
                    f"your downloads of converted outputs in progress on this server hold "
                    f"{now} bytes; this answer's {size} would pass the {self.limit} allowed: "
                    "retry once one of them has ended",
                    {"held_bytes": now, "answer_bytes": size, "max_held_bytes": self.limit,
                     "retry_after": 5},
                )  # fmt: skip
            self._bytes[user] = now + size
        return _Held(fd, lambda: self._release(user, size))

    def _release(self, user: str, size: int) -> None:
        with self._lock:
            left = self._bytes.get(user, 0) - size
            if left > 0:
                self._bytes[user] = left
            else:
                self._bytes.pop(user, None)


class _Held(io.FileIO):
    """A plain read-only file (a server may `sendfile` it) that calls `release` once, when it
    is first closed: by the server at the response's end, or at its collection."""

    def __init__(self, fd: int, release: Callable[[], None]) -> None:
        super().__init__(fd, "r", closefd=True)
        self._release: Callable[[], None] | None = release

    def close(self) -> None:
        try:
            super().close()
        finally:
            release, self._release = getattr(self, "_release", None), None
            if release is not None:
                release()
