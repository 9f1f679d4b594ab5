"""A user's uploads in flight: at most `DIZEST_USER_UPLOADS` at once, over every API process
sharing the drive root.

An upload's body is read in a server thread and written aside (`dizest_api.partials`; a
multipart one to the temporary folder first), and counted against its user's drive quota once
whole: each upload fits what the quota leaves, alone. A probe's 8 uploads at once, by one user
with a 10 MB quota, held 64 MB of the disk and 8 of the server's threads for as long as its
client kept them open (nginx streams uploads through, `deploy/nginx.conf`: a client that sends
slowly holds its thread as long as it likes); a few such users fill the disk to its reserve
(every user's writes then answer 507, and the disk guard stops someone's flow) or take every
thread. With N slots a user's uploads hold at most N threads of a process, and N times what
the quota leaves free (each at most `DIZEST_MAX_UPLOAD_BYTES`).

A slot is an exclusive `flock` on `<drive_root>/.locks/.upload.<user>.<n>` (beside the drive
locks, `.locks/<user>`, under a name none of them has: no username starts with a dot), taken
before the request's body is read (`take`) and let go when the request ends (`give_back`), or
when its process dies.
"""

from __future__ import annotations

import fcntl
import os

from dizest_api.drives import LOCKS
from dizest_api.errors import ApiError


class TooManyUploads(ApiError):
    status, code = 429, "too_many_uploads"


def take(root: str, username: str, slots: int) -> int:
    """A free one of `username`'s `slots` upload slots, held by the returned fd until it is
    closed; TooManyUploads when all are held."""
    folder = os.path.join(os.path.realpath(root), LOCKS)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    for n in range(slots):
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(os.path.join(folder, f".upload.{username}.{n}"), flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    raise TooManyUploads(
        f"you already have {slots} upload(s) in progress; retry when one ends",
        {"max_uploads": slots, "retry_after": 5},
    )


def give_back(fd: int) -> None:
    os.close(fd)  # closing lets go of the lock
