"""The run state machine: a run's flows as data, advanced by one method per step, in both modes.

A flow goes idle -> pending (ready to run) -> running -> ready | error; a failing attempt may go
back to pending as the next attempt (its own retries, or a lost worker), and a flow that will
not run stays idle with a reason. Every step checks the attempt it is told about is the current
one (attempt fencing: a step for an attempt that was taken over is `stale` and changes nothing),
and returns a `Transition`: what became ready, what was skipped, and the events that report it,
ending with the run's final `workflow.status` when the step resolved its last flow.

These are THE rules: local runs apply them here; the Redis scripts (`dizest_worker.scripts`)
apply the same ones atomically, getting their data (first events, what lies below a flow,
reasons) from here through ARGV. `tests/worker/test_run_state_contract.py` proves both agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dizest_core import events as ev
from dizest_core.errors import DizestError, UnknownFlowError
from dizest_core.plan import Plan
from dizest_core.status import FlowStatus, Reason, RunStatus

EventSpec = tuple[str, str | None, Mapping[str, Any]]  # type, flow id or None, data

# step answers (the Redis scripts return the same words)
OK, RETRY, STALE, CANCELLED = "ok", "retry", "stale", "cancelled"
RESEND, EXHAUSTED, GONE = "resend", "exhausted", "gone"


class StaleAttempt(DizestError, ValueError):
    """A step for an attempt that is not the flow's current one, or a flow not in that state."""


@dataclass(frozen=True)
class Transition:
    """What one step caused: flows made ready, flows that will not run, the events to emit,
    and the step's answer (`outcome`, `next_attempt`, `delay_s` for a retry; `final`: the
    run's status when this step ended it)."""

    ready: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    events: list[EventSpec] = field(default_factory=list)
    outcome: str = OK
    next_attempt: int | None = None
    delay_s: float = 0.0
    final: str | None = None


def status_event(flow_id: str, status: FlowStatus, reason: str | None, **extra: Any) -> EventSpec:
    return (ev.FLOW_STATUS, flow_id, {"status": status.value, "reason": reason, **extra})


def index_event(flow_id: str, index: int) -> EventSpec:
    return (ev.FLOW_INDEX, flow_id, {"index": index})


