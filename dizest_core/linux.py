"""Thin, typed wrappers over the Linux system calls the sandbox needs and Python 3.11 lacks.

unshare(2), mount(2), prctl(2) and the three Landlock calls, through ctypes on libc. Each raises
OSError with the real errno, so callers can tell "the kernel forbids this" (EPERM, ENOSYS,
EOPNOTSUPP) from a bug. Loaded lazily and once: importing ctypes costs a few milliseconds, so
the zygote calls `load()` before it forks and every flow child inherits the loaded library.
"""

from __future__ import annotations

import ctypes
import os
import platform

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38

# Landlock (include/uapi/linux/landlock.h)
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
LANDLOCK_RULE_NET_PORT = 2
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13  # ABI 2
FS_TRUNCATE = 1 << 14  # ABI 3
FS_IOCTL_DEV = 1 << 15  # ABI 5
NET_BIND_TCP = 1 << 0  # ABI 4
NET_CONNECT_TCP = 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
SCOPE_SIGNAL = 1 << 1  # ABI 6

_SYSCALLS = {  # x86_64 and aarch64 share the Landlock numbers (they are generic)
    "landlock_create_ruleset": 444,
    "landlock_add_rule": 445,
    "landlock_restrict_self": 446,
}


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is __attribute__((packed))
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


_libc: ctypes.CDLL | None = None


def load() -> ctypes.CDLL:
    """libc, loaded once per process tree (call it before forking)."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def unshare(flags: int) -> None:
    _check(load().unshare(flags), "unshare")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None) -> None:
    _check(
        load().mount(
            source.encode(),
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def prctl(option: int, arg: int) -> None:
    _check(load().prctl(option, ctypes.c_ulong(arg), 0, 0, 0), "prctl")


_abi: int | None = None


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 when Landlock is missing or disabled; asked once
    per process tree (the zygote asks before it forks, a flow child asks it twice more)."""
    global _abi
    if _abi is None:
        if platform.machine() not in ("x86_64", "aarch64"):
            return 0
        result = load().syscall(
            _SYSCALLS["landlock_create_ruleset"], None, 0, LANDLOCK_CREATE_RULESET_VERSION
        )
        _abi = max(int(result), 0)
    return _abi


def landlock_ruleset(fs: int, net: int, scoped: int) -> int:
    """A new ruleset fd handling those accesses (everything handled is denied unless allowed)."""
    attr = _RulesetAttr(fs, net, scoped)
    size = ctypes.sizeof(_RulesetAttr) if scoped else 16 if net else 8
    return _check(
        load().syscall(
            _SYSCALLS["landlock_create_ruleset"], ctypes.byref(attr), ctypes.c_size_t(size), 0
        ),
        "landlock_create_ruleset",
    )


def landlock_allow_path(ruleset: int, path_fd: int, access: int) -> None:
    attr = _PathBeneathAttr(access, path_fd)
    _check(
        load().syscall(
            _SYSCALLS["landlock_add_rule"],
            ruleset,
            LANDLOCK_RULE_PATH_BENEATH,
            ctypes.byref(attr),
            0,
        ),
        "landlock_add_rule",
    )


def landlock_restrict(ruleset: int) -> None:
    """Enforce the ruleset on this thread (and all it forks); needs no_new_privs or CAP_SYS_ADMIN."""
    _check(
        load().syscall(_SYSCALLS["landlock_restrict_self"], ruleset, 0), "landlock_restrict_self"
    )
