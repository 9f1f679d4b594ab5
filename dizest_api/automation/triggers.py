"""Triggers: a secret URL per workflow (`POST /api/v1/triggers/<secret>`, JSON body = inputs)
that starts a run with its owner's rights, for other systems that hold no token.

Invariants:
- Only the SHA-256 of a secret is stored; the secret is returned once (made or rotated).
  Rotating replaces it at once: the old URL answers 404 from then on. Revoking deletes it.
- Calls are counted per trigger and minute (`{p}:trig:{id}:calls:{minute}`, one INCR with its
  TTL in the same transaction); past `rate_per_min`, a call is refused before its body is read.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from dizest_api.automation.keys import AutoKeys
from dizest_api.data.counted import add_within
from dizest_api.ids import new_id
from dizest_core.errors import DizestError, InputError

MAX_RATE = 10_000


class TriggerNotFound(DizestError, LookupError):
    """No trigger with this id or secret."""


@dataclass(frozen=True)
class Trigger:
    id: str
    workflow_id: str
    owner: str
    rate_per_min: int
    created_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class TriggerStore:
    def __init__(self, redis: Any, prefix: str) -> None:
        self.redis, self.keys = redis, AutoKeys(prefix)

    def create(self, owner: str, workflow_id: str, rate_per_min: int) -> tuple[Trigger, str]:
        """A new trigger and its secret (shown once)."""
        if not 1 <= rate_per_min <= MAX_RATE:
            raise InputError(
                "invalid_trigger",
                f"rate_per_min must be between 1 and {MAX_RATE}",
                {"rate_per_min": rate_per_min},
            )
        trig = Trigger(new_id(), workflow_id, owner, rate_per_min, time.time())
        secret = _new_secret()
        fields = {**{k: str(v) for k, v in trig.to_dict().items()}, "digest": _digest(secret)}
        index = self.keys.workflow_triggers(workflow_id)

        def write(pipe: Any) -> None:
            pipe.hset(self.keys.trigger(trig.id), mapping=fields)
            pipe.set(self.keys.trigger_secret(_digest(secret)), trig.id)
            pipe.zadd(index, {trig.id: int(trig.created_at * 1000)})

        add_within(self.redis, index, "triggers", f"workflow {workflow_id}", write)
        return trig, secret

    def get(self, trigger_id: str) -> Trigger:
        raw = self.redis.hgetall(self.keys.trigger(trigger_id))
        if not raw:
            raise TriggerNotFound(f"no trigger {trigger_id!r}")
        return _trigger(trigger_id, raw)

    def by_secret(self, secret: str) -> Trigger:
        trigger_id = self.redis.get(self.keys.trigger_secret(_digest(secret)))
        if trigger_id is None:
            raise TriggerNotFound("no trigger for this URL (revoked or rotated?)")
        return self.get(trigger_id)

    def for_workflow(self, workflow_id: str) -> list[Trigger]:
        ids = self.redis.zrevrange(self.keys.workflow_triggers(workflow_id), 0, -1)
        found = [self.redis.hgetall(self.keys.trigger(i)) for i in ids]
        return [_trigger(i, raw) for i, raw in zip(ids, found, strict=True) if raw]

    def rotate(self, trigger_id: str) -> tuple[Trigger, str]:
        trig = self.get(trigger_id)
        old = self.redis.hget(self.keys.trigger(trigger_id), "digest")
        secret = _new_secret()
        pipe = self.redis.pipeline()
        pipe.delete(self.keys.trigger_secret(old))
        pipe.set(self.keys.trigger_secret(_digest(secret)), trigger_id)
        pipe.hset(self.keys.trigger(trigger_id), "digest", _digest(secret))
        pipe.execute()
        return trig, secret

    def delete(self, trigger_id: str) -> None:
        trig = self.get(trigger_id)
        old = self.redis.hget(self.keys.trigger(trigger_id), "digest")
        pipe = self.redis.pipeline()
        pipe.delete(self.keys.trigger_secret(old), self.keys.trigger(trigger_id))
        pipe.zrem(self.keys.workflow_triggers(trig.workflow_id), trigger_id)
        pipe.execute()

    def delete_for_workflow(self, workflow_id: str) -> None:
        for trig in self.for_workflow(workflow_id):
            self.delete(trig.id)

    def count_call(self, trig: Trigger) -> tuple[bool, int]:
        """Count one call; (allowed, seconds until the window ends)."""
        now = time.time()
        minute = int(now // 60)
        key = self.keys.trigger_calls(trig.id, minute)
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        calls, _ = pipe.execute()
        return int(calls) <= trig.rate_per_min, max(1, int((minute + 1) * 60 - now) + 1)


def _new_secret() -> str:
    return "dztr_" + secrets.token_urlsafe(32)


def _trigger(trigger_id: str, raw: Mapping[str, str]) -> Trigger:
    return Trigger(
        trigger_id,
        raw["workflow_id"],
        raw["owner"],
        int(raw["rate_per_min"]),
        float(raw["created_at"]),
    )
