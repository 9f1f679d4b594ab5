"""The Lua scripts that advance a run in Redis; each is one atomic step with an "I was last" answer.

Every script shares the `emit` prelude: an event is appended to the run's stream (its stream id
becomes its event id) and published on the events channel, in the same atomic step as the state
change it reports. Once the run's final `workflow.status` is emitted, `emit` drops anything else,
so the final status is always the run's last event.

    CREATE     a planned run: record, snapshot, flows, index, reservations, reused outputs,
               first events, idempotency key (written last)      -> {1, run} | {0, existing run}
    CLAIM      pending flow attempt -> running, lease taken, its input values read
                                                                     -> ok+values | stale | cancelled
    FINISH     running attempt -> ready/error (or back to pending to retry, while its own
               retries last), outputs written, children whose last parent finished -> pending,
               descendants of a failure skipped, run finalized when nothing is left
                                                                 -> {ok|retry|stale|alive, ...}
    REQUEUE    expired lease: running attempt -> next attempt pending        -> attempt
               pending flow nobody claimed -> send it again                   -> resend
               attempt of a cancelled run -> resolved as cancelled           -> cancelled
               running attempt lost too often (caller then FINISHes it)    -> exhausted
               otherwise                                                      -> gone | alive
    CANCEL     every not-started flow -> idle (cancelled); workers told      -> final | n
    EMIT       events for a run that has not ended                           -> ids
    RELEASE    drop reservations of flows still pending at that attempt (sent, unclaimed)
                                                                     -> n dropped
    HEARTBEAT  extend a lease that still exists; is its run cancelled? -> {1|0, 1|0}
    FORGET     drop workers whose last heartbeat is older than a cutoff       -> n dropped

A flow's `{f}:reason` field always holds the reason its latest `flow.status` event gave (absent
for none), so the flows hash alone rebuilds every status even after the capped stream is trimmed.
User-code retries (`{f}:retries`) and worker losses (`{f}:lost`) are counted apart: `retries: 3`
means three retries of failing code whatever the number of lost workers, which `max_attempts`
bounds on its own.
"""

from __future__ import annotations

from dizest_worker.keys import DURATION_BUCKETS


def bucket_name(bound: float) -> str:
    """The field suffix of a duration bucket in `{p}:metrics` (Lua and Python agree on it)."""
    return f"{bound:g}"


PRELUDE = (
    (
        "local DURATION_BUCKETS = {"
        + ", ".join(repr(float(b)) for b in DURATION_BUCKETS)
        + "}\nlocal BUCKET_NAMES = {"
        + ", ".join(f"'{bucket_name(b)}'" for b in DURATION_BUCKETS)
        + "}\n"
    )
    + r"""
local function jstr(s)
  if s == nil or s == false or s == '' then return 'null' end
  return cjson.encode(s)
end

local function now_s()
  local t = redis.call('TIME')
  return t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end

-- 'final' is '0' from the run's creation on: absent, the run is gone (expired) and its stream
-- must not be made again. The XADD that makes the stream gives it the run's TTL.
local function emit(run_key, stream, channel, maxlen, run_id, etype, flow, data_json)
  if redis.call('HGET', run_key, 'final') ~= '0' then return false end
  local body = '{"run_id":' .. cjson.encode(run_id) .. ',"type":"' .. etype .. '","flow_id":'
    .. jstr(flow) .. ',"data":' .. data_json .. ',"ts":' .. now_s() .. '}'
  local fresh = redis.call('EXISTS', stream) == 0
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'e', body)
  if fresh then
    local ttl = redis.call('PTTL', run_key)
    if ttl > 0 then redis.call('PEXPIRE', stream, ttl) end
  end
  redis.call('PUBLISH', channel, '{"id":"' .. id .. '",' .. string.sub(body, 2))
  return id
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

local function finalize(run_key, flows_key, stream, channel, maxlen, run_id)
  local status = 'ready'
  if redis.call('HGET', run_key, 'cancelled') == '1' then status = 'cancelled'
  elseif redis.call('HGET', run_key, 'failed') == '1' then status = 'error' end
  redis.call('HSET', run_key, 'status', status, 'finished_at', now_s())
  emit(run_key, stream, channel, maxlen, run_id, 'workflow.status', false,
       '{"status":"' .. status .. '"}')
  redis.call('HSET', run_key, 'final', '1')
  local done = run_key .. ':done'  -- a list waiters block on (BLPOP, then put it back)
  redis.call('RPUSH', done, status)
  local ttl = redis.call('PTTL', run_key)
  if ttl > 0 then redis.call('PEXPIRE', done, ttl) end
  return status
end

-- a flow that will not run again: count it resolved, and end the run if it was the last
local function resolved(run_key, flows_key, stream, channel, maxlen, run_id)
  if redis.call('HINCRBY', run_key, 'unresolved', -1) == 0 then
    return finalize(run_key, flows_key, stream, channel, maxlen, run_id)
  end
  return ''
end
"""
)

