"""The lease bookkeeping of flow attempts in Redis: reservations of pending flows, heartbeats of
running ones, the holders a reaper checks, and the workers' own beats (see `scripts` for the
Lua steps). `state.RedisRuns` is the one class that has it, with the steps that advance a run.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import redis

from dizest_core.status import FlowStatus
from dizest_worker import scripts
from dizest_worker.keys import lease_member, parse_lease
from dizest_worker.run_reads import RunReader, now_ms
from dizest_worker.settings import WorkerSettings


class LeaseSteps(RunReader):
    """Leases and beats (see the module docstring)."""

    def __init__(self, client: redis.Redis, settings: WorkerSettings) -> None:
        super().__init__(client, settings)
        reg = client.register_script
        self._release = reg(scripts.RELEASE)
        self._heartbeat = reg(scripts.HEARTBEAT)
        self._forget = reg(scripts.FORGET)

    def reservation(self, delay_s: float = 0.0) -> int:
        """Expiry (ms) of the lease a pending flow holds until someone claims it."""
        return now_ms() + int((delay_s + 3 * self.settings.lease_s) * 1000)

    def reserve(self, flows: Iterable[tuple[str, str, int]]) -> None:
        """Reserve pending flows this process holds (renewed by `heartbeat` while waiting)."""
        self.client.zadd(self.keys.leases, {lease_member(*f): self.reservation() for f in flows})

    def release(self, flows: Iterable[tuple[str, str, int]]) -> int:
        """Drop the reservations of flows that are now safely in the broker's queue, but never
        the lease of an attempt claimed meanwhile (see scripts.RELEASE); returns how many."""
        flows = list(flows)
        keys = [self.keys.leases, *(self.keys.flows(run_id) for run_id, _, _ in flows)]
        return int(self._release(keys=keys, args=[x for f in flows for x in f])) if flows else 0

    def heartbeat(self, leases: Iterable[tuple[str, str, int]]) -> list[tuple[bool, bool]]:
        """Extend leases; for each, (still ours, its run is cancelled). Not ours: the attempt
        was taken over. The cancelled flag catches a cancel whose control message was lost.
        One script call per run (a worker's batch is one run), in one round trip."""
        leases = list(leases)
        expiry = now_ms() + int(self.settings.lease_s * 1000)
        runs = list(dict.fromkeys(run_id for run_id, _, _ in leases))
        pipe = self.client.pipeline(transaction=False)
        for run in runs:
            members = [lease_member(*lease) for lease in leases if lease[0] == run]
            keys = [self.keys.leases, self.keys.run(run)]
            self._heartbeat(keys=keys, args=[expiry, *members], client=pipe)
        answers = {run: iter(answer) for run, answer in zip(runs, pipe.execute(), strict=True)}
        cancelled = {run: bool(next(answer)) for run, answer in answers.items()}
        return [(bool(next(answers[run])), cancelled[run]) for run, _, _ in leases]

    def holders(self, leases: Sequence[tuple[str, str, int]]) -> list[str | None]:
        """The holder id of the process running each attempt ("": running, by a process that
        gave none; None: not running, or no longer that attempt), read in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for run_id, flow_id, _ in leases:
            pipe.hmget(self.keys.flows(run_id), flow_id, f"{flow_id}:attempt", f"{flow_id}:holder")
        found: list[str | None] = []
        for (_, _, attempt), (status, current, holder) in zip(leases, pipe.execute(), strict=True):
            running = status == FlowStatus.RUNNING.value.encode() and current == b"%d" % attempt
            found.append((holder or b"").decode() if running else None)
        return found

    def worker_seen(self, worker: str) -> None:
        """Record that `worker` is alive now (health checks read these)."""
        self.client.hset(self.keys.workers, worker, now_ms())

    def forget_workers(self, before_ms: int) -> int:
        """Drop the workers last seen before `before_ms`; returns how many."""
        keys = [
            self.keys.workers,
            self.keys.worker_slots,
            self.keys.worker_info,
            self.keys.worker_packages,
        ]
        return int(self._forget(keys=keys, args=[before_ms]))

    def expired_leases(self, before_ms: int) -> list[tuple[str, str, int]]:
        members = self.client.zrangebyscore(self.keys.leases, "-inf", before_ms)
        return [parse_lease(m.decode()) for m in members]

    def drop_lease(self, run_id: str, flow_id: str, attempt: int) -> None:
        self.client.zrem(self.keys.leases, lease_member(run_id, flow_id, attempt))
