"""What a worker process does with a flow task: claim it, run it in a child, stream its events,
finish it atomically, then run the next ready flow itself and enqueue the others.

No Celery here: tasks arrive as `FlowTask` and leave through an `enqueue` callable, so this is
testable with a real Redis and no broker. A flow that became ready on this worker runs here
without a broker round trip (when its queue is one this worker serves). While a child runs, the
attempt's lease is renewed every lease/3 seconds, cancel messages are read from the control
channel, and log lines are sent as events as soon as the child prints them.
"""

from __future__ import annotations

import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis

from dizest_core.errors import DizestError
from dizest_core.execution import Finished, Signal, Supervisor
from dizest_core.job import FlowJob
from dizest_core.model import OUTPUT
from dizest_core.plugins import PluginRegistry
from dizest_core.settings import child_environment
from dizest_worker.context import FlowOptions, RunContext
from dizest_worker.redis_store import RedisStore
from dizest_worker.settings import WorkerSettings
from dizest_worker.state import FinishResult, RedisRuns

log = logging.getLogger("dizest.worker")


class InvalidTask(DizestError, ValueError):
    """A task message that does not describe a flow attempt."""


@dataclass(frozen=True)
class FlowTask:
    """The message of one flow attempt; validates itself."""

    run_id: str
    flow_id: str
    attempt: int = 1

    @classmethod
    def decode(cls, payload: Any) -> FlowTask:
        if not isinstance(payload, dict):
            raise InvalidTask(f"task payload must be an object, not {type(payload).__name__}")
        run_id, flow_id, attempt = (
            payload.get("run_id"),
            payload.get("flow_id"),
            payload.get("attempt", 1),
        )
        if not isinstance(run_id, str) or not run_id or not isinstance(flow_id, str) or not flow_id:
            raise InvalidTask("task payload needs non-empty 'run_id' and 'flow_id' strings")
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise InvalidTask("task 'attempt' must be a positive integer")
        return cls(run_id, flow_id, attempt)

    def encode(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "flow_id": self.flow_id, "attempt": self.attempt}


