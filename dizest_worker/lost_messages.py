"""Flow messages a killed worker had taken from the broker but not recorded yet: lost.

kombu's Redis transport takes a message with BRPOP and only afterwards records it in its
`unacked` hash (`Channel._brpop_read` decodes the reply, then `QoS.append` writes it). A worker
SIGKILLed in between (its main process has the reply but has not written it yet: a millisecond,
longer on a busy machine) takes the message with it: it is in no list and in no hash, and the
flow it carried stays pending at that attempt with no lease and no message, so its run never
ends (`bench/chaos.py` on 2026-12-04: 2 of 200 runs, with a worker killed every 1-3 s).
`stranded` cannot see such a message: it reads the unacked hash.

So once a worker has died, one reaper audits the cluster: each flow of a run not final that is
pending with no lease and not parked, whose message is in none of the served queues' lists nor
its own queue's and not in the unacked hash, is sent again (through `Stranded.send_again`, which checks each once
more; a copy of a message that was only in flight in a live worker is harmless: its claim
answers `stale`). The flows are read before the broker, so a message taken meanwhile is at worst
sent twice, never missed. A worker counts as dead once its beat is older than
`liveness.WINDOW_S` and no audit has covered that beat, or when a worker starting under its name
found its beat left over (`liveness.forget` marks an audit due): a worker killed and restarted
at once. An audit is also due when a worker that lives on lost a BRPOP reply with its
connection (`audit_due`). A worker that stops cleanly deletes its beat (`liveness.leave`):
nothing to audit. One reaper audits at a time (a lock); the others look again at their next
sweep.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

from dizest_worker.keys import lease_member
from dizest_worker.liveness import live_since_ms
from dizest_worker.messages import FlowTask, broker_lists
from dizest_worker.state import RedisRuns
from dizest_worker.stranded import PENDING, UNACKED, Stranded, tasks_in, tasks_of

log = logging.getLogger("dizest.reaper")

LOOK_S = 1.0  # how often a reaper looks for workers that died
LOCK_MS = 60_000  # an audit's lock: one reaper audits at a time (a dead auditor's lapses)
BATCH = 500  # runs, or list entries, read at once

Task = tuple[str, str, int]


class LostMessages:
    """One reaper's watch for dead workers, and the audit that follows one."""

    def __init__(self, runs: RedisRuns, stranded: Stranded) -> None:
        self.runs, self.stranded = runs, stranded
        self.next_look = 0.0

    def sweep(self, now: float | None = None) -> list[Task]:
        """Audit once if a worker died since the last audit (every LOOK_S at most); returns
        the flows sent again."""
        now = time.monotonic() if now is None else now
        if now < self.next_look:
            return []
        self.next_look = now + LOOK_S
        client, keys = self.runs.client, self.runs.keys
        dead = self._dead()
        if not dead and not client.exists(keys.audit_due):
            return []
        token = uuid.uuid4().hex
        if not client.set(keys.audit_lock, token, nx=True, px=LOCK_MS):
            return []  # another reaper audits
        try:
            client.delete(keys.audit_due)  # a death marked from now on is audited again
            again = self.stranded.send_again(self.missing(), now, "lost by a worker that died")
            if dead:
                client.hset(keys.audited, mapping=dead)
        finally:
            if client.get(keys.audit_lock) == token.encode():
                client.delete(keys.audit_lock)
        return again

    def _dead(self) -> dict[str, int]:
        """Workers whose beat aged out and no audit covered (name -> that beat); audits of
        workers forgotten since are pruned."""
        client, keys = self.runs.client, self.runs.keys
        beats = {k.decode(): int(v) for k, v in client.hgetall(keys.workers).items()}
        audited = {k.decode(): int(v) for k, v in client.hgetall(keys.audited).items()}
        gone = [name for name in audited if name not in beats]
        if gone:
            client.hdel(keys.audited, *gone)
        oldest = live_since_ms()
        return {n: ms for n, ms in beats.items() if ms < oldest and audited.get(n) != ms}

    def missing(self) -> list[FlowTask]:
        """Flows of the runs not final, pending with no lease, whose message is neither in a
        served queue or their own nor unacked (parked ones are `send_again`'s to skip). Only
        the flows not found in the served queues have their own queue worked out (their run's
        package read): usually none."""
        pending = self._pending()
        if not pending:
            return []
        served = self._served()
        present = self._in_broker(served, unacked=True)
        unseen = [t for t in pending if (t.run_id, t.flow_id, t.attempt) not in present]
        others = self._queues(unseen) - served
        if others:
            present |= self._in_broker(others, unacked=False)
        return [t for t in unseen if (t.run_id, t.flow_id, t.attempt) not in present]

    def _pending(self) -> list[FlowTask]:
        """Flows pending with no lease, in the runs not final."""
        client, keys = self.runs.client, self.runs.keys
        run_ids = [r.decode() for r in client.zrange(keys.runs, 0, -1)]
        found: list[FlowTask] = []
        for i in range(0, len(run_ids), BATCH):
            chunk = run_ids[i : i + BATCH]
            pipe = client.pipeline(transaction=False)
            for run_id in chunk:
                pipe.hget(keys.run(run_id), "final")
            live = [r for r, final in zip(chunk, pipe.execute(), strict=True) if final == b"0"]
            pipe = client.pipeline(transaction=False)
            for run_id in live:
                pipe.hgetall(keys.flows(run_id))
            for run_id, fields in zip(live, pipe.execute(), strict=True):
                for name, value in fields.items():  # a flow id may hold ':' itself
                    if value != PENDING:
                        continue
                    attempt = fields.get(name + b":attempt")
                    if attempt is not None and attempt.isdigit():
                        found.append(FlowTask(run_id, name.decode(), int(attempt)))
        if not found:
            return []
        leased = client.zmscore(
            keys.leases, [lease_member(t.run_id, t.flow_id, t.attempt) for t in found]
        )
        return [t for t, score in zip(found, leased, strict=True) if score is None]

    def _served(self) -> set[str]:
        queues = {q.decode() for q in self.runs.client.hkeys(self.runs.keys.queues)}
        queues.add(self.runs.settings.queue)
        return queues

    def _queues(self, tasks: list[FlowTask]) -> set[str]:
        """The queues `tasks` were sent to (a run without an account may use one no worker
        serves: its messages wait there, and must not be sent twice)."""
        settings = self.runs.settings
        contexts = {r: self.stranded.context(r) for r in {t.run_id for t in tasks}}
        queues: set[str] = set()
        for task in tasks:
            ctx = contexts[task.run_id]
            if ctx is not None and task.flow_id in ctx.plan.parents:
                queues.add(ctx.flow_options(task.flow_id, settings).queue)
        return queues

    def _in_broker(self, queues: set[str], unacked: bool) -> set[Task]:
        """(run, flow, attempt) of every flow message in `queues`' lists (and unacked)."""
        client = self.runs.client
        present: set[Task] = set()
        for name in sorted(queues):
            for key in broker_lists(name):
                for start in range(0, client.llen(key), BATCH):
                    for raw in client.lrange(key, start, start + BATCH - 1):
                        try:
                            tasks = tasks_in(json.loads(raw))
                        except ValueError:
                            continue
                        present.update((t.run_id, t.flow_id, t.attempt) for t in tasks)
        for _, raw in client.hscan_iter(UNACKED, count=BATCH) if unacked else ():
            present.update((t.run_id, t.flow_id, t.attempt) for t in tasks_of(raw))
        return present
