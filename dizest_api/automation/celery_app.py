"""The automation Celery app: schedule ticks and webhook deliveries, on a queue of their own
(`{DIZEST_QUEUE}.automation`) that only `dizest beat` consumes, and redbeat's configuration.

It is a separate app from the flow workers' (`dizest_worker.celery_app`): building that one
installs the flow workers' liveness signals, and a `dizest beat` process must never count as a
worker that can take a flow. Runs are still submitted with `dizest_worker.client.Client`, given
this app to send the flow tasks with (by name, to the flow queues).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from redbeat.schedulers import RedBeatSchedulerEntry

from dizest_api.automation.cron import zoned
from dizest_api.automation.keys import AutoKeys
from dizest_api.automation.settings import AutomationSettings
from dizest_core.options import AUTOMATION_SUFFIX
from dizest_worker.client import WorkerSettings, celery_base

TICK = "dizest.schedule_tick"
DELIVER = "dizest.deliver_hook"


def automation_queue(settings: WorkerSettings) -> str:
    return f"{settings.queue}{AUTOMATION_SUFFIX}"  # no flow's queue option may name it


def create_automation_celery(settings: WorkerSettings, auto: AutomationSettings) -> Celery:
    app = celery_base("dizest-automation", settings)  # with the flow workers' kombu fix
    app.conf.update(
        task_default_queue=automation_queue(settings),
        timezone="UTC",
        enable_utc=True,
        beat_max_loop_interval=auto.beat_interval_s,
        redbeat_redis_url=settings.redis_url,
        redbeat_redis_options={},
        redbeat_key_prefix=AutoKeys(settings.prefix).redbeat_prefix,
        redbeat_lock_timeout=max(30, int(auto.beat_interval_s * 5)),
    )
    app.conf.dizest_settings = settings
    app.conf.dizest_automation = auto
    from dizest_api.automation import tasks as automation_tasks

    automation_tasks.register(app)
    return app


class Entry(RedBeatSchedulerEntry):
    """A redbeat entry whose crontab is rebuilt with its time zone when loaded: redbeat stores
    a crontab's fields only, so the zone (and the expression) travel in the entry's kwargs."""

    @classmethod
    def from_key(cls, key: str, app: Any = None) -> Entry:
        entry: Entry = super().from_key(key, app=app)
        kwargs = entry.kwargs or {}
        if "cron" in kwargs:
            entry.schedule = zoned(kwargs["cron"], kwargs.get("timezone", "UTC"), entry.app)
        return entry
