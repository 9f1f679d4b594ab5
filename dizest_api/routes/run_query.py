"""Listing runs: one run's summary, and a page of a user's (or everyone's) runs, filtered.

The run index (`dizest_api.data.run_index`) orders runs by submit time and forgets them after the
run TTL, so a filtered page walks at most the runs that still exist, newest first, and counts
every match (the total a paginated list needs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dizest_api.auth import current
from dizest_api.data.run_index import RunIndex

RUN_FILTERS = {
    "status": "only runs with this status: pending, running, ready, error or cancelled (else 400)",
    "workflow_id": "only runs of this stored workflow",
    "owner": "only runs of this user (admins; others see their own, and with workflow_id the"
    " runs its owner made of a workflow shared with them)",
}
SHARED = (
    "1: instead of your own runs, those the owners of the workflows shared with you made of"
    " them (what your grants let you read)"
)
Pager = Callable[[int, int], tuple[list[str], int]]  # (offset, limit) -> (run ids, total)
SCAN_BATCH = 500


def summary(
    run_id: str, record: Mapping[str, Any] | None, info: Mapping[str, Any]
) -> dict[str, Any]:
    """What a run list shows of one run."""
    record = record or {}
    created, finished = record.get("created_at"), record.get("finished_at")
    return {
        "run_id": run_id,
        "status": record.get("status"),
        "created_at": float(created) if created else None,
        "finished_at": float(finished) if finished else None,
        "owner": info.get("owner"),
        "workflow_id": info.get("workflow_id"),
        "version": info.get("version"),  # of the workflow (None: not known, a package run)
        "origin": shown_origin(info),
    }


def shown_origin(info: Mapping[str, Any]) -> dict[str, Any] | None:
    """What started the run (None: its owner's submit), as the caller may see it: the
    schedule's, trigger's or source run's id only to the run's owner and admins (a grantee who
    reads the run sees none of the owner's schedules and triggers: their ids neither)."""
    origin = info.get("origin")
    if not isinstance(origin, dict):
        return None
    principal = current()
    if principal.is_admin or info.get("owner") == principal.username:
        return origin
    return {"kind": origin.get("kind"), "id": None}


def run_page(
    index: RunIndex,
    runs: Any,
    owner: str | None,
    wanted: Mapping[str, str],
    offset: int,
    limit: int,
    pager: Pager | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """(summaries, total) of `owner`'s runs (None: all; `pager`: the runs it pages through
    instead) whose summary matches `wanted`."""
    page: Pager = pager or (lambda start, count: index.page(owner, start, count))
    if not wanted:
        ids, total = page(offset, limit)
        found = ((i, runs.record(i)) for i in ids)
        return [summary(i, r, index.get(i) or {}) for i, r in found if r], total
    matches, start = [], 0
    while True:
        ids, total = page(start, SCAN_BATCH)
        for run_id in ids:
            record = runs.record(run_id)
            if record is None:
                continue  # expired
            item = summary(run_id, record, index.get(run_id) or {})
            if all(item.get(k) == v for k, v in wanted.items()):
                matches.append(item)
        start += SCAN_BATCH
        if start >= total or not ids:
            return matches[offset : offset + limit], len(matches)
