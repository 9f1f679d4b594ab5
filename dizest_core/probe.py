"""Which sandbox layers this machine allows, found by trying them (in the zygote, at start).

Each layer gets "active" or a sentence saying why not ("unavailable: ..."), so `dizest worker`
and /readyz can show them and a deployment can refuse to start without a layer it requires. The
namespace layers are tried in a throw-away child: a process can only find out by doing it.
"""

from __future__ import annotations

import contextlib
import os

from dizest_core import linux, seccomp
from dizest_core.cgroups import Group, Slots
from dizest_core.sandbox import LAYERS, Policy

ACTIVE = "active"


def layers(policy: Policy) -> dict[str, str]:
    """Every layer of `sandbox.LAYERS` -> "active" or why not (pidns is tried by the zygote)."""
    found = dict.fromkeys(LAYERS, ACTIVE)
    found["pidns"] = "not tried"
    if os.geteuid() != 0:
        found["identity"] = "unavailable: the worker is not root, flows keep its uid"
    slots, found["cgroup"] = cgroup_slots_and_reason()
    found["cpu"] = cpu_share(slots, policy.cpus)
    if linux.landlock_abi() < 1:
        found["landlock"] = "unavailable: the kernel has no Landlock (Linux >= 5.13, lsm=landlock)"
    found["mountns"] = _try(lambda: _mount_probe())
    found["netns"] = _try(lambda: linux.unshare(linux.CLONE_NEWNET))
    found["ipcns"] = _try(lambda: linux.unshare(linux.CLONE_NEWIPC))
    why = seccomp.available()
    found["seccomp"] = f"unavailable: {why}" if why else _try(_seccomp_probe)
    return found


def cgroup_slots() -> Slots | None:
    return cgroup_slots_and_reason()[0]


def cgroup_slots_and_reason() -> tuple[Slots | None, str]:
    slots, reason = Slots.open()
    if slots is None:
        return None, f"unavailable: {reason}"
    name = f"dizest-probe-{os.urandom(4).hex()}"
    try:
        group = slots.group(name)
        group.limit(None, None)
        group.remove()
    except OSError as exc:
        return None, f"unavailable: cannot create a cgroup under {slots.memory}: {exc.strerror}"
    return slots, ACTIVE


def cpu_share(slots: Slots | None, cpus: float = 0.0) -> str:
    """The `cpu` layer: "active" when flow groups get a CPU share (and, with `cpus`, that cap),
    else why not."""
    if slots is None:
        return "unavailable: no flow cgroups (see the cgroup layer)"
    if slots.cpu is None:
        where = "its cgroup.subtree_control" if slots.v2 else "a writable cpu hierarchy"
        return f"unavailable: the cpu controller is not delegated ({where}): flows share the CPU by process"
    group = slots.cpu / f"dizest-probe-{os.urandom(4).hex()}"
    try:
        group.mkdir()
    except OSError as exc:
        return f"unavailable: cannot create a cpu group under {slots.cpu}: {exc.strerror}"
    try:  # a child of this process, as flows are (a real-time worker's could not go in)
        moved = _try(lambda: (group / "cgroup.procs").write_text("0"))
        if moved != ACTIVE:
            return f"{moved} (moving a process into a cpu group)"
        if cpus:
            Group(group, group, slots.v2, group).cap_cpu(cpus)
    except OSError as exc:
        return f"unavailable: cannot cap a cpu group at {cpus:g} CPUs: {exc.strerror}"
    finally:
        with contextlib.suppress(OSError):
            group.rmdir()
    return ACTIVE


def _mount_probe() -> None:
    linux.unshare(linux.CLONE_NEWNS)
    linux.mount("none", "/", None, linux.MS_REC | linux.MS_PRIVATE, None)
    linux.mount("tmpfs", "/tmp", "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "size=1m")


def _seccomp_probe() -> None:
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    seccomp.install(no_unix_sockets=True)


def _try(step: object) -> str:
    """Run `step` in a child process; "active" when it returned, else the error it raised."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        message = b""
        try:
            step()  # type: ignore[operator]
        except OSError as exc:
            message = (exc.strerror or str(exc)).encode()
        except Exception as exc:
            message = repr(exc).encode()
        os.write(write, message[:500])
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        message = fh.read()
    os.waitpid(pid, 0)
    return ACTIVE if not message else f"unavailable: {message.decode(errors='replace')}"


def report(policy: Policy) -> dict[str, str]:
    """Every layer as a zygote would find it, PID namespace included (for `dizest worker`)."""
    found = layers(policy)
    found["pidns"] = _try(lambda: _pid_probe())
    return found


def _pid_probe() -> None:
    linux.unshare(linux.CLONE_NEWPID)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
