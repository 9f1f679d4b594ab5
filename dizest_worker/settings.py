"""Worker settings: one frozen dataclass, parsed and checked once from DIZEST_* variables.

The engine's own settings (concurrency, limits, plugins) stay in `dizest_core.settings.Settings`
and are carried as `engine`; both are read from (and written to) the same DIZEST_* variables by
`dizest_core.envconfig`.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

from dizest_core import envconfig
from dizest_core.envconfig import above, at_least, matching
from dizest_core.errors import ConfigError
from dizest_core.options import QUEUE_NAME, QUEUE_RULE
from dizest_core.settings import MAX_SECONDS, UID_STRIDE, Settings

PATH = envconfig.spec(path=True)  # read as an absolute path
# a worker's name: Celery's hostname, the key of its heartbeat and the head of its holder ids
WORKER_NAME = re.compile(r"[!-~]{1,255}")


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
    # how long a run lives in Redis (at least 1 s: EXPIRE 0 would delete at once)
    ttl_s: int = field(default=7 * 24 * 3600, metadata=at_least(1, MAX_SECONDS))
    # what the live runs of one user may hold in Redis (dizest_api.data.run_quota)
    run_quota_bytes: int = field(default=1 << 30, metadata=at_least(1))
    # unfinished runs of one user: a submit, rerun or trigger past it answers 429, a schedule's
    # tick records why it did not run (the API's and the beat's rule alike)
    max_runs_per_user: int = field(default=100, metadata=at_least(1))
    # a hard cap on the flows the runs of one user run at once over the whole cluster, above
    # their fair share of the live worker slots (dizest_worker.fair_share); 0: none, the share
    # alone (a user alone may then use every slot). Past it a claim parks the flow.
    user_flow_slots: int = field(default=0, metadata=at_least(0))
    # `api` calls of one user's running at once over the cluster (0: no limit): each holds a
    # worker slot while it runs, as a flow does (dizest_worker.apicalls.call)
    user_api_calls: int = field(default=4, metadata=at_least(0))
    # A running attempt's lease, renewed every lease_s / 3 by its worker. Once it has expired,
    # a reaper takes the attempt over at once if the process that claimed it is no longer
    # connected to Redis (killed: liveness.connected), else lease_grace_s later (stalled).
    lease_s: float = field(default=3.0, metadata=above(0, MAX_SECONDS))
    # lease + grace: the 10 s a lease lasted before
    lease_grace_s: float = field(default=7.0, metadata=at_least(0, MAX_SECONDS))
    reaper_interval_s: float = field(default=0.5, metadata=above(0, MAX_SECONDS))
    # how often a reaper deletes the files of expired runs
    files_interval_s: float = field(default=3600.0, metadata=above(0, MAX_SECONDS))
    max_attempts: int = field(default=3, metadata=at_least(1))
    # every flow's default timeout, and its upper bound
    max_flow_timeout_s: float = field(default=24 * 3600, metadata=above(0, MAX_SECONDS))
    # Celery's hard time limit is max_flow_timeout_s + this
    task_slack_s: float = field(default=300.0, metadata=above(0, MAX_SECONDS))
    # events kept per run; MAXLEN 0 would drop every event, logs and results with them
    stream_maxlen: int = field(default=100_000, metadata=at_least(1))
    queue: str = field(default="dizest", metadata=matching(QUEUE_NAME, QUEUE_RULE))
    # flows one worker process runs at once (freed children run here); an engine has
    # UID_STRIDE slots
    local_slots: int = field(default=1, metadata=at_least(1, UID_STRIDE))
    worker_name: str = field(
        default_factory=lambda: f"dizest@{socket.gethostname()}",
        metadata=matching(WORKER_NAME, "1-255 visible ASCII characters (no space)"),
    )
    # per client pool; callers beyond it wait for a connection
    redis_max_connections: int = field(default=64, metadata=at_least(1))
    redis_pool_timeout_s: float = field(default=20.0, metadata=above(0, MAX_SECONDS))
    engine: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        envconfig.check(self)
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
