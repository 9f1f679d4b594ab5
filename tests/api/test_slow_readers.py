"""Clients that do not read their answers, against a real `dizest serve` with 4 threads: a user
asking for large answers (a workflow's package, a drive file) on as many connections as threads,
with a small receive buffer, and reading none of them, held every thread for good: nobody else
was answered. Now a write that makes no progress for the send timeout ends its response and
resets the connection; a client that reads, however slowly, gets every byte."""

from __future__ import annotations

import contextlib
import fcntl
import select
import socket
import struct
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.api.test_slow_clients import answered_within
from tests.conftest import wait_for
from tests.large_answers import large_answers
from tests.serve_process import Served, serving

THREADS = 4
SEND_S = 2.0  # DIZEST_RESPONSE_SEND_TIMEOUT_S of these serves
ANSWER_S = 1.5  # an ordinary request's answer, at most, once a thread is free
# larger than what the two kernels buffer of an answer: the sender's send buffer grows up to
# tcp_wmem's maximum, the attacker's receive buffer is set small
WMEM_MAX = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
BIG = 3 * WMEM_MAX
PACE_S = SEND_S / 10  # a slow reader's pause between two reads: well under the send timeout
READER_BUFFER = 256 * 1024  # its receive buffer: the whole answer takes many pauses


@contextlib.contextmanager
def reader_serve(tmp: Path) -> Iterator[tuple[Served, list[str]]]:
    """A serve, and the paths of its two `large_answers` of BIG bytes."""
    settings = {"response_send_timeout_s": str(SEND_S), "max_request_bytes": str(2 * BIG)}
    # a workflow of BIG characters: a save is held to what its runs take
    settings |= {"max_input_bytes": str(2 * BIG)}
    with serving(tmp, "--threads", str(THREADS), "--no-worker", ready=False, **settings) as served:
        yield served, list(large_answers(served.base, served.token, BIG).values())
        assert "Traceback" not in served.log.read_text()


def ask(served: Served, path: str, receive_buffer: int) -> socket.socket:
    host, port = served.base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # before connecting
    sock.connect((host, int(port)))
    auth = served.token["Authorization"]
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n\r\n".encode())
    return sock


def queued(sock: socket.socket) -> int:
    """Bytes of the answer waiting in `sock`'s receive buffer, unread."""
    return int(struct.unpack("i", fcntl.ioctl(sock, termios.FIONREAD, b"\0\0\0\0"))[0])


def ended(sock: socket.socket) -> bool:
    """Whether the server reset or closed the connection (seen without reading)."""
    events = select.POLLHUP | select.POLLERR | select.POLLRDHUP
    poll = select.poll()
    poll.register(sock, events)
    return bool(poll.poll(0))


def whole_answer(got: bytearray) -> bool:
    """Whether `got` holds an HTTP answer's head and all of its Content-Length body."""
    head, _, body = got.partition(b"\r\n\r\n")
    return bool(body) and len(body) >= int(
        head.lower().split(b"content-length: ")[1].split(b"\r")[0]
    )


def read_all(
    sock: socket.socket, pace_s: float = 0.0, whole: Callable[[bytearray], bool] = whole_answer
) -> tuple[bytes, bool]:
    """What comes until the server closes or what came is `whole` (an answer on a connection
    kept alive), reading what has come every `pace_s`; and whether it ended with a reset."""
    got = bytearray()
    sock.settimeout(10)
    while True:
        try:
            data = sock.recv(1 << 20)
        except ConnectionResetError:
            return bytes(got), True
        if not data:
            return bytes(got), False
        got += data
        if whole(got):  # (not a copy: a socket's replay comes 4 KiB a read)
            return bytes(got), False
        time.sleep(pace_s)  # the client's own pace, the thing under test


def test_clients_that_read_nothing_lose_their_answer_after_the_send_timeout(
    tmp_path: Path,
) -> None:
    with reader_serve(tmp_path) as (served, paths):
        attackers = [ask(served, paths[i % 2], 4096) for i in range(THREADS)]
        wait_for(lambda: all(queued(sock) > 0 for sock in attackers))  # each thread writing
        assert not any(ended(sock) for sock in attackers)
        # the others are answered once the stalled writes give their threads up
        assert answered_within(served, SEND_S + ANSWER_S) == 200
        wait_for(lambda: all(ended(sock) for sock in attackers), timeout=SEND_S + 5)
        for sock in attackers:
            got, was_reset = read_all(sock)
            assert was_reset and b" 200 OK" in got[:20] and len(got) < BIG, len(got)
            sock.close()
        assert served.log.read_text().count("the connection is reset") == THREADS


def test_a_slow_client_that_reads_gets_all_of_its_answer(tmp_path: Path) -> None:
    """Each answer takes several send timeouts to read, pausing a tenth of one at a time."""
    with reader_serve(tmp_path) as (served, paths):
        got: dict[str, tuple[bytes, bool]] = {}
        took: dict[str, float] = {}

        def download(path: str) -> None:
            start = time.monotonic()
            got[path] = read_all(ask(served, path, READER_BUFFER), PACE_S)
            took[path] = time.monotonic() - start

        readers = [threading.Thread(target=download, args=(path,)) for path in paths]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join()
        for path in paths:
            answer, was_reset = got[path]
            assert not was_reset and answer.startswith(b"HTTP/1.1 200 OK"), answer[:200]
            assert len(answer.partition(b"\r\n\r\n")[2]) >= BIG
            assert took[path] > SEND_S, took  # longer than the send timeout, in all
        assert answered_within(served, ANSWER_S) == 200
        assert "the connection is reset" not in served.log.read_text()
