"""The zygote: a lean, single-threaded process whose only job is to fork flow children.

Forking is ~4 ms against 45-60 ms for spawning a fresh interpreter, but it is only safe from a
process that runs no other threads, and its cost grows with the parent's memory. So the engine
starts this small process once (`python -m dizest_core.zygote`) and asks it to fork. Protocol on
a SOCK_SEQPACKET socket:

    zygote -> engine   b"L <json>"                                   sandbox layers, once at start
    engine -> zygote   b"F <token> <MB>" + SCM_RIGHTS [conn, stdout, stderr]  fork a child
                                        (MB: its memory limit, 0 for none)
    zygote -> engine   b"P <token> <pid>"                                 child started
    engine -> zygote   b"K <token>"        kill that child's tree (one exiting already: at its
                                        reap, or END_GRACE_S later if it is not reaped by then)
    engine -> zygote   b"C"                             each child's CPU time so far, answered:
    zygote -> engine   b"C <token>:<ns>:<R|S> ..."                 (see `dizest_core.cpuuse`)
    engine -> zygote   b"W"                      bytes each child's tree has written, answered:
    zygote -> engine   b"W <token>:<files>:<calls> ..."    (see `dizest_core.diskguard.written`)
    zygote -> engine   b"X <pid> <wait status> <oom>"      child ended (cgroups.oom_cause)

Only the zygote signals its children: it reaps them, so it alone knows a pid still names the
child it forked (the engine's kill names the fork token, never a pid). Each child gets a slot:
a uid of its own and a cgroup, when the sandbox allows (see `dizest_core.sandbox`). When a child
ends, everything it started is killed (cgroup, else every process of its uid, else its process
group) before it is reaped. With the sandbox on, the zygote is pid 1 of its own PID namespace, so
flows cannot see or signal anything outside it, and orphans they leave are reaped here. When the
engine goes away (EOF), the zygote kills its children and exits.
"""

from __future__ import annotations

import _signal  # `signal`'s C functions, without its enum conversions (see `_child`)
import contextlib
import gc
import importlib
import json
import os
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass

from dizest_core import cgroups, confine, cpuuse, diskguard, lifeline, linux, probe
from dizest_core.cgroups import Group
from dizest_core.cpuuse import exiting
from dizest_core.sandbox import UID_STRIDE, Policy, Prepared, Slot, slot_uid

MAX_FDS = 3
WARM_RUNS = 12  # CPython 3.11 quickens a function's code on its 8th call
END_GRACE_S = 0.1  # a child `end` found exiting: killed after all if not reaped by then
SLOT_WAIT_S = 60.0  # for a slot a child the engine let go still holds (see `free_slot`)


@dataclass
class _Child:
    token: str
    slot: int
    sandbox: Slot
    oom_before: tuple[int, int] | None  # its group's `oom_counts` at fork; None: not in one


