"""The automation stores one API process holds, in `app.extensions["dizest.automation"]`:
installed by `install(app, settings)` (tests pass their own settings), or built on first use
from the app's settings and DIZEST_* variables."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app

from dizest_api.automation.celery_app import create_automation_celery
from dizest_api.automation.hooks import HookNotFound, HookStore
from dizest_api.automation.schedules import ScheduleNotFound, ScheduleStore
from dizest_api.automation.settings import AutomationSettings
from dizest_api.automation.triggers import TriggerNotFound, TriggerStore
from dizest_worker.client import WorkerSettings

KEY = "dizest.automation"


@dataclass(frozen=True)
class Automation:
    settings: AutomationSettings
    celery: Any  # the automation Celery app: redbeat entries are written through it
    schedules: ScheduleStore
    hooks: HookStore
    triggers: TriggerStore


def build(redis: Any, worker: WorkerSettings, settings: AutomationSettings) -> Automation:
    """The stores on `redis` (a text client) for the cluster of `worker`."""
    celery = create_automation_celery(worker, settings)
    return Automation(
        settings,
        celery,
        ScheduleStore(redis, worker.prefix, celery, settings.max_schedules_per_user),
        HookStore(redis, worker.prefix),
        TriggerStore(redis, worker.prefix),
    )


def install(app: Flask, settings: AutomationSettings) -> Automation:
    found = app.extensions["dizest"]
    built = app.extensions[KEY] = build(found.redis, found.settings.worker, settings)
    return built


def automation() -> Automation:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get(KEY)
    return found if found is not None else install(app, AutomationSettings.from_env())


def drop_made_by(found: Automation, workflow_id: str, users: set[str]) -> None:
    """What `users` made on a workflow (schedules, triggers, webhooks scoped to it): gone with
    their right to run it, so they no longer run it, hear of its runs, or hold its places."""
    gone = contextlib.suppress(ScheduleNotFound, HookNotFound, TriggerNotFound)  # meanwhile
    for user in sorted(users):
        for sched in found.schedules.find(user, workflow_id):
            with gone:
                found.schedules.delete(sched.id)
        for hook in found.hooks.owned(user):
            if hook.workflow_id == workflow_id:
                with gone:
                    found.hooks.delete(hook.id)
    for trig in found.triggers.for_workflow(workflow_id):
        if trig.owner in users:
            with gone:
                found.triggers.delete(trig.id)
