"""What a flow child's end becomes: the `Finished` and `Signal` data a Supervisor reports, the
checks its file outputs must pass, and the words for each way it can end.

A file reference among a child's outputs is untrusted (the child runs user code): it must be a
regular file of the stated size inside that attempt's own artifact folder. A SIGKILL is called
out of memory only with the cgroup's evidence (the Supervisor passes it), never guessed.
"""

from __future__ import annotations

import os
import signal
import stat
from dataclasses import dataclass, field
from typing import Any

from dizest_core.errors import ErrorInfo, ProtocolError
from dizest_core.job import Artifact, FlowJob, Value


@dataclass
class Finished:
    """A child has ended; `ok` only when its code ran to the end and its outputs serialized."""

    flow_id: str
    ok: bool
    reason: str | None
    outputs: dict[str, Value]
    previews: dict[str, Any]
    error: ErrorInfo | None
    duration_s: float
    answer: tuple[int, str, bytes] | None = None  # an `api` call's (status, media type, body)


@dataclass
class Signal:
    """Something a child said: kind is log (entry, stream), clear, or result (name, payload)."""

    flow_id: str
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


def check_artifacts(job: FlowJob, outputs: dict[str, Value]) -> tuple[bool, str | None]:
    """Every file reference among a child's outputs, checked (and pinned to its real path):
    otherwise a flow could make the store serve any file of the server as its output."""
    for name, value in outputs.items():
        if isinstance(value, Artifact):
            try:
                outputs[name] = _checked_artifact(job, value)
            except ProtocolError as exc:
                return False, f"protocol error: output {name!r} {exc}"
    return True, None


def _checked_artifact(job: FlowJob, artifact: Artifact) -> Artifact:
    folder = job.artifact_folder()
    shown = repr(artifact.path) if len(artifact.path) <= 200 else repr(artifact.path[:200] + "...")
    if folder is None:
        raise ProtocolError("is a file reference, but this flow has no artifact directory")
    root = os.path.realpath(job.artifact_dir or "")
    folder = os.path.realpath(folder)
    path = os.path.realpath(artifact.path)
    if os.path.commonpath([root, folder]) != root or os.path.dirname(path) != folder:
        raise ProtocolError(f"refers to {shown}, outside the flow's artifact folder")
    try:
        info = os.stat(path)
    except OSError as exc:
        raise ProtocolError(f"refers to {shown}, which cannot be read ({exc.strerror})") from exc
    if not stat.S_ISREG(info.st_mode) or info.st_size != artifact.size:
        raise ProtocolError(f"refers to {shown}, not a regular file of {artifact.size} bytes")
    return Artifact(path, artifact.size)


def memory_reason(memory_limit_mb: int | None) -> str:
    return f"memory limit exceeded ({memory_limit_mb} MB)"


def error_reason(error: ErrorInfo, memory_limit_mb: int | None) -> str:
    if error.type == "MemoryError" and memory_limit_mb:
        return memory_reason(memory_limit_mb)
    message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    return f"{error.type}: {message}" if message else error.type


def signal_reason(signum: int) -> str:
    name = (
        signal.Signals(signum).name if signum in signal.Signals._value2member_map_ else str(signum)
    )
    if signum == signal.SIGSEGV:
        return "crashed: segmentation fault (SIGSEGV)"
    if (
        signum == signal.SIGKILL
    ):  # out of memory only with the cgroup's evidence (`Supervisor._outcome`)
        return "killed by SIGKILL"
    return f"killed by signal {name}"


def end_of(
    kill_reason: str | None,
    error: ErrorInfo | None,
    done: bool,
    status: int | None,
    oom: bool,
    job: FlowJob,
) -> tuple[bool, str | None]:
    """(ok, reason) of a child's end: killed by us, failed with an error it sent, finished
    (DONE), or exited or died otherwise (`status`: its wait status)."""
    if kill_reason:
        return False, kill_reason
    if error is not None:
        return False, error_reason(error, job.memory_limit_mb)
    if done:
        return True, None
    assert status is not None
    code = os.waitstatus_to_exitcode(status)
    if oom:  # the kernel counted an OOM kill in the flow's cgroup: evidence, not a guess
        return False, memory_reason(job.memory_limit_mb)
    if code < 0:
        return False, signal_reason(-code)
    return False, f"the flow process exited with code {code} before finishing (os._exit?)"
