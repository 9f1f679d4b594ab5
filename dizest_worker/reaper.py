"""The reaper: finds flow attempts whose lease expired (their worker died) and requeues them
(bounded attempts) or fails them with reason `worker lost` — never both, because each decision
is one atomic script that checks the attempt is still the current one and its lease expired.

An expired lease is taken over at once when the process running it is no longer connected to
Redis (`liveness.connected`: it was killed, its subscription went with its socket), and only
`lease_grace_s` after expiry when it still is (alive but stalled: it may renew yet), or when
Redis started less than that ago (after a restart, processes subscribe again as they
reconnect). A pending flow's reservation (whoever was to send it is unknown), a lease given
back (score 0) and an attempt claimed without a holder id go at once. Whatever a reaper
decides, a stalled worker that comes back after its attempt was taken over writes nothing:
FINISH only accepts the flow's current attempt, and its next heartbeat tells it to kill the
child.

It runs as its own small process next to each `dizest worker` (so the worker's main process,
which forks its pool, stays single-threaded), and dies with it; several reapers may run at once
safely. It forgets workers unseen for an hour (the heartbeat itself comes from the worker's
pool: `dizest_worker.liveness`) and, every `files_interval_s`, deletes the working and artifact
directories of expired runs (see `dizest_worker.files`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time

import redis

from dizest_core.status import Reason
from dizest_worker.files import remove_expired
from dizest_worker.flow_slots import FlowSlots
from dizest_worker.liveness import connected
from dizest_worker.lost_messages import LostMessages
from dizest_worker.orchestration import Enqueue, FlowTask
from dizest_worker.settings import WorkerSettings
from dizest_worker.state import RedisRuns, now_ms
from dizest_worker.stranded import Stranded

log = logging.getLogger("dizest.reaper")
FORGET_WORKER_S = 3600.0  # health checks look seconds back; a worker gone an hour is history


class Reaper:
    def __init__(self, runs: RedisRuns, enqueue: Enqueue, settings: WorkerSettings) -> None:
        self.runs = runs
        self.enqueue = enqueue
        self.settings = settings
        self.slots = FlowSlots(runs, enqueue)
        self.stranded = Stranded(runs, self.slots)
        self.lost = LostMessages(runs, self.stranded)
        self.blind = False  # PUBSUB refused: said once, then every worker counts as connected
        self.redis_run: str | None = None  # the Redis instance (INFO run_id) seen settled

    def sweep(self) -> list[tuple[str, str, str]]:
        """Handle every expired lease once, then the users' parked attempts (flow_slots);
        returns (run, flow, what was done) for each lease."""
        now = now_ms()
        expired = self.runs.expired_leases(now)
        stalled = now - int(self.settings.lease_grace_s * 1000)
        alive = self._connected(expired)
        done = [
            (run_id, flow_id, self._expired(run_id, flow_id, attempt, stalled if up else now))
            for (run_id, flow_id, attempt), up in zip(expired, alive, strict=True)
        ]
        # the slots those attempts held; messages a killed worker never claimed, or lost
        for chore in (self.slots.heal, self.stranded.sweep, self.lost.sweep):
            try:
                chore()  # one failing stops none of the others
            except redis.RedisError:
                raise
            except Exception:
                log.exception("reaper: %s failed", chore.__qualname__)
        return done

    def _connected(self, leases: list[tuple[str, str, int]]) -> list[bool]:
        """For each lease: is it a running attempt whose process is still connected? When
        Redis cannot tell (INFO or PUBSUB refused by an ACL), every holder counts as connected;
        an attempt claimed without a holder id never does."""
        if not leases:
            return []
        holders = self.runs.holders(leases)
        if not any(holders):
            return [False] * len(leases)
        try:
            if self._redis_just_started():
                return [bool(holder) for holder in holders]
            up = connected(self.runs.client, self.settings, filter(None, holders))
        except redis.ResponseError as exc:
            if not self.blind:
                log.warning("cannot tell dead workers from stalled ones (INFO, PUBSUB): %s", exc)
            self.blind = True
            return [bool(holder) for holder in holders]
        return [bool(holder) and holder in up for holder in holders]

    def _redis_just_started(self) -> bool:
        """Is this Redis another instance than the one first seen, started less than the
        grace ago (a restart)? It has lost every subscription, and live workers subscribe
        again only as they reconnect: none counts as dead meanwhile."""
        info = self.runs.client.info("server")
        run, uptime = info.get("run_id"), int(info.get("uptime_in_seconds", 0))
        if self.redis_run is None or uptime >= self.settings.lease_grace_s:
            self.redis_run = run  # the first one seen, or one that has settled
        return run != self.redis_run

    def _expired(self, run_id: str, flow_id: str, attempt: int, now: int) -> str:
        """`now`: leases that expired before it are lost (a stalled worker's: the grace ago)."""
        ctx = self.runs.context(run_id)
        if ctx is None or flow_id not in ctx.plan.parents:
            self.runs.drop_lease(run_id, flow_id, attempt)
            return "dropped"
        answer = self.runs.requeue(run_id, flow_id, attempt, now)
        queue = ctx.flow_options(flow_id, self.settings).queue
        if answer == "resend":  # pending, but whoever was to send or run it is gone
            self.enqueue([(FlowTask(run_id, flow_id, attempt), queue)], 0.0)
            log.warning(
                "sent again %s/%s (attempt %s): nobody had claimed it", run_id, flow_id, attempt
            )
        elif answer.isdigit():
            # REQUEUE reserved the new attempt; once sent, the reservation goes, unless a worker
            # has claimed the attempt already: then the entry is its lease and RELEASE keeps it
            self.enqueue([(FlowTask(run_id, flow_id, int(answer)), queue)], 0.0)
            self.runs.release([(run_id, flow_id, int(answer))])
            log.warning("worker lost: requeued %s/%s as attempt %s", run_id, flow_id, answer)
        elif answer == "exhausted":
            result = self.runs.finish(
                ctx, flow_id, attempt, False, Reason.WORKER_LOST, 0.0, {}, {}, expired_before=now
            )
            self.slots.hand_on(result, ctx.account)
            log.warning("worker lost: %s/%s failed after %s attempts", run_id, flow_id, attempt)
            return "failed" if result.outcome == "ok" else result.outcome
        return answer

    def tidy(self) -> list[str]:
        """The slow chores: forget long-gone workers, delete the files of expired runs."""
        self.runs.forget_workers(now_ms() - int(FORGET_WORKER_S * 1000))
        roots = (self.settings.workdir_root, self.settings.artifact_dir)
        return remove_expired(self.runs.client, self.runs.keys, roots, self.settings.ttl_s)

    def run_forever(self, stop: threading.Event, parent_pid: int | None = None) -> None:
        next_tidy = time.monotonic()
        with contextlib.suppress(redis.RedisError):  # which Redis a restart would replace
            self._redis_just_started()
        while not stop.is_set():
            if parent_pid is not None and os.getppid() != parent_pid:
                return  # the worker died: this reaper goes with it
            try:
                self.sweep()
                if time.monotonic() >= next_tidy:
                    next_tidy = time.monotonic() + self.settings.files_interval_s
                    self.tidy()
            except Exception:  # Redis away: keep trying, the worker reconnects the same way
                log.exception("reaper sweep failed")
            stop.wait(self.settings.reaper_interval_s)


def main() -> None:
    """Entry point of the reaper process started by `dizest worker`."""
    from dizest_core.lifeline import die_with_parent
    from dizest_worker.celery_app import create_celery, make_enqueue
    from dizest_worker.connection import redis_client

    parent = int(sys.argv[1]) if len(sys.argv) > 1 else None
    die_with_parent(signal.SIGTERM, parent)  # the worker's main process died: stop at once
    logging.basicConfig(level=logging.INFO, format="%(asctime)s reaper %(levelname)s %(message)s")
    settings = WorkerSettings.from_env()
    app = create_celery(settings)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    reaper = Reaper(RedisRuns(redis_client(settings), settings), make_enqueue(app), settings)
    reaper.run_forever(stop, parent_pid=parent)
    time.sleep(0)


if __name__ == "__main__":
    main()
