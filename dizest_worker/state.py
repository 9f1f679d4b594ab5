"""Run state in Redis: creating a run, and the atomic steps that advance it (see `scripts`).

This module is the only caller of the Lua scripts. It hands them the rules that are data, from
`dizest_core` (the first events of `RunState.start`, what lies below a flow, reason texts), and
turns their answers into data (`FinishResult`). Reading a run back is `run_reads.RunReader`.
It holds no state of its own beyond the Redis client, so any number of workers, reapers and
API processes can share a run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from dizest_core.events import WORKFLOW_STATUS
from dizest_core.job import Artifact, Value
from dizest_core.plan import Plan
from dizest_core.runstate import RunState
from dizest_core.status import FlowStatus, Reason
from dizest_worker import fair_share, scripts
from dizest_worker.context import RunContext
from dizest_worker.fair_share import Released, by_user, cluster_keys, other_users, user_keys
from dizest_worker.files import run_of_artifact
from dizest_worker.keys import SEP
from dizest_worker.lease_steps import LeaseSteps
from dizest_worker.liveness import live_since_ms
from dizest_worker.quota import quota_error
from dizest_worker.redis_store import decode_value, encode_value
from dizest_worker.run_reads import CONTEXT_CACHE, now_ms, to_event
from dizest_worker.settings import WorkerSettings

__all__ = ["CONTEXT_CACHE", "FinishResult", "NewRun", "RedisRuns", "now_ms", "to_event"]


@dataclass(frozen=True)
class FinishResult:
    """What finishing an attempt did: ok (ready children), retry (next attempt), stale, alive."""

    outcome: str
    ready: tuple[str, ...] = ()
    final: str | None = None
    next_attempt: int | None = None
    delay_s: float = 0.0  # before a retry may start (its backoff)
    released: tuple[Released, ...] = ()  # its owner's parked attempts its slot let go: send them
    handed_on: tuple[tuple[str, Released], ...] = ()  # other users' (user, attempt): send them


@dataclass(frozen=True)
class NewRun:
    run_id: str
    created: bool
    roots: tuple[str, ...]


IDEMPOTENCY_READS = 8  # reads of a key that a racing submit changed meanwhile (then it stays)


class RedisRuns(LeaseSteps):
    """The run-state steps in Redis (the rules of `dizest_core.runstate`, atomically)."""

    def __init__(self, client: redis.Redis, settings: WorkerSettings) -> None:
        super().__init__(client, settings)  # with the lease steps (lease_steps.LeaseSteps)
        reg = client.register_script
        self._create = reg(scripts.CREATE)
        self._claim = reg(scripts.CLAIM)
        self._finish = reg(scripts.FINISH)
        self._requeue = reg(scripts.REQUEUE)
        self._cancel = reg(scripts.CANCEL)
        self._emit = reg(scripts.EMIT)

    def _account_key(self, account: str | None) -> str:
        """The stored-bytes hash of a run's owner ('' for a run without one)."""
        return self.keys.user_stored(account) if account else ""

    def _run_account(self, run_id: str) -> str:
        ctx = self.context(run_id)
        return self._account_key(ctx.account if ctx else None)

    def slot_keys(self, account: str | None) -> list[str]:
        """The flow slots (running), parked attempts and their queues of a run's owner, the set
        of users with parked attempts, and what the fair share is computed from (fair_share);
        '' each for a run without an owner: it holds no slot."""
        if not account:
            return [""] * 8
        return [*user_keys(self.keys, account), self.keys.parked, *cluster_keys(self.keys)]

    def _base_args(self, run_id: str) -> list[Any]:
        return [self.keys.event_channel, self.settings.stream_maxlen, run_id]

    def _step_keys(self, run_id: str, *more: str) -> list[str]:
        """KEYS of CLAIM, FINISH and REQUEUE: the same six first, then what the step adds."""
        k = self.keys
        return [
            k.run(run_id),
            k.flows(run_id),
            k.events(run_id),
            k.leases,
            k.metrics,
            k.done(run_id),
            *more,
        ]

    # -- creating a run ------------------------------------------------------------------
    def create(
        self,
        run_id: str,
        snapshot: Mapping[str, Any],
        plan: Plan,
        record: Mapping[str, Any],
        idempotency_key: str | None = None,
        base_run: str | None = None,
        account: str | None = None,
    ) -> NewRun:
        """Store a planned run and emit its first events, in one atomic step with its
        idempotency key: the same key gives the same run, even to racing submits. What it
        stores counts towards the quota of user `account` (see `dizest_api.data.run_quota`)."""
        start = RunState(plan).start()
        roots = tuple(start.ready)
        fields = {
            **{k: json.dumps(v) for k, v in record.items()},
            "status": FlowStatus.RUNNING.value,
            "created_at": time.time(),
            "unresolved": len(plan.run) - len(plan.skipped),
            "completed": 0,
            "failed": 0,
            "cancelled": 0,
        }
        k = self.keys
        idem = k.idempotency(idempotency_key) if idempotency_key else ""
        keys = [k.run(run_id), k.flows(run_id), k.events(run_id), k.package(run_id), k.runs]
        keys += [k.leases, idem, k.done(run_id), "", self._account_key(account)]
        keys += [k.user_stored_runs(account), k.flow_waiting] if account else ["", ""]
        reused = sorted(plan.reused)
        keys += [x for f in reused for x in (k.outputs(base_run or "", f), k.outputs(run_id, f))]
        if base_run and reused:
            keys += [k.run_keep(r) for r in self._artifact_runs(base_run, reused)]
        args: list[Any] = [
            *self._base_args(run_id),
            self.settings.ttl_s,
            now_ms(),
            self.reservation(),  # roots: reserved until the submitter has sent them
            "",
            json.dumps(snapshot),
            *_counted(_flat(fields)),
            *_counted(_flat(_flow_fields(plan, roots))),
            *_counted(list(roots)),
        ]
        # the final workflow.status of a run with nothing to do is CREATE's own (finalize)
        events = [e for e in start.events if e[0] != WORKFLOW_STATUS or e is start.events[0]]
        args += [len(events)]
        args += [x for type_, flow, data in events for x in (type_, flow or "", json.dumps(data))]
        args += [len(reused), self.settings.run_quota_bytes if account else ""]
        args += [account or "", fair_share.WAITING_MS]  # read at each call (tests shorten it)
        for _ in range(IDEMPOTENCY_READS):
            if idem:  # the run the key names goes in KEYS; CREATE checks it is still that one
                named = self.client.get(idem)
                args[6], keys[8] = (named.decode(), k.run(named.decode())) if named else ("", "")
            created, answer = self._create(keys=keys, args=args)
            if created == 3:
                raise quota_error(int(answer), self.settings)
            if created != 2:
                break
        else:
            raise redis.RedisError(f"idempotency key {idempotency_key!r} keeps changing")
        return NewRun(answer.decode(), bool(created), roots if created else ())

    def _artifact_runs(self, base_run: str, flow_ids: Iterable[str]) -> list[str]:
        """The runs whose artifact directories hold files the reused outputs point to (the base
        run, or an older one it reused them from): kept on disk as long as the new run."""
        pipe = self.client.pipeline(transaction=False)
        for flow_id in sorted(flow_ids):
            pipe.hgetall(self.keys.outputs(base_run, flow_id))
        found = set()
        for fields in pipe.execute():
            for name, raw in fields.items():
                value = decode_value(raw) if name.startswith(b"v:") else None
                owner = run_of_artifact(value.path) if isinstance(value, Artifact) else None
                if owner:
                    found.add(owner)
        return sorted(found)

    # -- advancing a run ------------------------------------------------------------------
    def claim(
        self,
        run_id: str,
        flow_id: str,
        attempt: int,
        worker: str,
        sources: Sequence[tuple[str, str]] = (),
        holder: str = "",
        account: str | None = None,
        level: int = 0,
        queue: str = "",
    ) -> tuple[str, list[Value | None]]:
        """Take a pending attempt; with it, the values of its (source flow, output) inputs.
        `holder`: the claiming process's holder id (liveness.connected), if it has one. An
        attempt of a run of `account` past that user's flow slots is parked: `wait`."""
        outputs = (self.keys.outputs(run_id, f) for f, _ in sources)
        keys = self._step_keys(run_id, *self.slot_keys(account), *outputs)
        slots = self.settings.user_flow_slots
        share = Reason.FAIR_SHARE.format(slots="%d", live="%d", users="%d")  # Lua fills it in
        args = [
            *self._base_args(run_id),
            flow_id,
            attempt,
            f"{worker}{SEP}{holder}" if holder else worker,
            now_ms() + int(self.settings.lease_s * 1000),
            slots,
            account or "",
            level,
            Reason.FLOW_SLOTS.format(slots=slots),
            self.settings.ttl_s,
            queue,
            live_since_ms(),
            share,
            *(f"v:{name}" for _, name in sources),
        ]
        answer = self._claim(keys=keys, args=args)
        if isinstance(answer, bytes):
            return answer.decode(), []
        return answer[0].decode(), [decode_value(raw) for raw in answer[1:]]

    def emit(
        self, run_id: str, events: Sequence[tuple[str, str | None, Mapping[str, Any]]]
    ) -> None:
        """Append events to a run (dropped once the run has ended)."""
        if not events:
            return
        args: list[Any] = self._base_args(run_id)
        for type_, flow_id, data in events:
            args += [type_, flow_id or "", json.dumps(data)]
        keys = [self.keys.run(run_id), self.keys.events(run_id), self._run_account(run_id)]
        self._emit(keys=keys, args=args)

    def finish(
        self,
        ctx: RunContext,
        flow_id: str,
        attempt: int,
        ok: bool,
        reason: str | None,
        duration_s: float,
        values: Mapping[str, Value],
        previews: Mapping[str, Any],
        retryable: bool = False,
        max_retries: int = 0,
        expired_before: int = 0,
        queues: Sequence[str] = (),
    ) -> FinishResult:
        """End an attempt. A `retryable` failure goes back to pending (outcome `retry`, after
        a backoff) while the flow has retries of its own left, counted apart from worker losses.
        The parked attempts its flow slot releases are those of `queues` (any, when empty)."""
        run_id = ctx.run_id
        children = ctx.plan.children[flow_id]
        below = () if ok else ctx.plan.below(flow_id)
        outputs: list[Any] = []
        for name, preview in previews.items():
            value = values.get(name)
            outputs += [
                name,
                encode_value(value) if value is not None else b"",
                json.dumps(preview),
            ]
        slots = self.slot_keys(ctx.account)
        others = other_users(self.client, self.keys, ctx.account)
        account = [self._account_key(ctx.account), *slots[:3], *slots[4:]]
        account += [key for user in others for key in user_keys(self.keys, user)]
        keys = self._step_keys(run_id, self.keys.outputs(run_id, flow_id), *account)
        args = [
            self.keys.event_channel,
            self.settings.stream_maxlen,
            self.settings.ttl_s,
            run_id,
            flow_id,
            attempt,
            int(ok),
            reason or "",
            f"{duration_s:.6f}",
            int(retryable),
            max_retries,
            int(self.settings.engine.retry_backoff_s * 1000),
            expired_before,
            self.reservation(),
            Reason.RETRYING.format(reason=reason or ""),
            Reason.UPSTREAM_FAILED.format(flow=flow_id),
            len(children),
            *children,
            len(below),
            *below,
            len(previews),
            *outputs,
            self.settings.user_flow_slots,
            live_since_ms(),
            ctx.account or "",
            len(others),
            *others,
            *queues,
        ]
        answer = self._finish(keys=keys, args=args)
        outcome = answer[0].decode()
        if outcome == "quota":  # nothing changed: it ends failed, without its outputs
            size, quota = int(answer[1]), int(answer[2])
            failed = Reason.RUN_QUOTA.format(size=size, quota=quota)
            return self.finish(
                ctx,
                flow_id,
                attempt,
                False,
                failed,
                duration_s,
                {},
                {},
                False,
                0,
                expired_before,
                queues,
            )
        if outcome not in ("ok", "retry"):
            return FinishResult(outcome)
        released = by_user(answer[3])
        own = tuple(released.pop(ctx.account or "", ()))
        handed = tuple((user, a) for user, attempts in released.items() for a in attempts)
        if outcome == "retry":
            delay_s = int(answer[2]) / 1000
            return FinishResult("retry", (), None, int(answer[1]), delay_s, own, handed)
        final = answer[2].decode() if answer[2] else None
        ready = tuple(x.decode() for x in answer[1])
        return FinishResult("ok", ready, final, None, 0, own, handed)

    def requeue(self, run_id: str, flow_id: str, attempt: int, expired_before: int) -> str:
        """Handle one expired lease: `resend`, the next attempt's number, `exhausted`, `gone`
        or `alive` (see scripts.REQUEUE)."""
        ctx = self.context(run_id)
        account = ctx.account if ctx else None
        running, parked, where, _, users, *_ = self.slot_keys(account)
        answer = self._requeue(
            keys=self._step_keys(run_id, running, where, parked, users),
            args=[
                *self._base_args(run_id),
                flow_id,
                attempt,
                expired_before,
                self.settings.max_attempts,
                self.reservation(),
                Reason.CANCELLED,
                Reason.WORKER_LOST_RETRYING.format(attempt=attempt + 1),
                account or "",
            ],
        )
        return answer.decode() if isinstance(answer, bytes) else str(answer)

    def cancel(self, run_id: str) -> str:
        """Stop every flow not yet started (in plan order) and tell the workers: `final` when
        that ended the run, else how many flows still run (their workers kill them)."""
        ctx = self.context(run_id)
        k = self.keys
        keys = [k.run(run_id), k.flows(run_id), k.events(run_id), k.done(run_id)]
        account = ctx.account if ctx else None
        running, parked, where, _, users, _, _, waiting = self.slot_keys(account)
        keys += [parked, running, where, users, waiting]
        args = [*self._base_args(run_id), k.control_channel, Reason.CANCELLED, account or ""]
        answer = self._cancel(keys=keys, args=[*args, *(ctx.plan.run if ctx else ())])
        return answer.decode() if isinstance(answer, bytes) else str(answer)


