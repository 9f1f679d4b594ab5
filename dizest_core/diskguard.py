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

Empty files fill a disk too: a filesystem with a fixed number of inodes (ext4, xfs) refuses new
files once they are used up, whatever space is free. So the same look reads the free inodes, and
under `inode_reserve` of them it counts the entries under the running flows' directories by owner
(each sandboxed flow runs as a uid of its own, which the zygote's `W` answer gives) and stops the
flow that made the most, if that is at least `GUILTY_FILES`. Without the sandbox's uids there is
no telling whose files they are, and nobody is stopped for them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Mapping

from dizest_core.status import Reason

CHECK_S = 0.5
GUILTY_BYTES = 1 << 20  # a flow that wrote less is not what fills a disk
GUILTY_FILES = 1000  # a flow that made fewer files is not what uses up the inodes
# free inodes kept: 1 %, at least 10,000 (a flow makes ~16,000 entries a second: one look late)
INODE_RESERVE_MIN, INODE_RESERVE_SHARE = 10_000, 0.01
WALK_LIMIT = 2_000_000  # entries looked at by one count of files by owner, at most


def free_mb(path: str) -> float | None:
    """Free space for unprivileged users on the filesystem of `path`, in MB (None: unknown)."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize / (1 << 20)


def free_inodes(path: str) -> tuple[int, int] | None:
    """Free inodes for unprivileged users on the filesystem of `path`, and the reserve kept for
    its other users (None: unknown, or a filesystem without a fixed number, like btrfs)."""
    try:
        stat = os.statvfs(path)
    except OSError:
        return None
    if not stat.f_files:
        return None
    return stat.f_favail, max(INODE_RESERVE_MIN, int(stat.f_files * INODE_RESERVE_SHARE))


def made_by(paths: Iterable[str], uids: Iterable[int], limit: int = WALK_LIMIT) -> dict[int, int]:
    """How many files and directories under `paths` each of `uids` owns (symlinks are entries,
    never followed), looking at `limit` entries at most."""
    counts = dict.fromkeys(uids, 0)
    stack, seen = sorted(set(paths)), 0
    while stack and seen < limit:
        with contextlib.suppress(OSError), os.scandir(stack.pop()) as entries:
            for entry in entries:
                seen += 1
                with contextlib.suppress(OSError):
                    uid = entry.stat(follow_symlinks=False).st_uid
                    if uid in counts:
                        counts[uid] += 1
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
    return counts


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
    """The zygote's `W` answer (`token:files:calls:uid ...`, see `written`) for the tokens of
    `received`, whose write calls count less what the engine read from each (its log and
    messages went down a pipe and a socket, to us, not to a disk)."""
    out = {}
    for part in parts:
        token, files, calls = part.split(":")[:3]
        if token in received:
            out[token] = (int(files), max(0, int(calls) - received[token]))
    return out


def owners(parts: Iterable[str]) -> dict[str, int]:
    """From the zygote's `W` answer: the uid each flow runs as (those with one of their own)."""
    found = {}
    for part in parts:
        token, _, _, uid = [*part.split(":"), ""][:4]
        if uid.isdigit():
            found[token] = int(uid)
    return found


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
        self._inodes: tuple[int, list[str]] | None = None  # low on inodes: the reserve, paths

    def check(self, paths: Callable[[], Iterable[str]], now: float) -> bool:
        """Whether to ask the zygote for the flows' writes: free space under the reserve on
        the filesystem of one of `paths()` (looked at once every `every_s`)."""
        if not self.reserve_mb or self._asked or now < self._next:
            return False
        self._next = now + self.every_s
        written_to = sorted(set(paths()))
        for path in written_to:
            free, inodes = free_mb(path), free_inodes(path)
            if free is not None and free < self.reserve_mb:
                self._low, self._inodes = (path, free), None
            elif inodes is not None and inodes[0] < inodes[1]:
                self._low, self._inodes = (path, float(inodes[0])), (inodes[1], written_to)
            else:
                continue
            self._asked = True
            return True
        return False

    def culprit(
        self, writes: dict[str, tuple[int, int]], uids: Mapping[str, int] | None = None
    ) -> tuple[str, str] | None:
        """From the zygote's answer (fork token -> bytes written to files, by any write call;
        the uid of each): the token of the flow to stop and why, or None when no flow wrote
        `GUILTY_BYTES` (made `GUILTY_FILES` files, when the inodes are what is low)."""
        self._asked = False
        if self._inodes is not None:
            return self._most_files(uids or {})
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

    def _most_files(self, uids: Mapping[str, int]) -> tuple[str, str] | None:
        assert self._inodes is not None
        reserve, paths = self._inodes
        counts = made_by(paths, set(uids.values()))
        made = {token: counts.get(uid, 0) for token, uid in uids.items()}
        if not made or max(made.values()) < GUILTY_FILES:
            return None
        token = max(made, key=lambda t: made[t])
        path, free = self._low
        reason = Reason.INODES_FULL.format(
            free=int(free), reserve=reserve, path=path, made=made[token]
        )
        return token, reason
