"""Flow outputs in Redis: the OutputStore port (see dizest_core.store) over one hash per flow.

Each output value is stored tagged: b"B" + pickle bytes for small values, b"A" + JSON
{"path", "size"} for large ones the flow child wrote to the artifact directory (a shared volume
when workers run on several machines). Previews are JSON. Every key has the run's TTL; puts are
fenced by attempt number (`_attempt`), so a stale attempt never overwrites a newer one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import redis

from dizest_core.errors import StoreError
from dizest_core.job import Artifact, Value
from dizest_worker.keys import Keys

# KEYS: outputs   ARGV: attempt, ttl, (field, value)...
_PUT = """
local current = redis.call('HGET', KEYS[1], '_attempt')
if current and tonumber(current) > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], '_attempt', ARGV[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


def encode_value(value: Value) -> bytes:
    if isinstance(value, Artifact):
        return b"A" + json.dumps({"path": value.path, "size": value.size}).encode()
    return b"B" + bytes(value)


def decode_value(raw: bytes | None) -> Value | None:
    if raw is None:
        return None
    if raw[:1] == b"A":
        ref = json.loads(raw[1:])
        return Artifact(ref["path"], int(ref["size"]))
    if raw[:1] == b"B":
        return raw[1:]
    raise StoreError(f"unknown value tag {raw[:1]!r}")


class RedisStore:
    """OutputStore backed by Redis (plus files for large values)."""

    def __init__(self, client: redis.Redis, keys: Keys, ttl_s: int) -> None:
        self.client: Any = client  # replies are bytes (redis-py's stubs say bytes | str)
        self.keys = keys
        self.ttl_s = ttl_s
        self._put = client.register_script(_PUT)

    def put(
        self,
        run_id: str,
        flow_id: str,
        values: Mapping[str, Value],
        previews: Mapping[str, Any],
        attempt: int = 1,
    ) -> bool:
        fields: list[bytes | str] = []
        for name, value in values.items():
            fields += [f"v:{name}", encode_value(value)]
        for name, preview in previews.items():
            fields += [f"p:{name}", json.dumps(preview)]
        key = self.keys.outputs(run_id, flow_id)
        return bool(self._put(keys=[key], args=[attempt, self.ttl_s, *fields]))

    def get(self, run_id: str, flow_id: str, name: str) -> Value | None:
        return decode_value(self.client.hget(self.keys.outputs(run_id, flow_id), f"v:{name}"))

    def has(self, run_id: str, flow_id: str) -> bool:
        return bool(self.client.hexists(self.keys.outputs(run_id, flow_id), "_attempt"))

    def previews(self, run_id: str, flow_id: str) -> dict[str, Any]:
        return self.previews_of(run_id, [flow_id])[flow_id]

    def previews_of(self, run_id: str, flow_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Previews of many flows' outputs in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for flow_id in flow_ids:
            pipe.hgetall(self.keys.outputs(run_id, flow_id))
        return {
            flow_id: {k.decode()[2:]: json.loads(v) for k, v in raw.items() if k.startswith(b"p:")}
            for flow_id, raw in zip(flow_ids, pipe.execute(), strict=True)
        }

    def copy(self, src_run: str, dst_run: str, flow_id: str) -> bool:
        src, dst = self.keys.outputs(src_run, flow_id), self.keys.outputs(dst_run, flow_id)
        pipe = self.client.pipeline()
        pipe.copy(src, dst, replace=True)
        pipe.expire(dst, self.ttl_s)
        return bool(pipe.execute()[0])

    def delete_run(self, run_id: str) -> None:
        pattern = self.keys.outputs(run_id, "*")
        keys = list(self.client.scan_iter(match=pattern, count=1000))
        if keys:
            self.client.delete(*keys)
