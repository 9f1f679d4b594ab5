"""The zygote: a lean, single-threaded process whose only job is to fork flow children.

Forking is ~4 ms against 45-60 ms for spawning a fresh interpreter, but it is only safe from a
process that runs no other threads, and its cost grows with the parent's memory. So the engine
starts this small process once and asks it to fork. Protocol on a SOCK_SEQPACKET socket:

    engine -> zygote   b"F <token>"  + SCM_RIGHTS [conn, stdout, stderr]   fork a child
    zygote -> engine   b"P <token> <pid>"                                     child started
    zygote -> engine   b"X <pid> <wait status>"                               child ended

Each child runs `runtime.main` in its own session/process group, with the fds it was given as
stdout and stderr. When a child ends, its process group is killed before the child is reaped,
so nothing the flow started outlives it. When the engine goes away (EOF), the zygote kills its
children and exits.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import select
import signal
import socket
import sys
from collections.abc import Callable

MAX_FDS = 3


def main(argv: list[str]) -> None:
    """argv: control fd, then modules to preload, then `--renderers` and plugin files."""
    control = socket.socket(fileno=int(argv[0]))
    rest = argv[1:]
    split = rest.index("--renderers") if "--renderers" in rest else len(rest)
    for module in rest[:split]:
        try:
            importlib.import_module(module)
        except Exception as exc:  # a bad preload must not stop the engine
            print(f"dizest zygote: cannot preload {module}: {exc}", file=sys.stderr)
    runtime = importlib.import_module("dizest_core.runtime")
    runtime.load_renderer_files(tuple(rest[split + 1 :]))
    # Everything imported so far is shared with every child; freezing it keeps the children's
    # garbage collector from touching (and so copying) those pages after fork.
    gc.collect()
    gc.freeze()
    global _PRCTL
    _PRCTL = _load_prctl()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the engine, which closes us
    children: set[int] = set()
    try:
        _serve(control, wake_r, children)
    finally:
        for pid in children:
            _kill_group(pid)
        _reap(control, children, final=True)


def _serve(control: socket.socket, wake_r: int, children: set[int]) -> None:
    while True:
        readable, _, _ = select.select([control.fileno(), wake_r], [], [])
        if wake_r in readable:
            os.read(wake_r, 4096)
            _reap(control, children)
        if control.fileno() in readable:
            try:
                msg, fds, _, _ = socket.recv_fds(control, 1024, MAX_FDS)
            except ConnectionError:  # the engine closed with our notices unread: same as EOF
                return
            if not msg:
                return
            token = msg.decode().split(" ", 1)[1]
            pid = os.fork()
            if pid == 0:
                _child(control, wake_r, fds)
            for fd in fds:
                os.close(fd)
            children.add(pid)
            with contextlib.suppress(OSError):  # the engine is gone: EOF ends the loop next
                control.send(f"P {token} {pid}".encode())


def _child(control: socket.socket, wake_r: int, fds: list[int]) -> None:
    code = 70
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        control.close()
        os.close(wake_r)
        os.setsid()
        _die_with_parent()
        conn, out, err = fds
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)
        from dizest_core import runtime

        code = runtime.main(conn)
    except BaseException as exc:
        os.write(2, f"dizest: flow process failed to start: {exc!r}\n".encode())
    finally:
        os._exit(code)


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up once in the zygote (importing ctypes per child costs ms)."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_PRCTL: Callable[..., int] | None = None


def _die_with_parent() -> None:
    """Linux: the child gets SIGKILL if the zygote dies (the zygote is single-threaded)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() == 1:  # the zygote died before prctl took effect
        os._exit(70)


def _reap(control: socket.socket, children: set[int], final: bool = False) -> None:
    while children:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT | (0 if final else os.WNOHANG))
        except ChildProcessError:
            return
        if info is None:
            return
        # Kill what the flow left running in its group (a background process must not outlive
        # its flow). Done before reaping: the zombie still holds the pid, so the group id
        # cannot belong to anyone else yet.
        _kill_group(info.si_pid)
        pid, status = os.waitpid(info.si_pid, 0)
        children.discard(pid)
        with contextlib.suppress(OSError):
            control.send(f"X {pid} {status}".encode())


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


if __name__ == "__main__":
    main(sys.argv[1:])
