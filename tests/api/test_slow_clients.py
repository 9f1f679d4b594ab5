"""Slow and silent clients against a real `dizest serve` with 4 threads (no login needed for
any of them): a crowd of connections sending their heads a byte at a time, or a body that
stops, or asking for a close and then neither reading nor closing, held every thread (or the
worker's main loop) for as long as they liked, and nobody else was answered. Now a head
gathers without a thread until its deadline (from the accept), a body may pause at most the
idle timeout between two reads and must come at a minimum rate, and a connection being closed
lingers in the main loop's poller, not in its thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dizest_api.request_reads import BODY_BUFFER, HEAD_END, MAX_HEAD_BYTES
from dizest_api.routes.accounts import LOGIN_BODY_BYTES
from tests.conftest import wait_for
from tests.serve_process import Served, serving

THREADS = 4
HEAD_S = 3.0  # DIZEST_REQUEST_HEAD_TIMEOUT_S of these serves
BODY_S = 2.0  # DIZEST_REQUEST_BODY_TIMEOUT_S
CROWD = 3 * THREADS
ANSWER_S = 1.5  # an ordinary request's answer, at most: far below either timeout
TRICKLE_S = 0.2  # a trickling client's pause between two bytes: far below either timeout


@contextlib.contextmanager
def slow_serve(tmp: Path, **settings: str) -> Iterator[Served]:
    timeouts = {"request_head_timeout_s": str(HEAD_S), "request_body_timeout_s": str(BODY_S)}
    with serving(tmp, "--threads", str(THREADS), "--no-worker", ready=False, **timeouts, **settings) as served:  # fmt: skip
        yield served
        assert "Traceback" not in served.log.read_text()


@pytest.fixture(scope="module")
def shared_serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One `slow_serve` of the default settings for this module's tests that change none: each
    waits until every connection it opened has ended (a kept-alive one: it closes it), so none
    holds anything the next one counts on; a serve's start and stop took 2-3 s a test."""
    with slow_serve(tmp_path_factory.mktemp("slow-serve")) as served:
        yield served


@pytest.fixture
def served(shared_serve: Served) -> Iterator[Served]:
    """The shared serve, its log free of tracebacks after each test (as `slow_serve` checks
    after its one)."""
    yield shared_serve
    assert "Traceback" not in shared_serve.log.read_text()


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

    def answers(self) -> int:
        self.read()
        return self.got.count(b"HTTP/1.1 ")


def all_ended(clients: list[Client]) -> bool:
    return all([client.read() for client in clients])


@contextlib.contextmanager
def trickling(clients: list[Client]) -> Iterator[None]:
    """Each client sends one more byte of a header that never ends every TRICKLE_S."""
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(TRICKLE_S):
            for client in clients:
                with contextlib.suppress(OSError):  # closed by the server: it may reset
                    client.sock.send(b"a")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


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


