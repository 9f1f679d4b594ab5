"""A user's uploads in flight (`dizest_api.body_slots`), against a real `dizest serve`: one
user's 8 uploads at once, each sent in part and held open, with a 10 MB drive quota, held 64 MB
of the disk (each fit the quota alone, and none was counted before it was whole) and 8 server
threads, for as long as the client liked (a probe). Now 2 are taken, the rest are 429 before
their bodies are read; another user uploads meanwhile; a slot is free again once its upload
ends."""

from __future__ import annotations

import re
import select
import socket
import time
from pathlib import Path

from tests.api.test_hostile_serve import new_users
from tests.conftest import wait_for
from tests.serve_process import call, serving

MB = 1 << 20
UPLOADS = 8
SLOTS = 2  # DIZEST_USER_BODIES' default


def start_put(base: str, token: str, name: str, size: int) -> socket.socket:
    """A PUT of `size` bytes to the drive, its head sent, its body not yet."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    head = (
        f"PUT /api/v1/files/{name} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
    )
    sock.sendall(head.encode())
    return sock


def answered(socks: list[socket.socket], wanted: int, timeout: float) -> dict[socket.socket, bytes]:
    """The whole answers on `socks` (head and body), until `wanted` came or `timeout` passed."""
    found: dict[socket.socket, bytes] = {}
    data = {sock: b"" for sock in socks}
    deadline = time.monotonic() + timeout
    while len(found) < wanted and len(found) < len(socks) and time.monotonic() < deadline:
        waiting = [sock for sock in socks if sock not in found]
        ready, _, _ = select.select(waiting, [], [], max(0.0, deadline - time.monotonic()))
        for sock in ready:
            got = sock.recv(65536)
            data[sock] += got
            head, _, body = data[sock].partition(b"\r\n\r\n")
            length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
            if not got or (length and len(body) >= int(length[1])):
                found[sock] = data[sock]
    return found


def partial_bytes(data: Path) -> int:
    return sum(p.stat().st_size for p in data.rglob(".partial/*") if p.is_file())


def test_a_users_uploads_in_flight_are_bounded(tmp_path: Path) -> None:
    with serving(tmp_path, drive_quota_bytes=str(10 * MB)) as served:
        base = served.base
        tokens = {n: made["token"] for n, made in new_users(base, "mallory", "bob").items()}
        socks = [start_put(base, tokens["mallory"], f"f{i}", 9 * MB) for i in range(UPLOADS)]
        try:  # the uploads past the slots are answered before their bodies are read
            refused = answered(socks, UPLOADS - SLOTS, timeout=30)
            assert len(refused) == UPLOADS - SLOTS, refused
            assert all(b" 429 " in a and b"too_many_bodies" in a for a in refused.values()), refused
            held = [s for s in socks if s not in refused]
            assert len(held) == SLOTS
            for sock in held:
                sock.sendall(b"\0" * (8 * MB))  # and held open
            wait_for(lambda: partial_bytes(served.data) == SLOTS * 8 * MB, timeout=20)

            bob = start_put(base, tokens["bob"], "b", 1024)  # another user's slots are free
            bob.sendall(b"\0" * 1024)
            assert b" 201 " in answered([bob], 1, timeout=15).get(bob, b"")
            bob.close()
        finally:
            for sock in socks:
                sock.close()

        def uploads() -> bool:  # once the held ones have ended, on the server's side
            sock = start_put(base, tokens["mallory"], "after", 1024)
            with sock:
                sock.sendall(b"\0" * 1024)
                return b" 201 " in answered([sock], 1, timeout=15).get(sock, b"")

        wait_for(uploads, timeout=20, interval=0.2)
        # each held upload's partial file goes as the server sees its client gone: one slot
        # free is enough for "after", the other may still be ending
        wait_for(lambda: partial_bytes(served.data) == 0, timeout=20)
        # the held uploads were cut short (8 of 9 MB, then closed): nothing of them is stored
        listed = call(
            base, "GET", "/api/v1/files", headers={"Authorization": f"Bearer {tokens['mallory']}"}
        )[1]
        assert sorted(e["name"] for e in listed["items"]) == ["after"], listed
