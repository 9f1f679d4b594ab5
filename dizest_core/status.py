"""Flow and run statuses: str Enums plus the named sets code should test against.

A flow goes idle -> pending (queued) -> running -> ready (finished well) | error.
A flow that is not run stays idle, with a reason (upstream failed, inactive, cancelled).
A run is running until it is ready (every flow that ran is ready), error, or cancelled.
"""

from __future__ import annotations

from enum import Enum


class FlowStatus(str, Enum):
    IDLE = "idle"
    PENDING = "pending"
    RUNNING = "running"
    READY = "ready"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


class RunStatus(str, Enum):
    PENDING = "pending"
    RUNNING = "running"
    READY = "ready"
    ERROR = "error"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


FLOW_ACTIVE = frozenset({FlowStatus.PENDING, FlowStatus.RUNNING})
FLOW_FINAL = frozenset({FlowStatus.READY, FlowStatus.ERROR, FlowStatus.IDLE})
RUN_FINAL = frozenset({RunStatus.READY, RunStatus.ERROR, RunStatus.CANCELLED})
RUN_FINAL_VALUES = frozenset(s.value for s in RUN_FINAL)  # as stored and sent: plain strings


class Reason:
    """Reasons attached to statuses (events, run report)."""

    UPSTREAM_FAILED = "upstream failed: {flow}"
    INACTIVE = "inactive"
    NEEDS_INACTIVE = "needs output of inactive flow {flow}, which has none"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout after {seconds:g} s"
    RUN_TIMEOUT = "run timeout after {seconds:g} s"
    CACHED = "cached"
    REUSED = "reused from previous run"
    WORKER_LOST = "worker lost"
    WORKER_LOST_RETRYING = WORKER_LOST + "; retrying (attempt {attempt})"
    RETRYING = "retrying after: {reason}"
    FLOW_SLOTS = (
        "waiting for a flow slot: its owner's runs already run as many flows at once as they "
        "may ({slots}, DIZEST_USER_FLOW_SLOTS)"
    )
    FAIR_SHARE = (
        "waiting for a flow slot: its owner's runs already run their share of the cluster's "
        "flow slots ({slots} of {live}, shared by {users} users)"
    )
    RUN_QUOTA = (
        "its outputs ({size} bytes) were not kept: the runs of its owner hold their storage "
        "quota ({quota} bytes) until they expire"
    )
    INODES_FULL = (
        "stopped: the disk is almost out of inodes ({free} free under {path}, the reserve is "
        "{reserve}) and this flow made the most files there ({made})"
    )
    DISK_FULL = (
        "stopped: the disk is almost full ({free:.0f} MB free under {path}, the reserve is "
        "{reserve} MB) and this flow wrote the most ({wrote:.0f} MB)"
    )
