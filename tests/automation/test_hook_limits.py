"""One user's slow webhook receivers cost nobody else anything, with a real worker, a real
`dizest beat` and a receiver that answers one byte at a time: each attempt ends at the
webhook timeout, the user has at most HOOK_CALLS deliveries in flight, and another user's
delivery goes out while theirs still hang."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from dizest_api.automation.tasks import HOOK_CALLS
from tests.automation.conftest import Stack
from tests.automation.raw_http import raw_server
from tests.automation.test_beat import _workflow
from tests.conftest import wait_for

TIMEOUT_S = 3.0


@dataclass
class Tarpit:
    """POST /slow/*: a status line, then a header one byte every 0.1 s until the client
    leaves; anything else: 200 at once. Records when each connection opened and closed."""

    port: int = 0
    opened: dict[str, float] = field(default_factory=dict)
    closed: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open_slow(self) -> int:
        with self.lock:
            return sum(1 for p in self.opened if p.startswith("/slow") and p not in self.closed)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def tarpit() -> Iterator[Tarpit]:
    found = Tarpit()

    def answer(conn: socket.socket, head: bytes) -> None:
        path = head.split(b" ")[1].decode() if head.count(b" ") >= 2 else "?"
        with found.lock:
            found.opened[path] = time.monotonic()
        try:
            if not path.startswith("/slow"):
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-A: ")
            while True:
                conn.sendall(b"a")
                time.sleep(0.1)  # the hostile receiver's pace, not a wait in the test
        except OSError:
            pass
        finally:
            with found.lock:
                found.closed[path] = time.monotonic()

    with raw_server(answer) as port:
        found.port = port
        yield found


def test_slow_receivers_hold_neither_the_beat_nor_other_users_deliveries(
    stack: Stack, tarpit: Tarpit
) -> None:
    alice, bob = stack.api.user("alice"), stack.api.user("bob")
    alice_wf, bob_wf = _workflow(stack, alice), _workflow(stack, bob)
    for i in range(5):  # five hooks that never answer: more than the beat's three threads
        answer = stack.api.call("POST", "/hooks", alice, json={"url": tarpit.url(f"/slow/{i}")})
        assert answer.status_code == 201, answer.json
    answer = stack.api.call("POST", "/hooks", bob, json={"url": tarpit.url("/fast/bob")})
    assert answer.status_code == 201, answer.json
    stack.start_beat(
        3, DIZEST_WEBHOOK_TIMEOUT_S=str(TIMEOUT_S), DIZEST_WEBHOOK_ATTEMPTS="1"
    )  # fmt: skip
    assert stack.api.call("POST", "/runs", alice, json={"workflow_id": alice_wf}).status_code == 201
    wait_for(lambda: tarpit.open_slow() == HOOK_CALLS, timeout=30)
    assert stack.api.call("POST", "/runs", bob, json={"workflow_id": bob_wf}).status_code == 201
    wait_for(lambda: "/fast/bob" in tarpit.opened, timeout=30)
    with tarpit.lock:
        bob_at = tarpit.opened["/fast/bob"]
        first_closed = min(tarpit.closed.values(), default=float("inf"))
    assert bob_at < first_closed  # bob's went out while alice's first ones still hung
    wait_for(lambda: len(tarpit.closed) >= 1 + 5, timeout=5 * TIMEOUT_S + 20)  # all of them
    with tarpit.lock:
        slow = {p: (tarpit.opened[p], tarpit.closed[p]) for p in tarpit.opened if "slow" in p}
    assert len(slow) == 5
    assert all(end - start < TIMEOUT_S + 2 for start, end in slow.values())  # cut at the timeout
    for start, _ in slow.values():  # never more than HOOK_CALLS of alice's at once (the
        # tarpit sees a close at its next byte, up to 0.1 s after the client left)
        assert sum(1 for s, e in slow.values() if s <= start < e - 0.2) <= HOOK_CALLS


def test_a_users_deliveries_past_the_pending_bound_are_dropped_and_logged(
    stack: Stack, tarpit: Tarpit
) -> None:
    """Six hooks that never answer, at most three deliveries pending: three are tried, three
    dropped at once, each saying so in its hook's log (a probe's 5,000 pending deliveries, each
    re-sent every second, kept the beat busy and slowed other users' in proportion)."""
    alice = stack.api.user("alice")
    wf = _workflow(stack, alice)
    hooks = []
    for i in range(6):
        answer = stack.api.call("POST", "/hooks", alice, json={"url": tarpit.url(f"/slow/{i}")})
        assert answer.status_code == 201, answer.json
        hooks.append(answer.json["id"])
    stack.start_beat(
        4, DIZEST_WEBHOOK_TIMEOUT_S="2", DIZEST_WEBHOOK_ATTEMPTS="1", DIZEST_WEBHOOK_PENDING="3"
    )  # fmt: skip
    assert stack.api.call("POST", "/runs", alice, json={"workflow_id": wf}).status_code == 201

    def logs() -> list[dict]:
        found = [stack.api.call("GET", f"/hooks/{h}", alice).json["deliveries"] for h in hooks]
        return [entry for log in found for entry in log]

    done = wait_for(lambda: (entries := logs()) and len(entries) == 6 and entries, timeout=60)
    dropped = [e for e in done if e["attempt"] == 0]
    assert len(dropped) == 3 and all("dropped" in e["error"] for e in dropped)
    assert sorted(e.get("error") for e in done if e["attempt"] == 1) == ["Timeout"] * 3
    assert len(tarpit.opened) == 3  # the dropped ones were never called
