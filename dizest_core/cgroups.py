"""Control groups for flows: one group per zygote slot, so limits hold for a flow's whole tree.

A flow's memory and process count are bounded as a tree, not per process: every process the flow
starts (forked, `setsid` or not) stays in its slot's group, the group's limits cover them all,
and when the flow ends the zygote kills every process still in it. Groups are made once per slot
and reused by the next flow of that slot (mkdir/rmdir per flow would cost more than the flow).

The CPU is shared the same way where the `cpu` controller is there too (the sandbox's `cpu`
layer): each slot's group has the default weight, so the scheduler gives every busy flow the
same share of the cores however many processes, threads or sessions it runs (without it, a flow
with 16 busy processes gets 16 times the CPU of a flow with one, and the kernel's autogroup, one
group per session, is escaped by `setsid`). No cap: an idle machine's cores go to whoever works.

Two layouts, found at start-up from /proc/self/cgroup:
- cgroup v2 (unified): `<own group>/dizest-<tag>-<slot>` with `memory.max`, `pids.max`, the
  `oom_kill` count of `memory.events`, and `cgroup.kill`. It needs the memory and pids
  controllers enabled in the own group's `cgroup.subtree_control` (systemd `Delegate=yes`), and
  `cpu` for the CPU share.
- cgroup v1: the same name under the own group of the `memory`, `pids` (and `cpu`) hierarchies,
  with `memory.limit_in_bytes`, `pids.max` and the `oom_kill` count of `memory.oom_control`.
`Slots.open` returns None with the reason when neither is writable (containers without a
delegated hierarchy), and the sandbox falls back to per-uid RLIMIT_NPROC and per-process RLIMIT_AS.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
KILL_ROUNDS = 64  # a fork bomb re-populates a group between reads: bounded by pids.max anyway
UNLIMITED = "max"
WORKER_LEAF = "dizest-worker"
CPU_PERIOD_US = 100_000  # the scheduler's period a CPU cap is a quota of (the kernel's default)
PID_MAX = 1 << 22  # Linux's largest pid_max: no process has a pid at or above it
WORKER_CPU_WEIGHT = "1000"  # v2: the worker's own processes weigh ten busy flows (default 100)
OOM_OWN, OOM_OTHER = 1, 2  # `oom_cause`: killed at its own limit, or for memory short elsewhere
SLOT_GROUP = re.compile(r"dizest-([0-9]+)-([0-9]+)")  # `slot_group`'s names: a zygote's pid, a slot


@dataclass(frozen=True)
class Group:
    """One slot's group: the directories to write limits to and read processes from."""

    memory: Path
    pids: Path
    v2: bool
    cpu: Path | None = None  # v1: the cpu hierarchy's group (v2: the same folder); None: no share

    def join(self, pid: int = 0, memory: bool = True) -> None:
        """Move `pid` (0: the caller) into the group; on v1, into its memory group only when
        `memory` (each v1 hierarchy is one more migration, and a flow without a memory limit
        gains nothing from it)."""
        folders = [self.memory] if memory or self.v2 else []
        folders += [self.pids] if self.pids != self.memory else []
        for folder in folders:
            _write(f"{folder}/cgroup.procs", str(pid or os.getpid()))
        if self.cpu is not None and self.cpu != self.memory:
            with contextlib.suppress(OSError):  # the CPU share is a bonus: a flow runs without
                _write(f"{self.cpu}/cgroup.procs", str(pid or os.getpid()))

    def exists(self) -> bool:
        """Whether its folders are all there (another process may have swept them)."""
        return all(folder.is_dir() for folder in self._folders())

    def limit(self, memory_bytes: int | None, pids: int | None) -> None:
        if self.v2:
            _write(f"{self.memory}/memory.max", str(memory_bytes or UNLIMITED))
            with contextlib.suppress(OSError):  # no swap accounting: nothing to bound
                _write(f"{self.memory}/memory.swap.max", "0" if memory_bytes else UNLIMITED)
        else:
            _write(f"{self.memory}/memory.limit_in_bytes", str(memory_bytes or -1))
        _write(f"{self.pids}/pids.max", str(pids or UNLIMITED))

    def cap_cpu(self, cpus: float) -> None:
        """At most `cpus` CPUs for the group's processes together, as a quota of the
        scheduler's period (0: no cap). Raises OSError where the group has no cpu controller."""
        if self.cpu is None:
            raise OSError(errno.ENOTSUP, "no cpu controller for this group")
        quota = max(1000, round(cpus * CPU_PERIOD_US))  # the kernel's least quota is 1 ms
        if self.v2:
            _write(f"{self.cpu}/cpu.max", f"{quota if cpus else 'max'} {CPU_PERIOD_US}")
        else:  # the old quota off first: v1 refuses one above a parent's (EINVAL), and the
            _write(f"{self.cpu}/cpu.cfs_quota_us", "-1")  # flow must not keep the last flow's
            if cpus:
                _write(f"{self.cpu}/cpu.cfs_period_us", str(CPU_PERIOD_US))
                _write(f"{self.cpu}/cpu.cfs_quota_us", str(quota))

    def oom_counts(self) -> tuple[int, int]:
        """(processes of this group the kernel's OOM killer has killed, times this group's own
        limit was hit) so far. A kill without a hit came from outside: the machine, or a parent
        group, out of memory (v1 counts such kills in the victim's group too). v1 has no count
        of OOMs at the limit: its `failcnt` (charges refused at the limit) stands for it."""
        kills = hits = 0
        try:
            if self.v2:
                for line in _read(f"{self.memory}/memory.events").splitlines():
                    key, _, value = line.partition(" ")
                    kills = int(value) if key == "oom_kill" else kills
                    hits = int(value) if key == "oom" else hits
            else:
                for line in _read(f"{self.memory}/memory.oom_control").splitlines():
                    key, _, value = line.partition(" ")
                    kills = int(value) if key == "oom_kill" else kills
                hits = int(_read(f"{self.memory}/memory.failcnt"))
        except (OSError, ValueError):
            pass
        return kills, hits

    def procs(self) -> list[int]:
        try:
            return [int(p) for p in _read(f"{self.pids}/cgroup.procs").split()]
        except (OSError, ValueError):
            return []

    def kill(self) -> None:
        """SIGKILL every process in the group (the group stays, ready for the next flow)."""
        if self.v2:
            with contextlib.suppress(OSError):
                _write(f"{self.pids}/cgroup.kill", "1")
                return
        for _ in range(KILL_ROUNDS):
            procs = self.procs()
            if not procs:
                return
            for pid in procs:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        for folder in self._folders():
            with contextlib.suppress(OSError):
                folder.rmdir()

    def _folders(self) -> list[Path]:
        return _distinct(self.memory, self.pids, self.cpu)