# KEYS: run, flows, events, pkg, runs (index), leases, idempotency ('' for none),
#       then (source outputs, outputs) of each reused flow
# ARGV: channel, maxlen, run_id, ttl_s, now_ms, reserve_until, run key prefix ('{p}:run:'),
#       snapshot, n, record (field, value)..., n, flows (field, value)..., n, roots...,
#       n, events (type, flow, data_json)..., keep keys of runs whose artifacts it reuses...
# The idempotency key is written last and only names a run that exists: a script that fails
# half-way leaves no key behind, and a key whose run is gone is taken over.
CREATE = (
    PRELUDE
    + r"""
local run_key, flows_key, stream, pkg_key, runs_key, leases, idem =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local channel, maxlen, run_id, ttl, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
if idem ~= '' then
  local existing = redis.call('GET', idem)
  if existing and redis.call('EXISTS', ARGV[7] .. existing) == 1 then return {0, existing} end
end
local function hset_from(key, i)  -- HSET the n (field, value) args after ARGV[i]; next index
  local n = tonumber(ARGV[i])
  for j = i + 1, i + n, 2000 do  -- in slices: unpack() has a stack limit
    redis.call('HSET', key, unpack(ARGV, j, math.min(j + 1999, i + n)))
  end
  return i + n + 1
end
redis.call('SET', pkg_key, ARGV[8], 'EX', ttl)
local i = hset_from(run_key, 9)
redis.call('HSET', run_key, 'final', '0')
redis.call('EXPIRE', run_key, ttl)
if tonumber(ARGV[i]) > 0 then
  i = hset_from(flows_key, i)
  redis.call('EXPIRE', flows_key, ttl)
else
  i = i + 1
end
redis.call('ZADD', runs_key, now, run_id)
redis.call('ZREMRANGEBYSCORE', runs_key, '-inf', '(' .. (tonumber(now) - ttl * 1000))
redis.call('EXPIRE', runs_key, ttl)  -- refreshed by each run: once it lapses, all theirs did
for j = i + 1, i + tonumber(ARGV[i]) do  -- roots: reserved until the submitter has sent them
  redis.call('ZADD', leases, ARGV[6], run_id .. '\031' .. ARGV[j] .. '\031' .. '1')
end
i = i + tonumber(ARGV[i]) + 1
for k = 8, #KEYS, 2 do
  redis.call('COPY', KEYS[k], KEYS[k + 1], 'REPLACE')
  redis.call('EXPIRE', KEYS[k + 1], ttl)
end
for j = i + 1, i + tonumber(ARGV[i]) * 3, 3 do
  emit(run_key, stream, channel, maxlen, run_id, ARGV[j], ARGV[j + 1], ARGV[j + 2])
end
for j = i + tonumber(ARGV[i]) * 3 + 1, #ARGV do redis.call('SET', ARGV[j], '1', 'EX', ttl) end
if tonumber(redis.call('HGET', run_key, 'unresolved')) <= 0 then
  finalize(run_key, flows_key, stream, channel, maxlen, run_id)
end
if idem ~= '' then redis.call('SET', idem, run_id, 'EX', ttl) end
return {1, run_id}
"""
)

