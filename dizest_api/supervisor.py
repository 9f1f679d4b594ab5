"""The supervisor of `dizest serve`: it starts the children (embedded Redis, worker, API), restarts
any that ends while serving, and stops them in order.

Invariants:
- Every child is started from this process's main thread, in its own process group, and tied to
  this process by PR_SET_PDEATHSIG (`dizest_core.lifeline`): when the supervisor dies, even by
  SIGKILL, its children get their death signal, and theirs in turn (gunicorn's workers, Celery's
  pool, the worker's reaper, flow processes) die with them. Nothing is left to hold the port.
- A child that ends while serving, for any reason, is restarted after a backoff (0.5 s, doubled
  on each quick death up to 10 s, back to 0.5 s once it ran 30 s), with a log line saying how it
  ended (exit code or signal); what is left of its process group is killed first. But for one
  that refused to start on its configuration (exit 78, EX_CONFIG: a required sandbox layer
  missing, a malformed setting): the same settings would refuse again, so `run` raises
  `Refused` and everything stops.
- `stop_all` stops the `warm` children first (the API still answers while a worker lets its
  flows end), then the others in the reverse of their start order: each gets SIGTERM (its whole
  group, as a terminal's Ctrl-C would; only its main process when it is `warm`, so that a Celery
  worker ends the flows it runs and its pool is not cut short), then its group SIGKILL after its
  `stop_timeout_s` (a warm one's at once on a second SIGINT or SIGTERM to the supervisor: Ctrl-C
  again).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from dizest_core.lifeline import preexec

BACKOFF_S = 0.5
BACKOFF_MAX_S = 10.0
WAIT_STEP_S = 0.05  # how often a stop looks whether a child ended, where no pidfd tells it
STABLE_S = 30.0  # a child that ran this long was healthy: its next death restarts it at once


def describe(returncode: int) -> str:
    """How a process ended, for a log line: `exited with code 1`, `killed by SIGKILL`."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exited with code {returncode}"


@dataclass
class Child:
    """One supervised command. `death_signal` is what it gets when the supervisor dies."""

    name: str
    argv: list[str]
    stop_timeout_s: float = 10.0
    death_signal: int = signal.SIGKILL
    warm: bool = False  # a stop's SIGTERM goes to its main process only: a warm shutdown
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    started_at: float = 0.0
    quick_deaths: int = 0
    due: float | None = None  # when to start it again, after it ended
    on_exit: Callable[[], None] | None = field(default=None, repr=False)  # once it ended

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, process_group=0, preexec_fn=preexec(self.death_signal)
        )
        self.started_at, self.due = time.monotonic(), None

    def ended(self) -> int | None:
        """Its exit status if it ended and was not yet scheduled for a restart."""
        if self.proc is None or self.due is not None:
            return None
        return self.proc.poll()

    def schedule_restart(self, now: float) -> float:
        """Kill what is left of its group, run `on_exit`; returns the delay before it starts
        again."""
        self._signal_group(signal.SIGKILL)
        if self.on_exit is not None:
            self.on_exit()
        if now - self.started_at >= STABLE_S:
            self.quick_deaths = 0
        delay = min(BACKOFF_MAX_S, BACKOFF_S * 2**self.quick_deaths)
        self.quick_deaths += 1
        self.due = now + delay
        return delay

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, wake: int | None = None, hurried: Callable[[], bool] = lambda: False) -> None:
        """SIGTERM, then wait for it to end: at most `stop_timeout_s`, or until a byte on `wake`
        finds `hurried()` true; then SIGKILL what is left of its group."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            if self.warm:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.proc.pid, signal.SIGTERM)
            else:
                self._signal_group(signal.SIGTERM)
            self._wait(wake, hurried)
        self._signal_group(signal.SIGKILL)  # e.g. pool processes left behind by the worker
        self.proc.wait()

    def _wait(self, wake: int | None, hurried: Callable[[], bool]) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.stop_timeout_s
        try:  # readable once it ended (it is not reaped before poll says so)
            ended: int | None = os.pidfd_open(self.proc.pid)
        except OSError:  # Linux < 5.3, or a seccomp profile that refuses it: look every 50 ms
            ended = None
        try:
            waits = [fd for fd in (ended, wake) if fd is not None]
            while self.proc.poll() is None and not hurried():
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                step = min(left, WAIT_STEP_S if ended is None else 3600.0)
                ready, _, _ = select.select(waits, [], [], step)
                if wake in ready:
                    with contextlib.suppress(BlockingIOError):
                        os.read(wake, 4096)
        finally:
            if ended is not None:
                os.close(ended)

    def _signal_group(self, sig: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)


class Refused(Exception):
    """A child refused to start on its configuration (it said why on its way out)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"the {name} refused to start on its configuration (its reason is above): stopping; "
            "fix it, then start dizest serve again"
        )


class Supervisor:
    """The children of one `dizest serve`, in start order."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.children: list[Child] = []
        self.log = log

    def start(self, child: Child) -> Child:
        child.start()
        self.children.append(child)
        return child

    def check(self) -> float:
        """Restart what ended or is due; returns how long to wait before the next check."""
        now = time.monotonic()
        for child in self.children:
            status = child.ended()
            if status == os.EX_CONFIG:
                raise Refused(child.name)
            if status is not None:
                assert child.proc is not None
                delay = child.schedule_restart(now)
                self.log(
                    f"{child.name} (pid {child.proc.pid}) {describe(status)} after "
                    f"{now - child.started_at:.1f} s; restarting it in {delay:g} s"
                )
            if child.due is not None and now >= child.due:
                child.start()
                assert child.proc is not None
                self.log(f"{child.name} restarted (pid {child.proc.pid})")
        waits = [child.due - now for child in self.children if child.due is not None]
        return max(0.01, min([1.0, *waits]))

    def run(self) -> None:
        """Supervise until a signal handler raises (SIGTERM, Ctrl-C): a child's end (SIGCHLD)
        wakes the loop at once, through the signal wakeup fd."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous_fd = signal.set_wakeup_fd(wake_w)
        previous = signal.signal(signal.SIGCHLD, lambda *_: None)
        try:
            while True:
                select.select([wake_r], [], [], self.check())
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
        finally:
            signal.signal(signal.SIGCHLD, previous)
            signal.set_wakeup_fd(previous_fd)
            os.close(wake_r)
            os.close(wake_w)

    def stop_all(self) -> None:
        """Stop every child: the warm ones first, then the others, the last started first. A
        SIGINT or SIGTERM meanwhile cuts a warm shutdown short (the others still get their whole
        `stop_timeout_s`: Redis its save)."""
        hurry = {"now": False}

        def hurried() -> bool:
            return hurry["now"]

        def on_signal(signum: int, frame: FrameType | None) -> None:
            hurry["now"] = True

        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        previous_fd = signal.set_wakeup_fd(wake_w)
        try:  # warm ones first, while the others (the API) still show what they finish
            for child in sorted(reversed(self.children), key=lambda c: not c.warm):
                if child.warm and child.running() and not hurry["now"]:
                    self.log(
                        f"stopping {child.name}: its running flows have {child.stop_timeout_s:g} s "
                        "to end (Ctrl-C again stops it now)"
                    )
                child.stop(wake_r, hurried if child.warm else lambda: False)
        finally:
            signal.set_wakeup_fd(previous_fd)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(wake_r)
            os.close(wake_w)
