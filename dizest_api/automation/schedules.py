"""Schedules: a stored workflow run on a cron expression (with a time zone), with inputs and
options, as its owner; enabled or disabled; `catchup` says what a tick missed while no beat ran
becomes: `once` (one run when a beat is back, however many ticks were missed) or `skip`.

Invariants:
- The schedule's record (`{p}:sched:{id}`) is the truth; redbeat's entry (`{p}:redbeat:{id}`)
  exists exactly while the schedule is enabled and is rewritten from the record on each change.
- The record, its indexes and the entry change in one transaction: a create in `add_within`'s,
  a delete in one MULTI, an update in a transaction watching the record (and the entry), so a
  delete between an update's read and its write makes the update start again and find nothing
  (ScheduleNotFound, 404). Writing the record back after it was deleted left a live schedule
  that no list, quota or workflow delete could see (a probe's PATCH racing a DELETE).
- An entry starts with `last_run_at` = now: a new or re-enabled schedule fires at its next cron
  time, never at once for ticks before it existed (or while it was disabled).
- Nothing is stored unless the cron, zone and catchup are valid (`cron.zoned`).
- A workflow holds at most `counted.MAX_PER_SCOPE` schedules and a user at most
  `max_per_user` (DIZEST_MAX_SCHEDULES_PER_USER) over all workflows: each is a tick that the
  one firing beat sends, and a probe's 4,000 every-minute schedules (40 workflows x 100) took
  it 30 s a minute to send, for one user.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from dizest_api.automation.celery_app import TICK, Entry
from dizest_api.automation.cron import CronError, next_after, zoned
from dizest_api.automation.keys import AutoKeys
from dizest_api.data.counted import add_within
from dizest_api.ids import new_id
from dizest_core.errors import DizestError

CATCHUP = ("once", "skip")
HISTORY = 100  # tick records kept per schedule


class ScheduleNotFound(DizestError, LookupError):
    """No schedule with this id."""


@dataclass(frozen=True)
class Schedule:
    id: str
    workflow_id: str
    owner: str
    cron: str
    timezone: str
    inputs: dict[str, Any]
    options: dict[str, Any]
    enabled: bool
    catchup: str
    created_at: float
    updated_at: float

    def to_dict(self, celery: Any = None) -> dict[str, Any]:
        out = asdict(self)
        if celery is not None and self.enabled:
            fire = next_after(zoned(self.cron, self.timezone, celery), datetime.now(UTC))
            out["next_run_at"] = fire.isoformat()
        return out


class ScheduleStore:
    def __init__(self, redis: Any, prefix: str, celery: Any, max_per_user: int = 200) -> None:
        self.redis, self.keys, self.celery = redis, AutoKeys(prefix), celery
        self.max_per_user = max_per_user

    def create(self, owner: str, workflow_id: str, **fields: Any) -> Schedule:
        now = time.time()
        sched = _checked(
            Schedule(
                id=new_id(),
                workflow_id=workflow_id,
                owner=owner,
                cron=fields["cron"],
                timezone=fields.get("timezone") or "UTC",
                inputs=dict(fields.get("inputs") or {}),
                options=dict(fields.get("options") or {}),
                enabled=bool(fields.get("enabled", True)),
                catchup=fields.get("catchup") or "once",
                created_at=now,
                updated_at=now,
            ),
            self.celery,
        )
        index, owned = self.keys.workflow_schedules(workflow_id), self.keys.owner_schedules(owner)
        self._index_owners()

        def write(pipe: Any) -> None:
            pipe.hset(self.keys.schedule(sched.id), mapping=_fields(sched))
            for key in (self.keys.schedules, index, owned):
                pipe.zadd(key, {sched.id: int(now * 1000)})
            self._sync_on(pipe, sched, None)

        per_user = [(owned, f"user {owner}", self.max_per_user)]
        add_within(self.redis, index, "schedules", f"workflow {workflow_id}", write, also=per_user)
        return sched

    def get(self, sid: str) -> Schedule:
        raw = self.redis.hgetall(self.keys.schedule(sid))
        if not raw:
            raise ScheduleNotFound(f"no schedule {sid!r}")
        return _schedule(sid, raw)

    def find(self, owner: str | None = None, workflow_id: str | None = None) -> list[Schedule]:
        key = self.keys.workflow_schedules(workflow_id) if workflow_id else self.keys.schedules
        found = []
        for sid in self.redis.zrevrange(key, 0, -1):
            raw = self.redis.hgetall(self.keys.schedule(sid))
            if raw and (owner is None or raw.get("owner") == owner):
                found.append(_schedule(sid, raw))
        return found

    def update(self, sid: str, changes: Mapping[str, Any]) -> Schedule:
        """The schedule with `changes`, written with its entry unless it was deleted meanwhile
        (ScheduleNotFound: see the module docstring)."""
        key, entry_key = self.keys.schedule(sid), Entry.generate_key(self.celery, sid)

        def step(pipe: Any) -> Schedule:
            raw = pipe.hgetall(key)
            if not raw:
                raise ScheduleNotFound(f"no schedule {sid!r}")
            old = _schedule(sid, raw)
            new = _checked(
                Schedule(**{**asdict(old), **changes, "updated_at": time.time()}), self.celery
            )
            last_run_at = None  # a schedule enabled again starts from now
            if old.enabled:  # the same last run when only the definition changed
                last_run_at = Entry.decode_meta(pipe.hget(entry_key, "meta"))["last_run_at"]
            pipe.multi()
            pipe.hset(key, mapping=_fields(new))
            self._sync_on(pipe, new, last_run_at)
            return new

        found: Schedule = self.redis.transaction(step, key, entry_key, value_from_callable=True)
        return found

    def delete(self, sid: str) -> None:
        sched = self.get(sid)
        pipe = self.redis.pipeline()  # MULTI: the record, its places and its entry at once
        Entry.delete_on(pipe, self.celery, sid)
        pipe.delete(self.keys.schedule(sid), self.keys.history(sid))
        pipe.zrem(self.keys.schedules, sid)
        pipe.zrem(self.keys.workflow_schedules(sched.workflow_id), sid)
        pipe.zrem(self.keys.owner_schedules(sched.owner), sid)
        pipe.execute()

    def delete_for_workflow(self, workflow_id: str) -> None:
        for sid in self.redis.zrange(self.keys.workflow_schedules(workflow_id), 0, -1):
            try:
                self.delete(sid)
            except ScheduleNotFound:
                self.redis.zrem(self.keys.workflow_schedules(workflow_id), sid)

    def _index_owners(self) -> None:
        """Give the schedules made before the per-user limit their place in their owner's index
        (`{p}:scheds:owner:{name}`), once per deployment: in one transaction watching `{p}:scheds`,
        which every create and delete changes, so none is indexed after its delete."""
        done = self.keys.migrated("owner-index")
        if self.redis.exists(done):
            return

        def step(pipe: Any) -> None:
            sids = pipe.zrange(self.keys.schedules, 0, -1, withscores=True)
            reads = self.redis.pipeline(transaction=False)  # one round trip, off the WATCH
            for sid, _ in sids:
                reads.hget(self.keys.schedule(sid), "owner")
            owners = reads.execute()
            pipe.multi()
            for (sid, score), owner in zip(sids, owners, strict=True):
                if owner:
                    pipe.zadd(self.keys.owner_schedules(owner), {sid: score})
            pipe.set(done, "1")

        self.redis.transaction(step, self.keys.schedules)

    def record(self, sid: str, item: Mapping[str, Any]) -> None:
        """Add a tick record (`{tick, run_id}`, `{tick, error}` or `{tick, skipped}`)."""
        pipe = self.redis.pipeline()
        pipe.lpush(self.keys.history(sid), json.dumps({"at": _iso(time.time()), **item}))
        pipe.ltrim(self.keys.history(sid), 0, HISTORY - 1)
        pipe.execute()

    def history(self, sid: str, limit: int = HISTORY) -> list[dict[str, Any]]:
        return [json.loads(raw) for raw in self.redis.lrange(self.keys.history(sid), 0, limit - 1)]

    def entry(self, sid: str) -> Entry:
        """redbeat's entry of an enabled schedule (KeyError when there is none)."""
        return Entry.from_key(Entry.generate_key(self.celery, sid), app=self.celery)

    def _sync_on(self, pipe: Any, new: Schedule, last_run_at: datetime | None) -> None:
        """Queue on `pipe` what makes redbeat's entry match the record: none while disabled; one
        whose last run is `last_run_at`, or now (a new or re-enabled schedule) when None."""
        if not new.enabled:
            Entry.delete_on(pipe, self.celery, new.id)
            return
        kwargs = {
            "schedule_id": new.id,
            "cron": new.cron,
            "timezone": new.timezone,
            "catchup": new.catchup,
        }
        entry = Entry(
            name=new.id,
            task=TICK,
            schedule=zoned(new.cron, new.timezone, self.celery),
            kwargs=kwargs,
            app=self.celery,
        )
        if last_run_at is None:
            Entry.delete_on(pipe, self.celery, new.id)  # so that its meta is written anew
            last_run_at = self.celery.now()
        entry.last_run_at = last_run_at
        entry.save_on(pipe)


