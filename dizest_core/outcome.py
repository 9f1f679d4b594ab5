"""What a flow child's end becomes: the `Finished` and `Signal` data a Supervisor reports, the
checks its file outputs must pass, and the words for each way it can end.

A file reference among a child's outputs is untrusted (the child runs user code): it must be a
regular file of the stated size inside that attempt's own artifact folder. A SIGKILL is called
out of memory only with the cgroup's evidence (the Supervisor passes it), never guessed.
"""

from __future__ import annotations

import os
import re
import signal
import stat
from dataclasses import dataclass, field
from typing import Any

from dizest_core.cgroups import OOM_OTHER, OOM_OWN
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
    compiled: bool = True  # False: the flow's own code did not compile (whatever it raised)

    def retryable(self) -> bool:
        """Failed, and not for its own code not compiling: another attempt would fail alike."""
        return not self.ok and self.compiled


@dataclass
class Signal:
    """Something a child said: kind is log (entry, stream), clear, or result (name, payload)."""

    flow_id: str
    kind: str
    data: dict[str, Any] = field(default_factory=dict)


def check_artifacts(job: FlowJob, outputs: dict[str, Value]) -> tuple[bool, str | None]:
    """Every file reference among a child's outputs, checked: otherwise a flow could make the
    store serve (or a later flow mount) any file of the server as its output. A root engine
    first takes the attempt's folder and each file from the flow's uid, so what was checked
    stays so: the flow (or what it left running) can no longer swap, link or grow them."""
    found = [name for name, value in outputs.items() if isinstance(value, Artifact)]
    folder = job.artifact_folder()
    if not found:
        return True, None
    if folder is None:
        return False, f"protocol error: output {found[0]!r} is a file reference, but this flow has no artifact directory"  # fmt: skip
    try:
        dir_fd = os.open(os.path.realpath(folder), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        return False, f"protocol error: the artifact folder cannot be opened ({exc.strerror})"
    try:
        if os.geteuid() == 0:  # flows run as other uids: the folder becomes read-only to them
            os.fchown(dir_fd, 0, -1)
            os.fchmod(dir_fd, 0o550)
        for name in found:
            try:
                outputs[name] = _checked_artifact(folder, dir_fd, outputs[name])  # type: ignore[arg-type]
            except ProtocolError as exc:
                return False, f"protocol error: output {name!r} {exc}"
    finally:
        os.close(dir_fd)
    return True, None


def _checked_artifact(folder: str, dir_fd: int, artifact: Artifact) -> Artifact:
    """The reference must name a plain file directly in `folder` (checked by its name, never
    by resolving what the flow wrote), of the stated size, with one link."""
    head, name = os.path.split(artifact.path)
    shown = repr(artifact.path) if len(artifact.path) <= 200 else repr(artifact.path[:200] + "...")
    if head != folder or name in ("", ".", ".."):
        raise ProtocolError(f"refers to {shown}, outside the flow's artifact folder")
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError as exc:
        raise ProtocolError(f"refers to {shown}, which cannot be read ({exc.strerror})") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size != artifact.size or info.st_nlink != 1:
            raise ProtocolError(f"refers to {shown}, not a regular file of {artifact.size} bytes")
        if os.geteuid() == 0:  # readable by the run's flows (their group), writable by none
            os.fchown(fd, 0, -1)
            os.fchmod(fd, 0o440)
    finally:
        os.close(fd)
    return Artifact(os.path.join(os.path.realpath(folder), name), artifact.size)


OUT_OF_MEMORY_ELSEWHERE = (
    "killed by the kernel's OOM killer: the machine (or the worker's group) ran out of memory,"
    " not this flow's limit"
)


def memory_reason(memory_limit_mb: int | None) -> str:
    return f"memory limit exceeded ({memory_limit_mb} MB)"


def error_reason(error: ErrorInfo, memory_limit_mb: int | None) -> str:
    if error.type == "MemoryError" and memory_limit_mb:
        return memory_reason(memory_limit_mb)
    kind, message = _clip(error.type), _clip(error.message)  # the child's text: any length
    return f"{kind}: {message}" if message else kind


def _clip(text: str, most: int = 200) -> str:
    """The child's text, at most `most` characters, a lone surrogate (which json.loads lets
    through) as U+FFFD: a worker hands the reason to Redis, whose client encodes it strictly,
    and the UnicodeEncodeError ended its task, so the flow ended "worker lost"."""
    clipped = text if len(text) <= most else text[:most] + "..."
    return _LONE_SURROGATE.sub("\ufffd", clipped)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


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
    oom: int,
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
    if oom == OOM_OWN:  # the kernel counted an OOM kill at the flow's own limit: evidence
        return False, memory_reason(job.memory_limit_mb)
    if oom == OOM_OTHER:  # killed, its own limit never reached: not the flow's to raise
        return False, OUT_OF_MEMORY_ELSEWHERE
    if code < 0:
        return False, signal_reason(-code)
    return False, f"the flow process exited with code {code} before finishing (os._exit?)"
