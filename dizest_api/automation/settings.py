"""Automation settings: one frozen dataclass, parsed once from DIZEST_* variables at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dizest_core import envconfig
from dizest_core.envconfig import above, at_least
from dizest_core.settings import MAX_SECONDS


@dataclass(frozen=True)
class AutomationSettings:
    """What schedules, webhooks and triggers need beyond the worker settings."""

    # Webhook URLs resolving to loopback, private, link-local or metadata addresses are refused
    # unless the operator allows them (DIZEST_WEBHOOK_ALLOW_PRIVATE=true).
    webhook_allow_private: bool = False
    webhook_timeout_s: float = field(default=10.0, metadata=above(0, MAX_SECONDS))
    # the first call and 5 retries
    webhook_attempts: int = field(default=6, metadata=at_least(1))
    # retry n waits backoff * 2**(n-1)
    webhook_backoff_s: float = field(default=10.0, metadata=above(0, MAX_SECONDS))
    # one user's deliveries queued at once; past it, new ones dropped
    webhook_pending: int = field(default=100, metadata=at_least(1))
    # default limit of a trigger's calls per minute
    trigger_rate_per_min: int = field(default=60, metadata=at_least(1))
    # longest sleep of the scheduler (new schedules seen within it)
    beat_interval_s: float = field(default=5.0, metadata=above(0, MAX_SECONDS))
    # how often ended runs whose end event was missed are found
    sweep_interval_s: float = field(default=30.0, metadata=above(0, MAX_SECONDS))
    # how far back the sweep looks
    sweep_window_s: int = field(default=24 * 3600, metadata=at_least(60, MAX_SECONDS))
    # One user's schedules over all workflows (each workflow holds at most 100): each is a tick
    # the one firing beat sends, so one user's cannot crowd out everyone's.
    max_schedules_per_user: int = field(default=200, metadata=at_least(1))

    def __post_init__(self) -> None:
        envconfig.check(self)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AutomationSettings:
        return envconfig.from_env(cls, environ)
