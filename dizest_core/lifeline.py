"""A child process's tie to its parent: PR_SET_PDEATHSIG, so nothing outlives whoever started it.

Linux sends the chosen signal to the child when the *thread* that forked it exits, so every
process that relies on it forks from its main thread (`dizest serve`'s supervisor, gunicorn's
arbiter and Celery's main process all do). The setting survives exec but not fork: each level of
a process tree sets it again (Celery's prefork pool does it for its pool processes, the zygote
for flow processes). Off Linux it does nothing and each process's own parent checks remain.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # looked up before any fork: a preexec_fn must not import


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> None:
    """Get `sig` when the parent dies; if it died already (`parent` is not our parent any more:
    we were reparented before the call), get it now."""
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(sig))
    if parent is not None and os.getppid() != parent:
        os.kill(os.getpid(), sig)


def preexec(sig: int = signal.SIGKILL) -> Callable[[], None]:
    """A subprocess `preexec_fn` that ties the child to this process (call it in the parent)."""
    parent = os.getpid()

    def tie() -> None:
        die_with_parent(sig, parent)

    return tie