Enqueue = Callable[[list[tuple[FlowTask, str]], float], None]  # [(task, queue)], countdown


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
        self.store = RedisStore(client, self.runs.keys, settings.ttl_s)
        self.enqueue = enqueue
        self.queues = set(queues or [settings.queue])
        self.supervisor = Supervisor(child_environment(), settings.engine.preload)
        self.renderer_files = PluginRegistry.discover(settings.engine.plugin_paths).renderer_files()
        self.pubsub = client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(self.runs.keys.control_channel)
        self._contexts: OrderedDict[str, RunContext] = OrderedDict()

    def close(self) -> None:
        self.supervisor.close()
        self.pubsub.close()

    def handle(self, task: FlowTask) -> None:
        """Run `task`, then keep running ready children here while their queue is ours."""
        next_task: FlowTask | None = task
        while next_task is not None:
            next_task = self._run_one(next_task)

    def context(self, run_id: str) -> RunContext | None:
        ctx = self._contexts.get(run_id)
        if ctx is None:
            ctx = self.runs.context(run_id)
            if ctx is None:
                return None
            self._contexts[run_id] = ctx
            while len(self._contexts) > 32:
                self._contexts.popitem(last=False)
        self._contexts.move_to_end(run_id)
        return ctx

    def _run_one(self, task: FlowTask) -> FlowTask | None:
        ctx = self.context(task.run_id)
        if ctx is None or task.flow_id not in ctx.plan.parents:
            log.warning("dropping task for unknown run or flow: %s", task)
            return None
        answer = self.runs.claim(task.run_id, task.flow_id, task.attempt, self.settings.worker_name)
        if answer != "ok":
            log.info("not running %s: %s", task, answer)
            return None
        options = ctx.flow_options(task.flow_id, self.settings.engine, self.settings.queue)
        job = self._job(ctx, task, options)
        finished = self._supervise(task, job, options)
        retry = (
            not finished.ok and finished.reason != "cancelled" and task.attempt <= options.retries
        )
        result = self.runs.finish(
            ctx,
            task.flow_id,
            task.attempt,
            finished.ok,
            finished.reason,
            finished.duration_s,
            finished.outputs,
            finished.previews,
            retry,
        )
        return self._next(ctx, task, result)

    def _next(self, ctx: RunContext, task: FlowTask, result: FinishResult) -> FlowTask | None:
        if result.outcome == "retry":
            delay = self.settings.retry_backoff_s * 2 ** (task.attempt - 1)
            queue = ctx.flow_options(task.flow_id, self.settings.engine, self.settings.queue).queue
            self.enqueue(
                [(FlowTask(task.run_id, task.flow_id, result.next_attempt or 1), queue)], delay
            )
            return None
        if result.outcome != "ok" or not result.ready:
            return None
        mine: FlowTask | None = None
        others: list[tuple[FlowTask, str]] = []
        for flow_id in result.ready:
            queue = ctx.flow_options(flow_id, self.settings.engine, self.settings.queue).queue
            child = FlowTask(task.run_id, flow_id, 1)
            if mine is None and queue in self.queues:
                mine = child
            else:
                others.append((child, queue))
        if others:
            self.enqueue(others, 0.0)
        return mine

    def _job(self, ctx: RunContext, task: FlowTask, options: FlowOptions) -> FlowJob:
        flow = ctx.package.flows[task.flow_id]
        app = ctx.package.app_of(flow)
        wired = [
            (spec.name, c)
            for spec in app.inputs
            if spec.type == OUTPUT
            for c in flow.connections.get(spec.name, ())
        ]
        values = self.store.get_many([(c.node, c.output) for _, c in wired], task.run_id)
        sources: dict[str, list[Any]] = {
            spec.name: [] for spec in app.inputs if spec.type == OUTPUT
        }
        for (name, _), value in zip(wired, values, strict=True):
            sources[name].append(value)
        workdir = os.path.join(self.settings.workdir_root, task.run_id)
        os.makedirs(workdir, exist_ok=True)
        engine = self.settings.engine
        return FlowJob(
            run_id=task.run_id,
            flow_id=task.flow_id,
            app_id=app.id,
            code=app.code,
            inputs=app.inputs,
            outputs=app.outputs,
            workdir=workdir,
            title=flow.title,
            data=dict(flow.data),
            sources=sources,
            params=ctx.params(task.flow_id),
            memory_limit_mb=options.memory_limit_mb,
            max_render_bytes=engine.max_render_bytes,
            max_preview_bytes=engine.max_preview_bytes,
            attempt=task.attempt,
            renderer_files=self.renderer_files,
            artifact_dir=self.settings.artifact_dir,
            inline_max=engine.inline_max_bytes,
        )

    def _supervise(self, task: FlowTask, job: FlowJob, options: FlowOptions) -> Finished:
        """Run the child to its end, streaming events, renewing the lease, obeying cancel."""
        sup = self.supervisor
        sup.launch(job, options.timeout)
        beat_every = self.settings.lease_s / 3
        next_beat = time.monotonic() + beat_every
        lease = (task.run_id, task.flow_id, task.attempt)
        while True:
            items = sup.poll(min(0.25, beat_every))
            events = [_event(item) for item in items if isinstance(item, Signal)]
            self.runs.emit(task.run_id, events)
            done = [item for item in items if isinstance(item, Finished)]
            if done:
                return done[0]
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + beat_every
                if not self.runs.heartbeat([lease])[0]:
                    sup.kill(task.flow_id, "lease lost: attempt taken over by another worker")
            self._read_control(task)

    def _read_control(self, task: FlowTask) -> None:
        while True:
            message = self.pubsub.get_message(timeout=0)
            if message is None:
                return
            data = message.get("data")
            if isinstance(data, bytes) and data.decode() == f"cancel {task.run_id}":
                self.supervisor.kill(task.flow_id, "cancelled")


def _event(item: Signal) -> tuple[str, str | None, dict[str, Any]]:
    kind = {"log": "log.append", "clear": "log.clear", "result": "result"}[item.kind]
    return kind, item.flow_id, item.data