class RunState:
    """The statuses of a run's flows, their attempts, and the count of unfinished parents."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.status: dict[str, FlowStatus] = dict.fromkeys(plan.run, FlowStatus.IDLE)
        self.reason: dict[str, str | None] = dict.fromkeys(plan.run)
        self.waiting: dict[str, int] = {f: len(plan.parents[f]) for f in plan.run}
        self.attempt: dict[str, int] = dict.fromkeys(plan.run, 1)
        self.retries: dict[str, int] = {}  # user-code retries used
        self.lost: dict[str, int] = {}  # worker losses requeued
        self.unresolved = len(plan.run)
        self.completed = 0
        self.failed = False
        self.stopped: tuple[str, RunStatus] | None = None  # (reason, final status) once stopped
        self.final: RunStatus | None = None

    @property
    def done(self) -> bool:
        return self.unresolved == 0

    def start(self) -> Transition:
        """The run's first events: running, reused and inactive flows, what the plan skips,
        and the roots, now pending."""
        plan = self.plan
        events: list[EventSpec] = [(ev.WORKFLOW_STATUS, None, {"status": RunStatus.RUNNING.value})]
        events += [status_event(f, FlowStatus.READY, Reason.REUSED) for f in sorted(plan.reused)]
        events += [status_event(f, FlowStatus.IDLE, Reason.INACTIVE) for f in sorted(plan.inactive)]
        skipped = list(plan.skipped.items())
        for flow_id, reason in skipped:
            self._resolve(flow_id, FlowStatus.IDLE, reason)
            events += [status_event(flow_id, FlowStatus.IDLE, reason), index_event(flow_id, -2)]
        ready = plan.roots()
        for flow_id in ready:
            self.status[flow_id] = FlowStatus.PENDING
            events.append(status_event(flow_id, FlowStatus.PENDING, None))
        return Transition(ready, skipped, events, final=self._ended(events))

    def claim(self, flow_id: str, attempt: int | None = None) -> Transition:
        """pending (at `attempt`) -> running; `cancelled` once the run is stopped or over."""
        self._known(flow_id)
        if self.stopped is not None or self.final is not None:
            return Transition(outcome=CANCELLED)
        if self.status[flow_id] is not FlowStatus.PENDING or not self._current(flow_id, attempt):
            return Transition(outcome=STALE)
        self.status[flow_id] = FlowStatus.RUNNING
        self.reason[flow_id] = None
        events = [status_event(flow_id, FlowStatus.RUNNING, None), (ev.LOG_CLEAR, flow_id, {})]
        return Transition(events=events)

    def running(self, flow_id: str) -> Transition:
        """`claim` the current attempt, raising StaleAttempt when it cannot be."""
        change = self.claim(flow_id)
        if change.outcome != OK:
            raise StaleAttempt(f"flow {flow_id!r} is {self.status[flow_id]}, it cannot start")
        return change

    def finish(
        self,
        flow_id: str,
        ok: bool,
        reason: str | None = None,
        *,
        attempt: int | None = None,
        duration_s: float = 0.0,
        retryable: bool = False,
        max_retries: int = 0,
        backoff_s: float = 0.0,
    ) -> Transition:
        """End a running attempt: ready (children whose last parent this was become pending) or
        error (everything below it skipped), or, for a `retryable` failure while the flow has
        retries of its own left and the run goes on, pending again as the next attempt after
        `backoff_s * 2**retries_used`. Raises StaleAttempt for any other flow or attempt."""
        self._known(flow_id)
        if self.status[flow_id] is not FlowStatus.RUNNING or not self._current(flow_id, attempt):
            raise StaleAttempt(f"flow {flow_id!r} is {self.status[flow_id]}, it cannot finish")
        used = self.retries.get(flow_id, 0)
        if not ok and retryable and self.stopped is None and used < max_retries:
            self.retries[flow_id] = used + 1
            return self._retry(
                flow_id, Reason.RETRYING.format(reason=reason or ""), backoff_s * 2**used
            )
        reason = reason or None
        if ok:
            self.completed += 1
        else:
            self.failed = True
        status, index = (FlowStatus.READY, self.completed) if ok else (FlowStatus.ERROR, -1)
        self._resolve(flow_id, status, reason)
        events = [
            status_event(flow_id, status, reason, duration_s=round(duration_s, 6)),
            index_event(flow_id, index),
        ]
        if not ok:
            skipped = self._skip_below(flow_id, events)
            return Transition([], skipped, events, final=self._ended(events))
        ready = []
        for child in self.plan.children[flow_id]:
            self.waiting[child] -= 1
            if self.waiting[child] == 0 and self._open(child):
                self.status[child] = FlowStatus.PENDING
                events.append(status_event(child, FlowStatus.PENDING, None))
                ready.append(child)
        return Transition(ready, [], events, final=self._ended(events))

    def requeue(self, flow_id: str, attempt: int, max_attempts: int) -> Transition:
        """The worker holding this attempt is gone. Pending: `resend` it. Running: the next
        attempt, pending (`retry`), until `max_attempts` losses (`exhausted`: the caller then
        fails it with Reason.WORKER_LOST). In a stopped run the flow is resolved as the stop
        left the others (`cancelled`). Anything else: `gone`."""
        self._known(flow_id)
        status = self.status[flow_id]
        if (
            not self._current(flow_id, attempt)
            or status not in (FlowStatus.PENDING, FlowStatus.RUNNING)
            or self.final is not None
        ):
            return Transition(outcome=GONE)
        if self.stopped is not None:
            return self._resolve_stopped(flow_id, status, self.stopped[0])
        if status is FlowStatus.PENDING:
            return Transition(outcome=RESEND)
        lost = self.lost.get(flow_id, 0) + 1
        if lost >= max_attempts:
            return Transition(outcome=EXHAUSTED)
        self.lost[flow_id] = lost
        why = Reason.WORKER_LOST_RETRYING.format(attempt=attempt + 1)
        return self._retry(flow_id, why, 0.0)

    def stop(
        self, reason: str = Reason.CANCELLED, final: RunStatus = RunStatus.CANCELLED
    ) -> Transition:
        """Stop everything not yet running, with `reason`; the run ends `final` once its
        running flows end (they are killed by the caller). Nothing once the run is over."""
        if self.final is not None:
            return Transition(outcome="final")
        if self.stopped is None:
            self.stopped = (reason, final)
        events: list[EventSpec] = []
        skipped = []
        for flow_id in self.plan.run:
            if self.status[flow_id] is FlowStatus.PENDING or self._open(flow_id):
                self._resolve(flow_id, FlowStatus.IDLE, reason)
                events.append(status_event(flow_id, FlowStatus.IDLE, reason))
                skipped.append((flow_id, reason))
        return Transition([], skipped, events, final=self._ended(events))

    def cancel(self) -> list[str]:
        """`stop` as a user's cancel; returns the flows it stopped (running ones end on their own)."""
        return [flow_id for flow_id, _ in self.stop().skipped]

    def _retry(self, flow_id: str, why: str, delay_s: float) -> Transition:
        next_attempt = self.attempt[flow_id] + 1
        self.attempt[flow_id] = next_attempt
        self.status[flow_id] = FlowStatus.PENDING
        self.reason[flow_id] = why
        events = [status_event(flow_id, FlowStatus.PENDING, why)]
        return Transition([flow_id], [], events, RETRY, next_attempt, delay_s)

    def _resolve_stopped(self, flow_id: str, status: FlowStatus, reason: str) -> Transition:
        """A lost attempt of a stopped run: resolved as if its worker had killed it."""
        new = FlowStatus.ERROR if status is FlowStatus.RUNNING else FlowStatus.IDLE
        self._resolve(flow_id, new, reason)
        events = [status_event(flow_id, new, reason)]
        if new is FlowStatus.ERROR:
            self.failed = True
            events.append(index_event(flow_id, -1))
        return Transition(events=events, outcome=CANCELLED, final=self._ended(events))

    def _skip_below(self, failed: str, events: list[EventSpec]) -> list[tuple[str, str]]:
        reason = Reason.UPSTREAM_FAILED.format(flow=failed)
        skipped = []
        for flow_id in self.plan.below(failed):
            if self._open(flow_id):
                self._resolve(flow_id, FlowStatus.IDLE, reason)
                events += [status_event(flow_id, FlowStatus.IDLE, reason), index_event(flow_id, -2)]
                skipped.append((flow_id, reason))
        return skipped

    def _ended(self, events: list[EventSpec]) -> str | None:
        """When nothing is left: the run's final status, its last event appended."""
        if self.unresolved or self.final is not None:
            return None
        if self.stopped is not None:
            self.final = self.stopped[1]
        else:
            self.final = RunStatus.ERROR if self.failed else RunStatus.READY
        events.append((ev.WORKFLOW_STATUS, None, {"status": self.final.value}))
        return self.final.value

    def _open(self, flow_id: str) -> bool:
        """Idle and not yet resolved (may still run)."""
        return self.status[flow_id] is FlowStatus.IDLE and self.reason[flow_id] is None

    def _current(self, flow_id: str, attempt: int | None) -> bool:
        return attempt is None or attempt == self.attempt[flow_id]

    def _resolve(self, flow_id: str, status: FlowStatus, reason: str | None) -> None:
        self.status[flow_id] = status
        self.reason[flow_id] = reason if reason is not None or status is not FlowStatus.IDLE else ""
        self.unresolved -= 1

    def _known(self, flow_id: str) -> None:
        if flow_id not in self.status:
            raise UnknownFlowError(f"flow {flow_id!r} is not in this run")
