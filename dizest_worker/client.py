"""The one door to a dizest cluster, for the API and for programs: submit, get, events, cancel,
outputs, wait. A run report from here is the same document `dizest run --json` prints.

    client = Client(WorkerSettings.from_env())
    run_id = client.submit("my.dwp", inputs={"k": 3}, idempotency_key="job-42")
    for event in client.events(run_id):   # replay, then live, until the final workflow.status
        ...
    report = client.get(run_id)

A package is validated (targets, inputs) before anything is stored; its plugin apps go with it.
"""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import redis

from dizest_core import dwp, limits, run_inputs
from dizest_core.errors import DizestError, ExecutionError, InvalidOptions, UnknownFlowError
from dizest_core.events import Event
from dizest_core.job import Artifact, Value
from dizest_core.model import Package
from dizest_core.options import Bounds, for_flow, run_problems
from dizest_core.options import load as load_checked
from dizest_core.plan import make_plan
from dizest_core.plugins import PluginRegistry
from dizest_core.run_inputs import join_inputs, split_inputs
from dizest_core.runner import new_run_id
from dizest_worker import worker_info
from dizest_worker.apicalls import DEFAULT_TIMEOUT_S as CALL_TIMEOUT_S  # noqa: F401 (door)
from dizest_worker.apicalls import MAX_TIMEOUT_S as MAX_CALL_TIMEOUT_S  # noqa: F401 (door)
from dizest_worker.apicalls import Answer as Answer
from dizest_worker.apicalls import CallTask as CallTask
from dizest_worker.apicalls import TooManyCalls as TooManyCalls
from dizest_worker.apicalls import call as call_on_worker
from dizest_worker.apicalls import new_call_id as new_call_id
from dizest_worker.apicalls import take_place as take_place
from dizest_worker.connection import REACH_S as REACH_S
from dizest_worker.connection import reach as reach
from dizest_worker.connection import redact_url as redact_url
from dizest_worker.connection import redis_client as redis_client
from dizest_worker.keys import run_channel as run_channel
from dizest_worker.liveness import check_served
from dizest_worker.metrics import RUN_SCAN_LIMIT, MetricsSnapshot, read_snapshot
from dizest_worker.packages import environments as environments
from dizest_worker.quota import RunsQuota as RunsQuota
from dizest_worker.quota import quota_error as quota_error
from dizest_worker.redis_store import RedisStore
from dizest_worker.reports import Reports, Source
from dizest_worker.round_trip import pairs, run_script  # noqa: F401 (door)
from dizest_worker.run_parts import RunParts, run_times
from dizest_worker.run_reads import StatusAndBatch
from dizest_worker.settings import WorkerSettings as WorkerSettings
from dizest_worker.state import RedisRuns

if TYPE_CHECKING:
    from celery import Celery

# dizest_api reaches the cluster through this module only, plus key names (test_imports.py):
# what it needs of the worker package besides Client is re-exported or wrapped here.


class RunNotFound(DizestError, LookupError):
    """No run with this id (never submitted, or expired)."""


def live_workers(redis_client: redis.Redis, settings: WorkerSettings) -> list[str]:
    """Names of the workers whose beat is within the liveness window (/readyz, the submit
    check); a function, not a Client method, as it needs only Redis."""
    from dizest_worker import liveness  # it imports Celery: only when asked

    return liveness.live_workers(redis_client, settings)


def sandbox_layers(
    redis_client: redis.Redis, settings: WorkerSettings, names: list[str]
) -> dict[str, dict[str, str]]:
    """Worker name -> the state of each flow sandbox layer, for the named workers."""
    from dizest_worker import liveness

    return liveness.sandbox_layers(redis_client, settings, names)


def forget_worker(redis_client: redis.Redis, settings: WorkerSettings, name: str) -> None:
    """Delete worker `name`'s beat, so it does not count as live until it beats again (`dizest
    serve` does it before it restarts a dead worker)."""
    from dizest_worker import liveness

    liveness.forget(redis_client, settings, name)


def celery_base(name: str, settings: WorkerSettings) -> Celery:
    """A Celery app on the cluster's broker with the reliability settings every dizest Celery
    process shares and kombu's Redis-restart fix installed (`dizest_worker.celery_app`); for a
    process that sends or runs tasks of its own (`dizest beat`)."""
    from dizest_worker.celery_app import base_celery

    return base_celery(name, settings)


