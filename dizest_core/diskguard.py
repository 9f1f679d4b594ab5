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
files once they are used up, whatever space is free. So the same look reads the free inodes
(after the free space of every filesystem), and under the inode reserve it counts the entries
each running flow made in its run's working directory and its own artifact folder since it
started: by owner (each sandboxed flow runs as a uid of its own, which the zygote's `W` answer
gives; a uid is its slot's, so entries older than the flow are another flow's) and by change
time. It stops the flow that made the most, if that is at least `GUILTY_FILES`. The walk looks
at `WALK_LIMIT` entries at most (about a second), never through a symlink (a directory swapped
for one after it was listed is skipped), and once every `WALK_EVERY_S`. Without the sandbox's
uids there is no telling whose files they are, and nobody is stopped for them.
"""

from __future__ import annotations

import contextlib
import math
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from dizest_core.status import Reason

if TYPE_CHECKING:
    from dizest_core.childrec import Child

CHECK_S = 0.5
GUILTY_BYTES = 1 << 20  # a flow that wrote less is not what fills a disk
GUILTY_FILES = 1000  # a flow that made fewer files is not what uses up the inodes
# free inodes kept: 1 %, at least 10,000 (a flow makes ~16,000 entries a second: one look late)
INODE_RESERVE_MIN, INODE_RESERVE_SHARE = 10_000, 0.01
WALK_LIMIT = 200_000  # entries one count of files by owner looks at, at most (~1 s here)
WALK_EVERY_S = 5.0  # the least time between two such counts (the engine waits for each)


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


def made_by(
    paths: Iterable[str], since: Mapping[int, float], limit: int = WALK_LIMIT
) -> dict[int, int]:
    """How many files and directories under `paths` each uid of `since` owns, changed at or
    after its time (epoch s); symlinks are entries, never followed, and `limit` entries at most
    are looked at."""
    counts = dict.fromkeys(since, 0)
    stack: list[tuple[str, int, int] | tuple[str, None, None]] = [
        (p, None, None) for p in sorted(set(paths))
    ]
    seen = 0
    while stack and seen < limit:
        path, dev, ino = stack.pop()
        fd = open_dir(path, dev, ino)
        if fd is None:
            continue
        with contextlib.suppress(OSError), os.scandir(fd) as entries:
            for entry in entries:
                seen += 1
                if seen > limit:
                    break
                with contextlib.suppress(OSError):
                    st = entry.stat(follow_symlinks=False)
                    if st.st_uid in counts and st.st_ctime >= since[st.st_uid]:
                        counts[st.st_uid] += 1
                    if stat.S_ISDIR(st.st_mode):
                        stack.append((os.path.join(path, entry.name), st.st_dev, st.st_ino))
        os.close(fd)
    return counts


def open_dir(path: str, dev: int | None, ino: int | None) -> int | None:
    """A descriptor of directory `path`, if it still is the one listed (`dev`, `ino`; None: a
    root, taken as it is) and no symlink: a flow may swap a listed directory for a link to
    anywhere the engine can read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    found = os.fstat(fd)
    if dev is not None and (found.st_dev, found.st_ino) != (dev, ino):
        os.close(fd)
        return None
    return fd


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


def owners(parts: Iterable[str], known: Iterable[str]) -> dict[str, int]:
    """From the zygote's `W` answer: the uid each flow of `known` runs as (those with one of
    their own; the zygote lists a flow until it reaps it, after the engine forgot it)."""
    found, known = {}, set(known)
    for part in parts:
        token, _, _, uid = [*part.split(":"), ""][:4]
        if uid.isdigit() and token in known:
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
        self._inodes: int | None = None  # low on inodes: the reserve
        self._next_walk = 0.0

    def check(self, paths: Callable[[], Iterable[str]], now: float) -> bool:
        """Whether to ask the zygote for the flows' writes: free space under the reserve on
        the filesystem of one of `paths()` (looked at once every `every_s`)."""
        if not self.reserve_mb or self._asked or now < self._next:
            return False
        self._next = now + self.every_s
        written_to = sorted(set(paths()))
        for path in written_to:  # space first, on every filesystem
            free = free_mb(path)
            if free is not None and free < self.reserve_mb:
                self._low, self._inodes, self._asked = (path, free), None, True
                return True
        for path in written_to if now >= self._next_walk else ():
            inodes = free_inodes(path)
            if inodes is not None and inodes[0] < inodes[1]:
                self._low, self._inodes, self._asked = (path, float(inodes[0])), inodes[1], True
                self._next_walk = now + WALK_EVERY_S
                return True
        return False

    def culprit_of(self, parts: list[str], children: Mapping[str, Child]) -> tuple[str, str] | None:
        """From the zygote's `W` answer, for the engine's `children` (by fork token): the
        token of the flow to stop and why, or None (see `culprit`)."""
        writes = parse(parts, {t: c.received for t, c in children.items()})
        if self._inodes is None:
            return self.culprit(writes)
        self._asked = False
        return self._most_files(owners(parts, children), children)

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

    def _most_files(
        self, uids: Mapping[str, int], children: Mapping[str, Child]
    ) -> tuple[str, str] | None:
        """The flow that made the most entries in its directories since it started."""
        reserve = self._inodes
        wall_ago = time.time() - time.monotonic()  # a monotonic time + this: epoch
        since: dict[int, float] = {}
        dirs: set[str] = set()
        for token, uid in uids.items():
            job = children[token].job
            started = children[token].started + wall_ago - 1.0  # ctime has coarse ticks
            since[uid] = min(since.get(uid, math.inf), started)
            dirs.update(d for d in (job.workdir, job.artifact_folder()) if d)
        counts = made_by(dirs, since)
        made = {token: counts.get(uid, 0) for token, uid in uids.items()}
        if not made or max(made.values()) < GUILTY_FILES:
            return None
        token = max(made, key=lambda t: made[t])
        path, free = self._low
        reason = Reason.INODES_FULL.format(
            free=int(free), reserve=reserve, path=path, made=made[token]
        )
        return token, reason