def _flow_fields(plan: Plan, roots: tuple[str, ...]) -> dict[str, Any]:
    """The flows hash of a new run: see keys.py (reused flows are there too, as `ready`)."""
    idle, pending = FlowStatus.IDLE.value, FlowStatus.PENDING.value
    first = set(roots)  # a tuple's `in` made a wide run's hash quadratic (20,000 flows: 2.5 s)
    flows: dict[str, Any] = {}
    for flow_id in plan.reused:
        flows[flow_id] = FlowStatus.READY.value
        flows[f"{flow_id}:reason"] = Reason.REUSED
    for flow_id in plan.inactive:
        flows[flow_id] = idle
        flows[f"{flow_id}:reason"] = Reason.INACTIVE
    for flow_id in plan.run:
        flows[flow_id] = pending if flow_id in first else idle
        flows[f"{flow_id}:attempt"] = 1
        flows[f"{flow_id}:waiting"] = len(plan.parents[flow_id])
        if flow_id in plan.skipped:
            flows[f"{flow_id}:reason"] = plan.skipped[flow_id]
            flows[f"{flow_id}:index"] = -2
    return flows


def _flat(mapping: Mapping[str, Any]) -> list[Any]:
    return [x for item in mapping.items() for x in item]


def _counted(items: list[Any]) -> list[Any]:
    return [len(items), *items]
