"""Who submitted which run through the service: the owner of each run, each user's runs, and
each user's runs not yet seen final (for the per-user limit). Keys: see `keys.py`.

The worker's own run record knows nothing of users; only the service writes here. A user's
submits pass the run limit one at a time (`submitting`). Each user's index forgets runs older
than the TTL before that user's next submit (`quota.prune`, which frees what they held in
Redis: every submit path calls it, through `check` or `prune`, before it claims its run), and
expires with the newest of them: it never holds more than the runs that still exist.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from typing import Any

from dizest_api.data.run_quota import RunQuota
from dizest_core.status import RUN_FINAL_VALUES
from dizest_worker.client import WorkerSettings
from dizest_worker.keys import Keys

OWNERS_KEPT = 4096  # runs whose claim one RunIndex keeps in memory (a few hundred bytes each)


def run_status(client: Any, run_id: str) -> str | None:
    """A run's status through a dizest_worker Client, None when it is gone (what `active`
    asks of each run)."""
    record = client.record(run_id)
    return None if record is None else str(record.get("status"))


class RunIndex:
    """Who owns which run (see the module docstring for the keys)."""

    def __init__(self, redis: Any, settings: WorkerSettings) -> None:
        self.redis, self.keys, self.ttl_s = redis, Keys(settings.prefix), settings.ttl_s
        self.quota = RunQuota(redis, settings)
        self.owner_key = self.keys.run_owner
        self.user_runs = self.keys.user_runs
        self.user_active = self.keys.user_active_runs
        self._owners: OrderedDict[str, dict[str, Any]] = OrderedDict()  # run -> its claim
        self._owners_lock = threading.Lock()

    def claim(
        self,
        run_id: str,
        owner: str,
        workflow_id: str | None,
        inputs_by: str | None = None,
        version: int | None = None,
        origin: dict[str, str] | None = None,
    ) -> bool:
        """Record the owner of a new run; False if the run already had one. `inputs_by`: who
        gave its inputs, when not its owner (a rerun of another user's run copies theirs);
        `version`: the workflow's version it runs, when known (the editor follows a run of
        the version it shows); `origin`: what started it, when not its owner's submit
        ({"kind": "schedule" | "trigger" | "rerun", "id": the schedule's, trigger's, run's})."""
        fields: dict[str, Any] = {"owner": owner, "workflow_id": workflow_id}
        if inputs_by is not None and inputs_by != owner:
            fields["inputs_by"] = inputs_by
        if version is not None:
            fields["version"] = version
        if origin is not None:
            fields["origin"] = origin
        info = json.dumps(fields)
        if not self.redis.set(self.owner_key(run_id), info, nx=True, ex=self.ttl_s):
            return False
        now_ms = int(time.time() * 1000)
        runs, active = self.user_runs(owner), self.user_active(owner)
        pipe = self.redis.pipeline()  # MULTI: the entries and their TTLs in one step
        pipe.zadd(runs, {run_id: now_ms})
        pipe.sadd(active, run_id)
        pipe.expire(runs, self.ttl_s)
        pipe.expire(active, self.ttl_s)
        if workflow_id:  # its owner's runs of that workflow: what the workflow's grantees read
            pipe.zadd(self.keys.user_wf_runs(owner, workflow_id), {run_id: now_ms})
            pipe.expire(self.keys.user_wf_runs(owner, workflow_id), self.ttl_s)
        pipe.execute()
        return True

    def submitting(self, username: str) -> Any:
        """A lock held while one of the user's submits counts the user's unfinished runs and
        records its own, so simultaneous submits cannot all pass the limit (`acquire()` answers
        False when another submit held it for over 10 s)."""
        return self.redis.lock(
            self.keys.user_submitting(username), timeout=30, blocking_timeout=10, sleep=0.005
        )

    def get(self, run_id: str) -> dict[str, Any] | None:
        """The run's claim (owner, workflow_id, ...), None for a run nobody claimed (yet).

        A claim once read is kept (the last OWNERS_KEPT): it is written once (`claim`, SET NX)
        and never changed, only expires with its run, and every caller reads the run's record
        too, so a run gone is gone whatever is kept. An SSE connect storm on one run read it
        once per connect, a Redis round trip each. A run not claimed is asked again."""
        with self._owners_lock:
            kept = self._owners.get(run_id)
            if kept is not None:
                self._owners.move_to_end(run_id)
                return dict(kept)
        raw = self.redis.get(self.owner_key(run_id))
        if not raw:
            return None
        info: dict[str, Any] = json.loads(raw)
        with self._owners_lock:
            self._owners[run_id] = info
            while len(self._owners) > OWNERS_KEPT:
                self._owners.popitem(last=False)
        return dict(info)

    def active(self, username: str, status_of: Any) -> int:
        """How many of the user's runs are not final (pruning the others)."""
        count, done = 0, []
        for run_id in self.redis.smembers(self.user_active(username)):
            status = status_of(run_id)
            if status is None or status in RUN_FINAL_VALUES:
                done.append(run_id)
            else:
                count += 1
        if done:
            self.redis.srem(self.user_active(username), *done)
        return count

    def of_workflows(
        self, pairs: list[tuple[str, str]], offset: int, limit: int
    ) -> tuple[list[str], int]:
        """A page of the runs each (workflow id, owner) pair's owner made of that workflow,
        newest first, and their total: a few sorted sets read (those older than the TTL
        dropped first), never all runs."""
        cutoff = f"({int((time.time() - self.ttl_s) * 1000)}"
        keys = [self.keys.user_wf_runs(owner, wf_id) for wf_id, owner in pairs]
        pipe = self.redis.pipeline(transaction=False)
        for key in keys:
            pipe.zremrangebyscore(key, "-inf", cutoff)
            pipe.zrevrange(key, 0, offset + limit - 1, withscores=True)
            pipe.zcard(key)
        answers = pipe.execute()
        found = [hit for i in range(len(keys)) for hit in answers[3 * i + 1]]
        found.sort(key=lambda hit: -hit[1])
        total = sum(int(answers[3 * i + 2]) for i in range(len(keys)))
        return [run_id for run_id, _ in found[offset : offset + limit]], total

    def latest_of(self, owner: str, workflow_id: str, count: int) -> list[str]:
        """`owner`'s newest `count` runs of `workflow_id`, newest first."""
        ids = self.redis.zrevrange(self.keys.user_wf_runs(owner, workflow_id), 0, count - 1)
        return [i.decode() if isinstance(i, bytes) else i for i in ids]

    def page(self, username: str | None, offset: int, limit: int) -> tuple[list[str], int]:
        key = self.keys.runs if username is None else self.user_runs(username)
        ids = self.redis.zrevrange(key, offset, offset + limit - 1)
        return list(ids), int(self.redis.zcard(key))
