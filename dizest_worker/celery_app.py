"""The Celery application, built by a factory from settings (nothing happens at import time).

Reliability settings (see ARCHITECTURE.md, failure model): late acks, reject on worker loss,
prefetch 1, a broker visibility timeout above the longest allowed flow, and Celery's hard time
limit only as a backstop above our own per-flow timeout. Results are not stored by Celery:
run state lives in our own Redis keys.

A Redis restart: the consumer reconnects (`broker_connection_max_retries=None`) once
`broker_fix` has kept kombu from crashing the worker on the way (see there). Running tasks are
not cancelled on a connection loss (`worker_cancel_long_running_tasks_on_connection_loss`):
their flows keep their leases and finish; a redelivered copy of their message is refused by
CLAIM's attempt fencing.

Flow tasks carry a priority (`FlowTask.level`, 0 the most urgent): kombu's Redis transport keeps
a list per level and its consumers pop level 0 first, so every process that sends or consumes
must agree on the levels (`priority_steps`, set here for all of them). A message sent without a
priority (an `api` call) goes at level 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery

from dizest_worker import broker_client, broker_fix
from dizest_worker.messages import PRIORITY_LEVELS, RUN_FLOW, Enqueue, FlowTask, chunked
from dizest_worker.settings import WorkerSettings

TRANSPORT_OPTIONS = {"priority_steps": list(range(PRIORITY_LEVELS))}


def base_celery(name: str, settings: WorkerSettings) -> Celery:
    """A Celery app on `settings`' broker with what every dizest Celery process shares (the flow
    workers' and `dizest beat`'s): the kombu fix installed, late acks, reject on worker loss,
    prefetch 1, JSON only, no results, reconnect forever, our own logging; one Redis client per
    kombu channel (`broker_client`); no warning against root (`root_by_design`)."""
    broker_fix.install()
    broker_client.install()
    root_by_design()
    app = Celery(name, broker=settings.redis_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        worker_send_task_events=False,
        worker_hijack_root_logger=False,
        broker_transport_options=TRANSPORT_OPTIONS,
    )
    return app


def create_celery(settings: WorkerSettings) -> Celery:
    app = base_celery("dizest", settings)
    app.conf.update(
        task_default_queue=settings.queue,
        task_time_limit=settings.task_time_limit_s,
        broker_transport_options={
            **TRANSPORT_OPTIONS,
            "visibility_timeout": settings.visibility_timeout_s,
        },
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    app.conf.dizest_settings = settings
    from dizest_worker import liveness, tasks

    tasks.register(app)
    liveness.install(app)
    return app


@contextmanager
def _producer(app: Celery) -> Iterator[object]:
    with app.producer_or_acquire() as producer:
        yield producer


ARGSREPR = "[flow tasks]"  # what Celery's task events and logs show for a flow message's args


def make_enqueue(app: Celery) -> Enqueue:
    """Send flow tasks by name, each to its queue at its level, over one producer connection
    (most urgent level first: a consumer waiting on the queue takes the first one sent)."""

    def enqueue(tasks: list[tuple[FlowTask, str]], countdown: float) -> None:
        groups: dict[tuple[str, str], list[FlowTask]] = {}
        for task, queue in tasks:
            groups.setdefault((task.run_id, queue), []).append(task)
        with _producer(app) as producer:
            for (_, queue), group in groups.items():
                for chunk in chunked(group):
                    payload = chunk[0].encode() if len(chunk) == 1 else [t.encode() for t in chunk]
                    app.send_task(
                        RUN_FLOW,
                        args=[payload],
                        queue=queue,
                        producer=producer,
                        countdown=countdown or None,
                        priority=chunk[0].level,
                        # Celery's own repr of the args for its logs: a third of a wide
                        # submit's time (saferepr of every task), and nothing reads it
                        argsrepr=ARGSREPR,
                        kwargsrepr="{}",
                    )

    return enqueue


def root_by_design() -> None:
    """Keep Celery's warning against a worker with superuser privileges ("absolutely not
    recommended!") out of the log of a dizest worker, root so that each flow runs as a uid of
    its own (docs/security.md), and of the beat a root `dizest serve` starts beside it (JSON
    only: Celery refuses pickle as root, whatever this filter says)."""
    import warnings

    from celery.exceptions import SecurityWarning

    warnings.filterwarnings("ignore", "You're running the worker with superuser", SecurityWarning)
