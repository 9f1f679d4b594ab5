"""One webhook delivery attempt (dizest_api.automation.delivery) against real receivers on
127.0.0.1: a deadline that counts the whole attempt, an answer's body never read, the checked
address called without resolving the name again; and what the URL check refuses."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from dizest_api.automation import delivery, tasks
from dizest_api.automation.hooks import Hook, UrlRefused, check_url, checked_addresses
from tests.automation.raw_http import raw_server
from tests.conftest import wait_for

LOCAL = [ipaddress.ip_address("127.0.0.1")]


@dataclass
class RawReceiver:
    """A TCP server answering each connection with `answer(conn, request_head)`; records the
    request heads and how many bytes each answer could send before the client left."""

    answer: Callable[[socket.socket, bytes], int]
    port: int = 0
    heads: list[bytes] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)


@pytest.fixture
def raw_receiver() -> Iterator[Callable[[Callable[[socket.socket, bytes], int]], RawReceiver]]:
    with contextlib.ExitStack() as servers:

        def start(answer: Callable[[socket.socket, bytes], int]) -> RawReceiver:
            found = RawReceiver(answer)

            def handle(conn: socket.socket, head: bytes) -> None:
                found.heads.append(head)
                found.sent.append(found.answer(conn, head))

            found.port = servers.enter_context(raw_server(handle))
            return found

        yield start


def drip(conn: socket.socket, _: bytes) -> int:
    """A status line, then one byte of a header every 0.1 s, until the client leaves."""
    sent = 0
    try:
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-A: ")
        while True:
            conn.sendall(b"a")
            sent += 1
            time.sleep(0.1)  # the hostile receiver's pace, not a wait in the test
    except OSError:
        return sent


def endless_body(conn: socket.socket, _: bytes) -> int:
    """200 with a 10 GB body, sent as fast as the client takes it."""
    sent = 0
    try:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n")
        chunk = b"x" * 65536
        while sent < 10_000_000_000:
            conn.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass
    return sent


def ok(conn: socket.socket, _: bytes) -> int:
    conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    return 0


def test_an_attempt_ends_at_its_deadline_however_slowly_the_receiver_answers(
    raw_receiver: Callable[..., RawReceiver],
) -> None:
    """Each byte comes well within any read timeout; the attempt still ends at 1 s."""
    receiver = raw_receiver(drip)
    started = time.monotonic()
    with pytest.raises(delivery.DeadlinePassed):
        delivery.post(f"http://127.0.0.1:{receiver.port}/", LOCAL, b"{}", {}, timeout_s=1.0)
    assert 1.0 <= time.monotonic() - started < 2.0


def test_the_answers_body_is_never_read(raw_receiver: Callable[..., RawReceiver]) -> None:
    """A receiver answering 10 GB: the status is all an attempt takes (the beat held 2.5 GB of
    such a body with `requests`)."""
    receiver = raw_receiver(endless_body)
    assert delivery.post(f"http://127.0.0.1:{receiver.port}/", LOCAL, b"{}", {}, 10.0) == 200
    wait_for(lambda: receiver.sent, timeout=10)  # the receiver sees the client leave
    assert receiver.sent[0] < 64 << 20  # socket buffers' worth at most


def test_the_checked_address_is_called_under_the_urls_name(
    raw_receiver: Callable[..., RawReceiver],
) -> None:
    """A name that resolves nowhere (.invalid): the attempt connects to the address it was
    given and sends the name as Host, so a DNS answer changed after the check is never used."""
    receiver = raw_receiver(ok)
    url = f"http://hook.invalid:{receiver.port}/path?q=1"
    assert delivery.post(url, LOCAL, b'{"a":1}', {"X-Test": "1"}, 5.0) == 204
    head = receiver.heads[0].decode()
    assert head.startswith("POST /path?q=1 HTTP/1.1\r\n")
    assert f"Host: hook.invalid:{receiver.port}\r\n" in head and "X-Test: 1\r\n" in head


def test_the_next_address_is_tried_when_one_refuses(
    raw_receiver: Callable[..., RawReceiver],
) -> None:
    receiver = raw_receiver(ok)
    closed = socket.create_server(("127.0.0.2", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    refusing = ipaddress.ip_address("127.0.0.2")
    with pytest.raises(ConnectionRefusedError):
        delivery.post(f"http://x.invalid:{port}/", [refusing], b"", {}, 5.0)
    both = [refusing, *LOCAL]
    assert delivery.post(f"http://x.invalid:{receiver.port}/", both, b"", {}, 5.0) == 204


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:0:7f00:1]/",  # SIIT-translated 127.0.0.1
        "http://[::ffff:0:a9fe:a9fe]/",  # SIIT-translated 169.254.169.254
        "http://localhost/",
        "http://127.0.0.1/",
        "http://[fec0::1]/",  # site-local: `is_global` in Python, internal on some networks
        "http://192.0.0.8/",
        "http://[3fff::1]/",
        "http://[5f00::1]/",
    ],
)
def test_urls_reaching_private_addresses_are_refused_without_naming_the_address(url: str) -> None:
    with pytest.raises(UrlRefused) as refused:
        check_url(url, False, "alice", 10.0)
    message = str(refused.value)
    assert "loopback, private" in message
    if "localhost" in url:  # what a name resolves to is not said: no map of internal names
        assert "127.0.0.1" not in message and "::1" not in message


def test_allowing_private_addresses_still_checks_the_form_and_resolves_for_delivery() -> None:
    assert check_url("http://localhost:9/x", True, "alice", 10.0) == "http://localhost:9/x"
    assert ipaddress.ip_address("127.0.0.1") in checked_addresses("http://localhost:9/", True)
    with pytest.raises(UrlRefused):
        check_url("ftp://localhost/", True, "alice", 10.0)


def test_a_name_server_that_never_answers_is_within_the_attempts_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The name was resolved before the deadline began, for as long as the name server took: a
    hostile one held the attempt, and its user's in-flight place, past its timeout. The system
    resolver is held here (the machine's name server cannot be made to stall). The stalled
    resolutions a user leaves behind are bounded (STALLED), and no one else's."""
    released = threading.Event()

    def stalled(host: Any, *args: Any, **kw: Any) -> Any:
        if host == "stalled.example":
            released.wait(30)
            raise socket.gaierror(socket.EAI_NONAME, "held, then refused")
        raise socket.gaierror(socket.EAI_NONAME, "no other name here")

    monkeypatch.setattr(socket, "getaddrinfo", stalled)
    rt = SimpleNamespace(auto=SimpleNamespace(webhook_timeout_s=0.2, webhook_allow_private=False))
    hook = Hook("h1", "http://stalled.example/x", "alice", None, 0.0, "secret")
    try:
        for _ in range(delivery.STALLED):
            started = time.monotonic()
            result = tasks.post(rt, hook, b"{}", "d1")  # type: ignore[arg-type]
            assert result["error"] == "Timeout"
            assert 0.2 <= time.monotonic() - started < 1.2
        refused = tasks.post(rt, hook, b"{}", "d2")  # type: ignore[arg-type]
        assert refused["error"] == "Timeout" and refused["duration_ms"] < 100  # none started
        bob = Hook("h2", "http://other.example/x", "bob", None, 0.0, "secret")
        theirs = tasks.post(rt, bob, b"{}", "d3")  # type: ignore[arg-type]
        assert theirs.get("permanent") and "cannot resolve" in theirs["error"]  # resolved
    finally:
        released.set()
    wait_for(lambda: not delivery._stalled, timeout=10)  # each thread ended, its place free


def test_a_hook_stored_before_the_url_check_fails_for_good_without_raising() -> None:
    """A review's hook to https://host/caf\u00e9 made every delivery task raise
    UnicodeEncodeError (http.client sends the request line as ASCII): no attempt recorded, the
    user's pending place held until it expired."""
    rt = SimpleNamespace(auto=SimpleNamespace(webhook_timeout_s=2.0, webhook_allow_private=True))
    hook = Hook("h1", "http://127.0.0.1:9/caf\u00e9", "alice", None, 0.0, "secret")
    result = tasks.post(rt, hook, b"{}", "d1")  # type: ignore[arg-type]
    assert result.get("permanent") and "printable ASCII" in result["error"], result


def test_within_gives_the_calls_result_or_its_error() -> None:
    assert delivery.within(lambda: 42, 5.0, "alice") == 42
    with pytest.raises(UrlRefused, match="nope"):
        delivery.within(lambda: (_ for _ in ()).throw(UrlRefused("nope", "u")), 5.0, "alice")
