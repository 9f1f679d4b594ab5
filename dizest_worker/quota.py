"""The error of a run refused for its user's Redis quota: raised where the run would be made
(`state.RedisRuns.create`, atomically in CREATE) and by the service before it reads a submit
(`dizest_api.data.run_quota`, which says what counts)."""

from __future__ import annotations

from dizest_core.errors import InputError
from dizest_worker.settings import WorkerSettings


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
