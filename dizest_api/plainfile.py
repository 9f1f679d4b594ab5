"""Opening a file where a flow may have written, without following a link it planted there.

The API process is root and sees the host's files; a flow (or a value's code, run by the
converter) writes in folders this process later reads: its artifact folder, the converter's
working folder. A symlink there, swapped in at any moment, must never make this process read
another file. So the path is opened one folder at a time below a root this process chose, each
step with O_NOFOLLOW, and only a plain file is returned.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

_STEP = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW


def open_beneath(root: str, rel: str) -> BinaryIO | None:
    """`root`/`rel` opened for reading if every part of `rel` is a real folder or, last, a
    plain file no hard link shares (one could name a file of another run); else None."""
    parts = rel.split(os.sep)
    if any(part in ("", ".", "..") for part in parts):
        return None
    fd = -1
    try:
        fd = os.open(root, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY)
        for part in parts[:-1]:
            inner = os.open(part, _STEP | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        inner = os.open(parts[-1], _STEP | os.O_NONBLOCK, dir_fd=fd)  # a FIFO must not block
        os.close(fd)
        fd = inner
        info = os.fstat(fd)
    except OSError:
        if fd >= 0:
            os.close(fd)
        return None
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")
