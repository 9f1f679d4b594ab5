"""One webhook delivery attempt: a POST to an address checked at the moment of the call, within
a wall-clock deadline, reading the answer's status line and headers only.

Why not `requests` (a probe, 2026-12-03): it resolves the host name again after our check (a
DNS answer that changes in between reaches an address the check refuses), bounds each socket
read rather than the attempt (a receiver sending one byte every 3 s held a beat thread for
2 minutes with a 10 s timeout; four such hooks held every thread, and other users' schedule
ticks ran late), and reads the whole body (a 1.5 GB answer took the beat to 2.5 GB). Here the
checked address is the one connected to (TLS still verifies the certificate for the host's
name), a timer shuts the connection down at the deadline, and no byte of the body is read.

The name is resolved within the same deadline (`within`): a name server that never answers
would otherwise hold the attempt past it, and past its user's in-flight place (see `tasks`).
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar
from urllib.parse import urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
T = TypeVar("T")
STALLED = 4  # one user's `within` calls whose thread is still running, at most
_STALLED_LOCK = threading.Lock()
_stalled: dict[str, int] = {}


class DeadlinePassed(OSError):
    """The attempt took longer than its timeout, all of it counted."""

    @classmethod
    def after(cls, timeout_s: float) -> DeadlinePassed:
        return cls(f"no answer within {timeout_s:g} s")


def post(
    url: str,
    addresses: Sequence[Address],
    body: bytes,
    headers: Mapping[str, str],
    timeout_s: float,
    deadline: float | None = None,
) -> int:
    """POST `body` to `url` at the first of `addresses` that takes the connection; its status
    code. OSError (DeadlinePassed past `timeout_s`, or past `deadline` on the monotonic clock
    when the attempt began before this call) or http.client.HTTPException otherwise."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    deadline = time.monotonic() + timeout_s if deadline is None else deadline
    sock = [_connect(addresses, port, deadline)]  # the one the timer shuts: TLS replaces it
    cut = threading.Event()
    timer = threading.Timer(max(0.0, deadline - time.monotonic()), _shut, (sock, cut))
    timer.daemon = True
    timer.start()
    try:
        if parts.scheme == "https":
            sock[0] = ssl.create_default_context().wrap_socket(sock[0], server_hostname=host)
            if cut.is_set():  # it fired during the handshake, on the socket TLS replaced
                raise DeadlinePassed.after(timeout_s)
        conn = http.client.HTTPConnection(host, port)  # Host: the name, not the address
        conn.sock = sock[0]  # connected already: it never resolves the name itself
        conn.request("POST", path, body=body, headers=dict(headers))
        answer = conn.getresponse()  # the status line and headers; the body is never read
        if cut.is_set():  # headers cut short at the deadline read as if they had ended
            raise DeadlinePassed.after(timeout_s)
        return answer.status
    except (OSError, http.client.HTTPException):
        if cut.is_set() or time.monotonic() >= deadline:
            raise DeadlinePassed.after(timeout_s) from None
        raise
    finally:
        timer.cancel()
        with contextlib.suppress(OSError):
            sock[0].close()


def within(call: Callable[[], T], timeout_s: float, owner: str) -> T:
    """`call()`'s result (or its exception) if it ends within `timeout_s`, else DeadlinePassed.
    For a call that cannot be interrupted (the system resolver): it goes on in a daemon thread,
    until the resolver's own timeouts end it, but the attempt no longer waits for it. One
    `owner` (a hook's user) has at most STALLED such threads at once, past which their attempt
    fails at once: a name server that never answers would otherwise leave one per attempt, and
    one user's must not hold up another's deliveries."""
    with _STALLED_LOCK:
        if _stalled.get(owner, 0) >= STALLED:
            raise DeadlinePassed(f"{STALLED} name resolutions of yours are still waiting")
        _stalled[owner] = _stalled.get(owner, 0) + 1
    done: list[tuple[bool, object]] = []

    def run() -> None:
        try:
            done.append(_outcome(call))
        finally:
            with _STALLED_LOCK:
                _stalled[owner] -= 1
                if not _stalled[owner]:
                    del _stalled[owner]

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(max(0.0, timeout_s))
    if not done:
        raise DeadlinePassed.after(timeout_s)
    ok, value = done[0]
    if not ok:
        assert isinstance(value, BaseException)
        raise value
    return value  # type: ignore[return-value]


def _outcome(call: Callable[[], object]) -> tuple[bool, object]:
    try:
        return True, call()
    except BaseException as exc:  # raised again in the caller's thread
        return False, exc


def _connect(addresses: Sequence[Address], port: int, deadline: float) -> socket.socket:
    """A connection to the first address that takes one before the deadline."""
    error: OSError = OSError("no address to connect to")
    for address in addresses:
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeadlinePassed("no connection before the deadline")
        try:  # an address, not a name: nothing is resolved here
            sock = socket.create_connection((str(address), port), timeout=left)
        except OSError as exc:
            error = exc
            continue
        sock.settimeout(max(0.001, deadline - time.monotonic()))  # no one read waits longer
        return sock
    raise error


def _shut(sock: list[socket.socket], cut: threading.Event) -> None:
    """At the deadline: whatever the attempt waits for ends at once (from the timer thread)."""
    cut.set()
    with contextlib.suppress(OSError):
        sock[0].shutdown(socket.SHUT_RDWR)