class Zygote:
    """The forking loop and what it knows of its children."""

    def __init__(self, control: socket.socket, policy: Policy, tag: int) -> None:
        self.control = control
        self.policy = policy
        self.tag = tag  # the zygote's pid outside any namespace: makes slot uids unique
        self.children: dict[int, _Child] = {}
        self.tokens: dict[str, int] = {}
        self.layers: dict[str, str] = {}
        self.slots = probe.cgroup_slots() if policy.enabled else None
        self.groups: dict[int, Group] = {}  # slot -> its cgroup, made once
        self.limits: dict[int, tuple[int | None, int]] = {}  # slot -> limits its group has
        self.prepared = Prepared()
        self.due: dict[int, float] = {}  # pid -> when to kill it after all (see `end`)
        self.orphans = diskguard.Orphans()

    def slot(self, index: int) -> Slot:
        if not self.policy.enabled:
            return Slot(None, None, None, self.layers)
        identity = self.layers.get("identity") == "active"
        group = None
        if self.slots is not None:
            group = self.groups.get(index)
            if group is None or not group.exists():  # new, or swept by a zygote that thought
                name = cgroups.slot_group(self.tag, index)  # us gone
                group = self.groups[index] = self.slots.group(name, self.policy.cpus)
                self.limits.pop(index, None)  # a new group has none of the limits yet
        uid = slot_uid(self.policy, self.tag, index) if identity else None
        return Slot(uid, self.policy.gid if identity else None, group, self.layers, self.prepared)

    def fork(self, token: str, memory_mb: int, fds: list[int], wake_r: int) -> None:
        index = self.free_slot(wake_r)
        sandbox = self.slot(index)
        if sandbox.group is not None:  # limits for the whole tree, written only when they change
            limits = (memory_mb * 1024 * 1024 or None, self.policy.max_pids)
            if self.limits.get(index) != limits:
                sandbox.group.limit(*limits)
                self.limits[index] = limits
        group = sandbox.group  # a v1 flow without a memory limit joins no memory group
        oom = group.oom_counts() if group and (memory_mb or group.v2) else None
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            _child(self.control, wake_r, fds, self.policy, sandbox, parent, memory_mb)
        for fd in fds:
            os.close(fd)
        self.children[pid] = _Child(token, index, sandbox, oom)
        self.tokens[token] = pid
        _tell(self.control, f"P {token} {pid}")

    def free_slot(self, wake_r: int) -> int:
        """A slot no child holds. The engine keeps at most UID_STRIDE children and spares, but
        one it closed or killed holds its slot (its uid) until reaped here: wait for that (it
        exits at once). Never slot UID_STRIDE: that uid is the next zygote's slot 0."""
        deadline = time.monotonic() + SLOT_WAIT_S
        while True:
            used = {c.slot for c in self.children.values()}
            free = next((i for i in range(UID_STRIDE) if i not in used), None)
            if free is not None:
                return free
            if time.monotonic() > deadline:
                raise RuntimeError(f"every one of the {UID_STRIDE} slots held {SLOT_WAIT_S:g} s")
            if select.select([wake_r], [], [], 0.05)[0]:
                os.read(wake_r, 4096)
            self.reap()

    def usage(self) -> None:
        """Tell the engine each child's CPU demand so far (ns) and whether it is runnable, by
        token: `C tok:ns:R|S ...` (see `cpuuse.read`)."""
        parts = []
        for pid, child in self.children.items():
            use = cpuuse.read(pid)
            if use is not None:
                parts.append(f"{child.token}:{use[0]}:{'R' if use[1] else 'S'}")
        with contextlib.suppress(OSError):
            self.control.send(("C " + " ".join(parts)).encode())

    def writes(self) -> None:
        """Each child tree's writes (cgroup, else process group) and uid: `W tok:files:calls:uid`."""
        parts = []
        for pid, child in self.children.items():
            group = child.sandbox.group
            members = group.procs() if group is not None else diskguard.group_members(pid)
            files, calls = diskguard.written(members or [pid])
            left = self.orphans.of(child.sandbox.uid)
            uid = "" if child.sandbox.uid is None else child.sandbox.uid
            parts.append(f"{child.token}:{files + left[0]}:{calls + left[1]}:{uid}")
        with contextlib.suppress(OSError):
            self.control.send(("W " + " ".join(parts)).encode())

    def end(self, pid: int) -> None:
        """The engine's kill (`K`): the child's tree, now, or within END_GRACE_S if the child
        is exiting already. The engine asks this of every flow that said DONE; by then the
        child is usually in its exit (PF_EXITING in every thread), and what it started is killed
        when it is reaped, milliseconds later. Killing it meanwhile made the cgroup v1 kill loop
        spin (20-48 reads of cgroup.procs) on a CPU its own exit needed: 1.2 ms of the zygote
        per flow on 2 cores. The grace is bounded: a child not reaped by then is killed."""
        if exiting(pid, os.getpid()):
            self.due[pid] = time.monotonic() + END_GRACE_S  # killed then, unless reaped
        else:
            self.kill(pid)

    def overdue(self) -> float | None:
        """Kill the children `end` let exit that are not reaped by now (one stuck in its exit,
        or a thread `exiting` could not see); seconds until the next such deadline."""
        if not self.due:
            return None
        now = time.monotonic()
        for pid, at in list(self.due.items()):
            if at <= now:
                del self.due[pid]
                if pid in self.children:
                    self.kill(pid)
        return max(0.0, min(self.due.values()) - now) if self.due else None

    def kill(self, pid: int) -> None:
        """Kill a live child and everything it started."""
        child = self.children[pid]
        if child.sandbox.group is not None:
            child.sandbox.group.kill()
        elif child.sandbox.uid is not None:
            _kill_uid(child.sandbox.uid)
        try:  # noqa: SIM105 (not contextlib.suppress: see `_tell`)
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:  # noqa: SIM105
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def reap(self, final: bool = False) -> None:
        while True:
            try:
                flags = os.WEXITED | os.WNOWAIT | (0 if final and self.children else os.WNOHANG)
                info = os.waitid(os.P_ALL, 0, flags)
            except ChildProcessError:
                return
            if info is None:
                return
            child = self.children.get(info.si_pid)
            # Kill what the flow left running (a background process must not outlive its
            # flow). Done before reaping: the zombie still holds the pid, so it names nobody else.
            if child is not None:
                self.kill(info.si_pid)
            else:  # an orphan a flow left behind (we are pid 1 of the namespace)
                flow = next((p for p, c in self.children.items() if c.sandbox.uid == info.si_uid), None)  # fmt: skip
                self.orphans.reaping(info.si_pid, info.si_uid, flow)
            pid, status = os.waitpid(info.si_pid, 0)
            if child is None:
                continue
            self.orphans.by_uid.pop(child.sandbox.uid or -1, None)  # not the slot's next flow's
            del self.children[pid]
            self.tokens.pop(child.token, None)
            self.due.pop(pid, None)
            group, before = child.sandbox.group, child.oom_before
            oom = cgroups.oom_cause(before, group.oom_counts()) if group and before else 0
            _tell(self.control, f"X {pid} {status} {oom}")

    def close(self) -> None:
        for pid in list(self.children):
            self.kill(pid)
        self.reap(final=True)
        if self.slots is not None:
            for group in self.groups.values():
                group.remove()