@dataclass(frozen=True)
class Slots:
    """Where this process may create groups, and which layout it uses."""

    memory: Path
    pids: Path
    v2: bool
    cpu: Path | None = None  # where CPU shares are made; None: no cpu controller to use

    @classmethod
    def open(cls, text: str | None = None) -> tuple[Slots | None, str]:
        """The writable hierarchy of this process, or None and why not."""
        try:
            own = _own_groups(text if text is not None else Path("/proc/self/cgroup").read_text())
        except OSError as exc:
            return None, f"cannot read /proc/self/cgroup: {exc.strerror}"
        if "memory" in own and "pids" in own:
            mounts = ("cpu", "cpu,cpuacct")  # its own mount, or shared (without systemd's link)
            found = (ROOT / m / own["cpu"] for m in mounts if "cpu" in own and (ROOT / m).is_dir())
            cpu = next((path for path in found if os.access(path, os.W_OK)), None)
            slots = cls(ROOT / "memory" / own["memory"], ROOT / "pids" / own["pids"], False, cpu)
        elif "" in own:
            base = ROOT / own[""]
            if base.name == WORKER_LEAF:  # `delegate()` moved the worker here: groups go beside
                base = base.parent
            try:
                enabled = (base / "cgroup.subtree_control").read_text().split()
            except OSError:
                enabled = []
            if not {"memory", "pids"} <= set(enabled):
                return None, (
                    f"cgroup v2 group {base} does not delegate the memory and pids controllers "
                    "(systemd: Delegate=yes)"
                )
            slots = cls(base, base, True, base if "cpu" in enabled else None)
        else:
            return None, "no memory and pids cgroup hierarchy"
        if not (os.access(slots.memory, os.W_OK) and os.access(slots.pids, os.W_OK)):
            return None, f"{slots.memory} is not writable (run the worker as root)"
        return slots, "active"

    def sweep(self) -> int:
        """Remove the groups of zygotes that are gone (`dizest-<pid>-<slot>` whose pid is not a
        live process: a SIGKILLed worker's zygote cannot remove its own), so a server whose
        workers are killed now and then does not collect empty groups (memory groups hold
        kernel memory while they exist). Call it with pids of this machine's PID namespace in
        view. Returns how many went."""
        names: set[str] = set()
        for root in self.hierarchies():
            with contextlib.suppress(OSError):
                names.update(e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False))
        removed = 0
        for name in sorted(names):
            found = SLOT_GROUP.fullmatch(name)
            if found is None or int(found[1]) >= PID_MAX or _alive(int(found[1])):
                continue  # not a zygote's pid (os.kill would overflow): not ours to remove
            removed += self.remove_idle(name)
        return removed

    def remove_idle(self, name: str) -> bool:
        """Remove group `name` from every hierarchy, only if no process is in any of them (a
        spare waits in its pids group, maybe not in its memory group: never half a group),
        the last joined first (a process joining meanwhile then fails at its next join)."""
        folders = [root / name for root in self.hierarchies() if (root / name).is_dir()]
        try:
            if any(_read(f"{folder}/cgroup.procs").strip() for folder in folders):
                return False
        except OSError:
            return False
        gone = True
        for folder in reversed(folders):
            try:
                folder.rmdir()
            except OSError:
                gone = False
        return gone and bool(folders)

    def hierarchies(self) -> list[Path]:
        """Its hierarchies in the order a process joins them (`Group.join`)."""
        return _distinct(self.memory, self.pids, self.cpu)

    def group(self, name: str, cpus: float = 0.0) -> Group:
        """The group `name`, created if missing; capped at `cpus` CPUs where it can be (the
        cpu layer's probe says whether)."""
        cpu = self.cpu / name if self.cpu is not None else None
        if cpu is not None and cpu != self.memory / name:
            try:
                cpu.mkdir(exist_ok=True)
            except OSError:  # no CPU share for this group; its limits still hold
                cpu = None
        group = Group(self.memory / name, self.pids / name, self.v2, cpu)
        for folder in group._folders():
            folder.mkdir(exist_ok=True)
        if cpus and cpu is not None:
            with contextlib.suppress(OSError):
                group.cap_cpu(cpus)
        return group


