"""WebSocket clients that do not read, against a real `dizest serve`: a socket replays its run's
events from the start, and a client that opened it with a small receive buffer and read nothing
held its server thread for good (simple-websocket's writes had no timeout), as many of them as
there are stream places. Now a write that makes no progress for the send timeout resets the
connection and frees its thread and its place; a client that reads, however slowly, gets every
event in order."""

from __future__ import annotations

import base64
import json
import os
import re
import socket
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import pytest

from dizest_api.gunicorn_app import GRACEFUL_S, stream_threads
from tests.api.test_slow_clients import answered_within
from tests.api.test_slow_readers import ended, queued, read_all
from tests.api.test_stream_crowd import status_of
from tests.conftest import package, wait_for
from tests.serve_process import Served, call, serving, sse_ids

THREADS = 12
STREAMS = stream_threads(THREADS)  # the threads that may hold a WebSocket
SEND_S = 2.0  # DIZEST_RESPONSE_SEND_TIMEOUT_S of this serve
ANSWER_S = 1.5  # an ordinary request's answer, at most
PACE_S = SEND_S / 10  # a slow reader's pause between two reads: well under the send timeout
READER_BUFFER = 256 * 1024  # its receive buffer: the whole replay takes many pauses
# a replay larger than what the two kernels buffer of it: the sender's send buffer grows up to
# tcp_wmem's maximum, a silent client's receive buffer is set small
WMEM_MAX = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
LINE = 60_000  # characters a printed line (under a log entry's 64 KiB)
LINES = 2 * WMEM_MAX // LINE + 1  # in all, within a flow's log budget (16 MiB)
CHATTY = package(
    {"talk": {"code": f"for i in range({LINES}):\n    print(f'{{i:06d}}' + 'x' * {LINE})\n"}},
    {"t": {"app": "talk"}},
)
LOGGED = "WebSocket: the client read nothing of its answer for 2 s; the connection is reset"
LEFT = "WebSocket: the client left during the handshake"


@pytest.fixture(scope="module")
def chatty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str, list[str]]]:
    """A serve, a finished run of CHATTY on it, and the ids of the run's events in order."""
    tmp = tmp_path_factory.mktemp("slow-websockets")
    settings = {"response_send_timeout_s": str(SEND_S)}
    with serving(tmp, "--threads", str(THREADS), **settings) as served:
        status, run, _ = call(served.base, "POST", "/api/v1/runs", {"package": CHATTY}, served.token)  # fmt: skip
        assert status == 201, run
        run_id = run["run_id"]
        host, port = address(served)
        ids = sse_ids(host, port, f"/api/v1/runs/{run_id}/events", served.token)  # to its end
        yield served, run_id, ids
        assert "Traceback" not in served.log.read_text()


def address(served: Served) -> tuple[str, int]:
    host, port = served.base.removeprefix("http://").split(":")
    return host, int(port)


