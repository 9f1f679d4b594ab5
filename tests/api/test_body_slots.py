"""A user's request bodies a server thread reads (`dizest_api.body_slots`), against a real
`dizest serve --threads 4`. One user sending 6 JSON saves of 100 kB, each trickled a byte at
a time, held all 4 threads: another user's GET /runs had no answer for 30 s (a probe). Now a
body over 32 KiB takes one of its user's 2 slots (DIZEST_USER_BODIES) after authentication,
before it is read, or is 429 `too_many_bodies` unread; the slot is free again when its request
ends, however it ends (answered, refused, its client gone)."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dizest_api.request_reads import BODY_BUFFER
from tests.api.test_hostile_serve import new_users
from tests.api.test_slow_clients import ANSWER_S, THREADS, Client, answered_within, trickling
from tests.conftest import package, wait_for
from tests.serve_process import Served, call, serving

SLOTS = 2  # DIZEST_USER_BODIES' default
BIG = 4 * BODY_BUFFER  # a body a thread reads
# the serves' DIZEST_MAX_REQUEST_BYTES: a body over it is a 413, read to its end first
MAX_REQUEST = 8 * BODY_BUFFER


@contextlib.contextmanager
def threads_serve(tmp: Path) -> Iterator[Served]:
    with serving(tmp, "--threads", str(THREADS), "--no-worker", ready=False, max_request_bytes=str(MAX_REQUEST)) as served:  # fmt: skip
        yield served
        assert "Traceback" not in served.log.read_text()


def save_head(token: str, size: int) -> bytes:
    """The head of a new workflow's save (POST /workflows) whose JSON body is `size` bytes."""
    return (
        f"POST /api/v1/workflows HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    ).encode()


def save_body(size: int) -> bytes:
    """A valid new workflow of exactly `size` bytes of JSON (its app's code padded)."""
    envelope = {
        "title": "big",
        "package": package({"a": {"code": "v = 1\n#"}}, {"f": {"app": "a"}}),
    }
    short = json.dumps(envelope).encode()
    envelope["package"]["apps"]["a"]["code"] += "x" * (size - len(short))
    body = json.dumps(envelope).encode()
    assert len(body) == size
    return body


def answer(client: Client) -> tuple[int, Any] | None:
    """The client's first answer (status, JSON body) once it has come whole, else None."""
    client.read()
    head, _, body = client.got.partition(b"\r\n\r\n")
    length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
    if length is None or len(body) < int(length[1]):
        return None
    return client.status(), json.loads(body[: int(length[1])])


def held(served: Served, user: str) -> int:
    """How many of `user`'s body slots the server holds now: the flocks of their lock files in
    /proc/locks (looked at, never tried: a lock taken here, however briefly, could refuse the
    server's)."""
    flocks = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if fields[1] == "FLOCK":
            flocks.add(fields[5])  # major:minor:inode
    count = 0
    for n in range(SLOTS):
        try:
            st = (served.data / "drives" / ".locks" / f".body.{user}.{n}").stat()
        except FileNotFoundError:
            continue
        count += f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}" in flocks
    return count


