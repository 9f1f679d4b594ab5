"""Celery tasks, registered by name; thin: decode the message, hand it to the process's Executor.

Each pool process (or thread, with `--pool threads`) builds its own Executor (Redis connections,
zygote) on first use, after the fork, so nothing is inherited across fork or shared by threads. A malformed payload is logged and dropped (acked), never
retried in a loop.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Any

from celery import Celery

from dizest_worker.messages import InvalidTask, decode_tasks
from dizest_worker.orchestration import Executor

log = logging.getLogger("dizest.worker")
_executors: dict[tuple[int, int], Executor] = {}


def executor(app: Celery) -> Executor:
    """This process's (and, in a thread pool, this thread's) Executor."""
    pid = (os.getpid(), threading.get_ident())
    if pid not in _executors:
        from dizest_worker.celery_app import make_enqueue
        from dizest_worker.connection import redis_client

        settings = app.conf.dizest_settings
        queues = app.conf.get("dizest_queues") or [settings.queue]
        client = redis_client(settings, single=True)  # this thread's alone
        ex = Executor(settings, client, make_enqueue(app), queues)
        _executors[pid] = ex
        atexit.register(ex.close)
    return _executors[pid]


def register(app: Celery) -> None:
    from dizest_worker.messages import RUN_FLOW

    @app.task(name=RUN_FLOW, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
    def run_flow(payload: Any) -> None:
        try:
            tasks = decode_tasks(payload)
        except InvalidTask as exc:
            log.error("rejected malformed flow task %r: %s", payload, exc)
            return
        executor(app).handle(tasks)

    from dizest_worker import apicalls

    # a call reads the run and writes nothing: acked early, never redelivered (its caller
    # would have stopped waiting), and dropped by the broker once nobody waits (`expires`)
    @app.task(name=apicalls.API_CALL, ignore_result=True)
    def api_call(payload: Any) -> None:
        try:
            task = apicalls.CallTask.decode(payload)
        except apicalls.InvalidCall as exc:
            log.error("rejected malformed api call %r: %s", payload, exc)
            return
        apicalls.answer(executor(app), task)
