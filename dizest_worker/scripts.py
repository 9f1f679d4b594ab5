"""The Lua scripts that advance a run in Redis; each is one atomic step with an "I was last" answer.

Every script shares the `emit` prelude: an event is appended to the run's stream (its stream id
becomes its event id) and published on the events channel, in the same atomic step as the state
change it reports. Once the run's final `workflow.status` is emitted, `emit` drops anything else,
so the final status is always the run's last event.

    CLAIM      pending flow attempt -> running, lease taken, its input values read
                                                                     -> ok+values | stale | cancelled
    FINISH     running attempt -> ready/error (or back to pending to retry), outputs written,
               children whose last parent finished -> pending, descendants of a failure
               skipped, run finalized when nothing is left           -> {ok|retry|stale|alive, ...}
    REQUEUE    expired lease: running attempt -> next attempt pending        -> attempt
               pending flow nobody claimed -> send it again                   -> resend
               running attempt, no attempts left (caller then FINISHes it) -> exhausted
               otherwise                                                      -> gone | alive
    CANCEL     every not-started flow -> idle (cancelled); workers told      -> final | n
    EMIT       events for a run that has not ended                           -> ids
    HEARTBEAT  extend a lease that still exists                              -> 1 | 0
"""

from __future__ import annotations

PRELUDE = r"""
local function jstr(s)
  if s == nil or s == false or s == '' then return 'null' end
  return cjson.encode(s)
end

local function emit(run_key, stream, channel, maxlen, run_id, etype, flow, data_json)
  if redis.call('HGET', run_key, 'final') == '1' then return false end
  local t = redis.call('TIME')
  local body = '{"run_id":' .. cjson.encode(run_id) .. ',"type":"' .. etype .. '","flow_id":'
    .. jstr(flow) .. ',"data":' .. data_json .. ',"ts":' .. t[1] .. '.'
    .. string.format('%06d', tonumber(t[2])) .. '}'
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', body)
  redis.call('PUBLISH', channel, '{"id":"' .. id .. '",' .. string.sub(body, 2))
  return id
end

local function status_data(status, reason, extra)
  return '{"status":"' .. status .. '","reason":' .. jstr(reason) .. (extra or '') .. '}'
end

local function finalize(run_key, flows_key, stream, channel, maxlen, run_id)
  local status = 'ready'
  if redis.call('HGET', run_key, 'cancelled') == '1' then status = 'cancelled'
  elseif redis.call('HGET', run_key, 'failed') == '1' then status = 'error' end
  local t = redis.call('TIME')
  redis.call('HSET', run_key, 'status', status, 'finished_at', t[1] .. '.' .. t[2])
  emit(run_key, stream, channel, maxlen, run_id, 'workflow.status', false,
       '{"status":"' .. status .. '"}')
  redis.call('HSET', run_key, 'final', '1')
  local done = run_key .. ':done'  -- a list waiters block on (BLPOP, then put it back)
  redis.call('RPUSH', done, status)
  local ttl = redis.call('TTL', run_key)
  if ttl > 0 then redis.call('EXPIRE', done, ttl) end
  return status
end
"""

# KEYS: run, flows, events, leases, then the outputs hash of each input source
# ARGV: channel, maxlen, run_id, flow, attempt, worker, lease_expiry_ms, then "v:{name}" per source
# Returns 'stale' | 'cancelled' | {'ok', value of each source (nil when absent)...}
CLAIM = (
    PRELUDE
    + r"""
local run_key, flows_key, stream, leases = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local channel, maxlen, run_id, flow, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('EXISTS', run_key) == 0 then return 'stale' end
if redis.call('HGET', run_key, 'final') == '1' or redis.call('HGET', run_key, 'cancelled') == '1'
then return 'cancelled' end
if redis.call('HGET', flows_key, flow .. ':attempt') ~= attempt
   or redis.call('HGET', flows_key, flow) ~= 'pending' then return 'stale' end
redis.call('HSET', flows_key, flow, 'running', flow .. ':worker', ARGV[6])
redis.call('ZADD', leases, ARGV[7], run_id .. '\031' .. flow .. '\031' .. attempt)
emit(run_key, stream, channel, maxlen, run_id, 'flow.status', flow, status_data('running', false))
emit(run_key, stream, channel, maxlen, run_id, 'log.clear', flow, '{}')
local reply = {'ok'}
for i = 5, #KEYS do reply[#reply + 1] = redis.call('HGET', KEYS[i], ARGV[i + 3]) end
return reply
"""
)

