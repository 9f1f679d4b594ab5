"""The event hub's non-waiting read of its pubsub (dizest_api.pubsub_read): a message only
partly arrived is read whole, on the same connection. With `get_message(timeout=0)` its read
timed out and redis-py reconnected, dropping the subscription and what was published meanwhile
(seen under load). A minimal RESP server sends the message in two parts: the exact interleaving
of a read that begins before the rest arrives."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from typing import Any

import redis

from dizest_api.pubsub_read import waiting

HELLO = b"%1\r\n$5\r\nproto\r\n:3\r\n"  # RESP3, as redis-py speaks by default (the hub too)
SUBSCRIBED = b">3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"
MESSAGE = b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$11\r\nhello there\r\n"


def commands(buffer: bytearray) -> list[list[bytes]]:
    """The whole RESP commands at the head of `buffer` (taken out of it); a partial one stays."""
    found: list[list[bytes]] = []
    while True:
        parts: list[bytes] = []
        end = buffer.find(b"\r\n")
        if not buffer.startswith(b"*") or end < 0:
            return found
        pos, count = end + 2, int(buffer[1:end])
        for _ in range(count):
            head_end = buffer.find(b"\r\n", pos)
            if head_end < 0:
                return found
            size = int(buffer[pos + 1 : head_end])
            if len(buffer) < head_end + 2 + size + 2:
                return found
            parts.append(bytes(buffer[head_end + 2 : head_end + 2 + size]))
            pos = head_end + 2 + size + 2
        del buffer[:pos]
        found.append(parts)


def serve_once(listener: socket.socket, rest: threading.Event, accepted: list[int]) -> None:
    conn, _ = listener.accept()
    accepted.append(1)
    with conn:
        # The handshake (HELLO 3; redis-py then sends its CLIENT SETINFOs back to back, to read
        # both replies after: one reply per command, however the bytes arrive), then SUBSCRIBE.
        buffer = bytearray()
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buffer += data
            for command in commands(buffer):
                name = command[0].upper()
                if name == b"SUBSCRIBE":
                    break
                conn.sendall(HELLO if name == b"HELLO" else b"+OK\r\n")
            else:
                continue
            break
        conn.sendall(SUBSCRIBED)
        conn.sendall(MESSAGE[:30])  # the first part of the message...
        rest.wait(30)
        conn.sendall(MESSAGE[30:])  # ...and the rest, once the read waits for it
        conn.recv(1)  # until the client closes


def blocked_in_read(tid: int) -> bool:
    """Whether thread `tid` of this process waits in poll/ppoll/recvfrom (x86_64, aarch64)."""
    try:
        call = Path(f"/proc/self/task/{tid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return False
    return call in {"7", "271", "45", "73", "207"}


def test_a_message_partly_arrived_is_read_whole_on_the_same_connection(tmp_path: Path) -> None:
    # a Unix socket: on a TCP port from bind(0), a client of another test still reconnecting to
    # a Redis that had that port was accepted instead, or filled the backlog (CI, 2026-12-04)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(tmp_path / "redis.sock"))
    listener.listen(4)
    rest, accepted = threading.Event(), []
    server = threading.Thread(target=serve_once, args=(listener, rest, accepted), daemon=True)
    server.start()
    client = redis.Redis(unix_socket_path=str(tmp_path / "redis.sock"))
    pubsub = client.pubsub()
    got: dict[str, Any] = {}
    try:
        pubsub.subscribe("ch")
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"
        deadline = time.monotonic() + 10
        while not pubsub.connection.can_read(timeout=0):  # the first part is here
            assert time.monotonic() < deadline

        def read() -> None:
            got["tid"] = threading.get_native_id()
            got["message"] = waiting(pubsub)

        reader = threading.Thread(target=read)
        reader.start()
        while "tid" not in got or not blocked_in_read(got["tid"]):
            assert time.monotonic() < deadline, "the read never waited for the rest"
            assert reader.is_alive(), got  # it ended at once: the partial read failed
        rest.set()
        reader.join(10)
        assert got["message"]["data"] == b"hello there"
        assert accepted == [1]  # no reconnect
    finally:
        rest.set()
        pubsub.close()
        client.close()
        listener.close()
