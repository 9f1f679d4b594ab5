"""The parent's handle on the zygote: the process that forks every flow child of a Supervisor.

It starts `dizest_core.zygote` (with `python -m`) on one end of a socket pair, reads its hello
(the sandbox layers it could set up), and then only asks: fork a child for a token, kill a
child's tree (the zygote reaps its children, so it alone knows a pid is still that child), and
read its notices.

A zygote takes ~0.1 s to start (an interpreter and the flow runtime's imports). A command that
knows its settings early (`dizest run`) calls `prestart` before importing the engine, so that
start overlaps the imports; the Supervisor made later with the same arguments takes it (`start`).
An unused one exits when this process does (EOF on its socket; killed by the kernel if this
process ends while it is still importing, e.g. a `--preload` that hangs).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

from dizest_core.errors import ExecutionError
from dizest_core.sandbox import Policy, make_policy, with_read
from dizest_core.settings import Settings, child_environment

PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
ZYGOTE_START_S = 60.0  # preloading heavy modules (torch) takes a while


def _holds(entry: str, path: str) -> bool:
    """Whether the folder `entry` (as PYTHONPATH spells it: relative, a trailing slash, a
    link) is `path` or one of its parents."""
    folder = os.path.realpath(entry)
    return path == folder or path.startswith(folder.rstrip("/") + "/")


class Zygote:
    """Handle on the forking process (see `dizest_core.zygote`)."""

    def __init__(
        self,
        env: dict[str, str],
        preload: tuple[str, ...] = (),
        renderer_files: tuple[str, ...] = (),
        policy: Policy | None = None,
        wait: bool = True,
        tied: bool = False,
    ) -> None:
        """`tied`: the zygote dies with this process (PR_SET_PDEATHSIG), even while it is still
        importing; only for a zygote started from the main thread (the signal comes when the
        starting *thread* ends)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        policy = policy or Policy(enabled=False)
        path = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        if policy.enabled:  # what the zygote imports from, flows may read; of dizest's own
            # folder only its package: a checkout holds .git, tests and maybe a .env beside it
            added = [p for p in path.split(os.pathsep) if p and not _holds(p, PACKAGE_ROOT)]
            policy = with_read(policy, (*added, os.path.join(PACKAGE_ROOT, "dizest_core")))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dizest_core.zygote",
                str(theirs.fileno()),
                policy.to_json(),
                str(os.getpid() if tied else 0),
                *preload,
                "--renderers",
                *renderer_files,
            ],
            pass_fds=(theirs.fileno(),),
            env={**env, "PYTHONPATH": path},
            stdin=subprocess.DEVNULL,
            cwd="/",
        )
        theirs.close()
        self.sock = ours
        self.layers: dict[str, str] = self._hello() if wait else {}

    def _hello(self) -> dict[str, str]:
        """The zygote's first message: which sandbox layers it could set up."""
        self.sock.settimeout(ZYGOTE_START_S)
        try:
            msg = self.sock.recv(4096)
        except (TimeoutError, OSError) as exc:
            self.proc.kill()
            self.proc.wait()
            raise ExecutionError(f"the zygote process did not start: {exc}") from exc
        finally:
            self.sock.settimeout(None)
        if not msg.startswith(b"L "):
            self.proc.wait()
            raise ExecutionError(f"the zygote process did not start (exit {self.proc.returncode})")
        layers = json.loads(msg[2:])
        return {str(k): str(v) for k, v in layers.items()}

    def kill(self, token: str) -> None:
        """Ask the zygote to kill one child's tree (it alone knows the pid is still that child)."""
        with contextlib.suppress(OSError):
            self.sock.send(f"K {token}".encode())

    def ask_usage(self) -> None:
        """Ask for each child's CPU time; the answer comes as a `C` notice."""
        with contextlib.suppress(OSError):
            self.sock.send(b"C")

    def ask_writes(self) -> None:
        """Ask for the bytes each child's tree has written; the answer comes as a `W` notice."""
        with contextlib.suppress(OSError):
            self.sock.send(b"W")

    def fork(self, token: str, memory_mb: int | None, fds: list[int]) -> None:
        socket.send_fds(self.sock, [f"F {token} {memory_mb or 0}".encode()], fds)

    def read(self) -> list[list[str]]:
        """Pending notices from the zygote ([P, token, pid], [X, pid, status, oom], [C, ...],
        [W, ...])."""
        self.sock.setblocking(False)
        notices = []
        try:
            while True:
                msg = self.sock.recv(65536)
                if not msg:
                    raise ExecutionError("the zygote process died")
                notices.append(msg.decode().split(" "))
        except BlockingIOError:
            pass
        finally:
            self.sock.setblocking(True)
        return notices

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_early: dict[str, Zygote] = {}  # started ahead of their Supervisor, by `_key` of their arguments


def _key(
    env: dict[str, str], preload: tuple[str, ...], renderer_files: tuple[str, ...], policy: Policy
) -> str:
    return json.dumps([sorted(env.items()), preload, renderer_files, policy.to_json()])


def local_args(
    settings: Settings, renderer_files: tuple[str, ...]
) -> tuple[dict[str, str], tuple[str, ...], tuple[str, ...], Policy]:
    """The zygote's arguments for a local run's Supervisor (`LocalRunner`) under `settings`."""
    hide = (settings.cache_dir,) if settings.cache_dir else ()
    policy = make_policy(settings, server=False, hide=hide)
    return child_environment(extra=settings.flow_env), settings.preload, renderer_files, policy


def prestart(
    env: dict[str, str],
    preload: tuple[str, ...] = (),
    renderer_files: tuple[str, ...] = (),
    policy: Policy | None = None,
) -> None:
    """Start a zygote now for a Supervisor made later with the same arguments (see above)."""
    policy = policy or Policy(enabled=False)
    key = _key(env, preload, renderer_files, policy)
    if key not in _early:
        tied = threading.current_thread() is threading.main_thread()
        _early[key] = Zygote(env, preload, renderer_files, policy, wait=False, tied=tied)


def start(
    env: dict[str, str],
    preload: tuple[str, ...] = (),
    renderer_files: tuple[str, ...] = (),
    policy: Policy | None = None,
) -> Zygote:
    """A started zygote: the one prestarted with these arguments, else a new one."""
    policy = policy or Policy(enabled=False)
    early = _early.pop(_key(env, preload, renderer_files, policy), None)
    if early is not None:
        early.layers = early._hello()
        return early
    return Zygote(env, preload, renderer_files, policy)