MAX_INPUT_BYTES = 64 * 1024  # a schedule's inputs, stored for its life (a run's are 10 MB)


def _checked(sched: Schedule, celery: Any) -> Schedule:
    zoned(sched.cron, sched.timezone, celery)
    if sched.catchup not in CATCHUP:
        raise CronError(f"catchup must be one of {', '.join(CATCHUP)}", {"catchup": sched.catchup})
    size = len(json.dumps(sched.inputs, ensure_ascii=False).encode())
    if size > MAX_INPUT_BYTES:
        raise CronError(
            f"a schedule's inputs hold at most {MAX_INPUT_BYTES} bytes of JSON, not {size}: "
            "pass large data as a file in your drive",
            {"limit": "max_input_bytes", "max": MAX_INPUT_BYTES, "size": size},
        )
    return sched


def _fields(sched: Schedule) -> dict[str, str]:
    out = {k: str(v) for k, v in asdict(sched).items() if k != "id"}
    out.update(
        inputs=json.dumps(sched.inputs),
        options=json.dumps(sched.options),
        enabled="1" if sched.enabled else "0",
    )
    return out


def _schedule(sid: str, raw: Mapping[str, str]) -> Schedule:
    return Schedule(
        id=sid,
        workflow_id=raw["workflow_id"],
        owner=raw["owner"],
        cron=raw["cron"],
        timezone=raw["timezone"],
        inputs=json.loads(raw["inputs"]),
        options=json.loads(raw["options"]),
        enabled=raw["enabled"] == "1",
        catchup=raw["catchup"],
        created_at=float(raw["created_at"]),
        updated_at=float(raw["updated_at"]),
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()