def sweep_gone() -> str | None:
    """`Slots.sweep` of this process's hierarchies, if it has any; never raises (cleaning up
    must not keep flows from running): what went wrong, or None."""
    try:
        slots, _ = Slots.open()
        if slots is not None:
            slots.sweep()
    except Exception as exc:
        return repr(exc)
    return None


def delegate() -> str:
    """cgroup v2 only: move this process into `<own group>/dizest-worker` and enable the memory
    and pids controllers (and cpu, where delegated) for the own group's children, so zygotes can
    make flow groups beside it (a v2 group with controllers for its children may hold no
    process of its own). Call it first thing in a worker, before it starts any other process.
    Returns what it did."""
    try:
        own = _own_groups(Path("/proc/self/cgroup").read_text())
    except OSError as exc:
        return f"not delegated: {exc.strerror}"
    if set(own) != {""}:
        return "not needed: cgroup v1"
    base = ROOT / own[""]
    if base.name == WORKER_LEAF:
        return "already delegated"
    try:
        controllers = set((base / "cgroup.controllers").read_text().split())
        if not {"memory", "pids"} <= controllers:
            return f"not delegated: {base} lacks the memory and pids controllers"
        leaf = base / WORKER_LEAF
        leaf.mkdir(exist_ok=True)
        (leaf / "cgroup.procs").write_text(str(os.getpid()))
        (base / "cgroup.subtree_control").write_text("+memory +pids")
    except OSError as exc:
        return f"not delegated: {exc.strerror} ({base})"
    if "cpu" in controllers:  # apart: all or nothing in one write, and the CPU share is a bonus
        try:
            (base / "cgroup.subtree_control").write_text("+cpu")
            (leaf / "cpu.weight").write_text(WORKER_CPU_WEIGHT)  # heartbeats beside busy flows
        except OSError as exc:
            return f"delegated, without cpu: {exc.strerror}"
    return "delegated"


def oom_cause(before: tuple[int, int], after: tuple[int, int]) -> int:
    """0, OOM_OWN or OOM_OTHER: what `Group.oom_counts` before and after a flow say of it."""
    if after[0] <= before[0]:
        return 0
    return OOM_OWN if after[1] > before[1] else OOM_OTHER


def slot_group(tag: int, slot: int) -> str:
    """The name of slot `slot`'s group of the zygote whose pid (outside any namespace) is `tag`."""
    return f"dizest-{tag}-{slot}"


def _distinct(*folders: Path | None) -> list[Path]:
    """The folders given, each once (on v2 they are one), in order; None left out."""
    return list(dict.fromkeys(p for p in folders if p is not None))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _write(path: str, text: str) -> None:
    """One write of `text` to a control file. Not `Path.write_text`: a text stream (its codec
    lookup and buffers) costs a fresh child 77 copied pages for what is one write(2); the
    zygote calls these per flow too."""
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _read(path: str) -> str:
    """A control file's whole text (a read(2) of one returns a page of it at most)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        parts: list[bytes] = []
        while chunk := os.read(fd, 65536):
            parts.append(chunk)
        return b"".join(parts).decode()
    finally:
        os.close(fd)


def _own_groups(text: str) -> dict[str, str]:
    """controller -> own group path (relative); "" is the v2 unified group."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        for controller in parts[1].split(",") if parts[1] else [""]:
            own[controller] = parts[2].lstrip("/")
    if "memory" in own and "pids" in own:
        own.pop("", None)  # hybrid: the v2 tree has no controllers, the v1 ones do
    return own
