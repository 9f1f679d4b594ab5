"""A user's request bodies in flight: at most `DIZEST_USER_BODIES` at once, over every API
process sharing the drive root.

A body of known length up to BODY_BUFFER comes whole with its request's head before a server
thread takes the request (`dizest_api.request_reads.small_body`); any other (larger, chunked,
or sent after a 100 Continue) is read by a thread, each read waiting up to
DIZEST_REQUEST_BODY_TIMEOUT_S for its client. One user sending as many such bodies as the
server has threads, each a byte every 59 s, held every thread: every other user's requests
waited (a probe on `dizest serve --threads 4`: 6 JSON saves of 100 kB, trickled; another user's
GET /runs had no answer in 30 s). So such a request takes one of its user's slots, after
authentication and before its view reads any of its body (`before_body`, the app's hook; a
trigger, whose caller is known only by its secret, takes one of its owner's), and gives it back
when the request ends (`give_back`, at teardown), or when its process dies; none free is 429
`too_many_bodies`, the body unread. A user's bodies hold at most that many threads over the API
processes, whatever route they go to.

Uploads are counted among them, not apart: what a slot bounds is a thread waiting on a client,
and an upload is one such wait like any other (a second count would let a user hold the sum).
An upload is counted against its drive quota only once whole (`dizest_api.partials` writes it
aside meanwhile), so the same slots bound what a user's uploads in progress hold of the disk:
at most DIZEST_USER_BODIES times what the quota leaves (a probe's 8 uploads at once, by one
user with a 10 MB quota, had held 64 MB), plus BODY_BUFFER for each small one.

A slot is an exclusive `flock` on `<drive_root>/.locks/.body.<user>.<n>` (beside the drive
locks, `.locks/<user>`, under a name none of them has: no username starts with a dot).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Mapping
from typing import Any

from flask import g, request

from dizest_api.drives import LOCKS
from dizest_api.errors import ApiError
from dizest_api.services import services

BODY_BUFFER = 32 * 1024  # a body of known length up to this comes whole before a thread
RETRY_AFTER_S = 5
HELD = "dizest_body_slot"  # in `g`: the fd of the request's slot


class TooManyBodies(ApiError):
    status, code = 429, "too_many_bodies"


def thread_reads(environ: Mapping[str, Any]) -> bool:
    """Whether a server thread waits for this request's body: `small_body`'s rule seen from the
    WSGI side (chunked, or expecting 100-continue, or longer than BODY_BUFFER). With gunicorn's
    own TLS a thread reads every request (its head too); only these are counted."""
    if "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return True
    raw = environ.get("CONTENT_LENGTH") or "0"
    if not raw.isdigit():  # gunicorn refuses such a head; another server: on the safe side
        return True
    length = int(raw)
    return length > BODY_BUFFER or (length > 0 and "HTTP_EXPECT" in environ)


def take(root: str, username: str, slots: int) -> int:
    """A free one of `username`'s `slots` body slots, held by the returned fd until it is
    closed; TooManyBodies when all are held."""
    folder = os.path.join(os.path.realpath(root), LOCKS)
    os.makedirs(folder, mode=0o700, exist_ok=True)
    for n in range(slots):
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(os.path.join(folder, f".body.{username}.{n}"), flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd
    raise TooManyBodies(
        f"you already have {slots} request bodies being received (uploads, large saves or "
        "submits); retry when one ends",
        {"max_bodies": slots, "retry_after": RETRY_AFTER_S},
    )


def hold(username: str) -> None:
    """Before anything reads the request's body: one of `username`'s slots, if a thread will
    wait for that body (once a request)."""
    if not thread_reads(request.environ) or HELD in g:
        return
    found = services().settings
    setattr(g, HELD, take(found.worker.drive_root, username, found.user_bodies))


def before_body() -> None:
    """The app's before_request hook after authentication: the caller's slot. A public route
    that reads a body names whose slot it takes itself (a trigger: its owner's)."""
    principal = g.get("principal")
    if principal is not None:
        hold(principal.username)


def give_back(_exc: BaseException | None = None) -> None:
    """The app's teardown: the request's slot, if it took one. A view that has read its body
    whole and then waits long (a DIZEST-compatible run, up to 10 minutes) calls it as soon as
    the body is read: what a slot bounds is a thread waiting on its client, and that one no
    longer does (its wait is bounded by the streams' share, `dizest_api.event_hub`)."""
    fd = g.pop(HELD, None)
    if fd is not None:
        os.close(fd)  # closing lets go of the lock
