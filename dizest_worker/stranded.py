"""Flow tasks a killed worker had taken from the broker but not claimed yet.

A sender drops a pending flow's reservation once its message is in the broker, so from then on
the message is the flow's only record. A worker holds each message it takes unacknowledged
(late acks) until its task returns; SIGKILLed between taking a message and claiming its flows
(a few milliseconds, but a worker killed in a loop hits them), it leaves the message in kombu's
`unacked` hash, which the broker gives back only after its visibility timeout: the longest flow
timeout plus 10 minutes (a day by default). The run would wait that long.

So each reaper reads the messages unacknowledged for longer than `lease_s + lease_grace_s` (a
worker that took one that long ago either runs its flows, and they are claimed, or holds it
waiting for a free process, or is gone), and sends again each of their flows that is still
pending at that attempt with no lease (nobody holds it: not a batch's reserved flow, not a
retry waiting out its backoff) and not parked for a flow slot. A copy that was only waiting
is harmless: the first claim runs the flow, the other answers `stale`. Each flow is sent again
at most once per `RESEND_S` by one reaper.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

from dizest_core.status import FlowStatus
from dizest_worker.context import RunContext
from dizest_worker.flow_slots import FlowSlots
from dizest_worker.keys import lease_member
from dizest_worker.messages import RUN_FLOW, FlowTask, decode_tasks, flow_task
from dizest_worker.state import RedisRuns

log = logging.getLogger("dizest.reaper")

UNACKED, UNACKED_INDEX = "unacked", "unacked_index"  # kombu's Redis transport, default names
SCAN_S = 5.0  # how often a reaper reads the unacknowledged messages
RESEND_S = 60.0  # a flow sent again is not sent again by the same reaper before this
PENDING = FlowStatus.PENDING.value.encode()


def tasks_of(raw: bytes | None) -> list[FlowTask]:
    """The flow tasks of one entry of kombu's `unacked` hash ([message, exchange, routing
    key], the message as Celery's protocol 2 puts it); none for anything else."""
    if raw is None:
        return []
    try:
        return tasks_in(json.loads(raw)[0])
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return []


def tasks_in(message: Any) -> list[FlowTask]:
    """The flow tasks of one broker message (a queue's list holds them as JSON); none for
    anything else."""
    try:
        if message.get("headers", {}).get("task") != RUN_FLOW:
            return []
        body: Any = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return decode_tasks(args[0])
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return []


class Stranded:
    """One reaper's look at the broker's unacknowledged flow messages."""

    def __init__(self, runs: RedisRuns, slots: FlowSlots) -> None:
        self.runs, self.slots = runs, slots
        self.after_s = runs.settings.lease_s + runs.settings.lease_grace_s
        self.next_scan = 0.0
        self.sent: dict[tuple[str, str, int], float] = {}

    def sweep(self, now: float | None = None) -> list[tuple[str, str, int]]:
        """Send again the stranded flows (every SCAN_S at most); returns them."""
        now = time.monotonic() if now is None else now
        if now < self.next_scan:
            return []
        self.next_scan = now + SCAN_S
        self.sent = {k: t for k, t in self.sent.items() if now - t < RESEND_S}
        client = self.runs.client
        tags = client.zrangebyscore(UNACKED_INDEX, "-inf", time.time() - self.after_s)
        found = [t for raw in (client.hmget(UNACKED, tags) if tags else []) for t in tasks_of(raw)]
        found = [t for t in found if (t.run_id, t.flow_id, t.attempt) not in self.sent]
        return self.send_again(found, now, "taken by a worker that is gone")

    def send_again(self, found: list[FlowTask], now: float, why: str) -> list[tuple[str, str, int]]:
        """Send again those of `found` still pending at that attempt, with no lease, not
        parked (`_lost`); returns them."""
        again = [t for t, lost in zip(found, self._lost(found), strict=True) if lost]
        by_run: dict[str, list[tuple[FlowTask, str]]] = {}
        for task in again:
            ctx = self.context(task.run_id)
            if ctx is None or task.flow_id not in ctx.plan.parents:
                continue
            queue = ctx.flow_options(task.flow_id, self.runs.settings).queue
            by_run.setdefault(task.run_id, []).append(
                (flow_task(ctx, task.flow_id, task.attempt), queue)
            )
            self.sent[(task.run_id, task.flow_id, task.attempt)] = now
        for tasks in by_run.values():
            self.slots.enqueue(tasks, 0.0)
            log.warning("sent again %s: %s", [t for t, _ in tasks], why)
        return [(t.run_id, t.flow_id, t.attempt) for tasks in by_run.values() for t, _ in tasks]

    def context(self, run_id: str) -> RunContext | None:
        """The run's context; None for one gone, or whose record no door of ours stores."""
        try:
            return self.runs.context(run_id)
        except (ValueError, RecursionError):
            return None

    def _lost(self, tasks: list[FlowTask]) -> list[bool]:
        """For each: still pending at that attempt, with no lease, not parked (one round trip)."""
        if not tasks:
            return []
        keys = self.runs.keys
        pipe = self.runs.client.pipeline(transaction=False)
        for t in tasks:
            member = lease_member(t.run_id, t.flow_id, t.attempt)
            pipe.hmget(keys.flows(t.run_id), t.flow_id, f"{t.flow_id}:attempt")
            pipe.zscore(keys.leases, member)
            ctx = self.context(t.run_id)
            owner = ctx.account if ctx else None  # a run without one parks nothing: key '' empty
            pipe.zscore(keys.user_parked(owner) if owner else "", member)
        answers = pipe.execute()
        lost = []
        for i, t in enumerate(tasks):
            (status, attempt), leased, parked = answers[3 * i : 3 * i + 3]
            pending = status == PENDING and attempt == str(t.attempt).encode()
            lost.append(pending and leased is None and parked is None)
        return lost