# KEYS: run, flows, events, leases, metrics, then the outputs hash of each input source
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
set_reason(flows_key, flow, false)
redis.call('ZADD', leases, ARGV[7], run_id .. '\031' .. flow .. '\031' .. attempt)
emit(run_key, stream, channel, maxlen, run_id, 'flow.status', flow, status_data('running', false))
emit(run_key, stream, channel, maxlen, run_id, 'log.clear', flow, '{}')
redis.call('HINCRBY', KEYS[5], 'started', 1)
local reply = {'ok'}
for i = 6, #KEYS do reply[#reply + 1] = redis.call('HGET', KEYS[i], ARGV[i + 2]) end
return reply
"""
)

# KEYS: run, flows, events, leases, outputs, metrics
# ARGV: channel, maxlen, ttl, run_id, flow, attempt, ok, reason, duration, retryable,
#       max_retries, backoff_ms, expired_before, reserve_until, n_children, children...,
#       n_descendants, descendants..., n_outputs, (name, value, preview)...
# A retryable failure goes back to pending while the flow's own retries last (`{f}:retries`,
# not the attempt number, which worker losses raise too), after backoff_ms * 2^retries_used.
# Flows it makes pending (ready children, a retried flow) get a reservation lease until
# `reserve_until` (plus the backoff): if nobody claims them by then (their worker died before
# sending or running them), the reaper sends them again.
# Returns {'stale'} | {'alive'} | {'retry', next_attempt, delay_ms} | {'ok', ready, final}
FINISH = (
    PRELUDE
    + r"""
local run_key, flows_key, stream, leases, out_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local channel, maxlen, ttl, run_id, flow, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local ok, reason, duration = ARGV[7] == '1', ARGV[8], ARGV[9]
local retryable, max_retries, backoff_ms = ARGV[10] == '1', tonumber(ARGV[11]), tonumber(ARGV[12])
local expired_before, reserve_until = tonumber(ARGV[13]), tonumber(ARGV[14])
local member = run_id .. '\031' .. flow .. '\031' .. attempt
if redis.call('HGET', flows_key, flow .. ':attempt') ~= attempt
   or redis.call('HGET', flows_key, flow) ~= 'running' then return {'stale'} end
if expired_before > 0 then
  local score = redis.call('ZSCORE', leases, member)
  if score and tonumber(score) > expired_before then return {'alive'} end
end
redis.call('ZREM', leases, member)
local cancelled = redis.call('HGET', run_key, 'cancelled') == '1'
local used = tonumber(redis.call('HGET', flows_key, flow .. ':retries') or '0')
if not ok and retryable and not cancelled and used < max_retries then
  local next_attempt = tonumber(attempt) + 1
  local delay = math.floor(backoff_ms * 2 ^ used)
  local why = 'retrying after: ' .. reason
  redis.call('HSET', flows_key, flow, 'pending', flow .. ':attempt', next_attempt,
             flow .. ':retries', used + 1, flow .. ':reason', why)
  redis.call('ZADD', leases, reserve_until + delay,
             run_id .. '\031' .. flow .. '\031' .. next_attempt)
  emit(run_key, stream, channel, maxlen, run_id, 'flow.status', flow, status_data('pending', why))
  redis.call('HINCRBY', KEYS[6], 'retried', 1)
  return {'retry', tostring(next_attempt), tostring(delay)}
end
local i = 15
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
count_finished(KEYS[6], status, tonumber(duration) or 0)
set_reason(flows_key, flow, reason)
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