def main(argv: list[str]) -> None:
    """argv: control fd, the sandbox policy (JSON), the engine's pid to die with (0: none, see
    `zygote_handle.Zygote`), modules to preload, then `--renderers` and plugin files."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the engine, which closes us
    if int(argv[2]):
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != int(argv[2]):  # it ended before that took effect
            return
    control = socket.socket(fileno=int(argv[0]))
    policy = Policy.from_json(argv[1])
    tag = os.getpid()
    layers = probe.layers(policy) if policy.enabled else {}
    if policy.enabled:
        if (why := cgroups.sweep_gone()) is not None:  # while it still sees the machine's pids
            print(f"dizest zygote: cannot sweep old cgroups: {why}", file=sys.stderr)
        try:
            _enter_pid_namespace(control)
            layers["pidns"] = probe.ACTIVE
        except OSError as exc:
            layers["pidns"] = f"unavailable: {exc.strerror}"
    zygote = Zygote(control, policy, tag)
    zygote.layers = layers
    if policy.enabled:
        zygote.prepared = confine.prepare(policy, layers)
        # imports by resolved paths: the sandbox binds those back under a covered /tmp or home,
        # not a link to them there (a checkout's .venv linked to another, a `current` release)
        sys.path[:] = [os.path.realpath(p) if p else p for p in sys.path]
        sys.path_importer_cache.clear()
    _preload(argv[3:])
    try:
        control.send(b"L " + json.dumps(layers).encode())
    except OSError:  # the engine is gone already (a prestarted zygote its command never used)
        return
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as pid 1 it would be ignored anyway
    try:
        _serve(zygote, wake_r)
    finally:
        zygote.close()


def _enter_pid_namespace(control: socket.socket) -> None:
    """Become pid 1 of a new PID namespace: this process stays outside only to wait for it."""
    linux.unshare(linux.CLONE_NEWPID)
    pid = os.fork()
    if pid == 0:
        lifeline.die_with_parent(signal.SIGKILL, 0)  # the parent is outside: getppid() is 0
        return
    control.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _, status = os.waitpid(pid, 0)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def _preload(rest: list[str]) -> None:
    split = rest.index("--renderers") if "--renderers" in rest else len(rest)
    for module in rest[:split]:
        try:
            importlib.import_module(module)
        except Exception as exc:  # a bad preload must not stop the engine
            print(f"dizest zygote: cannot preload {module}: {exc}", file=sys.stderr)
    runtime = importlib.import_module("dizest_core.runtime")
    importlib.import_module("dizest_core.apiruntime")  # `api` calls fork from here too
    runtime.load_renderer_files(tuple(rest[split + 1 :]))
    # The fixed warm-up flow (no user code, no file), here too: CPython quickens and
    # specializes a function's code after some calls and caches type lookups, writing to
    # shared objects each time; done here once, no child repeats it.
    warmup = importlib.import_module("dizest_core.warmup")
    for _ in range(WARM_RUNS):
        warmup.warm_up(runtime.run)
    # Everything imported so far is shared with every child; freezing it keeps the children's
    # garbage collector from touching (and so copying) those pages after fork.
    gc.collect()
    gc.freeze()


def _serve(zygote: Zygote, wake_r: int) -> None:
    control = zygote.control
    while True:
        readable, _, _ = select.select([control.fileno(), wake_r], [], [], zygote.overdue())
        if wake_r in readable:
            os.read(wake_r, 4096)
            zygote.reap()
        if control.fileno() in readable:
            try:
                msg, fds, _, _ = socket.recv_fds(control, 1024, MAX_FDS)
            except ConnectionError:  # the engine closed with our notices unread: same as EOF
                return
            if not msg:
                return
            kind, _, rest = msg.decode().partition(" ")
            token, _, memory = rest.partition(" ")
            if kind == "F":
                zygote.fork(token, int(memory or 0), fds, wake_r)
            elif kind == "C":
                zygote.usage()
            elif kind == "W":
                zygote.writes()
            elif kind == "K" and token in zygote.tokens:
                zygote.end(zygote.tokens[token])


def _child(
    control: socket.socket,
    wake_r: int,
    fds: list[int],
    policy: Policy,
    sandbox: Slot,
    parent: int,
    memory_mb: int,
) -> None:
    code = 70
    try:
        wake_w = _signal.set_wakeup_fd(-1)  # the zygote's: a flow writing to it spins the zygote
        if wake_w >= 0:
            os.close(wake_w)
        # `signal.signal` would turn each old handler into an enum member (raising and catching
        # ValueError for the zygote's own): 0.1 ms of a fresh child, most of it copied pages
        for signum in (_signal.SIGCHLD, _signal.SIGTERM):
            _signal.signal(signum, _signal.SIG_DFL)
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)
        control.close()
        os.close(wake_r)
        os.setsid()
        lifeline.die_with_parent(signal.SIGKILL, parent)
        conn, out, err = fds
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)
        from dizest_core import runtime

        code = runtime.main(conn, policy, sandbox, memory_mb or None)
    except BaseException as exc:
        os.write(2, f"dizest: flow process failed to start: {exc!r}\n".encode())
    finally:
        os._exit(code)


def _tell(control: socket.socket, notice: str) -> None:
    """Send the engine a notice; when it is gone, its EOF ends the loop next. Not
    `contextlib.suppress`: in the per-flow loop that is an object and two Python calls more,
    on pages the zygote writes, and so copies, after every fork (its spares share them)."""
    try:  # noqa: SIM105
        control.send(notice.encode())
    except OSError:
        pass


def _kill_uid(uid: int) -> None:
    """SIGKILL every process of `uid` (a slot's own uid: exactly the flow's tree), atomically
    against forks, from a helper that takes that uid (kill(-1) spares only the caller)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setresuid(uid, uid, uid)
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


if __name__ == "__main__":
    main(sys.argv[1:])
