"""What automation code outside a request needs (the tasks of `dizest beat`, the run-end
listener): stores and a submitting client, built once per process from the app's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dizest_api.automation.hooks import HookStore
from dizest_api.automation.schedules import ScheduleStore
from dizest_api.automation.settings import AutomationSettings
from dizest_api.data.accounts import Accounts, UserNotFound, text_client
from dizest_api.data.library import Library, StoredWorkflow
from dizest_api.data.run_index import RunIndex, run_status
from dizest_worker.client import WorkerSettings
from dizest_worker.keys import Keys


@dataclass
class Runtime:
    settings: WorkerSettings
    auto: AutomationSettings
    redis: Any  # text client
    schedules: ScheduleStore
    hooks: HookStore
    library: Library
    accounts: Accounts
    index: RunIndex
    celery: Any
    _client: Any = None

    @classmethod
    def build(cls, celery: Any) -> Runtime:
        settings: WorkerSettings = celery.conf.dizest_settings
        redis, keys = text_client(settings), Keys(settings.prefix)
        auto: AutomationSettings = celery.conf.dizest_automation
        return cls(
            settings,
            auto,
            redis,
            ScheduleStore(redis, settings.prefix, celery, auto.max_schedules_per_user),
            HookStore(redis, settings.prefix),
            Library(redis, keys),
            Accounts(redis, keys),
            RunIndex(redis, settings),
            celery,
        )

    @property
    def client(self) -> Any:
        """A dizest_worker Client sending flow tasks through this (automation) Celery app, so
        the flow workers' Celery app and its liveness signals never load in this process."""
        if self._client is None:
            from dizest_worker.client import Client

            self._client = Client(self.settings, celery_app=self.celery)
        return self._client

    def status_of(self, run_id: str) -> str | None:
        return run_status(self.client, run_id)

    def may_run(self, username: str, wf: StoredWorkflow) -> str | None:
        """None if `username` may run `wf` now; otherwise why not (for the tick's record)."""
        from dizest_api.routes.workflows import RIGHTS  # the one table of grant rights

        try:
            user = self.accounts.get_user(username)
        except UserNotFound:
            return f"owner {username!r} no longer exists"
        if user.is_admin or wf.owner == username:
            return None
        level = self.library.level(wf, username)
        if level is None or "run" not in RIGHTS[level]:
            return f"owner {username!r} may no longer run workflow {wf.id!r}"
        return None


_RUNTIMES: dict[int, Runtime] = {}


def runtime(celery: Any) -> Runtime:
    if id(celery) not in _RUNTIMES:
        _RUNTIMES[id(celery)] = Runtime.build(celery)
    return _RUNTIMES[id(celery)]
