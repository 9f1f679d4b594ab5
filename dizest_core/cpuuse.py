"""How much of a core each running flow uses: what admission by measured CPU decides on.

With the default concurrency a local run does not stop at one flow per CPU: a flow that sleeps
or waits (on I/O, a subprocess, a remote service) does not hold a core, so another may start
beside it, up to a hard cap on processes. When the engine asks, the zygote reads each child
(`read`, in its own PID namespace): the CPU demand of all its threads so far and whether one is
runnable now. The `Meter` keeps the last reading of each child and says whether it holds a
core: unmeasured (no two readings `MIN_WINDOW_S` apart yet) counts as holding one, so a run
never starts more than one flow per CPU on a guess.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MIN_WINDOW_S = 0.002  # readings closer than this say nothing
BUSY_SHARE = 0.5  # a flow that used at least half a core over its last window holds one
SAMPLE_S = 0.002  # while flows wait for a core: how often an unmeasured one is read
RESAMPLE_S = 0.05  # ... and how often the measured ones are read again


def read(pid: int) -> tuple[int, bool] | None:
    """CPU demand of every thread of `pid` so far (ns: time on a CPU plus time runnable but
    waiting for one, schedstat's first two fields, so a flow starved by a busy machine still
    counts as wanting a core), and whether a thread is runnable right now (the kernel adds to
    a running thread's time only at scheduler ticks, so a short window can miss it); None when
    it is gone."""
    total, runnable = 0, False
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            run, wait, _ = _task_file(pid, tid, "schedstat").split(b" ", 2)
            state = _task_file(pid, tid, "stat").rpartition(b") ")[2][:1]
        except (OSError, ValueError):
            continue  # that thread just ended
        total += int(run) + int(wait)
        runnable = runnable or state == b"R"
    return total, runnable


PF_EXITING = 0x4  # include/linux/sched.h: the task is in do_exit


def exiting(pid: int, parent: int) -> bool:
    """Whether every thread of `pid`, a child of `parent`, is exiting (a zombie included): it
    runs no more code of its own. False when unknown, or when /proc names another process (a
    /proc of another PID namespace). All threads: one that exits alone (SYS_exit of the main
    thread) leaves the others running."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
        for tid in tids:
            fields = _task_file(pid, tid, "stat").rpartition(b") ")[2].split()
            # state, ppid, pgrp, session, tty, tpgid, flags
            if int(fields[1]) != parent or not int(fields[6]) & PF_EXITING:
                return False
    except (OSError, ValueError, IndexError):
        return False
    return bool(tids)


def _task_file(pid: int, tid: str, name: str) -> bytes:
    """/proc/<pid>/task/<tid>/<name> (one page at most), read with plain system calls: the
    zygote reads these for its children, and every object it makes is on a page it copies
    after each fork (its spare children share them), as a file object's buffers would be."""
    fd = os.open(f"/proc/{pid}/task/{tid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


@dataclass
class _Reading:
    at: float  # monotonic seconds when the engine got it
    ns: int
    runnable: bool
    share: float | None = None  # of one core, over the window ending at this reading


class Meter:
    """Readings by fork token: a flow holds a core while it is not measured yet, while a thread
    of it is runnable, or when it used at least BUSY_SHARE of a core over its last window."""

    def __init__(self) -> None:
        self.last: dict[str, _Reading] = {}

    def record(self, token: str, at: float, ns: int, runnable: bool) -> None:
        prev = self.last.get(token)
        if prev is None:
            self.last[token] = _Reading(at, ns, runnable)
        elif at - prev.at >= MIN_WINDOW_S:
            share = max(0, ns - prev.ns) / 1e9 / (at - prev.at)
            self.last[token] = _Reading(at, ns, runnable, share)
        else:
            prev.runnable = prev.runnable or runnable

    def holds_core(self, token: str) -> bool:
        reading = self.last.get(token)
        if reading is None or reading.share is None:
            return True
        return reading.runnable or reading.share >= BUSY_SHARE

    def measured(self, token: str) -> bool:
        reading = self.last.get(token)
        return reading is not None and reading.share is not None

    def forget(self, token: str) -> None:
        self.last.pop(token, None)


def parse(fields: list[str]) -> list[tuple[str, int, bool]]:
    """The zygote's answer `C tok:ns:R|S ...` (without the C): (token, ns, runnable)."""
    out = []
    for item in fields:
        token, _, rest = item.partition(":")
        ns, _, state = rest.partition(":")
        if token and ns.isdigit():
            out.append((token, int(ns), state == "R"))
    return out


def cpus() -> int:
    """CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1
