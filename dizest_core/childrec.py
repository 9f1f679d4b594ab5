"""The Supervisor's record of one running flow child: its job, channels and what it said."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from dizest_core.errors import ErrorInfo
from dizest_core.job import FlowJob, Value
from dizest_core.outcome import Finished
from dizest_core.pipelines import MAX_LINE
from dizest_core.wire import FrameReader


@dataclass
class Child:
    job: FlowJob
    conn: socket.socket  # job out, frames in (outputs, results, errors, DONE)
    pipes: dict[int, str]  # its stdout+stderr pipe (read end) -> stream name
    outbox: bytearray  # what of the job is not sent yet
    started: float
    deadline: float | None
    timeout: float = 0.0
    pid: int | None = None  # in the zygote's PID namespace
    token: str = ""  # the fork token: the only name the zygote kills by
    status: int | None = None  # wait status once reaped
    oom: int = 0  # the zygote's verdict: 0, or cgroups.OOM_OWN / OOM_OTHER
    kill_reason: str | None = None
    reader: FrameReader = field(default_factory=FrameReader)
    record_limit: int = MAX_LINE
    partial: dict[int, bytearray] = field(default_factory=dict)
    outputs: dict[str, Value] = field(default_factory=dict)
    previews: dict[str, Any] = field(default_factory=dict)
    error: ErrorInfo | None = None
    compiled: bool = True  # False: its ERROR said its own code did not compile
    answer: tuple[int, str, bytes] | None = None
    done: bool = False
    reported: bool = False
    received: int = 0  # bytes the engine read from it (log pipe, socket): no disk writes

    def finished(self, ok: bool, reason: str | None, duration_s: float) -> Finished:
        """Its end as the Supervisor reports it (its outputs only when it ended `ok`)."""
        outputs = self.outputs if ok else {}
        return Finished(
            self.job.flow_id, ok, reason, outputs, self.previews, self.error, duration_s,
            self.answer, self.compiled,
        )  # fmt: skip
