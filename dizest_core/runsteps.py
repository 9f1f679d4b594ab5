"""The run-state operations as one small interface, and its in-memory implementation.

`RunSteps` is what both modes offer: create a run (a rerun is a create with a base run and
targets), claim an attempt, finish it (ok, failed, or retried), lose its worker, cancel the run,
and read back its events and report. `MemoryRuns` applies `dizest_core.runstate` in this process;
`dizest_worker.redis_steps.RedisSteps` applies the Lua steps. One contract suite
(tests/worker/test_run_state_contract.py) runs the same scenarios against both, so a rule that
changes in one and not the other fails it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from dizest_core import dwp
from dizest_core.events import Event
from dizest_core.plan import make_plan
from dizest_core.report import ReportBuilder
from dizest_core.runstate import EXHAUSTED, OK, RETRY, STALE, RunState, StaleAttempt
from dizest_core.status import FlowStatus, Reason

FAILED = "failed"  # a lost worker's attempt that used up max_attempts: failed as worker lost


@dataclass(frozen=True)
class Step:
    """A step's answer, the same words in both modes."""

    outcome: str
    ready: tuple[str, ...] = ()
    final: str | None = None
    next_attempt: int | None = None


class RunSteps(Protocol):
    max_attempts: int

    def create(
        self,
        run_id: str,
        package: Mapping[str, Any],
        targets: list[str] | None = None,
        base_run: str | None = None,
    ) -> tuple[str, ...]: ...

    def claim(self, run_id: str, flow_id: str, attempt: int) -> str: ...

    def finish(
        self,
        run_id: str,
        flow_id: str,
        attempt: int,
        ok: bool,
        reason: str | None = None,
        max_retries: int = 0,
    ) -> Step: ...

    def lose(self, run_id: str, flow_id: str, attempt: int) -> str: ...

    def cancel(self, run_id: str) -> None: ...

    def events(self, run_id: str) -> list[tuple[str, str | None, dict[str, Any]]]: ...

    def report(self, run_id: str) -> dict[str, Any]: ...


class MemoryRuns:
    """`RunSteps` over `RunState` objects (what a local run does), events kept in a list."""

    def __init__(self, max_attempts: int = 3) -> None:
        self.max_attempts = max_attempts
        self.states: dict[str, RunState] = {}
        self.log: dict[str, list[tuple[str, str | None, dict[str, Any]]]] = {}

    def create(
        self,
        run_id: str,
        package: Mapping[str, Any],
        targets: list[str] | None = None,
        base_run: str | None = None,
    ) -> tuple[str, ...]:
        base = self.states.get(base_run) if base_run else None
        plan = make_plan(dwp.load(package), None, targets, lambda f: _has_outputs(base, f))
        state = self.states[run_id] = RunState(plan)
        self.log[run_id] = []
        return tuple(self._record(run_id, state.start()).ready)

    def claim(self, run_id: str, flow_id: str, attempt: int) -> str:
        return self._record(run_id, self.states[run_id].claim(flow_id, attempt)).outcome

    def finish(
        self,
        run_id: str,
        flow_id: str,
        attempt: int,
        ok: bool,
        reason: str | None = None,
        max_retries: int = 0,
    ) -> Step:
        state = self.states[run_id]
        try:
            change = state.finish(
                flow_id, ok, reason, attempt=attempt, retryable=True, max_retries=max_retries
            )
        except StaleAttempt:
            return Step(STALE)
        self._record(run_id, change)
        if change.outcome == RETRY:
            return Step(RETRY, next_attempt=change.next_attempt)
        return Step(OK, tuple(change.ready), change.final)

    def lose(self, run_id: str, flow_id: str, attempt: int) -> str:
        state = self.states[run_id]
        change = self._record(run_id, state.requeue(flow_id, attempt, self.max_attempts))
        if change.outcome == EXHAUSTED:
            self.finish(run_id, flow_id, attempt, False, Reason.WORKER_LOST)
            return FAILED
        return str(change.next_attempt) if change.outcome == RETRY else change.outcome

    def cancel(self, run_id: str) -> None:
        self._record(run_id, self.states[run_id].stop())

    def events(self, run_id: str) -> list[tuple[str, str | None, dict[str, Any]]]:
        return list(self.log[run_id])

    def report(self, run_id: str) -> dict[str, Any]:
        """Run status and each flow's status, reason and index, as the report shows them."""
        plan = self.states[run_id].plan
        builder = ReportBuilder(run_id, [*plan.run, *plan.reused, *plan.inactive])
        events = self.log[run_id]
        for i, (type_, flow_id, data) in enumerate(events):
            builder.apply(_event(run_id, i, type_, flow_id, data))
        report = builder.report(lambda f: {})
        return {
            "status": report["status"],
            "flows": {f: _brief(flow) for f, flow in report["flows"].items()},
        }

    def _record(self, run_id: str, change: Any) -> Any:
        self.log[run_id] += [(t, f, dict(d)) for t, f, d in change.events]
        return change


def _has_outputs(state: RunState | None, flow_id: str) -> bool:
    """What a rerun may reuse: outputs of a flow that ended well (or were reused) there."""
    if state is None:
        return False
    return state.status.get(flow_id) is FlowStatus.READY or flow_id in state.plan.reused


def _event(run_id: str, i: int, type_: str, flow_id: str | None, data: Mapping[str, Any]) -> Event:
    return Event(str(i), run_id, type_, flow_id, dict(data))


def _brief(flow: Mapping[str, Any]) -> dict[str, Any]:
    return {"status": flow["status"], "reason": flow["reason"], "index": flow["index"]}
