"""The child side of the sandbox: a freshly forked flow process confines itself (see `sandbox`).

Runs once per flow, before user code, while the process is still root (when the worker is):
limits, namespaces and mounts first, then the uid drop, then Landlock, which needs no privilege
and is kept for last so that nothing after it can widen what the flow may touch. Every step that
the zygote's probe reported as available must succeed here, or the flow does not run at all.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from dizest_core import linux
from dizest_core.job import Artifact, FlowJob
from dizest_core.sandbox import SYSTEM_READ, Policy, Slot, rlimits

READ = linux.FS_EXECUTE | linux.FS_READ_FILE | linux.FS_READ_DIR
WRITE_ALL = (1 << 16) - 1  # every filesystem right Landlock knows (ABI 5)
MOUNT_FLAGS = linux.MS_NOSUID | linux.MS_NODEV


@dataclass(frozen=True)
class _Expose:
    path: str
    write: bool


def enter(job: FlowJob, policy: Policy, slot: Slot) -> None:
    """Confine this process for `job`; raises OSError when a layer that is on cannot be set."""
    if not policy.enabled:
        return
    on = {name for name, state in slot.layers.items() if state == "active"}
    network = job.network or policy.network
    if slot.group is not None:
        memory = job.memory_limit_mb * 1024 * 1024 if job.memory_limit_mb else None
        slot.group.limit(memory, policy.max_pids)
        slot.group.join()
    exposed = _exposures(job, policy)
    if slot.gid is not None:
        _give_to_group(job, slot.gid)
    flags = linux.CLONE_NEWNS if "mountns" in on else 0
    if network == "none" and "netns" in on:
        flags |= linux.CLONE_NEWNET
    if flags:
        linux.unshare(flags)
    if "mountns" in on:
        _mounts(policy, exposed, private_proc="pidns" in on)
    rlimits(policy, job.memory_limit_mb, tree_memory=slot.group is not None)
    if slot.uid is not None and slot.gid is not None:
        os.setgroups([])
        os.setresgid(slot.gid, slot.gid, slot.gid)
        os.setresuid(slot.uid, slot.uid, slot.uid)
        os.umask(0o007)  # the run's other flows (other uids, same group) may change its files
    os.environ["HOME"] = job.workdir
    os.environ["TMPDIR"] = "/tmp"
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    if "landlock" in on:
        _landlock(
            exposed, network, netns="netns" in on, private="mountns" in on, pidns="pidns" in on
        )


def _exposures(job: FlowJob, policy: Policy) -> list[_Expose]:
    """What the flow may reach: its working directory and artifact folder read-write; the
    artifact directories of the runs its inputs come from, the Python installation and the
    operator's extra paths read-only."""
    out = [_Expose(job.workdir, True)]
    folder = job.artifact_folder()
    if folder is not None:
        os.makedirs(folder, exist_ok=True)
        out.append(_Expose(folder, True))
    if job.artifact_dir:
        root = os.path.realpath(job.artifact_dir)
        runs = {os.path.join(root, job.run_id)}
        for values in job.sources.values():
            for value in values:
                if isinstance(value, Artifact):
                    rel = os.path.relpath(os.path.realpath(value.path), root)
                    runs.add(os.path.join(root, rel.split(os.sep, 1)[0]))
        out.extend(_Expose(p, False) for p in sorted(runs) if os.path.isdir(p))
    out.extend(_Expose(p, False) for p in policy.read if os.path.exists(p))
    return out


def _give_to_group(job: FlowJob, gid: int) -> None:
    """The working directory and artifact folder belong to the flow group (setgid, 2770), so
    every flow of the run can write there whatever slot uid it runs as."""
    paths = [job.workdir]
    folder = job.artifact_folder()
    if folder is not None:
        paths.append(folder)
    for path in paths:
        info = os.stat(path)
        if info.st_gid != gid or stat.S_IMODE(info.st_mode) & 0o2070 != 0o2070:
            os.chown(path, -1, gid)
            os.chmod(path, stat.S_IMODE(info.st_mode) | 0o2770)


def _mounts(policy: Policy, exposed: list[_Expose], private_proc: bool) -> None:
    """Cover the server's data, /tmp and /dev/shm with fresh tmpfs, then bind back what the flow
    may reach (opened before the cover, through /proc/self/fd, since its path is gone after)."""
    linux.mount("none", "/", None, linux.MS_REC | linux.MS_PRIVATE, None)
    covers = {os.path.realpath(p): "mode=0755,size=1m" for p in policy.hide if os.path.isdir(p)}
    tmp = f"mode=1777,size={policy.tmp_mb}m"
    covers.update({p: tmp for p in ("/tmp", "/dev/shm") if os.path.isdir(p)})
    done: list[str] = []
    for cover in sorted(covers, key=len):
        if any(_within(cover, d) for d in done):
            continue
        inside = [e for e in exposed if _within(os.path.realpath(e.path), cover)]
        fds = [os.open(e.path, os.O_PATH | os.O_CLOEXEC) for e in inside]
        linux.mount("tmpfs", cover, "tmpfs", MOUNT_FLAGS, covers[cover])
        for entry, fd in zip(inside, fds, strict=True):
            target = _target(entry.path, cover)
            os.makedirs(target, exist_ok=True)
            linux.mount(f"/proc/self/fd/{fd}", target, None, linux.MS_BIND | linux.MS_REC, None)
            os.close(fd)
        done.append(cover)
    if private_proc:
        flags = MOUNT_FLAGS | linux.MS_NOEXEC
        linux.mount("proc", "/proc", "proc", flags, "hidepid=invisible")


def _target(path: str, cover: str) -> str:
    real = os.path.realpath(path)
    return os.path.join(cover, os.path.relpath(real, cover))


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def _landlock(
    exposed: list[_Expose], network: str, netns: bool, private: bool, pidns: bool
) -> None:
    abi = linux.landlock_abi()
    fs = WRITE_ALL if abi >= 5 else (1 << 15) - 1 if abi >= 3 else (1 << 14) - 1
    net = 0
    if abi >= 4 and network != "full":
        net = linux.NET_BIND_TCP | (linux.NET_CONNECT_TCP if network == "none" and not netns else 0)
    scoped = linux.SCOPE_SIGNAL | linux.SCOPE_ABSTRACT_UNIX_SOCKET if abi >= 6 else 0
    ruleset = linux.landlock_ruleset(fs, net, scoped)
    try:
        rules = [(p, READ) for p in SYSTEM_READ]
        rules += [(e.path, fs if e.write else READ) for e in exposed]
        rules.append(("/dev", READ | linux.FS_WRITE_FILE | (fs & linux.FS_IOCTL_DEV)))
        if private:  # fresh tmpfs of this flow alone; shared otherwise, so never written to
            rules += [("/tmp", fs), ("/dev/shm", fs)]
        if pidns:  # /proc shows only the sandbox's own processes
            rules.append(("/proc", READ))
        else:
            rules += [(f"/proc/{name}", READ) for name in ("cpuinfo", "meminfo", "stat")]
            rules.append((f"/proc/{os.getpid()}", READ))
        for path, access in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # not on this machine (/lib32, ...)
            try:
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    access &= linux.FS_READ_FILE | linux.FS_WRITE_FILE | linux.FS_EXECUTE
                    access |= fs & (linux.FS_TRUNCATE | linux.FS_IOCTL_DEV) & access
                linux.landlock_allow_path(ruleset, fd, access & fs)
            finally:
                os.close(fd)
        linux.landlock_restrict(ruleset)
    finally:
        os.close(ruleset)
