"""What a worker process does with a flow task: claim it, run it in a child, stream its events,
finish it atomically, then run the next ready flow itself and enqueue the others.

Ready flows go most urgent first (`Plan.rank`: the longest remaining path): a process runs the
flows it holds in that order and keeps the most urgent ready children for itself; the others go
to the broker with a priority level (`Plan.level`; Redis: one list per level, level 0 first).

No Celery here: tasks arrive as `FlowTask` and leave through an `enqueue` callable, so this is
testable with a real Redis and no broker. A flow that became ready on this worker runs here
without a broker round trip (when its queue is one this worker serves), unless it could then
end after the task's `local_budget_s` (Celery's hard time limit would kill the task). While a
child runs, the attempt's lease is renewed every lease/3 seconds (the renewal also reads the
run's cancelled flag, for a cancel message that was lost), cancel messages are read from the
control channel, and log lines are sent as events as soon as the child prints them.

Nothing a user submits or a flow sends may raise here outside that flow's own failure path
(`dizest_core.limits` refuses bad inputs at the door; this is the second line): a job that
cannot be built or serialized ends its flow in error (not retried: it would fail the same way),
a preview over the input limits is replaced by a note, and when anything still escapes
`handle`, the Supervisor (zygote, children, selector) is thrown away and rebuilt, since its
state can no longer be trusted: a pool process is never reused broken.

That includes a zygote that died (killed by a flow or by anyone): `poll` then raises, and so
would every later call. Its flows are given back at once rather than at lease expiry: the
leases of the flows it ran or held are expired now, so the reaper (within its interval)
requeues a running one as a worker loss, counted against `max_attempts` (a flow that keeps
killing its zygote ends `worker lost`), and sends a held one again. A zygote found dead
between tasks is replaced before anything is claimed.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from dizest_core import limits, traverse, wire
from dizest_core.errors import InputError
from dizest_core.execution import Finished, Signal, Supervisor
from dizest_core.job import build_job
from dizest_core.options import FlowOptions
from dizest_core.plan import ReadyQueue
from dizest_core.plugins import PluginRegistry
from dizest_core.sandbox import make_policy
from dizest_core.settings import child_environment
from dizest_worker.context import RunContext
from dizest_worker.flow_slots import FlowSlots
from dizest_worker.keys import lease_member
from dizest_worker.liveness import holder_id
from dizest_worker.messages import PRIORITY_LEVELS, Enqueue, FlowTask, flow_task, has_backlog
from dizest_worker.settings import WorkerSettings
from dizest_worker.state import RedisRuns

log = logging.getLogger("dizest.worker")
HOLD_PER_SLOT = 4  # flows a process holds per slot while its queue has a backlog (see _keeps)
SPILL_CHECK_S = 0.05  # how often a process holding more than its free slots looks (_spill)


class Executor:
    """Runs flow tasks inside one worker process (owns its zygote and Redis connections)."""

    def __init__(
        self,
        settings: WorkerSettings,
        client: redis.Redis,
        enqueue: Enqueue,
        queues: Iterable[str] | None = None,
    ) -> None:
        self.settings = settings
        self.runs = RedisRuns(client, settings)
        self.enqueue = enqueue
        self.slots = FlowSlots(self.runs, enqueue)
        self.queues = set(queues or [settings.queue])
        self.queue_list = sorted(self.queues)  # FINISH releases parked attempts of these
        self.supervisor = self._supervisor()
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        # its holder channel: while this process lives, its attempts' holder is connected
        self.holder = holder_id(settings)
        keys = self.runs.keys
        self.pubsub.subscribe(keys.control_channel, keys.holder_channel(self.holder))

    def _supervisor(self) -> Supervisor:
        engine = self.settings.engine
        renderer_files = PluginRegistry.discover(engine.plugin_paths).renderer_files()
        hide = (self.settings.workdir_root, self.settings.artifact_dir, self.settings.drive_root)
        policy = make_policy(engine, server=True, hide=hide)
        env = child_environment(extra=engine.flow_env)
        supervisor = Supervisor(env, engine.preload, renderer_files, policy, engine.disk_reserve_mb)
        supervisor.spare_slots = self.settings.local_slots  # a spare child per slot
        return supervisor

    def close(self) -> None:
        self.supervisor.close()
        self.pubsub.close()

    def _drive(self, ctx: RunContext) -> str | None:
        """The run's drive folder, only if it lies in this worker's drive root (a record in
        Redis never makes a flow read another folder of the machine)."""
        if not ctx.drive:
            return None
        root, real = os.path.realpath(self.settings.drive_root), os.path.realpath(ctx.drive)
        return real if os.path.dirname(real) == root and os.path.isdir(real) else None

    def _rebuild(self) -> None:
        """A fresh Supervisor after an error escaped `handle`: the old one may hold a child it
        asked the zygote for but never registered (its notice would then be misread)."""
        log.warning("rebuilding this process's flow supervisor after an error")
        old, self.supervisor = self.supervisor, self._supervisor()
        try:
            old.close()
        except Exception:  # it is broken: that is why it goes
            log.exception("closing the old supervisor failed")

    def handle(self, tasks: list[FlowTask]) -> None:
        """Run `tasks` (of one run), then the ready children they free whose queue is ours, up
        to `slots` at once in this process; what does not fit (or is for another queue) is
        enqueued. Tasks waiting here hold reservations, so a dead worker loses none of them."""
        try:
            ctx = self.runs.context(tasks[0].run_id)
        except (ValueError, RecursionError) as exc:  # a record no door of this version stores
            log.error(
                "dropping tasks of run %s, its record is unreadable: %r", tasks[0].run_id, exc
            )
            return
        known = [t for t in tasks if ctx is not None and t.flow_id in ctx.plan.parents]
        if ctx is None or len(known) < len(tasks):
            log.warning(
                "dropping tasks for unknown runs or flows: %s", [t for t in tasks if t not in known]
            )
        if ctx is None or not known:
            return
        if self.supervisor.zygote.proc.poll() is not None:  # died since the last task
            self._rebuild()
        if len(known) > 1:
            self.runs.reserve([(t.run_id, t.flow_id, t.attempt) for t in known])
        now = time.monotonic()
        local: ReadyQueue[FlowTask] = ReadyQueue(ctx.plan, _flow_of)
        local.extend(known)
        batch = _Batch(ctx, local, started=now, next_beat=now + self.settings.lease_s / 3)
        try:
            while batch.local or batch.running:
                while batch.local and len(batch.running) < self.settings.local_slots:
                    self._start(batch, batch.local.pop())
                if batch.running:
                    self._step(batch)
            self.supervisor.settle()
        except BaseException as exc:
            self._abandon(batch)
            if isinstance(exc, Exception):  # not on shutdown (SystemExit, KeyboardInterrupt)
                self._rebuild()
            raise

    def _abandon(self, batch: _Batch) -> None:
        """After an error (a dead zygote, Redis gone for good, a bug): kill what still runs, so
        the next task starts clean, and give this batch's attempts to the reaper now."""
        flows = [(t.run_id, t.flow_id, t.attempt) for t, _ in batch.running.values()]
        flows += [(t.run_id, t.flow_id, t.attempt) for t in batch.local]
        try:
            for flow_id in batch.running:
                self.supervisor.kill(flow_id, "worker error")
            deadline = time.monotonic() + 10
            while batch.running and time.monotonic() < deadline:
                for item in self.supervisor.poll(0.1):
                    if isinstance(item, Finished):
                        batch.running.pop(item.flow_id, None)
        except Exception:  # the supervisor itself is broken (its zygote died): rebuilt next
            log.exception("the flow supervisor is broken; its flows are given back")
        self._expire(flows)

    def _expire(self, flows: list[tuple[str, str, int]]) -> None:
        """End these attempts' leases now (XX: only those still there; a member names its
        attempt, so no newer attempt is touched): the reaper requeues or resends them."""
        if not flows:
            return
        members = {lease_member(*f): 0 for f in flows}
        try:
            self.runs.client.zadd(self.runs.keys.leases, members, xx=True)  # type: ignore[arg-type]
        except redis.RedisError:  # Redis is what failed: the leases expire by themselves
            log.warning("could not give back %s: they wait for their leases to end", flows)

    def _start(self, batch: _Batch, task: FlowTask) -> None:
        options = self._options(batch.ctx, task.flow_id)
        if time.monotonic() - batch.started + options.timeout > self.settings.local_budget_s:
            # it could outlast Celery's hard time limit of this task: let a new task run it
            self._send([(flow_task(batch.ctx, task.flow_id, task.attempt), options.queue)])
            return
        package = batch.ctx.package
        wired = package.wired(package.flows[task.flow_id])
        answer, values = self.runs.claim(
            task.run_id,
            task.flow_id,
            task.attempt,
            self.settings.worker_name,
            [(c.node, c.output) for _, c in wired],
            holder=self.holder,
            account=batch.ctx.account,
            level=batch.ctx.plan.level(task.flow_id, PRIORITY_LEVELS),  # not in its message
            queue=options.queue,
        )
        if answer != "ok":  # `wait`: parked until a flow slot of its owner is free
            log.info("not running %s: %s", task, answer)
            return
        workdir = os.path.join(self.settings.workdir_root, task.run_id)
        traverse.make_passable(workdir)  # a umask of 077 would shut the run's flows out
        try:
            job = build_job(
                package,
                task.flow_id,
                task.run_id,
                values,
                self.settings.engine,
                workdir=workdir,
                params=batch.ctx.params(task.flow_id),
                memory_limit_mb=options.memory_limit_mb,
                network=options.network,
                cpus=options.cpus,
                attempt=task.attempt,
                artifact_dir=self.settings.artifact_dir,
                drive=self._drive(batch.ctx),
            )
            encoded = wire.encode_job(job)  # what cannot be fails here, before a fork
        except Exception as exc:  # RecursionError, PicklingError, MemoryError, ...
            self._not_started(batch, task, options, exc)
            return
        try:
            self.supervisor.launch(job, options.timeout, encoded)
        except Exception:  # claimed, never started (a dead zygote): give it back now too
            self._expire([(task.run_id, task.flow_id, task.attempt)])
            raise
        batch.running[task.flow_id] = (task, options)

    def _not_started(
        self, batch: _Batch, task: FlowTask, options: FlowOptions, exc: Exception
    ) -> None:
        """The flow's job could not be built or serialized (what the run was given): that
        flow ends in error, as if its code had failed, and never reaches the Supervisor."""
        text = str(exc) if len(str(exc)) <= 200 else str(exc)[:200] + "..."
        reason = f"could not start the flow: {type(exc).__name__}: {text}"
        log.warning("run %s flow %s: %s", task.run_id, task.flow_id, reason)
        entry = {"entry": f"dizest: {reason}", "stream": "engine"}
        self.runs.emit(task.run_id, [("log.append", task.flow_id, entry)])
        batch.running[task.flow_id] = (task, options)
        self._finish(batch, Finished(task.flow_id, False, reason, {}, {}, None, 0.0), False)

    def _options(self, ctx: RunContext, flow_id: str) -> FlowOptions:
        return ctx.flow_options(flow_id, self.settings)

    def _step(self, batch: _Batch) -> None:
        """Wait for the running children once: stream events, finish those that ended."""
        items = self.supervisor.poll(min(0.25, self.settings.lease_s / 3))
        self.runs.emit(batch.ctx.run_id, [_event(i) for i in items if isinstance(i, Signal)])
        for item in items:
            if isinstance(item, Finished):
                self._finish(batch, item)
        self._spill(batch)
        if time.monotonic() >= batch.next_beat and batch.running:
            batch.next_beat = time.monotonic() + self.settings.lease_s / 3
            leases = [(t.run_id, t.flow_id, t.attempt) for t, _ in batch.running.values()]
            reserved = [(t.run_id, t.flow_id, t.attempt) for t in batch.local]
            beats = self.runs.heartbeat(leases + reserved)
            if any(cancelled for _, cancelled in beats):  # the control message may be lost
                self._kill_all(batch, "cancelled")
            for (_, flow_id, _), (alive, _) in zip(leases, beats[: len(leases)], strict=True):
                if not alive:
                    self.supervisor.kill(
                        flow_id, "lease lost: attempt taken over by another worker"
                    )
        if time.monotonic() >= batch.next_control:  # cancel messages: read 10 times a second
            batch.next_control = time.monotonic() + 0.1
            if self._cancelled(batch.ctx.run_id):
                self._kill_all(batch, "cancelled")

    def _spill(self, batch: _Batch) -> None:
        """Send the flows held beyond the free slots here (the least urgent) once their queue
        has no message waiting: another process may then be idle for want of them. Looked at
        every SPILL_CHECK_S at most, so a held flow waits behind a long one for no longer than
        that plus one poll (0.25 s), never for the whole of it."""
        free = self.settings.local_slots - len(batch.running)
        if len(batch.local) <= free or time.monotonic() < batch.next_spill:
            return
        batch.next_spill = time.monotonic() + SPILL_CHECK_S
        held = [(t, self._options(batch.ctx, t.flow_id).queue) for t in batch.local]
        if any(has_backlog(self.runs.client, q) for q in {q for _, q in held}):
            return
        keep = [batch.local.pop() for _ in range(max(0, free))]  # the most urgent
        spilled = [(t, q) for t, q in held if t not in keep]
        batch.local.clear()
        batch.local.extend(keep)
        self._send(spilled)

    def _kill_all(self, batch: _Batch, reason: str) -> None:
        for flow_id in batch.running:
            self.supervisor.kill(flow_id, reason)

    def _finish(self, batch: _Batch, finished: Finished, retryable: bool = True) -> None:
        task, options = batch.running.pop(finished.flow_id)
        result = self.runs.finish(
            batch.ctx,
            task.flow_id,
            task.attempt,
            finished.ok,
            finished.reason,
            finished.duration_s,
            finished.outputs,
            self._checked(finished.previews),
            retryable=retryable and finished.retryable(),  # never after a cancel: FINISH knows
            max_retries=options.retries,
            queues=self.queue_list,  # the parked attempts this process can take next
        )
        self.slots.hand_on(result, batch.ctx.account)
        if result.outcome == "retry":  # its reservation stays until the retry is claimed
            retried = flow_task(batch.ctx, task.flow_id, result.next_attempt or task.attempt + 1)
            self.enqueue([(retried, options.queue)], result.delay_s)
            return
        others: list[tuple[FlowTask, str]] = []
        ready = sorted(result.ready, key=batch.ctx.plan.rank) if result.outcome == "ok" else []
        backlog: dict[str, bool] = {}
        for flow_id in ready:  # the most urgent first
            queue = self._options(batch.ctx, flow_id).queue
            child = flow_task(batch.ctx, flow_id)
            if self._keeps(batch, queue, backlog):
                batch.local.push(child)  # reserved by FINISH, renewed with our leases
            else:
                others.append((child, queue))
        self._send(others)

    def _keeps(self, batch: _Batch, queue: str, backlog: dict[str, bool]) -> bool:
        """Whether a ready child freed here waits in this process rather than in the broker:
        when a slot here is free, and beyond that (up to HOLD_PER_SLOT flows a slot) while
        its queue has messages waiting. Then no process serving the queue is idle for want of
        work, and a message would only wait behind those, at the cost of sending, receiving
        and acking it (about 2 ms of CPU per message in Celery's processes, more than a
        no-op flow's own run). `backlog` caches the queue's answer for one finish."""
        if queue not in self.queues:
            return False
        held = len(batch.local) + len(batch.running)
        slots = self.settings.local_slots
        if held < slots:
            return True
        if held >= slots * HOLD_PER_SLOT:
            return False
        if queue not in backlog:
            backlog[queue] = has_backlog(self.runs.client, queue)
        return backlog[queue]

    def _checked(self, previews: dict[str, Any]) -> dict[str, Any]:
        """Previews within the input limits (a flow may send JSON nested ~1000 deep, which the
        API could not encode again): one over them is replaced by a note; the value stays."""
        checked = {}
        for name, preview in previews.items():
            try:
                limits.check_value(preview, f"output {name!r}", "output", self.settings.engine)
            except InputError as exc:
                preview = {"$type": "dizest.limits", "$repr": f"preview omitted: {exc}"}
            checked[name] = preview
        return checked

    def _send(self, tasks: list[tuple[FlowTask, str]]) -> None:
        """Enqueue reserved tasks, then drop their reservations (the broker holds them now)."""
        if tasks:
            self.enqueue(tasks, 0.0)
            self.runs.release([(t.run_id, t.flow_id, t.attempt) for t, _ in tasks])

    def _cancelled(self, run_id: str) -> bool:
        """Whether a cancel message for this run arrived (read without a round trip)."""
        hit = False
        while True:
            message = self.pubsub.get_message(timeout=0)
            if message is None:
                return hit
            data = message.get("data")
            hit = hit or (isinstance(data, bytes) and data.decode() == f"cancel {run_id}")


@dataclass
class _Batch:
    """The flows of one run that this process is running or about to run."""

    ctx: RunContext
    local: ReadyQueue[FlowTask]  # most urgent first
    running: dict[str, tuple[FlowTask, FlowOptions]] = field(default_factory=dict)
    started: float = 0.0  # monotonic time the Celery task began (see local_budget_s)
    next_beat: float = 0.0
    next_control: float = 0.0
    next_spill: float = 0.0


def _flow_of(task: FlowTask) -> str:
    return task.flow_id


def _event(item: Signal) -> tuple[str, str | None, dict[str, Any]]:
    kind = {"log": "log.append", "clear": "log.clear", "result": "result"}[item.kind]
    return kind, item.flow_id, item.data
