"""The services one API process holds, kept in `app.extensions["dizest"]`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from flask import current_app

from dizest_api import partials
from dizest_api.data.accounts import Accounts
from dizest_api.data.library import Library
from dizest_api.data.run_index import RunIndex
from dizest_api.drives import finish_removals
from dizest_api.settings import ApiSettings
from dizest_core.plugins import PluginRegistry


@dataclass(frozen=True)
class Services:
    settings: ApiSettings
    redis: Any  # the text client accounts and library share
    accounts: Accounts
    library: Library
    plugins: PluginRegistry
    client: Any  # dizest_worker.client.Client: runs (submit, events, cancel)

    @cached_property
    def run_index(self) -> RunIndex:
        """Who owns which run: one per process (it keeps the claims it has read)."""
        return RunIndex(self.redis, self.settings.worker)

    def bootstrap(self) -> str | None:
        """Create the first admin if there is none; return its generated password, if any.
        Also finish deleting the drives of removed users that a crash left half deleted, and
        delete the half-written uploads a crash left."""
        finish_removals(self.settings.worker.drive_root)
        partials.sweep(self.settings.worker.drive_root)
        return self.accounts.ensure_admin(self.settings.admin_password)


def services() -> Services:
    found: Services = current_app.extensions["dizest"]
    return found
