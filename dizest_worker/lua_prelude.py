"""The Lua prelude every run script starts with: names, event emission, run finalization.

Nothing here is a rule of its own. Statuses, event types, the lease member's separator and the
duration buckets are written into the Lua source from the Python names that own them
(`dizest_core.status`, `dizest_core.events`, `dizest_worker.keys`), so a status literal exists
once; the per-call rules (reasons, what lies below a flow, first events) come in ARGV, and every
key a script touches comes in KEYS (`finalize` is given the run's `done` list, never builds it).

`emit` appends an event to the run's stream (its stream id becomes its event id) and publishes
it on the events channel, in the same atomic step as the state change it reports. Once the run's
final `workflow.status` is emitted, `emit` drops anything else, so the final status is always
the run's last event.

A run submitted for a user (through the service) counts what it stores against that user's
quota (`{p}:user:{name}:stored`, see `dizest_api.data.run_quota`): a script that has that hash in
KEYS sets `ACCT` to it, and `emit`, `charge` and `full` then count in it, with what Redis spends
beyond the bytes (`quota.RUN_COST`, `EVENT_COST`); with `ACCT` empty (a run submitted by a
program with its own Redis access) nothing is counted.

The same runs hold flow slots of their owner (`dizest_worker.flow_slots`): the rules that
count, share out and hand them on (`slots_*`, `fair_*`) come last, from `fair_share`.
"""

from __future__ import annotations

from dizest_core import events as ev
from dizest_core.status import FlowStatus, RunStatus
from dizest_worker import fair_share
from dizest_worker.keys import DURATION_BUCKETS, SEP
from dizest_worker.quota import EVENT_COST, RUN_COST


def bucket_name(bound: float) -> str:
    """The field suffix of a duration bucket in `{p}:metrics` (Lua and Python agree on it)."""
    return f"{bound:g}"


def _lua_names(names: dict[str, str]) -> str:
    return "local " + ", ".join(names) + " = " + ", ".join(f"'{v}'" for v in names.values())


NAMES = "\n".join(
    [
        _lua_names({f"S_{s.name}": s.value for s in FlowStatus}),
        _lua_names({f"RUN_{s.name}": s.value for s in RunStatus}),
        _lua_names(
            {
                "EV_RUN": ev.WORKFLOW_STATUS,
                "EV_STATUS": ev.FLOW_STATUS,
                "EV_INDEX": ev.FLOW_INDEX,
                "EV_CLEAR": ev.LOG_CLEAR,
                "EV_LOG": ev.LOG_APPEND,
                "EV_RESULT": ev.RESULT,
            }
        ),
        f"local SEP = '\\{ord(SEP):03d}'",
        "local DURATION_BUCKETS = {" + ", ".join(repr(float(b)) for b in DURATION_BUCKETS) + "}",
        "local BUCKET_NAMES = {" + ", ".join(f"'{bucket_name(b)}'" for b in DURATION_BUCKETS) + "}",
        f"local RUN_COST, EVENT_COST = {RUN_COST}, {EVENT_COST}",
    ]
)

