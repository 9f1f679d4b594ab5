"""Spare flow children: forked ahead of need, each waiting for the one job it will ever run.

A flow's start is on the critical path of every chain: the next flow waits while the zygote
forks its child and the child joins its cgroup and sets its limits. So the Supervisor keeps
`spare_slots` spares (a local run: one per slot, at most two per CPU; a worker process: one per
local slot), forked while the engine waits for the running flows anyway, also while every slot
is busy: the next flow starts the moment one ends (in a chain, spares only for free slots would
never be there in time). A spare takes ~3-4 ms of CPU to be ready (fork, confinement, warm-up),
more than a no-op flow's run, so a chain longer than the spares outruns them on 2 cores: between
runs a local engine used more than once keeps `Settings.spare_reserve` (forked as a run ends
normally, while the caller goes on, for the memory limit of that run's first flow; none after
a first run, which may be the only one, or a cancelled one), and a run spends those first.
A launch hands the job to a spare whose memory limit matches (its cgroup limits were written
for it), else forks as before. A spare is still used once: it runs one job and exits, as every
child does; a spare that never gets a job is killed with the zygote or when the Supervisor
closes its end (it exits on EOF without running anything).
"""

from __future__ import annotations

import itertools
import os
import socket
from collections import deque
from dataclasses import dataclass

from dizest_core.zygote_handle import Zygote


@dataclass
class Spare:
    """A forked (or being forked) child blocked reading its job from `conn`."""

    token: str
    memory_mb: int  # the memory limit its cgroup and rlimits were set for; 0: none
    conn: socket.socket  # the engine's end of the child's job/result channel
    out_r: int  # the read end of the child's stdout+stderr pipe
    pid: int | None = None  # known once the zygote says it started


class Spares:
    """The spare children of one Supervisor, by memory limit."""

    def __init__(self, zygote: Zygote) -> None:
        self.zygote = zygote
        self._tokens = itertools.count(1)  # a fork's token: names it to the zygote
        self.by_token: dict[str, Spare] = {}
        self.free: dict[int, deque[Spare]] = {}

    def __len__(self) -> int:
        return len(self.by_token)

    def count(self, memory_mb: int) -> int:
        return len(self.free.get(memory_mb, ()))

    def fork(self, memory_mb: int) -> None:
        token = str(next(self._tokens))
        ours, theirs = socket.socketpair()
        out_r, out_w = os.pipe()
        try:
            self.zygote.fork(token, memory_mb, [theirs.fileno(), out_w, out_w])
        except OSError:
            ours.close()
            os.close(out_r)
            raise
        finally:
            theirs.close()
            os.close(out_w)
        spare = Spare(token, memory_mb, ours, out_r)
        self.by_token[token] = spare
        self.free.setdefault(memory_mb, deque()).append(spare)

    def top_up(self, want: int, memory_mb: int, room: int) -> None:
        """Fork spares for `memory_mb` until `want` wait, while fewer than `room` exist."""
        while self.count(memory_mb) < want and len(self) < room:
            try:
                self.fork(memory_mb)
            except OSError:  # the zygote is gone: its EOF is reported by the next read
                return

    def rest(self, want: int, memory_mb: int, room: int) -> None:
        """`want` spares for `memory_mb` and none waiting for another limit (each of those
        would hold a slot and ~2.3 MB until the slots ran out)."""
        for other in [m for m in self.free if m != memory_mb]:
            for spare in list(self.free[other]):
                self._drop(spare)
        self.top_up(want, memory_mb, room)

    def take(self, memory_mb: int) -> Spare | None:
        """A spare forked for `memory_mb`, now the caller's (the oldest: most likely started)."""
        queue = self.free.get(memory_mb)
        if not queue:
            return None
        spare = queue.popleft()
        del self.by_token[spare.token]
        return spare

    def started(self, token: str, pid: int) -> bool:
        """The zygote's start notice; False when `token` is no spare (any more)."""
        spare = self.by_token.get(token)
        if spare is None:
            return False
        spare.pid = pid
        return True

    def ended(self, pid: int) -> bool:
        """A child ended: True (and forgotten) if it was a spare that never got a job."""
        for spare in self.by_token.values():
            if spare.pid == pid:
                self._drop(spare)
                return True
        return False

    def close(self) -> None:
        """Close our ends: each spare reads EOF instead of a job and exits without running."""
        for spare in list(self.by_token.values()):
            self._drop(spare)

    def _drop(self, spare: Spare) -> None:
        del self.by_token[spare.token]
        self.free[spare.memory_mb].remove(spare)
        spare.conn.close()
        os.close(spare.out_r)
