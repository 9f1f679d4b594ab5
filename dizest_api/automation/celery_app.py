"""The automation Celery app: schedule ticks and webhook deliveries, on a queue of their own
(`{DIZEST_QUEUE}.automation`) that only `dizest beat` consumes, and redbeat's configuration.

It is a separate app from the flow workers' (`dizest_worker.celery_app`): building that one
installs the flow workers' liveness signals, and a `dizest beat` process must never count as a
worker that can take a flow. Runs are still submitted with `dizest_worker.client.Client`, given
this app to send the flow tasks with (by name, to the flow queues).
"""

from __future__ import annotations

import json
from typing import Any

from celery import Celery
from redbeat.decoder import RedBeatJSONEncoder
from redbeat.schedulers import RedBeatSchedulerEntry, ensure_conf

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
    ensure_conf(app)  # app.redbeat_conf: entry keys are known before any entry is made
    return app


class Entry(RedBeatSchedulerEntry):
    """A redbeat entry whose crontab is rebuilt with its time zone when loaded: redbeat stores
    a crontab's fields only, so the zone (and the expression) travel in the entry's kwargs.

    `save_on` and `delete_on` queue redbeat's own `save` and `delete` commands on the caller's
    transaction, so that a schedule's record and its entry change together (`schedules`)."""

    def save_on(self, pipe: Any) -> None:
        """Queue `save` on `pipe`: the definition, the meta unless it exists, the due time."""
        definition = {
            "name": self.name,
            "task": self.task,
            "args": self.args,
            "kwargs": self.kwargs,
            "options": self.options,
            "schedule": self.schedule,
            "enabled": self.enabled,
        }
        meta = {"last_run_at": self.last_run_at}
        pipe.hset(self.key, "definition", json.dumps(definition, cls=RedBeatJSONEncoder))
        pipe.hsetnx(self.key, "meta", json.dumps(meta, cls=RedBeatJSONEncoder))
        pipe.zadd(self.app.redbeat_conf.schedule_key, {self.key: self.score})

    @classmethod
    def delete_on(cls, pipe: Any, app: Any, name: str) -> None:
        """Queue `delete` of the entry `name` on `pipe`."""
        key = cls.generate_key(app, name)
        pipe.zrem(app.redbeat_conf.schedule_key, key)
        pipe.delete(key)

    @classmethod
    def from_key(cls, key: str, app: Any = None) -> Entry:
        entry: Entry = super().from_key(key, app=app)
        kwargs = entry.kwargs or {}
        if "cron" in kwargs:
            entry.schedule = zoned(kwargs["cron"], kwargs.get("timezone", "UTC"), entry.app)
        return entry
