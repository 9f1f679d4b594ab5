"""What one user's runs may hold in Redis: counted as they store it, refused past a quota.

Runs live in Redis, which every user, run and worker shares, for DIZEST_TTL_S (7 days) after
they start. A limit on unfinished runs alone would let one user fill it with finished ones (a
10 MB input per run, thousands of runs), and one run could fill it alone (megabytes of logs from
each of many flows, a megabyte of inline output each). So every run submitted through the
service counts what it stores against its owner's `DIZEST_RUN_QUOTA_BYTES`:

- the package snapshot, the run record (inputs, options), the flows hash and reused outputs it
  copies, when it is made (`scripts.CREATE`);
- every event it emits (`emit` in `lua_prelude`; the few status events of claiming and requeuing
  an attempt are not counted: a few hundred bytes per attempt);
- with what Redis spends beyond those bytes: a run's keys, each event's entry
  (`dizest_worker.quota.RUN_COST`, `EVENT_COST`);
- the outputs and previews each flow stores (`flow_scripts.FINISH`).

Past the quota: a submit or rerun is refused (413 `quota_runs`); a running run's further logs
and results are dropped, with one engine line saying so (its statuses never are); a flow whose
outputs would pass it ends in error without them. The figure is what the owner's live runs
wrote (events the capped stream trimmed since stay counted); a run's share is freed once it has
expired, at its owner's next submit (or `GET /runs/usage`), which first forgets the runs made
over the TTL ago, made and never claimed included. The counts live in `{p}:user:{name}:stored`
and `:stored_runs` (see `keys.py`), written only by the Lua scripts and by `PRUNE` here.
"""

from __future__ import annotations

import time
from typing import Any

from dizest_worker.client import WorkerSettings, quota_error
from dizest_worker.keys import Keys

# KEYS: the user's stored-bytes hash, the runs counted there (zset by creation ms, Redis clock),
#       the user's runs (the index, zset by claim ms); ARGV: ttl_s
# Forgets the runs made over ttl_s ago (gone: the runs expire by the same clock), in the hash
# and both sets (so that nothing else drops one from the index first); returns the bytes held.
PRUNE = """
local t = redis.call('TIME')
local cutoff = '(' .. (t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(ARGV[1]) * 1000)
for _, run in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', cutoff)) do
  local held = redis.call('HGET', KEYS[1], 'r:' .. run)
  if held then
    redis.call('HDEL', KEYS[1], 'r:' .. run)
    redis.call('HINCRBY', KEYS[1], 'bytes', -tonumber(held))
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', cutoff)
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', cutoff)
return redis.call('HGET', KEYS[1], 'bytes') or '0'
"""


class RunQuota:
    """The per-user quota of run storage (see the module docstring)."""

    def __init__(self, redis: Any, settings: WorkerSettings) -> None:
        self.keys, self.settings, self.redis = Keys(settings.prefix), settings, redis
        self.ttl_s, self.quota_bytes = settings.ttl_s, settings.run_quota_bytes
        self._prune = redis.register_script(PRUNE)

    def prune(self, username: str) -> int:
        """Forget the user's expired runs; the bytes the live ones wrote."""
        k = self.keys
        keys = [k.user_stored(username), k.user_stored_runs(username), k.user_runs(username)]
        return int(self._prune(keys=keys, args=[self.ttl_s]))

    def usage(self, username: str) -> dict[str, int]:
        """The bytes the user's live runs wrote, and the quota (the expired ones forgotten);
        the flow slots their flows hold and the flows parked for want of one (flow_slots)."""
        pipe = self.redis.pipeline(transaction=False)
        running = self.keys.user_running(username)
        pipe.zcount(running, 0, 0)  # claimed
        pipe.zcount(running, f"({int(time.time() * 1000)}", "+inf")  # released, still held
        pipe.zcard(self.keys.user_parked(username))
        claimed, released, parked = pipe.execute()
        held = claimed + released
        return {
            "bytes": self.prune(username),
            "quota_bytes": self.quota_bytes,
            "flows_running": int(held),
            "flows_parked": int(parked),
            "flow_slots": self.settings.user_flow_slots,
        }

    def check(self, username: str) -> None:
        """Refuse (RunsQuota) a new run of a user whose runs hold the quota already, before the
        package is even read (CREATE checks it again, atomically, as it makes the run). A run
        admitted just under the quota may pass it by its own package and inputs."""
        used = self.prune(username)
        if used >= self.quota_bytes:
            raise quota_error(used, self.settings)
