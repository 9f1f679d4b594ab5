"""`dizest_core.runsteps.RunSteps` over Redis: the Lua steps, called as workers and reapers call
them (through `RedisRuns`), so the contract suite proves the cluster keeps the local rules.

A lost worker is the reaper's path: REQUEUE at an expired lease, and FINISH as `worker lost`
when it says `exhausted`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dizest_core import dwp
from dizest_core.plan import make_plan
from dizest_core.runsteps import FAILED, Step
from dizest_core.status import Reason
from dizest_worker.redis_store import RedisStore
from dizest_worker.run_reads import now_ms
from dizest_worker.state import RedisRuns

VALUE = b"\x80\x05K\x01."  # pickle of 1, an output as a worker stores it


class RedisSteps:
    def __init__(self, runs: RedisRuns) -> None:
        self.runs = runs
        self.max_attempts = runs.settings.max_attempts
        self.store = RedisStore(runs.client, runs.keys, runs.settings.ttl_s)

    def create(
        self,
        run_id: str,
        package: Mapping[str, Any],
        targets: list[str] | None = None,
        base_run: str | None = None,
    ) -> tuple[str, ...]:
        pkg = dwp.load(package)
        has = (lambda f: self.store.has(base_run, f)) if base_run else (lambda f: False)
        plan = make_plan(pkg, None, targets, has)
        record: dict[str, Any] = {
            "targets": targets,
            "reused": sorted(plan.reused),
            "options": {},
            "inputs": {},
            "flow_inputs": {},
        }
        return self.runs.create(run_id, dict(package), plan, record, base_run=base_run).roots

    def claim(self, run_id: str, flow_id: str, attempt: int) -> str:
        return self.runs.claim(run_id, flow_id, attempt, "w")[0]

    def finish(
        self,
        run_id: str,
        flow_id: str,
        attempt: int,
        ok: bool,
        reason: str | None = None,
        max_retries: int = 0,
    ) -> Step:
        ctx = self.runs.context(run_id)
        assert ctx is not None
        result = self.runs.finish(
            ctx,
            flow_id,
            attempt,
            ok,
            reason,
            0.0,
            {"v": VALUE} if ok else {},
            {"v": 1} if ok else {},
            retryable=True,
            max_retries=max_retries,
        )
        return Step(result.outcome, result.ready, result.final or None, result.next_attempt)

    def lose(self, run_id: str, flow_id: str, attempt: int) -> str:
        later = now_ms() + 3_600_000
        answer = self.runs.requeue(run_id, flow_id, attempt, expired_before=later)
        if answer == "exhausted":
            ctx = self.runs.context(run_id)
            assert ctx is not None
            self.runs.finish(
                ctx, flow_id, attempt, False, Reason.WORKER_LOST, 0.0, {}, {}, expired_before=later
            )
            return FAILED
        return answer

    def cancel(self, run_id: str) -> None:
        self.runs.cancel(run_id)

    def events(self, run_id: str) -> list[tuple[str, str | None, dict[str, Any]]]:
        return [(e.type, e.flow_id, e.data) for e in self.runs.events(run_id, count=100_000)]

    def report(self, run_id: str) -> dict[str, Any]:
        """Run status from the record, flows from the flows hash (what the API reports)."""
        record = self.runs.record(run_id) or {}
        ctx = self.runs.context(run_id)
        assert ctx is not None
        plan = ctx.plan
        ids = [*plan.run, *plan.reused, *plan.inactive]
        states = self.runs.flow_states(run_id, ids)
        return {
            "status": record.get("status"),
            "flows": {
                f: {"status": s["status"], "reason": s["reason"], "index": s["index"]}
                for f, s in states.items()
            },
        }
