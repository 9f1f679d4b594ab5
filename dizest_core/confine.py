"""Putting a flow process in its sandbox (see `sandbox`): once per zygote, then once per flow.

`prepare` runs in the zygote at start (root, pid 1 of its PID namespace): it enters a mount
namespace of its own with `/` private, covers the private homes (/root, /home, ...) binding back
the Python installation and the server's data roots that live under them, mounts a /proc that
shows only the namespace's processes (and, with `hidepid`, only the caller's own), and opens the
paths every flow may read. Everything in it is shared by all the zygote's flows, so none pays
for it.

`enter` runs in each freshly forked child, before user code, while it is still root: join the
slot's cgroup (and set its CPU cap, the flow's own or the server's), a mount namespace of its own (a copy of the zygote's) where the server's data
directories, /tmp, /dev/shm and /sys/fs/cgroup are covered by fresh tmpfs and only the flow's
own directories are bound back, an IPC namespace of its own, the network namespace for `none`,
the limits, then the uid drop, then Landlock (needs no privilege; last but for the system-call
filter, so nothing after it can widen what the flow may touch), then that filter (`seccomp`). A
layer the zygote reported active must succeed, or the flow does not run at all.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from typing import Any

from dizest_core import linux, seccomp
from dizest_core.job import RUN_ID, Artifact, FlowJob, unsafe_flow_id
from dizest_core.sandbox import HIDE_DEFAULT, SYSTEM_READ, Policy, Prepared, Slot, rlimits
from dizest_core.traverse import PASSABLE, make_passable

READ = linux.FS_EXECUTE | linux.FS_READ_FILE | linux.FS_READ_DIR
FILE_RIGHTS = linux.FS_READ_FILE | linux.FS_WRITE_FILE | linux.FS_EXECUTE | linux.FS_TRUNCATE
MOUNT_FLAGS = linux.MS_NOSUID | linux.MS_NODEV
COVER = "mode=0755,size=1m"
CGROUP_FS = "/sys/fs/cgroup"


@dataclass(frozen=True)
class _Expose:
    path: str  # real path
    write: bool


def prepare(policy: Policy, layers: dict[str, str]) -> Prepared:
    """The zygote's share of the sandbox (see the module docstring). The server's data dirs
    (working roots, artifacts) are bound back under a private home that covers them, so each
    child can still open its own folders there before it covers the data dirs themselves."""
    on = {name for name, state in layers.items() if state == "active"}
    hidden = _hidden(policy)
    homes = [h for h in hidden if h in {os.path.realpath(d) for d in HIDE_DEFAULT}]
    data = [h for h in hidden if h not in homes]
    if "mountns" in on:
        linux.unshare(linux.CLONE_NEWNS)
        linux.mount("none", "/", None, linux.MS_REC | linux.MS_PRIVATE, None)
        keep = [_Expose(os.path.realpath(p), False) for p in (*policy.read, *data)]
        _cover(_outermost(homes), [e for e in keep if os.path.exists(e.path)], {}, seal=False)
        if "pidns" in on:
            flags = MOUNT_FLAGS | linux.MS_NOEXEC
            linux.mount("proc", "/proc", "proc", flags, "hidepid=invisible")
    abi = linux.landlock_abi() if "landlock" in on else 0
    rules: list[tuple[int, int]] = []
    if abi:
        static = [(p, READ) for p in (*SYSTEM_READ, *policy.read)]
        static.append(("/dev", READ | linux.FS_WRITE_FILE | linux.FS_IOCTL_DEV))
        if "pidns" in on:  # /proc shows only the sandbox's own processes
            static.append(("/proc", READ))
        else:
            static += [(f"/proc/{name}", READ) for name in ("cpuinfo", "meminfo", "stat")]
        for path, access in static:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # not on this machine (/lib32, ...)
            rules.append((fd, _rights(fd, access, _handled(abi))))
    if "seccomp" in on:
        seccomp.prepare()
    covers = [*_outermost(data), *(p for p in PRIVATE if os.path.isdir(p))]
    reads = {os.path.realpath(p) for p in policy.read if os.path.exists(p)}
    rebind = sorted(p for p in reads if any(_within(p, c) for c in covers))
    mounted = "mountns" in on
    return Prepared(tuple(covers), tuple(rebind), tuple(rules), mounted)


# a flow's own /tmp and /dev/shm; and no cgroupfs: other slots' groups would show their host
# pids and CPU use (its own group was joined before the cover, and is killed by path)
PRIVATE = ("/tmp", "/dev/shm", CGROUP_FS)


def _hidden(policy: Policy) -> list[str]:
    return [os.path.realpath(p) for p in policy.hide if os.path.isdir(p)]


def covered(policy: Policy, layers: dict[str, str]) -> list[str]:
    """What a flow sees as a fresh tmpfs (the private homes, the server's data dirs, /tmp ...),
    its own folders bound back under passable mount points; nothing without the mount layer."""
    if layers.get("mountns") != "active":
        return []
    return [*_hidden(policy), *(p for p in PRIVATE if os.path.isdir(p))]


@dataclass
class Ahead:
    """What `ahead` did, for `enter` to finish."""

    mount_ns: bool = False  # this process has its own mount namespace already
    ipc_ns: bool = False  # and its own IPC namespace
    ruleset: int | None = None  # a Landlock ruleset with the static rules, not enforced yet
    network: str = ""  # the network policy that ruleset was made for


def ahead(policy: Policy, slot: Slot, memory_mb: int | None) -> Ahead:
    """What does not depend on the job, done before it arrives (in a spare child forked for a
    memory limit): join the slot's cgroup (its limits are set by the zygote), set the limits,
    enter a mount namespace of its own (a copy of the zygote's), build the Landlock ruleset
    with the static rules for the server's default network. Nothing is enforced yet."""
    done = Ahead()
    if not policy.enabled:
        return done
    on = {name for name, state in slot.layers.items() if state == "active"}
    if slot.group is not None:
        slot.group.join(memory=memory_mb is not None)
    rlimits(policy, memory_mb, tree_memory=slot.group is not None)
    _oom_first()
    done.mount_ns = slot.prepared.mounted
    done.ipc_ns = "ipcns" in on
    flags = (linux.CLONE_NEWNS if done.mount_ns else 0) | (linux.CLONE_NEWIPC if done.ipc_ns else 0)
    if flags:
        linux.unshare(flags)
    if "landlock" in on:
        done.network = policy.network
        done.ruleset = _ruleset(slot.prepared, policy.network, "netns" in on)
    return done


def enter(job: FlowJob, policy: Policy, slot: Slot, done: Ahead | None = None) -> None:
    """Confine this process for `job`, after `ahead`; raises OSError when a layer that is on
    cannot be set."""
    if not policy.enabled:
        return
    done = done or Ahead()
    on = {name for name, state in slot.layers.items() if state == "active"}
    network = job.network or policy.network
    if "cpu" in on and slot.group is not None:  # this flow's cap, or none, on its slot's group
        with contextlib.suppress(OSError):  # (still reachable: /sys/fs/cgroup is covered below)
            slot.group.cap_cpu(job.cpus or policy.cpus)
    exposed = exposures(job)
    if slot.gid is not None:
        _give_to_group(job, slot.gid)
    flags = linux.CLONE_NEWNS if slot.prepared.mounted and not done.mount_ns else 0
    if "ipcns" in on and not done.ipc_ns:
        flags |= linux.CLONE_NEWIPC
    if network == "none" and "netns" in on:
        flags |= linux.CLONE_NEWNET
    if flags:
        linux.unshare(flags)
    if slot.prepared.mounted:
        tmp = f"mode=1777,size={policy.tmp_mb}m"
        options = {c: tmp if c in ("/tmp", "/dev/shm") else COVER for c in slot.prepared.covers}
        keep = [_Expose(p, False) for p in slot.prepared.rebind]  # the Python installation
        _cover(list(slot.prepared.covers), exposed + keep, options, seal=True)
    if slot.uid is not None and slot.gid is not None:
        os.setgroups([])
        os.setresgid(slot.gid, slot.gid, slot.gid)
        os.setresuid(slot.uid, slot.uid, slot.uid)
        os.umask(0o007)  # the run's other flows (other uids, same group) may change its files
    os.environ["HOME"] = job.workdir
    os.environ["TMPDIR"] = "/tmp"
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    if "landlock" in on:
        ruleset = done.ruleset
        if ruleset is None or done.network != network:  # made for another network policy
            if ruleset is not None:
                os.close(ruleset)
            ruleset = _ruleset(slot.prepared, network, "netns" in on)
        _landlock(ruleset, exposed, slot.prepared, pidns="pidns" in on)
    elif done.ruleset is not None:
        os.close(done.ruleset)
    for fd, _ in slot.prepared.static_rules:
        os.close(fd)
    if "seccomp" in on:  # last: nothing above may need a call it denies
        seccomp.install(no_unix_sockets=network == "none")


def _oom_first() -> None:
    """When the machine runs out of memory, the kernel kills flows before anything else (Redis,
    the API, the worker), whatever their size; a flow cannot lower it once it is not root."""
    fd = os.open("/proc/self/oom_score_adj", os.O_WRONLY | os.O_CLOEXEC)
    try:  # one write(2), not a text stream: its codec and buffers are pages a child copies
        os.write(fd, b"1000")
    finally:
        os.close(fd)


def exposures(job: FlowJob) -> list[_Expose]:
    """What the flow may reach: its working directory and artifact folder read-write; the
    artifact directories of the runs its inputs come from and its user's drive read-only."""
    out = [_Expose(os.path.realpath(job.workdir), True)]
    if job.drive and os.path.isdir(job.drive):
        out.append(_Expose(os.path.realpath(job.drive), False))
    folder = job.artifact_folder()
    if folder is not None and job.artifact_dir:
        root = os.path.realpath(job.artifact_dir)
        own = os.path.join(root, job.run_id, job.flow_id, str(job.attempt))
        if unsafe_flow_id(job.flow_id) or os.path.dirname(os.path.dirname(own)) != os.path.join(
            root, job.run_id
        ):
            raise OSError(errno.EINVAL, f"flow id {job.flow_id!r} cannot name a folder")
        make_passable(root)
        _make_folder(root, [job.run_id, job.flow_id, str(job.attempt)])
        runs = {os.path.join(root, job.run_id)}
        for values in job.sources.values():
            for value in values:
                run = _run_of(value, root)
                if run is not None:
                    runs.add(os.path.join(root, run))
        out.extend(_Expose(p, False) for p in sorted(runs) if os.path.isdir(p))
        out.append(_Expose(own, True))  # inside its run's: no mount
    return out


def _make_folder(root: str, parts: list[str]) -> None:
    """Make root/parts... one part at a time, never through a link (ELOOP): root makes it and
    gives it to the flow, so a link planted on the way must not lead it elsewhere."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            made = True
            try:
                os.mkdir(part, dir_fd=fd)
            except FileExistsError:
                made = False
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                inner = os.open(part, flags, dir_fd=fd)
            except OSError as exc:  # ENOTDIR (or ELOOP) for a link
                raise OSError(
                    exc.errno, f"the artifact folder's {part!r} is a link or a file"
                ) from None
            if made:  # flows (other uids) and the API pass it whatever the umask was
                os.fchmod(inner, PASSABLE)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


def _run_of(value: Any, root: str) -> str | None:
    """The run whose artifact directory holds an input's file, read from its stored path as
    the engine wrote it (<root>/<run>/...), never by resolving it: a path a flow could have
    swapped for a link would bind whatever it points to."""
    if not isinstance(value, Artifact) or not value.path.startswith(root + os.sep):
        return None
    run = value.path[len(root) + 1 :].split(os.sep, 1)[0]
    return run if RUN_ID.fullmatch(run) else None


def _give_to_group(job: FlowJob, gid: int) -> None:
    """The working directory and artifact folder belong to the flow group (mode 770), so every
    flow of the run can write there whatever slot uid it runs as (all share that primary group,
    so what they create is the group's too: no setgid bit, which hardened units forbid)."""
    paths = [job.workdir]
    folder = job.artifact_folder()
    if folder is not None:
        paths.append(folder)
    for path in paths:
        info = os.stat(path)
        if info.st_gid != gid or stat.S_IMODE(info.st_mode) & 0o070 != 0o070:
            os.chown(path, -1, gid)
            os.chmod(path, stat.S_IMODE(info.st_mode) | 0o770)


def _cover(
    covers: list[str], exposed: list[_Expose], options: dict[str, str], *, seal: bool
) -> None:
    """Mount a fresh tmpfs on each cover, then bind back the exposed paths under it (opened
    before the cover, through /proc/self/fd, since their path is gone after it). With `seal`
    (a flow's), a path exposed read-only is bound read-only: Landlock's rule for the flow's own
    /tmp reaches every bind beneath it (a data dir under /tmp: another run's artifacts were
    writable), and no Landlock right governs extended attributes."""
    for cover in covers:
        inside = _binds([e for e in exposed if _within(e.path, cover)], seal)
        fds = [os.open(e.path, os.O_PATH | os.O_CLOEXEC) for e in inside]
        linux.mount("tmpfs", cover, "tmpfs", MOUNT_FLAGS, options.get(cover, COVER))
        for entry, fd in zip(inside, fds, strict=True):  # outer before inner
            target = os.path.join(cover, os.path.relpath(entry.path, cover))
            make_passable(target, 0o755)  # the flow's uid passes (a worker's umask may be 077)
            linux.mount(f"/proc/self/fd/{fd}", target, None, linux.MS_BIND | linux.MS_REC, None)
            os.close(fd)
            if not entry.write:
                kept = os.statvfs(target).f_flag & linux.MS_NOEXEC  # ST_NOEXEC: the same bit
                flags = linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | MOUNT_FLAGS | kept
                linux.mount("none", target, None, flags, None)


def _binds(exposed: list[_Expose], seal: bool) -> list[_Expose]:
    """The mounts that expose `exposed`, outer first: a path inside another one bound alike
    needs none of its own; one writable inside a read-only one does (a flow's artifact folder
    inside its run's). Unsealed, every bind is writable."""
    merged: dict[str, bool] = {}
    for entry in exposed:
        merged[entry.path] = merged.get(entry.path, False) or entry.write or not seal
    binds: list[_Expose] = []
    for path in sorted(merged):  # a folder sorts before what is inside it
        holder = next((b for b in reversed(binds) if _within(path, b.path)), None)
        if holder is None or holder.write != merged[path]:
            binds.append(_Expose(path, merged[path]))
    return binds


def _outermost(paths: list[str]) -> list[str]:
    """`paths` without those inside another of them (covering the outer one covers them)."""
    return [p for p in paths if not any(p != q and _within(p, q) for q in paths)]


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _handled(abi: int) -> int:
    return (1 << 16) - 1 if abi >= 5 else (1 << 15) - 1 if abi >= 3 else (1 << 14) - 1


def _rights(fd: int, access: int, handled: int) -> int:
    if not stat.S_ISDIR(os.fstat(fd).st_mode):
        access &= FILE_RIGHTS | linux.FS_IOCTL_DEV
    return access & handled


def _ruleset(prepared: Prepared, network: str, netns: bool) -> int:
    """A new Landlock ruleset for `network` holding the static rules (not enforced)."""
    abi = linux.landlock_abi()
    fs = _handled(abi)
    net = 0
    if abi >= 4 and network != "full":
        net = linux.NET_BIND_TCP | (linux.NET_CONNECT_TCP if network == "none" and not netns else 0)
    scoped = linux.SCOPE_SIGNAL | linux.SCOPE_ABSTRACT_UNIX_SOCKET if abi >= 6 else 0
    ruleset = linux.landlock_ruleset(fs, net, scoped)
    try:
        for fd, access in prepared.static_rules:
            linux.landlock_allow_path(ruleset, fd, access)
    except OSError:
        os.close(ruleset)
        raise
    return ruleset


def _landlock(ruleset: int, exposed: list[_Expose], prepared: Prepared, pidns: bool) -> None:
    """Add the flow's own paths to `ruleset` and enforce it on this process (closes it)."""
    fs = _handled(linux.landlock_abi())
    try:
        own = [(e.path, fs if e.write else READ) for e in exposed]
        if prepared.mounted:  # fresh tmpfs of this flow alone; shared otherwise, so not written
            own += [("/tmp", fs), ("/dev/shm", fs)]
        if not pidns:
            own.append((f"/proc/{os.getpid()}", READ))
        for path, access in own:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                linux.landlock_allow_path(ruleset, fd, _rights(fd, access, fs))
            finally:
                os.close(fd)
        linux.landlock_restrict(ruleset)
    finally:
        os.close(ruleset)
