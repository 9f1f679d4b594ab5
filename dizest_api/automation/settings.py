"""Automation settings: one frozen dataclass, parsed once from DIZEST_* variables at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dizest_core import envconfig
from dizest_core.errors import ConfigError


@dataclass(frozen=True)
class AutomationSettings:
    """What schedules, webhooks and triggers need beyond the worker settings."""

    # Webhook URLs resolving to loopback, private, link-local or metadata addresses are refused
    # unless the operator allows them (DIZEST_WEBHOOK_ALLOW_PRIVATE=true).
    webhook_allow_private: bool = False
    webhook_timeout_s: float = 10.0
    webhook_attempts: int = 6  # the first call and 5 retries
    webhook_backoff_s: float = 10.0  # retry n waits backoff * 2**(n-1)
    webhook_pending: int = 100  # one user's deliveries queued at once; past it, new ones dropped
    trigger_rate_per_min: int = 60  # default limit of a trigger's calls per minute
    beat_interval_s: float = 5.0  # longest sleep of the scheduler (new schedules seen within it)
    sweep_interval_s: float = 30.0  # how often ended runs whose end event was missed are found
    sweep_window_s: int = 24 * 3600  # how far back the sweep looks

    def __post_init__(self) -> None:
        if min(self.webhook_attempts, self.trigger_rate_per_min, self.webhook_pending) < 1:
            raise ConfigError(
                "DIZEST_WEBHOOK_ATTEMPTS, DIZEST_WEBHOOK_PENDING and DIZEST_TRIGGER_RATE_PER_MIN "
                "must be >= 1"
            )
        positive = (self.webhook_timeout_s, self.webhook_backoff_s, self.beat_interval_s)
        if min(positive) <= 0 or self.sweep_interval_s <= 0 or self.sweep_window_s < 60:
            raise ConfigError("automation intervals must be positive (sweep window >= 60 s)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AutomationSettings:
        return envconfig.from_env(cls, environ)