class Client:
    def __init__(
        self,
        settings: WorkerSettings | None = None,
        *,
        redis_client: redis.Redis | None = None,
        celery_app: Any = None,
        plugins: PluginRegistry | None = None,
    ) -> None:
        from dizest_worker.celery_app import create_celery, make_enqueue
        from dizest_worker.connection import redis_client as make_client

        self.settings = settings or WorkerSettings.from_env()
        self.redis = redis_client or make_client(self.settings)
        self.runs = RedisRuns(self.redis, self.settings)
        self.store = RedisStore(self.redis, self.runs.keys, self.settings.ttl_s)
        self.app = celery_app or create_celery(self.settings)
        self._enqueue = make_enqueue(self.app)
        self.plugins = plugins or PluginRegistry.discover(self.settings.engine.plugin_paths)
        self.reports = Reports(self.settings.engine.max_log_entries)  # folds of runs read lately
        self.parts = RunParts(self.runs, self.store, self.settings.engine.max_log_entries)

    def submit(
        self,
        package: dwp.Source,
        inputs: Mapping[str, Any] | None = None,
        flows: Iterable[str] | None = None,
        idempotency_key: str | None = None,
        options: Mapping[str, Any] | None = None,
        base_run: str | None = None,
        drive: str | None = None,
        prepare: Callable[[str], None] | None = None,
        account: str | None = None,
        stored: Callable[[str], None] | None = None,
    ) -> str:
        """Validate, store and enqueue a run; return its id (the same id for the same key).
        `stored(run_id)` is called once the run is stored and before any of its flows is sent
        (the API records the run's owner there: a run of 100,000 flows takes a while to send,
        and its owner must see and cancel it meanwhile); also for the run an idempotency key
        names.
        Inputs, options and the package are checked against `dizest_core.limits` first: a value
        too deep or too large for a worker raises InputError and nothing is stored.
        `drive`: a folder under the workers' drive_root its flows read through `dizest.drive()`;
        `prepare(run_id)` is called with the new run's id once it is valid and before it is
        stored or enqueued (the API places attached files in its working directory there); when
        the idempotency key names an existing run, that run's id is returned instead. What the
        run stores in Redis counts towards user `account`'s quota (dizest_api.data.run_quota),
        and its flows hold that user's flow slots (dizest_worker.flow_slots)."""
        targets = list(flows) if flows is not None else None
        pkg = self.validate(self.settings, self.plugins, package, inputs, targets, options)
        opts = dict(options or {})
        common, per_flow = split_inputs(inputs or {}, pkg)
        if base_run is not None and self.runs.record(base_run) is None:
            raise RunNotFound(f"no run {base_run!r}")
        available = (lambda f: self.store.has(base_run, f)) if base_run else (lambda f: False)
        plan = make_plan(pkg, None, targets, available)
        if account is not None:  # a user's run: only to queues a worker serves
            queues = {for_flow(pkg, f, opts, self.settings.engine, self.settings.queue).queue
                      for f in plan.run}  # fmt: skip
            check_served(self.redis, self.settings, queues)
        snapshot = dwp.to_dict(pkg)
        for app_id in {f.app_id for f in pkg.flows.values()} - set(snapshot.get("apps", {})):
            snapshot["apps"][app_id] = self.plugins.app_raw(app_id)
        record = {
            "targets": targets,
            "reused": sorted(plan.reused),
            "options": opts,
            "inputs": common,
            "flow_inputs": per_flow,
            "base_run": base_run,
            "idempotency_key": idempotency_key,
            "drive": drive,
            "account": account,
        }
        run_id = new_run_id()
        if prepare is not None:
            prepare(run_id)
        created = self.runs.create(
            run_id, snapshot, plan, record, idempotency_key, base_run, account
        )
        if stored is not None:
            stored(created.run_id)
        if created.created and created.roots:
            ctx = self.runs.context(created.run_id)
            assert ctx is not None
            from dizest_worker.messages import flow_task

            roots = sorted(created.roots, key=ctx.plan.rank)  # the most urgent sent first
            self._enqueue(
                [(flow_task(ctx, f), ctx.flow_options(f, self.settings).queue) for f in roots],
                0.0,
            )
            self.runs.release([(created.run_id, f, 1) for f in created.roots])
        return created.run_id

    @staticmethod
    def validate(
        settings: WorkerSettings,
        plugins: PluginRegistry,
        package: dwp.Source,
        inputs: Mapping[str, Any] | None,
        flows: Iterable[str] | None,
        options: Mapping[str, Any] | None,
    ) -> Package:
        """Every check of a submit before anything is stored (limits, package, options, input
        names, flows); the loaded package. Shared with the in-memory client: both refuse alike."""
        engine = settings.engine
        budget = limits.Budget.of(engine)
        limits.check_inputs(inputs or {}, engine, "input", budget)
        limits.check_inputs(options or {}, engine, "option", budget)
        # every problem of the package and of every option value at once (one rule: a store
        # and a validation say the same), before anything is stored: a bad option must never
        # fail a worker
        bounds = Bounds.of(engine, settings.max_flow_timeout_s)
        pkg = load_checked(package, bounds, dict(options or {}), plugins.apps())
        limits.check_value(pkg.raw, "the package", "package", engine)
        run_inputs.check(inputs or {}, pkg)  # an input no flow reads: refused, not dropped
        unknown = [f for f in flows or () if f not in pkg.flows]
        if unknown:
            raise UnknownFlowError(f"unknown flow(s): {', '.join(unknown)}")
        return pkg

    def live_workers(self) -> list[str]:
        """The workers that can take a run now (the submit routes ask before they accept one)."""
        return live_workers(self.redis, self.settings)

    def workers(self) -> list[dict[str, Any]]:
        """Every live worker: what it says of itself, its slots and the flows it runs now."""
        return worker_info.live_workers(self.redis, self.settings)

    def rerun(
        self,
        run_id: str,
        flow_id: str,
        account: str | None = None,
        stored: Callable[[str], None] | None = None,
        drive: str | None = None,
    ) -> str:
        """A new run of one flow, reusing the upstream outputs of `run_id`, with its inputs
        (`stored` as for `submit`), reading `drive` (the API gives the drive of who reruns:
        a grantee's run must not read the owner's; None: the run's own)."""
        record = self._record(run_id)
        snapshot = self.runs.snapshot(run_id)
        return self.submit(
            snapshot or {},
            join_inputs(json.loads(record["inputs"]), json.loads(record["flow_inputs"])),
            [flow_id],
            options=json.loads(record["options"]),
            base_run=run_id,
            drive=drive if drive is not None else json.loads(record.get("drive") or "null"),
            account=account,
            stored=stored,
        )

    def _record(self, run_id: str) -> dict[str, str]:
        record = self.runs.record(run_id)
        if record is None:
            raise RunNotFound(f"no run {run_id!r}")
        return record

    def record(self, run_id: str) -> dict[str, str] | None:
        """The run's record (status, times, counts, what was submitted), or None if unknown."""
        return self.runs.record(run_id)

    def snapshot(self, run_id: str) -> dict[str, Any] | None:
        """The .dwp the run runs (plugin apps embedded), or None once expired."""
        return self.runs.snapshot(run_id)

    def snapshot_json(self, run_id: str) -> bytes | None:
        """The snapshot's JSON as stored (not parsed: 41 MB at 100,000 flows), or None."""
        return self.runs.snapshot_json(run_id)

    def event_batch(self, run_id: str, after: str | None = None, count: int = 1000) -> list[Event]:
        """Up to `count` stored events after event id `after` (None: from the start), at once:
        what a stream replays before it follows the live ones on its run's channel."""
        return self.runs.events(run_id, after, count=count, shared=True)

    def status_and_batch(self, run_id: str, after: str | None, count: int) -> StatusAndBatch:
        """Its status (None: no run) and `event_batch`, in one round trip: a stream's first read."""
        return self.runs.status_and_events(run_id, after, count)

    def has_event(self, run_id: str, event_id: str) -> bool:
        """Whether the run's stored events hold event `event_id` (a stream resuming there)."""
        return bool(self.redis.xrange(self.runs.keys.events(run_id), event_id, event_id, count=1))

    @property
    def event_channel(self) -> str:
        """The pubsub channel each run's final workflow.status event is published on; a run's
        live events go on `run_channel(event_channel, run_id)` (a follower subscribes, replays
        the run's stream, then catches up once the subscription is confirmed: so nothing
        published in between is missed)."""
        return self.runs.keys.event_channel

    def metrics_snapshot(self, run_limit: int = RUN_SCAN_LIMIT) -> MetricsSnapshot:
        """The cluster-wide numbers /metrics shows (runs, flow counters, queue, live workers)."""
        return read_snapshot(self.redis, self.settings, run_limit)

    def call_api(self, task: CallTask, caller: str | None = None) -> Answer:
        """Run one of a flow's app `api` functions on a worker of the flow's queue and wait for
        its answer (dizest_worker.apicalls): the function's own, or a 404/503/504 of ours;
        TooManyCalls when `caller` has DIZEST_USER_API_CALLS running already."""
        return call_on_worker(self, task, caller)

    def status(self, run_id: str) -> str:
        return self._record(run_id)["status"]

    def get(self, run_id: str) -> dict[str, Any]:
        """The run report (the same document as local): statuses, reasons, indexes and
        durations from the run's state, which is authoritative; logs and results from its
        event stream, which is capped, so the oldest of them may be gone."""
        times = run_times(self._record(run_id))
        return self.reports.report(run_id, Source.of(self.runs, self.store, run_id)) | times

    def states(self, run_id: str) -> dict[str, Any]:
        """The run's status, times and flows' states alone (`dizest_worker.run_parts`)."""
        if (found := self.parts.states(run_id)) is None:
            raise RunNotFound(f"no run {run_id!r}")
        return found

    def flow_report(self, run_id: str, flow_id: str) -> dict[str, Any]:
        """One flow's part of the run report and `last_event_id` (`dizest_worker.run_parts`)."""
        if (part := self.parts.flow(run_id, flow_id)) is None:
            raise RunNotFound(f"no run {run_id!r}")
        return part

    def events(
        self, run_id: str, after: str | None = None, block_ms: int = 1000
    ) -> Iterator[Event]:
        """Every event after `after` (an event id), then live ones, until the run's final one."""
        self._record(run_id)
        while True:
            batch = self.runs.events(run_id, after, block_ms=block_ms)
            for event in batch:
                yield event
                if event.final:
                    return
            if batch:
                after = batch[-1].id
            elif self.runs.record(run_id) is None:
                raise RunNotFound(f"run {run_id!r} expired")

    def wait(self, run_id: str, timeout: float | None = None) -> dict[str, Any]:
        """Block until the run ends (or `timeout` s) and return its report."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 1.0 if deadline is None else min(1.0, deadline - time.monotonic())
            if left <= 0:
                raise ExecutionError(f"run {run_id} still running after {timeout} s")
            if self.runs.wait_final(run_id, left) is not None:
                return self.get(run_id)
            self._record(run_id)  # raises RunNotFound if the run expired meanwhile

    def cancel(self, run_id: str) -> str:
        """Cancel a run: unstarted flows never start, running ones are killed."""
        answer = self.runs.cancel(run_id)
        if answer == "-1":
            raise RunNotFound(f"no run {run_id!r}")
        return answer

    def outputs(self, run_id: str, flow_id: str) -> dict[str, Any]:
        """The JSON previews of a flow's outputs; UnknownFlowError if the run has no such flow."""
        self._check_flow(run_id, flow_id)
        return self.store.previews(run_id, flow_id)

    def output_value(self, run_id: str, flow_id: str, name: str) -> Value | None:
        """One output as stored (pickle bytes, or an Artifact file reference)."""
        self._check_flow(run_id, flow_id)
        return self.store.get(run_id, flow_id, name)

    def _check_flow(self, run_id: str, flow_id: str) -> None:
        self._record(run_id)
        flow_ids = self.parts.flow_ids(run_id)  # (kept: not the run's context, planned)
        if flow_ids is None:
            raise RunNotFound(f"run {run_id!r} expired")
        if flow_id not in flow_ids:
            raise UnknownFlowError(f"run {run_id} has no flow {flow_id!r}")

    def load_output(self, run_id: str, flow_id: str, name: str) -> Any:
        """One output as a Python object (unpickled: only for outputs you trust)."""
        value = self.output_value(run_id, flow_id, name)
        if value is None:
            raise LookupError(f"flow {flow_id!r} of run {run_id} has no output {name!r}")
        if isinstance(value, Artifact):
            with open(value.path, "rb") as fh:
                return pickle.load(fh)
        return pickle.loads(value)


def check_run_options(options: Mapping[str, Any], settings: WorkerSettings) -> None:
    """Raise InvalidOptions for run options a submit would refuse (their bounds): for callers
    that keep options for later submits, such as schedules, so they never store a bad one."""
    problems = run_problems(options, Bounds.of(settings.engine, settings.max_flow_timeout_s))
    if problems:
        raise InvalidOptions(problems)
