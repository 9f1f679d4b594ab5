"""What one user's stored workflows may hold in Redis, checked in the scripts that write them.

Stored workflows live in Redis, which every user, run and worker shares: without a bound, one
user saving large packages (or one package many times) would fill it for everyone. So:

- a user owns at most `max_workflows` workflows;
- a workflow keeps its last `versions_kept` versions: a save drops the ones older than that;
- every kept version of every workflow a user owns counts towards `quota_bytes` (the JSON text
  as stored); an editor's save counts for the workflow's owner.

The usage is kept in `{p}:user:{name}:library` ("bytes") and changed by the same script that
writes or drops versions, so two saves at once cannot both pass the quota. When the key is
missing (a store from before quotas), the first write computes it from the workflows.
A save that does not grow a user's usage always passes, so a user over a lowered quota can
still save smaller versions.
"""

from __future__ import annotations

from dataclasses import dataclass

from dizest_core.errors import InputError
from dizest_worker.keys import Keys

MIB = 1024 * 1024

# Reads or (re)computes the owner's usage: KEYS[usage], KEYS[owner's workflows];
# `head`..id..`tail` names a workflow's versions hash (Keys.workflow_versions).
_USAGE = """
local function usage(ukey, wfs, head, tail)
  local used = redis.call('HGET', ukey, 'bytes')
  if used then return tonumber(used) end
  local total = 0
  for _, id in ipairs(redis.call('ZRANGE', wfs, 0, -1)) do
    local vkey = head .. id .. tail
    for _, v in ipairs(redis.call('HKEYS', vkey)) do
      total = total + redis.call('HSTRLEN', vkey, v)
    end
  end
  redis.call('HSET', ukey, 'bytes', total)
  return total
end
"""

# KEYS: usage, owner's workflows; ARGV: head, tail
USAGE = _USAGE + "return usage(KEYS[1], KEYS[2], ARGV[1], ARGV[2])"

# KEYS: meta, versions, all workflows, owner's workflows, owner's usage
# ARGV: text, id, score, max workflows, quota, head, tail, then the meta fields as pairs
CREATE = (
    _USAGE
    + """
local owned = redis.call('ZCARD', KEYS[4])
if owned >= tonumber(ARGV[4]) then return {'workflows', owned} end
local used = usage(KEYS[5], KEYS[4], ARGV[6], ARGV[7])
local size = string.len(ARGV[1])
if used + size > tonumber(ARGV[5]) then return {'bytes', used} end
redis.call('HSET', KEYS[1], unpack(ARGV, 8))
redis.call('HSET', KEYS[2], '1', ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[2])
redis.call('HINCRBY', KEYS[5], 'bytes', size)
return {'ok', used + size}
"""
)

# KEYS: meta, versions, owner's workflows, owner's usage
# ARGV: text, now, rename ('1'/'0'), title, base version or '', versions kept, quota, head, tail
# A text the same as the latest version's stores nothing ('same'; a new title is still set),
# after the base version's check: a stale editor gets its conflict whatever it sends.
REPLACE = (
    _USAGE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'missing', 0} end
local current = tonumber(redis.call('HGET', KEYS[1], 'version'))
if ARGV[5] ~= '' and tonumber(ARGV[5]) ~= current then return {'conflict', current} end
if redis.call('HGET', KEYS[2], current) == ARGV[1] then
  if ARGV[3] == '1' and redis.call('HGET', KEYS[1], 'title') ~= ARGV[4] then
    redis.call('HSET', KEYS[1], 'title', ARGV[4], 'updated_at', ARGV[2])
  end
  return {'same', current}
end
local version = current + 1
local dropped, freed = {}, 0
local v = version - tonumber(ARGV[6])
while v >= 1 and redis.call('HEXISTS', KEYS[2], v) == 1 do
  freed = freed + redis.call('HSTRLEN', KEYS[2], v)
  dropped[#dropped + 1] = v
  v = v - 1
end
local used = usage(KEYS[4], KEYS[3], ARGV[8], ARGV[9])
local size = string.len(ARGV[1])
if size > freed and used - freed + size > tonumber(ARGV[7]) then return {'bytes', used} end
redis.call('HSET', KEYS[1], 'version', version, 'updated_at', ARGV[2])
redis.call('HSET', KEYS[2], version, ARGV[1])
for _, old in ipairs(dropped) do redis.call('HDEL', KEYS[2], old) end
if ARGV[3] == '1' then redis.call('HSET', KEYS[1], 'title', ARGV[4]) end
redis.call('HINCRBY', KEYS[4], 'bytes', size - freed)
return {'ok', version}
"""
)


@dataclass(frozen=True)
class LibraryLimits:
    """Per user: workflows owned, versions kept per workflow, bytes of every kept version."""

    max_workflows: int = 1000
    versions_kept: int = 100
    quota_bytes: int = 256 * MIB

    def __post_init__(self) -> None:
        if min(self.max_workflows, self.versions_kept, self.quota_bytes) < 1:
            raise ValueError("library limits must be positive")

    def usage(self, workflows: int, used_bytes: int) -> dict[str, int]:
        return {
            "workflows": workflows,
            "max_workflows": self.max_workflows,
            "bytes": used_bytes,
            "quota_bytes": self.quota_bytes,
            "versions_kept": self.versions_kept,
        }


class LibraryQuota(InputError):
    """A save refused because the owner's stored workflows are at a limit (nothing written)."""


class WorkflowsQuota(LibraryQuota):
    """The owner owns `max_workflows` workflows already (the API answers 422)."""


class BytesQuota(LibraryQuota):
    """The owner's kept versions would pass `quota_bytes` (the API answers 413)."""


def refused(kind: str, used: int, size: int, limits: LibraryLimits, owner: str) -> LibraryQuota:
    """The error for a script's refusal `kind` ('workflows' or 'bytes')."""
    if kind == "workflows":
        return WorkflowsQuota(
            "quota_workflows",
            f"{owner} owns {used} workflows, the most one user may own "
            f"({limits.max_workflows}); delete one first",
            {"workflows": used, "max_workflows": limits.max_workflows},
        )
    return BytesQuota(
        "quota_bytes",
        f"{owner}'s stored workflows hold {used} of {limits.quota_bytes} bytes (every kept "
        f"version counts; the last {limits.versions_kept} of each are kept) and this package "
        f"has {size}: delete workflows you no longer need",
        {"bytes": used, "quota_bytes": limits.quota_bytes, "size": size},
    )


def versions_template(keys: Keys) -> tuple[str, str]:
    """`Keys.workflow_versions` split around the id, for the scripts that name it."""
    head, _, tail = keys.workflow_versions("\0").partition("\0")
    return head, tail