def test_one_users_slow_bodies_hold_their_slots_and_no_more(tmp_path: Path) -> None:
    with threads_serve(tmp_path) as served:
        tokens = {n: made["token"] for n, made in new_users(served.base, "mallory", "bob").items()}
        mallory = {"Authorization": f"Bearer {tokens['mallory']}"}
        made = call(served.base, "POST", "/api/v1/workflows", json.loads(save_body(1000)), mallory)
        trigger = call(served.base, "POST", f"/api/v1/workflows/{made[1]['id']}/triggers", {}, mallory)  # fmt: skip
        assert trigger[0] == 201, trigger
        crowd = [
            Client(served.base, save_head(tokens["mallory"], BIG) + b'{"title": "')
            for _ in range(THREADS + 2)
        ]
        with trickling(crowd):  # a byte every 0.2 s each: never paused long enough for a 408
            wait_for(lambda: sum([c.read() for c in crowd]) == THREADS + 2 - SLOTS, timeout=10)
            refused = [wait_for(lambda: answer(c)) for c in crowd if c.ended]  # noqa: B023
            assert {status for status, _ in refused} == {429}, refused
            error = refused[0][1]["error"]
            assert error["code"] == "too_many_bodies", error
            assert error["details"]["max_bodies"] == SLOTS, error
            assert held(served, "mallory") == SLOTS

            # another user is answered at once, a body of his own too, while hers trickle on
            bob = {"Authorization": f"Bearer {tokens['bob']}"}
            assert answered_within(served, ANSWER_S) == 200
            assert call(served.base, "GET", "/api/v1/runs", headers=bob)[0] == 200
            status, made, _ = call(served.base, "POST", "/api/v1/workflows", json.loads(save_body(BIG)), bob)  # fmt: skip
            assert status == 201, made

            # uploads count among her bodies (a small one is whole before a thread takes it)
            put = "PUT /api/v1/files/{} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n"  # fmt: skip
            large = Client(served.base, put.format("large", tokens["mallory"], BIG).encode())
            small = Client(served.base, put.format("small", tokens["mallory"], 10).encode() + b"0" * 10)  # fmt: skip
            assert wait_for(lambda: answer(large))[0] == 429
            assert wait_for(lambda: answer(small))[0] == 201
            # so does a body sent to her trigger, by anyone: its runs are hers
            fired = f"POST /api/v1/triggers/{trigger[1]['secret']} HTTP/1.1\r\nHost: x\r\nContent-Length: {BIG}\r\n\r\n"  # fmt: skip
            anyone = Client(served.base, fired.encode())
            assert wait_for(lambda: answer(anyone))[0] == 429, anyone.got
        assert not any([c.ended for c in crowd if c.status() != 429])  # still held, unanswered


def test_slots_are_given_back_however_the_request_ends(tmp_path: Path) -> None:
    with threads_serve(tmp_path) as served:
        token = served.token["Authorization"].removeprefix("Bearer ")
        # a steady large save: the slot is held while the body comes, the save is stored
        body = save_body(BIG)
        steady = Client(served.base, save_head(token, BIG))
        for start in range(0, BIG, BODY_BUFFER):
            wait_for(lambda: held(served, "admin") == 1)
            steady.sock.send(body[start : start + BODY_BUFFER])
        status, made = wait_for(lambda: answer(steady))
        assert status == 201, made
        wait_for(lambda: held(served, "admin") == 0)
        stored = call(served.base, "GET", f"/api/v1/workflows/{made['id']}", headers=served.token)
        assert stored[1]["package"]["apps"] == json.loads(body)["package"]["apps"]

        # refused after its body was read: malformed JSON (400), over the request limit (413)
        for size, sent, wanted in ((BIG, b"{" * BIG, 400), (MAX_REQUEST + 1, b"0" * (MAX_REQUEST + 1), 413)):  # fmt: skip
            refused = Client(served.base, save_head(token, size) + sent)
            assert wait_for(lambda: answer(refused))[0] == wanted, refused.got  # noqa: B023
            wait_for(lambda: held(served, "admin") == 0)

        # clients gone mid-body: their slots are free for the next ones
        gone = [Client(served.base, save_head(token, BIG) + b'{"title": "') for _ in range(SLOTS)]
        wait_for(lambda: held(served, "admin") == SLOTS)
        extra = Client(served.base, save_head(token, BIG))
        assert wait_for(lambda: answer(extra))[0] == 429
        for client in gone:
            client.sock.close()
        wait_for(lambda: held(served, "admin") == 0)
        after = [Client(served.base, save_head(token, BIG) + body) for _ in range(SLOTS)]
        assert [wait_for(lambda: answer(c))[0] for c in after] == [201] * SLOTS  # noqa: B023
        wait_for(lambda: held(served, "admin") == 0)
