"""An in-memory twin of `dizest_worker.client.Client`: the same door, no Redis run state, no
Celery, no worker. Runs are executed in this process by the local engine
(`dizest_core.runner.LocalRunner`, its zygote and sandbox), one at a time in submit order, on
one background thread; their records, events and outputs live in memory.

Why: most API tests check the service (auth, validation, limits, the shape of answers), not the
cluster; a real worker there costs seconds of start-up and adds nothing. The end-to-end tests
keep real workers, and tests/worker/test_memory_client_contract.py runs one scenario against
both doors and asserts the same reports.

Validation is the real client's own (`Client.validate`), so a bad input is refused here exactly
as there. Not covered: `call_api`, `metrics_snapshot`, `workers` (cluster-only), live events
on `event_channel` (nothing publishes there: a follower sees a run through `event_batch` and
`events`), drives (`drive=` is recorded, not mounted) and the run storage quota (`account=` is
taken, nothing is counted).
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dizest_core import dwp
from dizest_core.errors import ExecutionError, UnknownFlowError
from dizest_core.events import Event
from dizest_core.job import Value
from dizest_core.model import Package
from dizest_core.plugins import PluginRegistry
from dizest_core.report import ReportBuilder, iso
from dizest_core.run_inputs import join_inputs, split_inputs
from dizest_core.runner import LocalRunner, RunRequest, new_run_id
from dizest_core.status import RunStatus
from dizest_core.store import MemoryStore
from dizest_core.traverse import make_passable
from dizest_worker.client import Client, RunNotFound
from dizest_worker.run_reads import StatusAndBatch
from dizest_worker.settings import WorkerSettings

FINAL = (RunStatus.READY, RunStatus.ERROR, RunStatus.CANCELLED)
STATE = ("status", "reason", "index", "duration_s")  # of a flow, in `states`


class _KeepingStore(MemoryStore):
    """Outputs of every run stay (any run can be rerun, as in the cluster until its TTL)."""

    def delete_run(self, run_id: str) -> None:
        pass


@dataclass
class _Run:
    package: Package
    snapshot: dict[str, Any]
    request: RunRequest
    record: dict[str, str]
    events: list[Event] = field(default_factory=list)
    report: dict[str, Any] | None = None
    cancelled: bool = False
    done: threading.Event = field(default_factory=threading.Event)


class MemoryClient:
    """`Client`'s public methods over in-process runs; see the module docstring."""

    def __init__(
        self, settings: WorkerSettings | None = None, *, plugins: PluginRegistry | None = None
    ) -> None:
        self.settings = settings or WorkerSettings.from_env()
        self.plugins = plugins or PluginRegistry.discover(self.settings.engine.plugin_paths)
        self.runner = LocalRunner(self.settings.engine, _KeepingStore())
        # the engine's zygote starts now, not at the first run: its process belongs to whoever
        # made this client, until close()
        _ = self.runner.supervisor
        self._runs: dict[str, _Run] = {}
        self._keys: dict[str, str] = {}  # idempotency key -> run id
        self._changed = threading.Condition()
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._work, name="memory-client", daemon=True)
        self._thread.start()

    # -- submitting ---------------------------------------------------------------------------

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
        """As `Client.submit`: validated first (the same checks), then queued to run here.
        `account` is taken and not counted: runs here live in this process's memory, no quota."""
        targets = list(flows) if flows is not None else None
        pkg = Client.validate(self.settings, self.plugins, package, inputs, targets, options)
        if base_run is not None and base_run not in self._runs:
            raise RunNotFound(f"no run {base_run!r}")
        with self._changed:
            found = self._keys.get(idempotency_key) if idempotency_key is not None else None
        if found is not None:
            if stored is not None:
                stored(found)
            return found
        common, per_flow = split_inputs(inputs or {}, pkg)
        opts = dict(options or {})
        run_id = new_run_id()
        if prepare is not None:
            prepare(run_id)
        workdir = os.path.join(self.settings.workdir_root, run_id)
        make_passable(workdir)
        request = RunRequest(
            inputs=common,
            flow_inputs=per_flow,
            flows=tuple(targets) if targets is not None else None,
            flow_timeout=opts.get("flow_timeout"),
            memory_limit_mb=opts.get("memory_limit_mb"),
            cpus=opts.get("cpus"),
            network=opts.get("network"),
            retries=opts.get("retries"),
            workdir=workdir,
            base_run=base_run,
        )
        record = {
            "status": RunStatus.PENDING,
            "created_at": repr(time.time()),
            "inputs": json.dumps(common),
            "flow_inputs": json.dumps(per_flow),
            "options": json.dumps(opts),
            "targets": json.dumps(targets),
            "base_run": json.dumps(base_run),
            "drive": json.dumps(drive),
        }
        snapshot = dwp.to_dict(pkg)
        with self._changed:
            if idempotency_key is not None:
                found = self._keys.get(idempotency_key)  # a concurrent submit's, with the key
                if found is None:
                    self._keys[idempotency_key] = run_id
            if found is None:
                self._runs[run_id] = _Run(pkg, snapshot, request, record)
        if stored is not None:
            stored(found or run_id)
        if found is not None:
            return found
        self._queue.put(run_id)
        return run_id

    def rerun(
        self,
        run_id: str,
        flow_id: str,
        account: str | None = None,
        stored: Callable[[str], None] | None = None,
        drive: str | None = None,
    ) -> str:
        """A new run of one flow, reusing the upstream outputs of `run_id`, with its inputs."""
        run = self._run(run_id)
        return self.submit(
            run.snapshot,
            join_inputs(json.loads(run.record["inputs"]), json.loads(run.record["flow_inputs"])),
            [flow_id],
            options=json.loads(run.record["options"]),
            base_run=run_id,
            drive=drive if drive is not None else json.loads(run.record["drive"]),
            stored=stored,
        )

    def live_workers(self) -> list[str]:
        """This process is the one worker (the submit routes ask before they accept a run)."""
        return ["memory"]

    # -- running ------------------------------------------------------------------------------

    def _work(self) -> None:
        while (run_id := self._queue.get()) is not None:
            run = self._runs[run_id]
            if run.cancelled:
                continue
            self._set(run, status=RunStatus.RUNNING)
            try:
                for event in self.runner.stream(run.package, run.request, run_id=run_id):
                    with self._changed:
                        run.events.append(event)
                        self._changed.notify_all()
                run.report = self.runner.report()
                status = str(run.report["status"])
            except Exception as exc:  # an engine failure ends this run, not the thread
                run.report = {"run_id": run_id, "status": RunStatus.ERROR, "error": str(exc)}
                status = RunStatus.ERROR
            self._set(run, status=status, finished_at=repr(time.time()))
            run.done.set()

    def _set(self, run: _Run, **fields: str) -> None:
        with self._changed:
            run.record.update(fields)
            self._changed.notify_all()

    def cancel(self, run_id: str) -> str:
        """Cancel a run: `final` when it had not started (it never will), else "1" (killed)."""
        run = self._run(run_id)
        with self._changed:
            if run.record["status"] in FINAL:
                return "final"
            started = run.record["status"] == RunStatus.RUNNING
            run.cancelled = True
        if started:
            self.runner.cancel()
            return "1"
        run.report = None
        self._set(run, status=RunStatus.CANCELLED, finished_at=repr(time.time()))
        run.done.set()
        return "final"

    def close(self) -> None:
        """Cancel what runs, stop the thread and the engine's zygote."""
        for run in list(self._runs.values()):
            if run.record["status"] not in FINAL:
                run.cancelled = True
                self.runner.cancel()
        self._queue.put(None)
        self._thread.join(timeout=30)
        self.runner.close()

    # -- reading ------------------------------------------------------------------------------

    def _run(self, run_id: str) -> _Run:
        run = self._runs.get(run_id)
        if run is None:
            raise RunNotFound(f"no run {run_id!r}")
        return run

    def record(self, run_id: str) -> dict[str, str] | None:
        run = self._runs.get(run_id)
        return None if run is None else dict(run.record)

    def snapshot(self, run_id: str) -> dict[str, Any] | None:
        run = self._runs.get(run_id)
        return None if run is None else run.snapshot

    def snapshot_json(self, run_id: str) -> bytes | None:
        run = self._runs.get(run_id)
        return None if run is None else json.dumps(run.snapshot).encode()

    def status(self, run_id: str) -> str:
        return self._run(run_id).record["status"]

    def get(self, run_id: str) -> dict[str, Any]:
        """The run report: the engine's own once the run ended, else what is known so far."""
        run = self._run(run_id)
        record = dict(run.record)
        report = run.report
        if report is None:  # still running (or cancelled before it started): from its events
            builder = ReportBuilder(run_id, run.package.flows, self.settings.engine.max_log_entries)
            with self._changed:
                for event in run.events:
                    builder.apply(event)
            report = builder.report(lambda f: self.runner.store.previews(run_id, f))
        times = {"started_at": iso(float(record["created_at"]))}
        if record.get("finished_at"):
            times["finished_at"] = iso(float(record["finished_at"]))
        return {**report, "status": record["status"], **times}

    def states(self, run_id: str) -> dict[str, Any]:
        """As `Client.states`, from the report (this twin keeps no flows hash)."""
        report, last = self._report_at(run_id)
        flows = {f: {k: part[k] for k in STATE} for f, part in report.get("flows", {}).items()}
        counts = Counter(state["status"] for state in flows.values())
        return {**report, "flows": flows, "counts": dict(counts), "last_event_id": last}

    def flow_report(self, run_id: str, flow_id: str) -> dict[str, Any]:
        """As `Client.flow_report`, from the report."""
        report, last = self._report_at(run_id)
        part = report.get("flows", {}).get(flow_id)
        if part is None:
            raise UnknownFlowError(f"run {run_id} has no flow {flow_id!r}")
        return {**part, "last_event_id": last}

    def _report_at(self, run_id: str) -> tuple[dict[str, Any], str | None]:
        """The report and the id of the newest event in it (events come under the lock)."""
        run = self._run(run_id)
        with self._changed:
            return self.get(run_id), run.events[-1].id if run.events else None

    def event_batch(self, run_id: str, after: str | None = None, count: int = 1000) -> list[Event]:
        events = list(self._run(run_id).events)
        ids = [e.id for e in events]
        start = ids.index(after) + 1 if after in ids else 0
        return events[start : start + count]

    def status_and_batch(self, run_id: str, after: str | None, count: int) -> StatusAndBatch:
        record = self.record(run_id)
        if record is None:
            return None, []
        return record["status"], self.event_batch(run_id, after, count)

    @property
    def event_channel(self) -> str:
        return f"{self.settings.prefix}:memory-events"  # nothing publishes here (see above)

    def events(
        self, run_id: str, after: str | None = None, block_ms: int = 1000
    ) -> Iterator[Event]:
        """Every event after `after`, then new ones as they happen, until the final one."""
        run = self._run(run_id)
        while True:
            with self._changed:
                batch = self.event_batch(run_id, after)
                if not batch and run.done.is_set():
                    return
                if not batch:
                    self._changed.wait(block_ms / 1000)
                    continue
            for event in batch:
                yield event
                if event.final:
                    return
            after = batch[-1].id

    def wait(self, run_id: str, timeout: float | None = None) -> dict[str, Any]:
        if not self._run(run_id).done.wait(timeout):
            raise ExecutionError(f"run {run_id} still running after {timeout} s")
        return self.get(run_id)

    def outputs(self, run_id: str, flow_id: str) -> dict[str, Any]:
        self._check_flow(run_id, flow_id)
        return self.runner.store.previews(run_id, flow_id)

    def output_value(self, run_id: str, flow_id: str, name: str) -> Value | None:
        self._check_flow(run_id, flow_id)
        return self.runner.store.get(run_id, flow_id, name)

    def _check_flow(self, run_id: str, flow_id: str) -> None:
        if flow_id not in self._run(run_id).package.flows:
            raise UnknownFlowError(f"run {run_id} has no flow {flow_id!r}")
