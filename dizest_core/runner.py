"""Local runs: one workflow run executed by child processes on this machine, no Redis.

`LocalRunner.stream` plans the run, then drives `RunState` with what the `Supervisor` reports: a
flow starts the moment it is ready (up to `concurrency` at once; when more are ready than slots are
free, the longest remaining path first, `Plan.rank`), its log lines and results become events as
they happen, and its end makes its children ready or skips its descendants. Each event is folded
into the run report as yielded. One run at a time per runner; `cancel` is thread-safe.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dizest_core import cpuuse
from dizest_core import events as ev
from dizest_core.cache import CachedFlow, FlowCache, cache_key
from dizest_core.errors import ExecutionError
from dizest_core.events import Callbacks, Event, EventFactory
from dizest_core.execution import Finished, Signal, Supervisor
from dizest_core.graph import Graph
from dizest_core.janitor import Janitor
from dizest_core.job import FlowJob, build_job
from dizest_core.model import Package
from dizest_core.options import RUN_OPTIONS, UNBOUNDED, Bounds, FlowOptions, for_flow, validate
from dizest_core.plan import ReadyQueue, make_plan
from dizest_core.report import ReportBuilder
from dizest_core.runstate import RunState, Transition
from dizest_core.sandbox import UID_STRIDE
from dizest_core.settings import Settings
from dizest_core.status import Reason, RunStatus
from dizest_core.store import MemoryStore, OutputStore
from dizest_core.tree import remove_tree
from dizest_core.zygote_handle import local_args


@dataclass(frozen=True)
class RunRequest:
    """What a caller asks of one run."""

    inputs: Mapping[str, Any] = field(default_factory=dict)
    flow_inputs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    flows: tuple[str, ...] | None = None
    timeout: float | None = None
    flow_timeout: float | None = None
    concurrency: int | None = None
    memory_limit_mb: int | None = None
    cpus: float | None = None
    network: str | None = None
    retries: int | None = None
    cache: bool = False
    workdir: str | None = None
    base_run: str | None = None


POLL_STEP = 1.0  # seconds; the longest a run loop waits without looking at its clock


def new_run_id() -> str:
    return uuid.uuid4().hex


class LocalRunner:
    """Runs workflows with child processes forked by one zygote; reusable across runs."""

    def __init__(
        self,
        settings: Settings | None = None,
        store: OutputStore | None = None,
        renderer_files: tuple[str, ...] = (),
    ) -> None:
        self.settings = settings or Settings()
        self.renderer_files = renderer_files
        self.store: OutputStore = store or MemoryStore()
        self._supervisor: Supervisor | None = None
        self._lock = threading.Lock()
        self._current: _Run | None = None
        self._kept: deque[str] = deque()  # runs whose outputs are kept (for rerun)
        self._last: dict[str, Any] | None = None  # the report of the last run streamed
        self._artifacts: str | None = None
        self._janitor = Janitor()  # forgotten runs' artifact folders, off the next run's path

    @property
    def supervisor(self) -> Supervisor:
        if self._supervisor is None:
            args = local_args(self.settings, self.renderer_files)
            self._supervisor = Supervisor(*args, self.settings.disk_reserve_mb)
        return self._supervisor

    def stream(
        self,
        package: Package,
        request: RunRequest,
        run_id: str | None = None,
        callbacks: Callbacks | None = None,
        graph: Graph | None = None,
    ) -> Iterator[Event]:
        """Run `package` and yield its events as they happen; the last is the final status."""
        if not self._lock.acquire(blocking=False):
            raise ExecutionError("this runner is already running a workflow")
        try:
            run = _Run(self, package, request, run_id or new_run_id(), callbacks, graph)
            self._current = run
            self._keep(run.run_id, request.base_run)
            yield from run.events()
        finally:
            self._current = None
            self._lock.release()

    @property
    def artifact_dir(self) -> str:
        """Where flows write large outputs, so the engine process never holds them."""
        if self._artifacts is None:
            self._artifacts = tempfile.mkdtemp(prefix="dizest-artifacts-")
        return self._artifacts

    def _keep(self, run_id: str, base_run: str | None) -> None:
        """Keep the outputs of this run and its base; forget older runs (bounded memory)."""
        keep = {run_id, base_run}
        for old in [r for r in self._kept if r not in keep]:
            self._kept.remove(old)
            self.store.delete_run(old)
            if self._artifacts:
                self._janitor.remove(os.path.join(self._artifacts, old))
        if base_run and base_run not in self._kept:
            self._kept.append(base_run)
        self._kept.append(run_id)

    def report(self) -> dict[str, Any]:
        """The report of the last run streamed."""
        if self._last is None:
            raise ExecutionError("nothing has run yet")
        return self._last

    def cancel(self) -> None:
        """Cancel the run in progress, if any (thread-safe)."""
        run = self._current
        if run is not None:
            run.cancelled = True
            self.supervisor.wake()

    def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.close()
            self._supervisor = None
        self._janitor.close()
        if self._artifacts is not None:
            with contextlib.suppress(OSError):
                remove_tree(self._artifacts)  # however deep a flow made it
            self._artifacts = None


class _Run:
    """One run in progress (state, report, counters); lives inside `LocalRunner.stream`."""

    def __init__(
        self,
        runner: LocalRunner,
        package: Package,
        request: RunRequest,
        run_id: str,
        callbacks: Callbacks | None,
        graph: Graph | None,
    ) -> None:
        self.runner, self.package, self.request, self.run_id = runner, package, request, run_id
        self.store, self.settings = runner.store, runner.settings
        # each flow's timeout, memory limit, retries and network: the same rules as workers
        self.run_options = {name: getattr(request, name) for name in RUN_OPTIONS}
        validate(package, self.run_options, Bounds.of(self.settings))
        self._options: dict[str, FlowOptions] = {}
        self.callbacks = callbacks
        base = request.base_run
        plan = make_plan(
            package,
            graph,
            request.flows,
            available=(lambda f: self.store.has(base, f)) if base else lambda f: False,
        )
        for flow_id in plan.reused:
            self.store.copy(base, run_id, flow_id)  # type: ignore[arg-type]
        self.state = RunState(plan)
        self.make = EventFactory(run_id)
        self.builder = ReportBuilder(run_id, package.flows, self.settings.max_log_entries)
        self.queue: ReadyQueue[str] = ReadyQueue(plan, str)  # launched in plan.rank order
        self.running: set[str] = set()
        self.previews: dict[str, dict[str, Any]] = {}
        self.cancelled = False
        self.timed_out = False
        self._stopping = False
        self.deadline = time.monotonic() + request.timeout if request.timeout else None
        # A fixed concurrency caps flows at once; the default (None) admits flows while the
        # running ones that hold a core (measured, `cpuuse`) are fewer than the CPUs, up to
        # max_processes at once.
        self.fixed = request.concurrency or self.settings.concurrency
        self.cpus = cpuuse.cpus()
        self.concurrency = self.fixed or min(self.settings.max_processes, UID_STRIDE)
        cache_dir = self.settings.cache_dir
        self.cache = FlowCache(cache_dir) if request.cache and cache_dir else None
        self.first_memory: int | None = None  # the first flow's memory limit: the next run's
        self.workdir = os.path.abspath(request.workdir or os.getcwd())
        self.order = {flow_id: i for i, flow_id in enumerate(package.flows)}

    def events(self) -> Iterator[Event]:
        sup = self.runner.supervisor
        sup.spare_slots = min(self.fixed or self.cpus, 2 * self.cpus)  # see `spares`
        try:
            yield from self._transition(self.state.start())
            while not self.state.done:
                yield from self._launch_ready()
                if self.state.done:
                    break
                for item in sup.poll(self._poll_timeout()):
                    if isinstance(item, Finished):
                        yield from self._finished(item)
                    else:
                        yield self._signal(item)
                yield from self._check_stop()
        finally:
            self._abandon(sup)
            sup.settle()
            if self.runner._last is not None and self.state.done and not self._stopping:
                sup.rest(self.settings.spare_reserve, self.first_memory or 0)  # see `spares`
            self.runner._last = self.builder.report(self._previews)

    def _previews(self, flow_id: str) -> dict[str, Any]:
        return self.previews.get(flow_id) or self.store.previews(self.run_id, flow_id)

    def _emit(self, type_: str, flow_id: str | None, at: float | None = None, **data: Any) -> Event:
        event = self.make(type_, flow_id, stamp=at, **data)
        self.builder.apply(event)
        if self.callbacks is not None:
            self.callbacks.dispatch(event)
        return event

    def _transition(self, change: Transition) -> Iterator[Event]:
        """Emit a step's events (the rules' own, `dizest_core.runstate`); queue what it readied
        (a retry once its backoff has passed)."""
        stamp = time.time()  # when it changed: before a retry's backoff starts, never after
        if change.delay_s > 0:
            self.queue.later(change.ready, time.monotonic() + change.delay_s)
        else:
            self.queue.extend(change.ready)
        for type_, flow_id, data in change.events:
            yield self._emit(type_, flow_id, stamp, **data)

    def _launch_ready(self) -> Iterator[Event]:
        self.queue.due(time.monotonic())
        while self.queue and self._admit():
            flow_id = self.queue.pop()
            job = self._job(flow_id)
            if self.first_memory is None:
                self.first_memory = job.memory_limit_mb or 0
            yield from self._transition(self.state.running(flow_id))
            cached = self.cache.get(cache_key(job)) if self.cache else None
            if cached is not None:
                yield from self._replay(flow_id, cached)
                continue
            timeout = self._flow_options(flow_id).timeout
            self.runner.supervisor.launch(job, None if timeout == UNBOUNDED else timeout)
            self.running.add(flow_id)

    def _flow_options(self, flow_id: str) -> FlowOptions:
        found = self._options.get(flow_id)
        if found is None:
            found = for_flow(self.package, flow_id, self.run_options, self.settings)
            self._options[flow_id] = found
        return found

    def _job(self, flow_id: str) -> FlowJob:
        wired = self.package.wired(self.package.flows[flow_id])
        values = [self.store.get(self.run_id, c.node, c.output) for _, c in wired]
        options = self._flow_options(flow_id)
        return build_job(
            self.package,
            flow_id,
            self.run_id,
            values,
            self.settings,
            workdir=self.workdir,
            params={**self.request.inputs, **self.request.flow_inputs.get(flow_id, {})},
            memory_limit_mb=options.memory_limit_mb,
            network=options.network,
            cpus=options.cpus,
            attempt=self.state.attempt[flow_id],
            artifact_dir=self.runner.artifact_dir,
        )

    def _replay(self, flow_id: str, cached: CachedFlow) -> Iterator[Event]:
        for entry in cached.log:
            yield self._emit(ev.LOG_APPEND, flow_id, entry=entry, stream="cache")
        for result in cached.results:
            yield self._emit(ev.RESULT, flow_id, **result)
        self.store.put(self.run_id, flow_id, cached.outputs, cached.previews)
        yield from self._end(flow_id, True, Reason.CACHED, 0.0)

    def _signal(self, item: Signal) -> Event:
        if item.kind == "log":
            return self._emit(ev.LOG_APPEND, item.flow_id, **item.data)
        if item.kind == "clear":
            return self._emit(ev.LOG_CLEAR, item.flow_id)
        return self._emit(ev.RESULT, item.flow_id, **item.data)

    def _finished(self, item: Finished) -> Iterator[Event]:
        self.running.discard(item.flow_id)
        if item.ok:
            self.store.put(self.run_id, item.flow_id, item.outputs, item.previews)
            inline = {k: v for k, v in item.outputs.items() if isinstance(v, bytes)}
            if self.cache is not None and len(inline) == len(item.outputs):
                self.cache.put(
                    cache_key(self._job(item.flow_id)),
                    CachedFlow(
                        inline,
                        item.previews,
                        self.builder.log(item.flow_id),
                        self.builder.results(item.flow_id),
                    ),
                )
        else:
            self.previews[item.flow_id] = item.previews
        yield from self._end(item.flow_id, item.ok, item.reason, item.duration_s, item.retryable())

    def _end(
        self, flow_id: str, ok: bool, reason: str | None, duration: float, retry: bool = False
    ) -> Iterator[Event]:
        change = self.state.finish(
            flow_id,
            ok,
            reason,
            duration_s=duration,
            retryable=retry,  # never once the run is stopping: RunState knows
            max_retries=self._flow_options(flow_id).retries,
            backoff_s=self.settings.retry_backoff_s,
        )
        yield from self._transition(change)

    def _admit(self) -> bool:
        """Room for one more flow: under the cap and, by default, a core not held."""
        if len(self.running) >= self.concurrency:
            return False
        if self.fixed or len(self.running) < self.cpus:
            return True
        sup = self.runner.supervisor
        return sum(sup.holds_core(f) for f in self.running) < self.cpus

    def _sample_wait(self) -> float | None:
        """While ready flows wait only for a core: ask for the CPU use of the running ones and
        look again soon (sooner while one is not measured yet); None: no need."""
        if self.fixed or not self.queue or len(self.running) >= self.concurrency:
            return None
        sup = self.runner.supervisor
        sup.sample_cpu()
        children = [c for c in map(sup.children.get, self.running) if c is not None]
        unmeasured = any(not sup.meter.measured(c.token) for c in children)
        return cpuuse.SAMPLE_S if unmeasured else cpuuse.RESAMPLE_S

    def _poll_timeout(self) -> float:
        """How long the next poll may wait: never 0 once the run has timed out (the killed
        children still have to report; returning 0 would spin until they do), at most
        POLL_STEP (rq's bounded steps), and 0 only once, when the deadline has just passed."""
        step = POLL_STEP if (wait := self._sample_wait()) is None else wait
        if (retry_at := self.queue.next_at()) is not None:
            step = min(step, max(0.0, retry_at - time.monotonic()))
        if self.deadline is None or self.timed_out:
            return step
        return min(step, max(0.0, self.deadline - time.monotonic()))

    def _check_stop(self) -> Iterator[Event]:
        if self.deadline is not None and time.monotonic() >= self.deadline and not self.timed_out:
            self.timed_out = True
            yield from self._stop(Reason.RUN_TIMEOUT.format(seconds=self.request.timeout))
        if self.cancelled and not self._stopping:
            yield from self._stop(Reason.CANCELLED)

    def _stop(self, reason: str) -> Iterator[Event]:
        """Timeout (the run ends in error) or cancel: stop what has not started, kill the rest."""
        self._stopping = True
        self.queue.clear()
        final = RunStatus.CANCELLED if reason == Reason.CANCELLED else RunStatus.ERROR
        yield from self._transition(self.state.stop(reason, final))
        for flow_id in self.running:
            self.runner.supervisor.kill(flow_id, reason)

    def _abandon(self, sup: Supervisor) -> None:
        """Kill what still runs when the consumer stops early (or an error escaped)."""
        for flow_id in self.running:
            sup.kill(flow_id, Reason.CANCELLED)
        deadline = time.monotonic() + 5
        while self.running and time.monotonic() < deadline:
            for item in sup.poll(0.1):
                if isinstance(item, Finished):
                    self.running.discard(item.flow_id)
