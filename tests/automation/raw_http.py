"""A raw TCP server on 127.0.0.1 for webhook receivers that misbehave on purpose (slow, endless,
silent): `raw_server(handle)` calls `handle(conn, request_head)` in a thread per connection and
closes the connection after it."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Handle = Callable[[socket.socket, bytes], None]


def read_head(conn: socket.socket) -> bytes:
    """The request's head (up to the blank line, or what came before the client stopped)."""
    head = b""
    while b"\r\n\r\n" not in head and (piece := conn.recv(65536)):
        head += piece
    return head


@contextmanager
def raw_server(handle: Handle) -> Iterator[int]:
    """The port of a server answering each connection with `handle`; closed on exit."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)

    def one(conn: socket.socket) -> None:
        with conn:
            handle(conn, read_head(conn))

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed: the test is over
                return
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()
