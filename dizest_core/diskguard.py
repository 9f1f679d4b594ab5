"""The disk guard: a flow must not fill the disk the others (and Redis, the API, the worker)
write to. Each file a flow writes is bounded (RLIMIT_FSIZE) and /tmp is a sized tmpfs, but its
working directory and artifact folder are on the server's disk, and a kernel quota per run
needs project quotas the machine seldom has. So the engine watches instead: every `CHECK_S`
while flows run, it reads the free space of the filesystems they write to (`statvfs`); below
`Settings.disk_reserve_mb` it asks the zygote how many bytes each running flow's processes
have written to files (`/proc/<pid>/io` write_bytes less cancelled_write_bytes: pages dirtied,
less those of files deleted or truncated before they reached the disk; not what goes down pipes
and sockets, so a flow that only prints much is not taken for one that fills the disk), over its
cgroup or process group, and kills the flow that wrote the most, if that is at least
`GUILTY_BYTES`. Where no flow wrote that much to files by that count (a tmpfs or FUSE filesystem
dirties no page of its own), it goes by every write call instead (wchar), less what the engine
read from the flow (its log and messages): one flow per check, so a flow writing
little is never killed for another's files. What the killed flow wrote stays until its run's
files expire (it may have been a legitimate, just too large, output).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping

from dizest_core.status import Reason

CHECK_S = 0.5
GUILTY_BYTES = 1 << 20  # a flow that wrote less is not what fills a disk


def free_mb(path: str) -> float | None:
    """Free space for unprivileged users on the filesystem of `path`, in MB (None: unknown)."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize / (1 << 20)


def written(pids: Iterable[int]) -> tuple[int, int]:
    """Bytes `pids` have written so far: to files (and not deleted before writeback), and by
    any write call (files, pipes, sockets, tmpfs)."""
    files = calls = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, KeyError), open(f"/proc/{pid}/io", "rb") as f:
            counters = dict(line.split(b": ", 1) for line in f.read().splitlines())
            files += max(0, int(counters[b"write_bytes"]) - int(counters[b"cancelled_write_bytes"]))
            calls += int(counters[b"wchar"])
    return files, calls


class Orphans:
    """What the processes a flow left behind wrote before the zygote reaped them (they had
    become its children: it is pid 1 of the flows' namespace), by the flow's uid: a reaped
    process's bytes leave every count of its flow's tree, and a flow that wrote through
    short-lived grandchildren would show none while the disk fills."""

    def __init__(self) -> None:
        self.by_uid: dict[int, tuple[int, int]] = {}

    def reaping(self, pid: int, uid: int, flow: int | None) -> None:
        """`pid` (a zombie, not reaped yet) of `uid` is about to be reaped; `flow`: the running
        flow child of that uid. Counted for it unless it started before it (a process of the
        slot's previous flow, killed with it and reaped only now)."""
        if flow is None or _started(pid) < _started(flow):
            return
        files, calls = written([pid])
        before = self.by_uid.get(uid, (0, 0))
        self.by_uid[uid] = (before[0] + files, before[1] + calls)

    def of(self, uid: int | None) -> tuple[int, int]:
        return self.by_uid.get(uid, (0, 0)) if uid is not None else (0, 0)


def _started(pid: int) -> int:
    """When `pid` started, in clock ticks since boot (0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return 0


def parse(parts: Iterable[str], received: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    """The zygote's `W` answer (`token:files:calls ...`, see `written`) for the tokens of
    `received`, whose write calls count less what the engine read from each (its log and
    messages went down a pipe and a socket, to us, not to a disk)."""
    out = {}
    for part in parts:
        token, files, calls = part.split(":")
        if token in received:
            out[token] = (int(files), max(0, int(calls) - received[token]))
    return out


def group_members(pgid: int) -> list[int]:
    """The processes of process group `pgid` (a flow without a cgroup of its own: its child
    leads one), from this process's /proc."""
    members = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        with (
            contextlib.suppress(OSError, ValueError, IndexError),
            open(f"/proc/{name}/stat", "rb") as f,
        ):
            fields = f.read().rpartition(b") ")[2].split()
            if int(fields[2]) == pgid:  # state, ppid, pgrp
                members.append(int(name))
    return members


class DiskGuard:
    """The engine's side: when to ask, and whom to stop (`Supervisor` kills it)."""

    def __init__(self, reserve_mb: int, every_s: float = CHECK_S) -> None:
        self.reserve_mb = reserve_mb
        self.every_s = every_s
        self._next = 0.0
        self._asked = False  # a question to the zygote is unanswered
        self._low: tuple[str, float] = ("", 0.0)  # the path found low, its free MB

    def check(self, paths: Callable[[], Iterable[str]], now: float) -> bool:
        """Whether to ask the zygote for the flows' writes: free space under the reserve on
        the filesystem of one of `paths()` (looked at once every `every_s`)."""
        if not self.reserve_mb or self._asked or now < self._next:
            return False
        self._next = now + self.every_s
        for path in sorted(set(paths())):
            free = free_mb(path)
            if free is not None and free < self.reserve_mb:
                self._low, self._asked = (path, free), True
                return True
        return False

    def culprit(self, writes: dict[str, tuple[int, int]]) -> tuple[str, str] | None:
        """From the zygote's answer (fork token -> bytes written to files, by any write call):
        the token of the flow to stop and why, or None when no flow wrote `GUILTY_BYTES`."""
        self._asked = False
        if not writes:
            return None
        for kind in (0, 1):  # files first; every write call where files show nobody
            token, count = max(((t, w[kind]) for t, w in writes.items()), key=lambda i: i[1])
            if count >= GUILTY_BYTES:
                break
        else:
            return None
        path, free = self._low
        reason = Reason.DISK_FULL.format(
            free=free, reserve=self.reserve_mb, path=path, wrote=count / (1 << 20)
        )
        return token, reason
