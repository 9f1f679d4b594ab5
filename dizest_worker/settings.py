"""Worker settings: one frozen dataclass, parsed and checked once from DIZEST_* variables.

The engine's own settings (concurrency, limits, plugins) stay in `dizest_core.settings.Settings`
and are carried as `engine`; both are read from (and written to) the same DIZEST_* variables by
`dizest_core.envconfig`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from dizest_core import envconfig
from dizest_core.errors import ConfigError
from dizest_core.settings import Settings

PATH = envconfig.spec(path=True)  # read as an absolute path


@dataclass(frozen=True)
class WorkerSettings:
    """Everything a worker, the reaper and the client need to share a cluster through Redis."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    prefix: str = "dz"
    artifact_dir: str = field(
        metadata=PATH, default_factory=lambda: os.path.abspath(".dizest/artifacts")
    )
    workdir_root: str = field(
        metadata=PATH, default_factory=lambda: os.path.abspath(".dizest/runs")
    )
    # users' drives (dizest_api.drives), read-only to their runs; shared like artifact_dir
    drive_root: str = field(
        metadata=PATH, default_factory=lambda: os.path.abspath(".dizest/drives")
    )
    ttl_s: int = 7 * 24 * 3600
    # what the live runs of one user may hold in Redis (dizest_api.data.run_quota)
    run_quota_bytes: int = 1 << 30
    # unfinished runs of one user: a submit, rerun or trigger past it answers 429, a schedule's
    # tick records why it did not run (the API's and the beat's rule alike)
    max_runs_per_user: int = 100
    # a hard cap on the flows the runs of one user run at once over the whole cluster, above
    # their fair share of the live worker slots (dizest_worker.fair_share); 0: none, the share
    # alone (a user alone may then use every slot). Past it a claim parks the flow.
    user_flow_slots: int = 0
    # `api` calls of one user's running at once over the cluster (0: no limit): each holds a
    # worker slot while it runs, as a flow does (dizest_worker.apicalls.call)
    user_api_calls: int = 4
    # A running attempt's lease, renewed every lease_s / 3 by its worker. Once it has expired,
    # a reaper takes the attempt over at once if the process that claimed it is no longer
    # connected to Redis (killed: liveness.connected), else lease_grace_s later (stalled).
    lease_s: float = 3.0
    lease_grace_s: float = 7.0  # lease + grace: the 10 s a lease lasted before
    reaper_interval_s: float = 0.5
    files_interval_s: float = 3600.0  # how often a reaper deletes the files of expired runs
    max_attempts: int = 3
    max_flow_timeout_s: float = 24 * 3600  # every flow's default timeout, and its upper bound
    task_slack_s: float = 300.0  # Celery's hard time limit is max_flow_timeout_s + this
    stream_maxlen: int = 100_000
    queue: str = "dizest"
    local_slots: int = 1  # flows one worker process runs at once (freed children run here)
    worker_name: str = field(default_factory=lambda: f"dizest@{socket.gethostname()}")
    redis_max_connections: int = 64  # per client pool; callers beyond it wait for a connection
    redis_pool_timeout_s: float = 20.0
    engine: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        if self.run_quota_bytes < 1:
            raise ConfigError("DIZEST_RUN_QUOTA_BYTES must be at least 1")
        if self.max_runs_per_user < 1:
            raise ConfigError("DIZEST_MAX_RUNS_PER_USER must be at least 1")
        if self.user_flow_slots < 0 or self.user_api_calls < 0:
            raise ConfigError(
                "DIZEST_USER_FLOW_SLOTS and DIZEST_USER_API_CALLS must be 0 (no limit) or more"
            )
        if self.lease_s <= 0 or self.reaper_interval_s <= 0 or self.files_interval_s <= 0:
            raise ConfigError("lease_s, reaper_interval_s and files_interval_s must be positive")
        if self.lease_grace_s < 0:
            raise ConfigError("lease_grace_s must not be negative")
        if self.ttl_s < 1 or self.max_flow_timeout_s <= 0 or self.task_slack_s <= 0:
            raise ConfigError("ttl_s, max_flow_timeout_s and task_slack_s must be positive")
        if self.redis_max_connections < 1 or self.redis_pool_timeout_s <= 0:
            raise ConfigError("redis_max_connections and redis_pool_timeout_s must be positive")
        if self.max_attempts < 1 or self.local_slots < 1:
            raise ConfigError("max_attempts and local_slots must be at least 1")
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            from dizest_worker.connection import redact_url  # it imports this module

            shown = redact_url(self.redis_url)  # a malformed URL may still hold a password
            raise ConfigError(f"DIZEST_REDIS_URL must be a redis:// URL, not {shown!r}")

    @property
    def visibility_timeout_s(self) -> int:
        """Broker redelivery delay for unacknowledged tasks: above the longest allowed flow."""
        return int(self.max_flow_timeout_s + 600)

    @property
    def task_time_limit_s(self) -> int:
        """Celery's hard time limit per task: only a backstop above our own flow timeouts."""
        return int(self.max_flow_timeout_s + self.task_slack_s)

    @property
    def local_budget_s(self) -> float:
        """How long after its start a task may still be running flows: a flow it would run
        locally (a freed child, the rest of a batch) that could end later is enqueued instead,
        so a task stops well (half the slack) before Celery's hard time limit kills it."""
        return self.max_flow_timeout_s + self.task_slack_s / 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WorkerSettings:
        return envconfig.from_env(cls, environ)