# KEYS: run, flows, events, leases, metrics
# ARGV: channel, maxlen, run_id, flow, attempt, expired_before, max_attempts, reserve_until
# An attempt of a cancelled run is resolved here (error, cancelled, as when a worker kills it
# on cancel): sending it again would only meet CLAIM's "cancelled" and leave it unresolved.
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
   or (status ~= 'pending' and status ~= 'running')
   or redis.call('HGET', run_key, 'final') ~= '0' then
  redis.call('ZREM', leases, member)
  return 'gone'
end
if redis.call('HGET', run_key, 'cancelled') == '1' then
  redis.call('ZREM', leases, member)
  local new_status = 'idle'  -- not started: as CANCEL leaves the others
  if status == 'running' then new_status = 'error' end
  redis.call('HSET', flows_key, flow, new_status, flow .. ':reason', 'cancelled')
  emit(run_key, stream, channel, maxlen, run_id, 'flow.status', flow, status_data(new_status, 'cancelled'))
  if status == 'running' then
    redis.call('HINCRBY', KEYS[5], 'finished:error', 1)  -- started, never finished: no duration
    redis.call('HSET', run_key, 'failed', '1')
    redis.call('HSET', flows_key, flow .. ':index', -1)
    emit(run_key, stream, channel, maxlen, run_id, 'flow.index', flow, '{"index":-1}')
  end
  resolved(run_key, flows_key, stream, channel, maxlen, run_id)
  return 'cancelled'
end
if status == 'pending' then
  redis.call('ZREM', leases, member)
  return 'resend'
end
local lost = tonumber(redis.call('HGET', flows_key, flow .. ':lost') or '0') + 1
if lost >= tonumber(ARGV[7]) then return 'exhausted' end
redis.call('ZREM', leases, member)
local next_attempt = tonumber(attempt) + 1
local why = 'worker lost; retrying (attempt ' .. next_attempt .. ')'
redis.call('HSET', flows_key, flow, 'pending', flow .. ':attempt', next_attempt,
           flow .. ':lost', lost, flow .. ':reason', why)
redis.call('ZADD', leases, ARGV[8], run_id .. '\031' .. flow .. '\031' .. next_attempt)
emit(run_key, stream, channel, maxlen, run_id, 'flow.status', flow, status_data('pending', why))
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

# KEYS: leases, then the flows hash of each flow's run   ARGV: (run_id, flow, attempt) of each
# A reservation and the lease its claim takes are one member, run\x1fflow\x1fattempt (CLAIM's ZADD
# replaces the one with the other), and a claim may land between the enqueue and this release.
# So the entry is only dropped while it still is a reservation: its flow pending at that attempt.
# Deleting a claimed attempt's lease would leave it running unseen by the reaper for good.
RELEASE = r"""
local dropped = 0
for i = 2, #KEYS do
  local j = (i - 2) * 3
  local run_id, flow, attempt = ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]
  if redis.call('HGET', KEYS[i], flow) == 'pending'
     and redis.call('HGET', KEYS[i], flow .. ':attempt') == attempt then
    dropped = dropped + redis.call('ZREM', KEYS[1], run_id .. '\031' .. flow .. '\031' .. attempt)
  end
end
return dropped
"""

# KEYS: leases, run   ARGV: expiry_ms, member
# The cancelled flag rides on the heartbeat so that a worker sees a cancel within lease/3 s
# even when the control message was lost (pub/sub drops it across a reconnect).
HEARTBEAT = r"""
local cancelled = 0
if redis.call('HGET', KEYS[2], 'cancelled') == '1' then cancelled = 1 end
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
  return {1, cancelled}
end
return {0, cancelled}
"""

# KEYS: workers   ARGV: cutoff_ms
# One step, so a worker that beats meanwhile is never dropped on a stale reading.
FORGET = r"""
local fields = redis.call('HGETALL', KEYS[1])
local gone = 0
for i = 1, #fields, 2 do
  local seen = tonumber(fields[i + 1])
  if not seen or seen < tonumber(ARGV[1]) then
    redis.call('HDEL', KEYS[1], fields[i])
    gone = gone + 1
  end
end
return gone
"""