# KEYS: run, flows, events, leases, outputs
# ARGV: channel, maxlen, ttl, run_id, flow, attempt, ok, reason, duration, retry, expired_before,
#       reserve_until, n_children, children..., n_descendants, descendants...,
#       n_outputs, (name, value, preview)...
# Flows it makes pending (ready children, a retried flow) get a reservation lease until
# `reserve_until`: if nobody claims them by then (their worker died before sending or running
# them), the reaper sends them again.
FINISH = (
    PRELUDE
    + r"""
local run_key, flows_key, stream, leases, out_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local channel, maxlen, ttl, run_id, flow, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local ok, reason, duration = ARGV[7] == '1', ARGV[8], ARGV[9]
local retry, expired_before, reserve_until = ARGV[10] == '1', tonumber(ARGV[11]), ARGV[12]
local member = run_id .. '\031' .. flow .. '\031' .. attempt
if redis.call('HGET', flows_key, flow .. ':attempt') ~= attempt
   or redis.call('HGET', flows_key, flow) ~= 'running' then return {'stale'} end
if expired_before > 0 then
  local score = redis.call('ZSCORE', leases, member)
  if score and tonumber(score) > expired_before then return {'alive'} end
end
redis.call('ZREM', leases, member)
local cancelled = redis.call('HGET', run_key, 'cancelled') == '1'
if not ok and retry and not cancelled then
  local next_attempt = tonumber(attempt) + 1
  redis.call('HSET', flows_key, flow, 'pending', flow .. ':attempt', next_attempt)
  redis.call('ZADD', leases, reserve_until, run_id .. '\031' .. flow .. '\031' .. next_attempt)
  emit(run_key, stream, channel, maxlen, run_id, 'flow.status', flow,
       status_data('pending', 'retrying after: ' .. reason))
  return {'retry', tostring(next_attempt)}
end
local i = 13
local children = {}
for j = 1, tonumber(ARGV[i]) do children[j] = ARGV[i + j] end
i = i + tonumber(ARGV[i]) + 1
local descendants = {}
for j = 1, tonumber(ARGV[i]) do descendants[j] = ARGV[i + j] end
i = i + tonumber(ARGV[i]) + 1
redis.call('DEL', out_key)
local n_out = tonumber(ARGV[i])
for j = 0, n_out - 1 do
  local name, value, preview = ARGV[i + 1 + 3 * j], ARGV[i + 2 + 3 * j], ARGV[i + 3 + 3 * j]
  if ok then redis.call('HSET', out_key, 'v:' .. name, value) end
  redis.call('HSET', out_key, 'p:' .. name, preview)
end
redis.call('HSET', out_key, '_attempt', attempt)
redis.call('EXPIRE', out_key, ttl)
local status, index = 'error', -1
if ok then
  status = 'ready'
  index = redis.call('HINCRBY', run_key, 'completed', 1)
else
  redis.call('HSET', run_key, 'failed', '1')
end
if reason == '' then reason = false end
redis.call('HSET', flows_key, flow, status, flow .. ':index', index, flow .. ':duration', duration)
if reason then redis.call('HSET', flows_key, flow .. ':reason', reason) end
emit(run_key, stream, channel, maxlen, run_id, 'flow.status', flow,
     status_data(status, reason, ',"duration_s":' .. duration))
emit(run_key, stream, channel, maxlen, run_id, 'flow.index', flow, '{"index":' .. index .. '}')
local unresolved = redis.call('HINCRBY', run_key, 'unresolved', -1)
local ready = {}
if ok then
  for _, child in ipairs(children) do
    local waiting = redis.call('HINCRBY', flows_key, child .. ':waiting', -1)
    if waiting == 0 and redis.call('HGET', flows_key, child) == 'idle'
       and not redis.call('HGET', flows_key, child .. ':reason') then
      redis.call('HSET', flows_key, child, 'pending')
      local child_attempt = redis.call('HGET', flows_key, child .. ':attempt')
      redis.call('ZADD', leases, reserve_until, run_id .. '\031' .. child .. '\031' .. child_attempt)
      emit(run_key, stream, channel, maxlen, run_id, 'flow.status', child, status_data('pending', false))
      ready[#ready + 1] = child
    end
  end
else
  local why = 'upstream failed: ' .. flow
  for _, d in ipairs(descendants) do
    if redis.call('HGET', flows_key, d) == 'idle' and not redis.call('HGET', flows_key, d .. ':reason') then
      redis.call('HSET', flows_key, d .. ':reason', why, d .. ':index', -2)
      emit(run_key, stream, channel, maxlen, run_id, 'flow.status', d, status_data('idle', why))
      emit(run_key, stream, channel, maxlen, run_id, 'flow.index', d, '{"index":-2}')
      unresolved = redis.call('HINCRBY', run_key, 'unresolved', -1)
    end
  end
end
local final = ''
if unresolved == 0 then final = finalize(run_key, flows_key, stream, channel, maxlen, run_id) end
return {'ok', ready, final}
"""
)