def open_socket(served: Served, run_id: str, receive_buffer: int) -> socket.socket:
    """A WebSocket handshake on the run's events, sent on a connection whose receive buffer
    is `receive_buffer` bytes; nothing read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # before connecting
    sock.connect(address(served))
    key = base64.b64encode(os.urandom(16)).decode()
    head = f"GET /api/v1/runs/{run_id}/ws HTTP/1.1\r\nHost: x\r\n"
    head += "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
    head += f"Sec-WebSocket-Key: {key}\r\nAuthorization: {served.token['Authorization']}\r\n"
    sock.sendall((head + "\r\n").encode())
    return sock


def read_to_end(sock: socket.socket, pace_s: float = 0.0) -> tuple[bytes, bool]:
    """What comes until the server ends the connection (a socket's frames are never "whole"),
    reading what has come every `pace_s`; and whether it ended with a reset."""
    return read_all(sock, pace_s, whole=lambda _: False)


def messages(received: bytes) -> tuple[list[str], bool]:
    """The text messages of the server's frames after the handshake's answer (a server's are
    unmasked, each message one frame), and whether a close frame ended them."""
    stream = received.partition(b"\r\n\r\n")[2]
    texts, at = [], 0
    while at < len(stream):
        first, size = stream[at], stream[at + 1] & 0x7F
        at += 2
        if size == 126:
            (size,), at = struct.unpack_from("!H", stream, at), at + 2
        elif size == 127:
            (size,), at = struct.unpack_from("!Q", stream, at), at + 8
        payload, at = stream[at : at + size], at + size
        assert first & 0x80 and len(payload) == size, (first, size, len(payload))
        if first & 0x0F == 0x8:
            return texts, at == len(stream)
        if first & 0x0F == 0x1:
            texts.append(payload.decode())
    return texts, False


def resets_logged(served: Served) -> int:
    return served.log.read_text().count("the connection is reset")


def test_websockets_that_read_nothing_are_reset_after_the_send_timeout(
    chatty: tuple[Served, str, list[str]],
) -> None:
    served, run_id, ids = chatty
    before = served.log.read_text().count(LOGGED)
    silent = [open_socket(served, run_id, 4096) for _ in range(STREAMS)]
    wait_for(lambda: all(queued(sock) > 0 for sock in silent))  # each upgraded: a place each
    start = time.monotonic()
    refused = open_socket(served, run_id, 1 << 16)
    assert status_of(refused) == 503  # every stream place is held
    refused.close()
    assert not any(ended(sock) for sock in silent)
    wait_for(lambda: all(ended(sock) for sock in silent), timeout=SEND_S + 5)
    assert time.monotonic() - start < SEND_S + 5
    for sock in silent:
        got, was_reset = read_to_end(sock)
        assert was_reset and got.startswith(b"HTTP/1.1 101 "), got[:200]
        assert len(got) < 2 * WMEM_MAX, len(got)
        sock.close()
    assert served.log.read_text().count(LOGGED) - before == STREAMS
    assert answered_within(served, ANSWER_S) == 200
    # their places are free again: as many new sockets are admitted, each replayed it all
    admitted = [open_socket(served, run_id, 1 << 16) for _ in range(STREAMS)]
    with ThreadPoolExecutor(STREAMS) as pool:  # read at once: none stalls waiting for another
        for got, was_reset in pool.map(read_to_end, admitted):
            assert not was_reset and got.startswith(b"HTTP/1.1 101 "), got[:200]
            assert len(messages(got)[0]) == len(ids)
    for sock in admitted:
        sock.close()


def test_a_slow_websocket_reader_gets_every_event_in_order(
    chatty: tuple[Served, str, list[str]],
) -> None:
    """The replay takes several send timeouts to read, pausing a tenth of one at a time."""
    served, run_id, ids = chatty
    before = resets_logged(served)
    start = time.monotonic()
    got, was_reset = read_to_end(open_socket(served, run_id, READER_BUFFER), PACE_S)
    took = time.monotonic() - start
    assert not was_reset and got.startswith(b"HTTP/1.1 101 "), got[:200]
    texts, closed = messages(got)
    assert closed
    assert [json.loads(text)["id"] for text in texts] == ids
    lines = [json.loads(text)["data"].get("entry", "") for text in texts]
    printed = [line[:6] for line in lines if isinstance(line, str) and line.endswith("x" * 100)]
    assert printed == [f"{i:06d}" for i in range(LINES)]
    assert took > SEND_S, took  # longer than the send timeout, in all
    assert resets_logged(served) == before


def test_a_client_that_leaves_during_the_handshake_costs_one_log_line(
    chatty: tuple[Served, str, list[str]],
) -> None:
    """A client sends its handshake and resets the connection at once, before the server has
    answered it (the server is still checking its token and its run): the answer's write fails.
    It was a 500 with two tracebacks in the log each time, a flood anyone with a token could
    make; now one line, and the service answers as before."""
    served, run_id, _ = chatty
    before = served.log.read_text().count(LEFT)
    for _ in range(10):
        sock = open_socket(served, run_id, 1 << 16)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()  # a reset, right behind the request
    wait_for(lambda: served.log.read_text().count(LEFT) > before)
    assert answered_within(served, ANSWER_S) == 200
    log = served.log.read_text()
    assert "Traceback" not in log and "unhandled error" not in log, log[-3000:]


def test_a_socket_its_client_still_holds_does_not_hold_the_stop(tmp_path: Path) -> None:
    """The server ended the socket (its run's final event); the client has not closed it yet
    when the serve stops: the API process stops at once, not at its graceful timeout."""
    quick = package({"talk": {"code": "print('hi')\n"}}, {"t": {"app": "talk"}})
    with serving(tmp_path) as served:
        status, run, _ = call(served.base, "POST", "/api/v1/runs", {"package": quick}, served.token)  # fmt: skip
        assert status == 201, run
        host, port = address(served)
        ids = sse_ids(host, port, f"/api/v1/runs/{run['run_id']}/events", served.token)
        held = open_socket(served, run["run_id"], 1 << 16)
        got, was_reset = read_to_end(held)
        texts, closed = messages(got)
        assert not was_reset and closed and len(texts) == len(ids)
    held.close()
    log = served.log.read_text()
    asked, down = (stamp(log, line) for line in ("Handling signal: term", "Shutting down: Master"))
    # not killed at the graceful timeout (a second's rounding either side): the held socket's
    # linger (2 s) and a loaded machine's exit take their time all the same
    assert down - asked < GRACEFUL_S - 1, f"the API stopped {down - asked:g} s after SIGTERM"


def stamp(log: str, text: str) -> float:
    """When gunicorn logged `text` (its lines' times are to the second)."""
    found = re.search(rf"^\[([^\]]+)\] \[\d+\] \[INFO\] {re.escape(text)}$", log, re.M)
    assert found, text
    return datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S %z").timestamp()
