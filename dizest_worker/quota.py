"""The error of a run refused for its user's Redis quota: raised where the run would be made
(`state.RedisRuns.create`, atomically in CREATE) and by the service before it reads a submit
(`dizest_api.data.run_quota`, which says what counts); and what Redis spends beyond the bytes a
run stores, which the Lua steps count too.

Measured with Redis 7.0 (`MEMORY USAGE` of every key of a run, against the bytes stored): a
no-op run's six keys took 6,088 bytes for 1,114 stored; 2,000 log lines of 200 characters
810,884 for 685,144 (63 bytes a stream entry, the listpack nodes' rounding growing with the
entry); 10,000 short lines 1,812,676 for 1,460,013 (35 a line). Counting only the bytes let a
user's runs hold 1.2-5.5x their quota of Redis."""

from __future__ import annotations

from dizest_core.errors import InputError
from dizest_worker.settings import WorkerSettings

RUN_COST = 5120  # bytes a run's keys take in Redis beyond what they hold
EVENT_COST = 48  # bytes a stream entry takes beyond its body, plus an eighth of the body


class RunsQuota(InputError):
    """A new run refused: its user's runs hold their Redis quota (`dizest_api.data.run_quota`)."""


def quota_error(held: int, settings: WorkerSettings) -> RunsQuota:
    quota, ttl_s = settings.run_quota_bytes, settings.ttl_s
    return RunsQuota(
        "quota_runs",
        f"your runs hold {held} bytes, your quota is {quota}: new runs are refused until older "
        f"ones expire (DIZEST_TTL_S, {ttl_s} s after they started)",
        {"bytes": held, "quota_bytes": quota, "ttl_s": ttl_s},
    )