# KEYS: run, flows, events, leases
# ARGV: channel, maxlen, run_id, flow, attempt, expired_before, max_attempts, reserve_until
REQUEUE = (
    PRELUDE
    + r"""
local run_key, flows_key, stream, leases = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local channel, maxlen, run_id, flow, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local member = run_id .. '\031' .. flow .. '\031' .. attempt
local score = redis.call('ZSCORE', leases, member)
if score and tonumber(score) > tonumber(ARGV[6]) then return 'alive' end
local status = redis.call('HGET', flows_key, flow)
if redis.call('HGET', flows_key, flow .. ':attempt') ~= attempt
   or (status ~= 'pending' and status ~= 'running') then
  redis.call('ZREM', leases, member)
  return 'gone'
end
if status == 'running' and tonumber(attempt) >= tonumber(ARGV[7]) then return 'exhausted' end
redis.call('ZREM', leases, member)
if status == 'pending' then return 'resend' end
local next_attempt = tonumber(attempt) + 1
redis.call('HSET', flows_key, flow, 'pending', flow .. ':attempt', next_attempt)
redis.call('ZADD', leases, ARGV[8], run_id .. '\031' .. flow .. '\031' .. next_attempt)
emit(run_key, stream, channel, maxlen, run_id, 'flow.status', flow,
     status_data('pending', 'worker lost; retrying (attempt ' .. next_attempt .. ')'))
return tostring(next_attempt)
"""
)

# KEYS: run, flows, events
# ARGV: channel, maxlen, run_id, control_channel
CANCEL = (
    PRELUDE
    + r"""
local run_key, flows_key, stream = KEYS[1], KEYS[2], KEYS[3]
local channel, maxlen, run_id = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', run_key) == 0 then return -1 end
if redis.call('HGET', run_key, 'final') == '1' then return 'final' end
redis.call('HSET', run_key, 'cancelled', '1')
local fields = redis.call('HGETALL', flows_key)
local running = 0
for i = 1, #fields, 2 do
  local flow, status = fields[i], fields[i + 1]
  if not string.find(flow, ':', 1, true) then
    if status == 'running' then running = running + 1 end
    if status == 'pending' or (status == 'idle' and not redis.call('HGET', flows_key, flow .. ':reason')) then
      redis.call('HSET', flows_key, flow, 'idle', flow .. ':reason', 'cancelled')
      emit(run_key, stream, channel, maxlen, run_id, 'flow.status', flow, status_data('idle', 'cancelled'))
      redis.call('HINCRBY', run_key, 'unresolved', -1)
    end
  end
end
redis.call('PUBLISH', ARGV[4], 'cancel ' .. run_id)
if tonumber(redis.call('HGET', run_key, 'unresolved')) <= 0 then
  finalize(run_key, flows_key, stream, channel, maxlen, run_id)
  return 'final'
end
return running
"""
)

# KEYS: run, events   ARGV: channel, maxlen, run_id, (type, flow, data_json)...
EMIT = (
    PRELUDE
    + r"""
local ids = {}
for i = 4, #ARGV, 3 do
  local id = emit(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], ARGV[i], ARGV[i + 1], ARGV[i + 2])
  if id then ids[#ids + 1] = id end
end
return ids
"""
)

# KEYS: leases   ARGV: expiry_ms, member
HEARTBEAT = r"""
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
  return 1
end
return 0
"""

# KEYS: run, flows, events   ARGV: channel, maxlen, run_id
FINALIZE = (
    PRELUDE
    + r"""
if redis.call('HGET', KEYS[1], 'final') == '1' then return '' end
if tonumber(redis.call('HGET', KEYS[1], 'unresolved')) > 0 then return '' end
return finalize(KEYS[1], KEYS[2], KEYS[3], ARGV[1], ARGV[2], ARGV[3])
"""
)