def test_trickling_heads_hold_no_thread_and_end_at_their_deadline(served: Served) -> None:
    head = b"GET /api/v1/runs HTTP/1.1\r\nHost: x\r\nX-Slow: "
    crowd = [Client(served.base, head) for _ in range(CROWD)]
    opened = time.monotonic()
    with trickling(crowd):
        assert answered_within(served, ANSWER_S) == 200
        assert not any([client.read() for client in crowd])  # all still open, trickling
        wait_for(lambda: all_ended(crowd), timeout=HEAD_S + 5)
    assert time.monotonic() - opened >= HEAD_S  # however steadily each sent its bytes
    assert {client.status() for client in crowd} == {408}, crowd[0].got
    assert answered_within(served, ANSWER_S) == 200

    # a kept-alive connection's next request, sent in two parts, is gathered the same way
    kept = Client(served.base, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    wait_for(lambda: kept.answers() == 1)
    kept.sock.send(b"GET /healthz HTTP/1.1\r\n")
    time.sleep(TRICKLE_S)  # the client's own pace, the thing under test
    kept.sock.send(b"Host: x\r\n\r\n")
    wait_for(lambda: kept.answers() == 2)
    assert kept.got.count(b"HTTP/1.1 200 OK") == 2 and not kept.ended
    kept.sock.close()


FIELD = 8000  # bytes of a header field, at most, in these heads (gunicorn's limit: 8190)


def head_of(served: Served, size: int) -> bytes:
    """An authenticated GET of the token's runs whose head is `size` bytes, its blank line
    included: a long cookie, many fields, and padding fields of FIELD bytes at most."""
    head = (
        f"GET /api/v1/runs HTTP/1.1\r\nHost: x\r\nAuthorization: {served.token['Authorization']}"
        f"\r\nCookie: prefs={'c' * (FIELD - 15)}\r\n"
        + "".join(f"X-Field-{i}: value {i}\r\n" for i in range(40))
    ).encode()
    for i in range(size):
        left = size - len(head) - len(b"\r\n")
        field = f"X-Pad-{i}: ".encode()
        pad = min(left, FIELD) - len(field) - len(b"\r\n")
        if pad < 0:
            break
        head += field + b"p" * pad + b"\r\n"
    assert len(head) + 2 == size
    return head + b"\r\n"


def test_a_head_over_the_limit_is_refused_at_once_without_a_thread(served: Served) -> None:
    """A head of 32 KiB without its end went to a thread, whose parser waited for the rest
    until the head's deadline: a few connections held every thread, with no login."""
    fields = "".join(f"X-Big-{i}: {'b' * 7000}\r\n" for i in range(5))
    endless = f"GET /healthz HTTP/1.1\r\nHost: x\r\n{fields}".encode()  # no blank line
    assert len(endless) > MAX_HEAD_BYTES
    crowd = [Client(served.base, endless) for _ in range(THREADS + 2)]
    over = Client(served.base, head_of(served, MAX_HEAD_BYTES + 1))  # whole, one byte over
    with trickling(crowd):  # still sending: the rest of the head would come
        assert answered_within(served, ANSWER_S) == 200
        wait_for(lambda: all_ended([*crowd, over]), timeout=ANSWER_S)
    for client in [*crowd, over]:
        assert client.status() == 431, client.got
        assert b'"request_header_too_large"' in client.got
        assert f"at most {MAX_HEAD_BYTES} bytes".encode() in client.got

    # one field over gunicorn's limit is refused by its parser, with the same code
    field = Client(served.base, b"GET /healthz HTTP/1.1\r\nX-One: " + b"o" * 9000 + HEAD_END)
    wait_for(field.read, timeout=ANSWER_S)
    assert field.status() == 431 and b'"request_header_too_large"' in field.got, field.got

    # heads up to the limit are served: a 30 KiB one, one of exactly the limit
    for size in (30 * 1024, MAX_HEAD_BYTES):
        kept = Client(served.base, head_of(served, size))
        wait_for(lambda: kept.answers() == 1)  # noqa: B023
        assert kept.status() == 200 and not kept.ended, kept.got[:300]
        kept.sock.close()


def put_head(served: Served, name: str, size: int) -> bytes:
    return (
        f"PUT /api/v1/files/{name} HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {served.token['Authorization']}\r\n"
        f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
    ).encode()


def test_a_body_that_stops_ends_after_the_idle_timeout_a_slow_steady_one_does_not(
    tmp_path: Path,
) -> None:
    with slow_serve(tmp_path, user_bodies=str(CROWD)) as served:
        # small bodies (a login's) come whole before a thread takes them: none is held
        login = b'{"username": "admin", "password": "'
        head = (
            "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        stopped = [Client(served.base, head.encode() + login) for _ in range(CROWD)]
        opened = time.monotonic()
        assert answered_within(served, ANSWER_S) == 200
        assert not any([client.read() for client in stopped])
        wait_for(lambda: all_ended(stopped), timeout=BODY_S + 5)
        assert time.monotonic() - opened >= BODY_S
        assert {client.status() for client in stopped} == {408}, stopped[0].got

        # larger ones are read by a thread, each read waiting BODY_S at most
        size = 1 << 20
        stalled = [
            Client(served.base, put_head(served, f"stalled-{i}", size) + b"x" * 1000)
            for i in range(THREADS + 2)
        ]
        opened = time.monotonic()
        wait_for(lambda: all_ended(stalled), timeout=2 * BODY_S + 5)
        assert time.monotonic() - opened >= BODY_S
        assert {client.status() for client in stalled} == {408}, stalled[0].got
        assert b'"request_timeout"' in stalled[0].got
        assert answered_within(served, ANSWER_S) == 200

        # a body sent in pieces BODY_S / 4 apart: slower in all than the idle timeout
        pieces = 12
        steady = Client(served.base, put_head(served, "steady", pieces * 1000))
        for _ in range(pieces):
            assert not steady.read()
            time.sleep(BODY_S / 4)  # the client's own pace, the thing under test
            steady.sock.send(b"y" * 1000)
        wait_for(steady.read, timeout=10)
        assert steady.status() == 201, steady.got
        assert (served.data / "drives" / "admin" / "steady").read_bytes() == b"y" * 12000


def test_a_body_slower_than_the_minimum_rate_ends_however_steadily_it_trickles(
    tmp_path: Path,
) -> None:
    """A body sent a byte every TRICKLE_S never paused for BODY_S: it held its thread (a large
    body) or its connection (a small one) for as long as its client liked. Now, after its first
    BODY_S, it must come at DIZEST_REQUEST_BODY_MIN_RATE on average."""
    with slow_serve(tmp_path, request_body_min_rate="1000") as served:
        login = "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n"
        crowd = [Client(served.base, put_head(served, "large", 1 << 20)), Client(served.base, login.encode())]  # fmt: skip
        opened = time.monotonic()
        with trickling(crowd):
            wait_for(lambda: all_ended(crowd), timeout=BODY_S + 5)
        assert time.monotonic() - opened >= BODY_S
        assert {client.status() for client in crowd} == {408}, crowd[0].got
        assert all(b"slower than 1000 bytes a second" in client.got for client in crowd)


def test_clients_that_neither_read_nor_close_hold_nothing(served: Served) -> None:
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


def test_a_body_left_unread_is_not_waited_for(served: Served) -> None:
    """A body the API answers without reading (no login: 401) holds no thread afterwards:
    gunicorn waited 5 s for its rest, to keep the connection alive."""
    head = b"PUT /api/v1/files/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n"
    crowd = [Client(served.base, head + b"x" * 1000) for _ in range(CROWD)]
    with trickling(crowd):
        assert answered_within(served, ANSWER_S) == 200
        wait_for(lambda: all_ended(crowd), timeout=5)
    assert {client.status() for client in crowd} == {401}


def test_a_login_body_comes_whole_before_a_thread_reads_it(served: Served) -> None:
    """Logging in is the one body read before any authentication: one too long to be gathered
    without a thread, chunked, or with an Expect field (its body left to a thread: a 100 Continue
    first), sent slowly, held a thread for as long as its client liked."""
    assert LOGIN_BODY_BYTES <= BODY_BUFFER
    login = "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    long = f"{login}Content-Length: {4 * BODY_BUFFER}\r\n\r\n".encode() + b'{"username": "'
    chunked = f"{login}Transfer-Encoding: chunked\r\n\r\nfffff\r\n".encode() + b'{"username": "'
    # a short one that waits for a 100 Continue first (or says so over HTTP/1.0) is not gathered
    expect = f"{login}Expect: 100-continue\r\nContent-Length: 1000\r\n\r\n"
    expects = [expect.encode(), expect.replace("HTTP/1.1", "HTTP/1.0").encode()]
    crowd = [Client(served.base, sent) for sent in [long, chunked, *expects] * THREADS]
    with trickling(crowd):
        assert answered_within(served, ANSWER_S) == 200
        wait_for(lambda: all_ended(crowd), timeout=5)
    finals = {client.got.removeprefix(b"HTTP/1.1 100 Continue\r\n\r\n")[9:12] for client in crowd}
    assert finals == {b"400"}, crowd[2].got
    assert b"at most 8192 bytes" in crowd[0].got
    assert b"without Expect" in crowd[2].got and b"without Expect" in crowd[3].got
