"""The flow's system-call filter (seccomp): the few calls whose effect no other layer bounds.

- `fallocate` fails with EOPNOTSUPP, what a filesystem without it answers, and so do the two
  ioctls that do the same (FS_IOC_RESVSP, FS_IOC_RESVSP64). It reserves disk
  blocks without writing them, so neither RLIMIT_FSIZE (ext4 does not check it for
  FALLOC_FL_KEEP_SIZE) nor the disk guard (it counts bytes written) would see a flow fill the
  disk with it. glibc's `posix_fallocate` (Python's `os.posix_fallocate`) then writes the
  blocks instead, which both see.
- `io_uring_setup` fails with ENOSYS, as on a kernel without io_uring: an io_uring runs
  fallocate, socket and connect without those system calls, out of this filter's sight.
  Python itself never uses it.
- With network `none`, `socket(AF_UNIX, ...)` fails with EACCES. An empty network namespace
  stops TCP and UDP, but a Unix socket named by a path (a database's
  /run/postgresql/.s.PGSQL.5432) belongs to the host and stays reachable from any namespace.
  `socketpair` of stream or seqpacket sockets (a channel between the flow's own processes)
  still works; a datagram pair does not (its socket could `sendto` a path). So neither
  `multiprocessing`'s forkserver nor its `Manager` (a listening Unix socket) works there; its
  fork and spawn methods do.
- `add_key`, `request_key` and `keyctl` fail with EPERM (as in Docker's default profile): the
  kernel's user keyrings belong to a uid, not a process, and slot uids are reused, so a key one
  user's flow left in `@u` was read by the next user's flow in that slot.
- A new user namespace (`unshare` or `clone` with CLONE_NEWUSER) fails with EPERM, and `clone3`
  (whose flags sit in memory a filter cannot read) with ENOSYS, which glibc answers by using
  `clone`: inside a user namespace a flow is "root" to far more kernel code than it needs.
  Programs that sandbox themselves with one (Chromium) must be started without it
  (`--no-sandbox`).
- A call made through another ABI of the machine (i386 or x32 calls of an x86_64 process)
  fails with ENOSYS: the numbers above are this ABI's only.

The filter is installed last in `confine.enter`, after no_new_privs, on every thread of the flow
process (TSYNC), and is inherited by everything it starts. Both variants are built once in the
zygote (`prepare`, from `confine.prepare`); the kernel copies the one a flow installs.
`available()` says why not where the machine has no filter for us.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import socket
import struct

from dizest_core import linux

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little-endian:
# the low 32 bits of args[0] at 16, of args[1] at 24)
_NR, _ARCH, _ARG0, _ARG1 = 0, 4, 16, 24
_LD_W_ABS, _JEQ_K, _JGE_K, _AND_K, _RET_K = 0x20, 0x15, 0x35, 0x54, 0x06
# ioctls that reserve blocks as fallocate does (ioctl_preallocate): FS_IOC_RESVSP, RESVSP64
_RESERVE = (0x40305828, 0x4030582A)
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_SET_MODE_FILTER, _FLAG_TSYNC = 1, 1
_X32_BIT = 0x40000000

_CLONE_NEWUSER = 0x10000000
# machine -> AUDIT_ARCH and the call numbers the filter names
_ABI = {
    "x86_64": dict(arch=0xC000003E, seccomp=317, socket=41, fallocate=285, io_uring_setup=425,
                   ioctl=16, socketpair=53, add_key=248, request_key=249, keyctl=250,
                   unshare=272, clone=56, clone3=435),
    "aarch64": dict(arch=0xC00000B7, seccomp=277, socket=198, fallocate=47, io_uring_setup=425,
                    ioctl=29, socketpair=199, add_key=217, request_key=218, keyctl=219,
                    unshare=97, clone=220, clone3=435),
}  # fmt: skip


class _Filter(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def available() -> str | None:
    """None when `install` can work on this machine, else why not."""
    if platform.machine() not in _ABI:
        return f"no filter written for {platform.machine()}"
    return None


def program(no_unix_sockets: bool) -> bytes:
    """The BPF program: a list of (code, jump if true, jump if false, k), packed as the kernel
    reads it. Jumps count instructions forward from the next one."""
    nr = _ABI[platform.machine()]
    deny_abi, eperm = _ERRNO | errno.ENOSYS, _ERRNO | errno.EPERM
    steps: list[tuple[int, int, int, int]] = [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ_K, 1, 0, nr["arch"]),
        (_RET_K, 0, 0, deny_abi),
        (_LD_W_ABS, 0, 0, _NR),
    ]
    if platform.machine() == "x86_64":
        steps += [(_JGE_K, 0, 1, _X32_BIT), (_RET_K, 0, 0, deny_abi)]
    steps += [
        (_JEQ_K, 0, 1, nr["fallocate"]),
        (_RET_K, 0, 0, _ERRNO | errno.EOPNOTSUPP),
        (_JEQ_K, 0, 1, nr["io_uring_setup"]),
        (_RET_K, 0, 0, _ERRNO | errno.ENOSYS),
        (_JEQ_K, 0, 1, nr["clone3"]),
        (_RET_K, 0, 0, _ERRNO | errno.ENOSYS),
    ]
    for name in ("add_key", "request_key", "keyctl"):
        steps += [(_JEQ_K, 0, 1, nr[name]), (_RET_K, 0, 0, eperm)]
    for name in ("unshare", "clone"):  # their first argument holds the flags
        steps += [
            (_JEQ_K, 0, 5, nr[name]),
            (_LD_W_ABS, 0, 0, _ARG0),
            (_AND_K, 0, 0, _CLONE_NEWUSER),
            (_JEQ_K, 0, 1, _CLONE_NEWUSER),
            (_RET_K, 0, 0, eperm),
            (_RET_K, 0, 0, _ALLOW),
        ]
    steps += [
        (_JEQ_K, 0, 5, nr["ioctl"]),  # the reserving ioctls answer as fallocate does
        (_LD_W_ABS, 0, 0, _ARG1),
        (_JEQ_K, 2, 0, _RESERVE[0]),
        (_JEQ_K, 1, 0, _RESERVE[1]),
        (_RET_K, 0, 0, _ALLOW),
        (_RET_K, 0, 0, _ERRNO | errno.EOPNOTSUPP),
    ]
    if no_unix_sockets:
        steps += [
            (_JEQ_K, 0, 4, nr["socket"]),
            (_LD_W_ABS, 0, 0, _ARG0),
            (_JEQ_K, 0, 1, socket.AF_UNIX),
            (_RET_K, 0, 0, _ERRNO | errno.EACCES),
            (_RET_K, 0, 0, _ALLOW),
            # a datagram pair's socket can still sendto() a path: stream and seqpacket only
            (_JEQ_K, 0, 4, nr["socketpair"]),
            (_LD_W_ABS, 0, 0, _ARG1),
            (_AND_K, 0, 0, 0xF),
            (_JEQ_K, 0, 1, socket.SOCK_DGRAM),
            (_RET_K, 0, 0, _ERRNO | errno.EACCES),
        ]
    steps.append((_RET_K, 0, 0, _ALLOW))
    return b"".join(struct.pack("=HBBI", *step) for step in steps)


_BUILT: dict[bool, tuple[int, ctypes.Array[ctypes.c_char], _Filter]] = {}


def prepare() -> None:
    """Build both filters now: the zygote does, so its children inherit them and each only
    installs one (building one is ~0.1 ms of a fresh child, most of it pages it copies)."""
    for no_unix_sockets in (False, True):
        _built(no_unix_sockets)


def _built(no_unix_sockets: bool) -> tuple[int, ctypes.Array[ctypes.c_char], _Filter]:
    """The seccomp call's number and the filter (its buffer kept alive with it), built once."""
    built = _BUILT.get(no_unix_sockets)
    if built is None:
        code = program(no_unix_sockets)
        buffer = ctypes.create_string_buffer(code, len(code))
        prog = _Filter(len(code) // 8, ctypes.cast(buffer, ctypes.c_void_p))
        built = _BUILT[no_unix_sockets] = (_ABI[platform.machine()]["seccomp"], buffer, prog)
    return built


def install(no_unix_sockets: bool) -> None:
    """Filter this process's system calls as the module docstring says, on all its threads;
    needs no_new_privs (or CAP_SYS_ADMIN). Raises OSError when the kernel refuses."""
    number, _, prog = _built(no_unix_sockets)
    result = linux.load().syscall(number, _SET_MODE_FILTER, _FLAG_TSYNC, ctypes.byref(prog))
    if result != 0:  # TSYNC: > 0 names a thread that could not take the filter
        err = ctypes.get_errno() if result < 0 else errno.EBUSY
        raise OSError(err, f"seccomp: {os.strerror(err)}")
