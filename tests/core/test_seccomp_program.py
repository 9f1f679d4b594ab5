"""The seccomp program itself, run by a small classic-BPF interpreter for every call it names on
each machine it knows: every jump must land where the rule says (a wrong offset would let a
call through, or deny one Python needs). The in-flow tests (test_sandbox_syscalls.py) show the
kernel applies it; these cover what a flow cannot reach there (clone with CLONE_NEWUSER, clone3,
another ABI) and the other machine's numbers."""

from __future__ import annotations

import errno
import socket
import struct
from unittest import mock

import pytest

from dizest_core import seccomp

ALLOW = "allow"
NEWUSER, NEWNS, FORK_FLAGS = 0x10000000, 0x20000, 0x01200011


def run(program: bytes, nr: int, arch: int, a0: int = 0, a1: int = 0) -> str:
    """What the filter answers for one call: ALLOW or the errno's name."""
    steps = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    data = {0: nr, 4: arch, 16: a0 & 0xFFFFFFFF, 24: a1 & 0xFFFFFFFF}
    pc, acc = 0, 0
    for _ in range(len(steps)):  # classic BPF only jumps forward: at most one pass
        code, jt, jf, k = steps[pc]
        if code == 0x20:  # ld [k]
            acc, pc = data[k], pc + 1
        elif code == 0x15:  # jeq k
            pc += 1 + (jt if acc == k else jf)
        elif code == 0x35:  # jge k
            pc += 1 + (jt if acc >= k else jf)
        elif code == 0x54:  # and k
            acc, pc = acc & k, pc + 1
        elif code == 0x06:  # ret k
            return ALLOW if k == 0x7FFF0000 else errno.errorcode[k & 0xFFFF]
        else:
            raise AssertionError(f"unexpected BPF code {code:#x}")
    raise AssertionError("the program fell off its end")


@pytest.mark.parametrize("machine", sorted(seccomp._ABI))
@pytest.mark.parametrize("no_unix", [False, True], ids=["egress", "network none"])
def test_every_rule_answers_as_documented(machine: str, no_unix: bool) -> None:
    with mock.patch("platform.machine", return_value=machine):
        program = seccomp.program(no_unix)
    nr = seccomp._ABI[machine]
    arch = nr["arch"]

    def answer(name: str, a0: int = 0, a1: int = 0) -> str:
        return run(program, nr[name], arch, a0, a1)

    unix = "EACCES" if no_unix else ALLOW
    unsupported = errno.errorcode[errno.EOPNOTSUPP]  # its other name, ENOTSUP, on Linux
    expected = {
        ("fallocate",): unsupported,
        ("io_uring_setup",): "ENOSYS",
        ("clone3",): "ENOSYS",
        ("add_key",): "EPERM",
        ("request_key",): "EPERM",
        ("keyctl",): "EPERM",
        ("unshare", NEWUSER): "EPERM",
        ("unshare", NEWUSER | NEWNS): "EPERM",
        ("unshare", NEWNS): ALLOW,
        ("clone", NEWUSER | 17): "EPERM",
        ("clone", FORK_FLAGS): ALLOW,
        ("ioctl", 0, 0x40305828): unsupported,
        ("ioctl", 0, 0x4030582A): unsupported,
        ("ioctl", 0, 0x5401): ALLOW,  # TCGETS
        ("socket", socket.AF_UNIX): unix,
        ("socket", socket.AF_INET): ALLOW,
        ("socketpair", socket.AF_UNIX, socket.SOCK_DGRAM): unix,
        ("socketpair", socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC): unix,
        ("socketpair", socket.AF_UNIX, socket.SOCK_STREAM): ALLOW,
        ("seccomp",): ALLOW,
    }
    got = {case: answer(*case) for case in expected}
    assert got == expected
    assert run(program, 0, arch) == ALLOW  # read (x86_64) / io_setup (aarch64): untouched
    assert run(program, 0, 0x40000003) == "ENOSYS"  # another ABI (i386)
    if machine == "x86_64":
        assert run(program, 0x40000000, arch) == "ENOSYS"  # x32
