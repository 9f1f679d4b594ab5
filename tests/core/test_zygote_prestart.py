"""A zygote started ahead of its Supervisor (`zygote_handle.prestart`, used by `dizest run`):
taken only by a Supervisor asking for the same arguments, and gone with its socket if unused."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from dizest_core import zygote_handle
from dizest_core.settings import Settings
from tests.conftest import wait_for


def test_a_prestarted_zygote_serves_the_same_arguments_only() -> None:
    env, preload, renderers, policy = zygote_handle.local_args(Settings(), ())
    zygote_handle.prestart(env, preload, renderers, policy)
    zygote_handle.prestart(env, preload, renderers, policy)  # a second ask starts no second one
    (early,) = zygote_handle._early.values()
    other = zygote_handle.start(env, ("json",), renderers, policy)  # another preload: a new one
    try:
        assert other.proc.pid != early.proc.pid
        assert list(zygote_handle._early.values()) == [early]
        same = zygote_handle.start(env, preload, renderers, policy)
        assert same is early and same.layers == {}  # its hello read now: no sandbox, no layer
        assert zygote_handle._early == {}
        ours, theirs = socket.socketpair()
        out_r, out_w = os.pipe()
        same.fork("t1", None, [theirs.fileno(), out_w, out_w])  # it forks: a child waits
        theirs.close()
        os.close(out_w)
        ours.close()  # no job comes: the child exits without running anything
        notices: list[list[str]] = []
        same.sock.settimeout(10)
        while not any(n[0] == "X" for n in notices):
            notices.append(same.sock.recv(4096).decode().split(" "))
        assert [n[0] for n in notices] == ["P", "X"] and notices[1][2] == "0", notices
        assert os.read(out_r, 4096) == b""  # and said nothing
        os.close(out_r)
    finally:
        other.close()
        early.close()


def test_an_unused_prestarted_zygote_exits_quietly_with_its_socket(capfd) -> None:
    """Closed before its hello (`dizest run` of an invalid package exits at once)."""
    args = zygote_handle.local_args(Settings(preload=("json",)), ())
    zygote_handle.prestart(*args)
    (early,) = zygote_handle._early.values()
    zygote_handle._early.clear()
    early.sock.close()  # what the end of this process does
    assert early.proc.wait(timeout=10) == 0
    assert "Traceback" not in capfd.readouterr().err


TIED = """
import os, sys, time
from dizest_core import zygote_handle
zygote_handle.prestart({"PYTHONPATH": sys.argv[1]}, ("hang",))
(early,) = zygote_handle._early.values()
print(early.proc.pid, flush=True)
time.sleep(300)
"""


def test_a_prestarted_zygote_dies_with_its_command_even_while_importing(tmp_path) -> None:
    """Its preload hangs, so it never reads the EOF of its socket: the kernel kills it when the
    command that started it is killed (PR_SET_PDEATHSIG), it is not left behind."""
    marker = tmp_path / "importing"
    (tmp_path / "hang.py").write_text(
        f"import time\nopen({str(marker)!r}, 'w').close()\ntime.sleep(300)\n"
    )
    command = subprocess.Popen(
        [sys.executable, "-c", TIED, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    zygote = 0
    try:
        assert command.stdout is not None
        zygote = int(command.stdout.readline())
        wait_for(marker.exists, timeout=20)  # inside the preload
        command.kill()
        command.wait()
        wait_for(lambda: not _alive(zygote), timeout=10)
    finally:
        command.kill()
        command.wait()
        if zygote and _alive(zygote):  # left behind (the test failed): not by us
            os.kill(zygote, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b") ")[2].split()[0] != b"Z"
    except OSError:
        return False
