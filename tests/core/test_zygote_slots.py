"""The zygote gives each child a slot (its uid and cgroup): never more than UID_STRIDE, never a
slot a child it has not reaped yet still holds. A probe ran 130 flows at concurrency 64 and
crashed the zygote (StopIteration) or had a flow take slot 64, whose uid is the next zygote's
slot 0: the engine lets a spare go before the zygote has reaped it."""

from __future__ import annotations

import os
import socket
import time

from dizest_core.sandbox import UID_STRIDE
from dizest_core.settings import child_environment
from dizest_core.zygote_handle import Zygote


def test_a_fork_past_every_slot_waits_for_the_child_that_frees_one() -> None:
    zygote = Zygote(child_environment())
    ours: dict[str, socket.socket] = {}
    pipes: list[int] = []
    pids: dict[str, int] = {}
    order: list[tuple[str, str]] = []

    def fork(token: str) -> None:
        mine, theirs = socket.socketpair()
        out_r, out_w = os.pipe()
        zygote.fork(token, None, [theirs.fileno(), out_w, out_w])
        theirs.close()
        os.close(out_w)
        ours[token] = mine
        pipes.append(out_r)

    def notices_until(done: object, deadline_s: float = 60) -> None:
        deadline = time.monotonic() + deadline_s
        while not done():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"no answer in {deadline_s} s: {order[-5:]}"
            zygote.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                notice = zygote.sock.recv(65536).decode().split(" ")
            except TimeoutError:
                continue
            finally:
                zygote.sock.settimeout(None)
            assert notice != [""], "the zygote died"
            if notice[0] == "P":
                pids[notice[1]] = int(notice[2])
                order.append(("P", notice[1]))
            elif notice[0] == "X":
                order.append(("X", next(t for t, p in pids.items() if p == int(notice[1]))))

    try:
        for i in range(UID_STRIDE):
            fork(f"c{i}")
        notices_until(lambda: len(pids) == UID_STRIDE)
        fork("late")  # every slot is held: it waits in the zygote ...
        ours.pop("c0").close()  # ... for this one, let go, to exit and be reaped
        notices_until(lambda: "late" in pids and ("X", "c0") in order)
        assert order.index(("X", "c0")) < order.index(("P", "late")), order[-3:]
        assert zygote.proc.poll() is None
    finally:
        for sock in ours.values():
            sock.close()
        for fd in pipes:
            os.close(fd)
        zygote.close()
    assert zygote.proc.returncode == 0
