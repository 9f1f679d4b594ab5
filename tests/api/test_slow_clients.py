"""Slow and silent clients against a real `dizest serve` with 4 threads (no login needed for
any of them): a crowd of connections asking for a close and then neither reading nor closing
held the worker's main loop 2 s each, and nobody else was answered. Now a connection being
closed lingers in the main loop's poller, not in its thread."""

from __future__ import annotations

import contextlib
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.api.test_serve import Served, serving
from tests.conftest import wait_for

THREADS = 4
CROWD = 3 * THREADS
ANSWER_S = 1.5  # an ordinary request's answer, at most


@contextlib.contextmanager
def slow_serve(tmp: Path, **settings: str) -> Iterator[Served]:
    with serving(tmp, "--threads", str(THREADS), "--no-worker", ready=False, **settings) as served:  # fmt: skip
        yield served
        assert "Traceback" not in served.log.read_text()


class Client:
    """A raw connection: what the server sent on it, and whether it ended it."""

    def __init__(self, base: str, sent: bytes) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.sendall(sent)
        self.sock.setblocking(False)
        self.got = b""
        self.ended = False

    def read(self) -> bool:
        """Reads what has come (never waits); whether the server has closed the connection."""
        while not self.ended:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            except OSError:  # reset: closed
                data = b""
            self.got += data
            self.ended = not data
        return self.ended

    def status(self) -> int:
        return int(self.got.split(b" ", 2)[1]) if self.got else 0


def all_ended(clients: list[Client]) -> bool:
    return all([client.read() for client in clients])


def answered_within(served: Served, seconds: float) -> int | None:
    """The status of an ordinary authenticated request (the token's runs), or None when it
    was not answered within `seconds`."""
    request = urllib.request.Request(served.base + "/api/v1/runs", headers=served.token)
    try:
        with urllib.request.urlopen(request, timeout=seconds) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except TimeoutError:
        return None


def test_clients_that_neither_read_nor_close_hold_nothing(tmp_path: Path) -> None:
    with slow_serve(tmp_path) as served:
        closing = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        crowd = [Client(served.base, closing) for _ in range(CROWD)]
        assert answered_within(served, ANSWER_S) == 200
        wait_for(lambda: all_ended(crowd), timeout=5)
        assert {client.status() for client in crowd} == {200}

        # a kept-alive connection left idle after its answer: gunicorn's keepalive (2 s) ends it
        idle = Client(served.base, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: idle.read() or idle.got.endswith(b"}\n"), timeout=5)
        assert not idle.ended
        wait_for(idle.read, timeout=2 + 2)
