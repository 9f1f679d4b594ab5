"""What /proc says about processes, for the benches' CPU and memory figures: CPU times (own and
reaped), parents, sessions, command lines, resident and peak memory.

A process that is gone reads as absent (None, 0, skipped), never as an error: the benches read
process trees that change while they read them. Standard library only (see common.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (index 0: state, 1: ppid, 2: pgrp,
    3: session, 11-14: utime, stime, cutime, cstime, 19: start time); None once gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fp:
            return fp.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def pids() -> list[int]:
    """Every process now."""
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def cmdline(pid: int) -> str:
    """Its command line, arguments joined by spaces ("" once gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def cpu_s(pid: int) -> float:
    """utime + stime + reaped children's, in seconds (0 once gone)."""
    fields = stat_fields(pid)
    return 0.0 if fields is None else sum(int(v) for v in fields[11:15]) / CLK_TCK


def sys_s(pid: int) -> float:
    """stime alone (the kernel's share: sockets, futexes), in seconds (0 once gone)."""
    fields = stat_fields(pid)
    return 0.0 if fields is None else int(fields[12]) / CLK_TCK


@dataclass(frozen=True)
class ProcInfo:
    ppid: int
    start: int
    own_s: float  # utime + stime
    reaped_s: float  # cutime + cstime
    cmdline: str


def proc_info(pid: int) -> ProcInfo | None:
    fields = stat_fields(pid)
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fb:
            command = fb.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    if fields is None:
        return None
    ticks = [int(x) for x in fields[11:15]]
    return ProcInfo(
        int(fields[1]),
        int(fields[19]),
        (ticks[0] + ticks[1]) / CLK_TCK,
        (ticks[2] + ticks[3]) / CLK_TCK,
        command,
    )


def process_tree(root: int) -> dict[int, ProcInfo]:
    """`root` and its descendants (flow children included: they are children of a zygote)."""
    infos: dict[int, ProcInfo] = {}
    for pid in pids():
        info = proc_info(pid)
        if info is not None:
            infos[pid] = info
    tree: dict[int, ProcInfo] = {}
    frontier = [root]
    while frontier:
        pid = frontier.pop()
        if pid in infos and pid not in tree:
            tree[pid] = infos[pid]
            frontier += [p for p, i in infos.items() if i.ppid == pid]
    return tree


def descendants_cpu_s(root: int | None = None) -> float:
    """CPU seconds (user + sys) of every live process below `root` (default: this one), with
    what each has reaped: the zygote, its spare and flow children, whatever their namespaces."""
    root = os.getpid() if root is None else root
    stats: dict[int, tuple[int, float]] = {}  # pid -> (ppid, own + reaped s)
    for pid in pids():
        fields = stat_fields(pid)
        if fields is not None:
            stats[pid] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / CLK_TCK)
    below: set[int] = {root}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, _) in stats.items():
            if ppid in below and pid not in below:
                below.add(pid)
                changed = True
    return sum(stats[pid][1] for pid in below if pid != root and pid in stats)


def children(parent: int) -> list[int]:
    """The live direct children of `parent`."""
    found = []
    for pid in pids():
        fields = stat_fields(pid)
        try:
            if fields is not None and int(fields[1]) == parent:
                found.append(pid)
        except (ValueError, IndexError):
            continue
    return found


def tree_cpu_s(root: int) -> float:
    """CPU seconds of `root` and its direct children, each with the children they reaped:
    the zygote (outside and, with the PID namespace, inside it) and the flows it forked."""
    return sum(cpu_s(pid) for pid in (root, *children(root)))


def session_members(sid: int) -> list[int]:
    """The processes of session (or process group) `sid`."""
    found = []
    for pid in pids():
        fields = stat_fields(pid)
        if fields is not None and (int(fields[3]) == sid or int(fields[2]) == sid):
            found.append(pid)
    return found


def rss(pid: int) -> int:
    """VmRSS in kB (0 if gone)."""
    return _status_kb(pid, "VmRSS:") or 0


def vm_hwm_mb(pid: int) -> float | None:
    """Peak resident memory (VmHWM) in MB, None if gone."""
    kb = _status_kb(pid, "VmHWM:")
    return None if kb is None else kb / 1024


def _status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1])
    except OSError:
        pass
    return None