PRELUDE = (
    NAMES
    + r"""

local function jstr(s)
  if s == nil or s == false or s == '' then return 'null' end
  return cjson.encode(s)
end

local function now_s()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end

-- the {p}:leases member of one attempt (keys.lease_member)
local function member(run_id, flow, attempt)
  return run_id .. SEP .. flow .. SEP .. attempt
end

-- the run owner's stored-bytes hash, or '' (see the module docstring); each script sets it.
-- Its figures are read once a script: nothing else writes them while it runs (EMIT asks `full`
-- for each log line of a batch).
local ACCT, ACCT_QUOTA, ACCT_HELD = '', nil, nil

-- `n` more bytes stored for run `run_id` (in its owner's account, if it has one)
local function charge(run_id, n)
  if ACCT == '' or n == 0 then return end
  ACCT_HELD = redis.call('HINCRBY', ACCT, 'bytes', n)
  redis.call('HINCRBY', ACCT, 'r:' .. run_id, n)
end

-- what an event of `n` bytes costs the owner's quota: Redis's own share too (`quota.EVENT_COST`)
local function event_cost(n)
  return n + math.floor(n / 8) + EVENT_COST
end

-- would `n` more bytes pass the owner's quota?
local function full(n)
  if ACCT == '' then return false end
  if ACCT_QUOTA == nil then
    ACCT_QUOTA = tonumber(redis.call('HGET', ACCT, 'quota') or '') or false
  end
  if not ACCT_QUOTA then return false end
  if ACCT_HELD == nil then ACCT_HELD = tonumber(redis.call('HGET', ACCT, 'bytes') or '0') end
  return ACCT_HELD + n > ACCT_QUOTA
end

-- 'final' is '0' from the run's creation on: absent, the run is gone (expired) and its stream
-- must not be made again. The XADD that makes the stream gives it the run's TTL. The event goes
-- live on its run's channel (`Keys.run_channel`: `channel`, ':', the run id), where only the
-- API processes streaming that run listen. Returns its id and the message published.
local function emit(run_key, stream, channel, maxlen, run_id, etype, flow, data_json)
  if redis.call('HGET', run_key, 'final') ~= '0' then return false end
  local body = '{"run_id":' .. cjson.encode(run_id) .. ',"type":"' .. etype .. '","flow_id":'
    .. jstr(flow) .. ',"data":' .. data_json .. ',"ts":' .. now_s() .. '}'
  local fresh = redis.call('EXISTS', stream) == 0
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', body)
  charge(run_id, event_cost(#body))
  if fresh then
    local ttl = redis.call('PTTL', run_key)
    if ttl > 0 then redis.call('PEXPIRE', stream, ttl) end
  end
  local message = '{"id":"' .. id .. '",' .. string.sub(body, 2)
  redis.call('PUBLISH', channel .. ':' .. run_id, message)
  return id, message
end

-- a finished attempt in the lifetime counters of /metrics (see keys.py, {p}:metrics)
local function count_finished(metrics, status, duration)
  local bucket = '+Inf'
  for i, bound in ipairs(DURATION_BUCKETS) do
    if duration <= bound then bucket = BUCKET_NAMES[i]; break end
  end
  redis.call('HINCRBY', metrics, 'finished:' .. status, 1)
  redis.call('HINCRBY', metrics, 'duration:' .. bucket, 1)
  redis.call('HINCRBYFLOAT', metrics, 'duration_sum', duration)
  redis.call('HINCRBY', metrics, 'duration_count', 1)
end

-- set (or, for none, drop) the reason that goes with a flow's new status
local function set_reason(flows_key, flow, reason)
  if reason then redis.call('HSET', flows_key, flow .. ':reason', reason)
  else redis.call('HDEL', flows_key, flow .. ':reason') end
end

local function status_data(status, reason, extra)
  return '{"status":"' .. status .. '","reason":' .. jstr(reason) .. (extra or '') .. '}'
end

-- idle and not resolved: may still run (cancel and a failure above resolve it)
local function open(flows_key, flow)
  return redis.call('HGET', flows_key, flow) == S_IDLE
    and not redis.call('HGET', flows_key, flow .. ':reason')
end

local function redis_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end

-- `done`: the run's list waiters block on (BLPOP, then put it back)
local function finalize(run_key, done, stream, channel, maxlen, run_id)
  local status = RUN_READY
  if redis.call('HGET', run_key, 'cancelled') == '1' then status = RUN_CANCELLED
  elseif redis.call('HGET', run_key, 'failed') == '1' then status = RUN_ERROR end
  redis.call('HSET', run_key, 'status', status, 'finished_at', now_s())
  local _, message = emit(run_key, stream, channel, maxlen, run_id, EV_RUN, false,
    '{"status":"' .. status .. '"}')
  -- the run's end on `channel` itself too, for run-end listeners (`dizest beat`'s webhooks)
  if message then redis.call('PUBLISH', channel, message) end
  redis.call('HSET', run_key, 'final', '1')
  redis.call('RPUSH', done, status)
  local ttl = redis.call('PTTL', run_key)
  if ttl > 0 then redis.call('PEXPIRE', done, ttl) end
  return status
end

-- a flow that will not run again: count it resolved, and end the run if it was the last
local function resolved(run_key, done, stream, channel, maxlen, run_id)
  if redis.call('HINCRBY', run_key, 'unresolved', -1) == 0 then
    return finalize(run_key, done, stream, channel, maxlen, run_id)
  end
  return ''
end
"""
    + fair_share.LUA
)
