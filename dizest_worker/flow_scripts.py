"""The Lua steps of one flow attempt: CLAIM it, FINISH it, REQUEUE it when its worker is lost.

Each is one atomic step over the run's keys (all passed in KEYS) that applies the rules of
`dizest_core.runstate.RunState.claim/finish/requeue`; what those rules name (reasons, what lies
below a flow) arrives in ARGV from the Python side (`dizest_worker.state`), so the texts and the
graph walk exist once. The overview of every script is in `dizest_worker.scripts`.
"""

from __future__ import annotations

from dizest_worker.lua_prelude import PRELUDE

# KEYS: the step keys (run, flows, events, leases, metrics, done), the owner's flow slots
#       (running, parked, parked_queue: '' for a run without an owner), the set of users with
#       parked attempts, the users with work, worker beats, worker slots and users marked
#       waiting (fair_share), then the outputs hash of each input source
# ARGV: channel, maxlen, run_id, flow, attempt, worker (name, or name SEP holder: the claiming
#       process's holder id, see liveness), lease_expiry_ms, the owner's hard cap of slots (0:
#       none), the owner, the flow's priority level, the reason of a flow parked at the hard cap,
#       ttl_s, the flow's queue, the oldest live beat (ms), the reason of one parked at its
#       share (a format: its share, the live slots, the users), then "v:{name}" per source
# An attempt that would take its owner past their fair share of flow slots is parked instead
# (see dizest_worker.fair_share): it stays pending without a lease until a slot is released to it.
# Either way its owner's waiting mark goes: their slots or parked attempts count them now (and
# an attempt that will not run, stale or cancelled, takes it too: it reached a worker).
# Returns 'stale' | 'cancelled' | 'wait' | {'ok', value of each source (nil when absent)...}
CLAIM = (
    PRELUDE
    + r"""
local run_key, flows_key, stream, leases = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local running, parked, where, users = KEYS[7], KEYS[8], KEYS[9], KEYS[11]
local channel, maxlen, run_id, flow, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local hard, owner = tonumber(ARGV[8]), ARGV[9]
local this = member(run_id, flow, attempt)
local verdict = false
if redis.call('EXISTS', run_key) == 0 then verdict = 'stale'
elseif redis.call('HGET', run_key, 'final') == '1' or redis.call('HGET', run_key, 'cancelled') == '1'
then verdict = 'cancelled'
elseif redis.call('HGET', flows_key, flow .. ':attempt') ~= attempt
   or redis.call('HGET', flows_key, flow) ~= S_PENDING then verdict = 'stale' end
if verdict then  -- a slot released to this attempt, which will not run, is free again
  if running ~= '' then
    if tonumber(redis.call('ZSCORE', running, this) or '0') > 0 then
      redis.call('ZREM', running, this)
    end
    redis.call('ZREM', parked, this)
    redis.call('HDEL', where, this)
    slots_mark(users, owner, running, parked)
    redis.call('ZREM', KEYS[14], owner)  -- it reached a worker: no longer on its way
  end
  return verdict
end
if running ~= '' then
  local f = fair_read(users, KEYS[12], KEYS[13], KEYS[14], tonumber(ARGV[14]), owner)
  redis.call('ZREM', KEYS[14], owner)
  local limit = fair_limit(hard, f)
  -- the owner's claimed attempts (score 0) bound it; slots released to attempts still on their
  -- way bound only further releases (one may wait behind a busy queue for a while)
  local claimed = redis.call('ZCOUNT', running, 0, 0)
  if limit > 0 and claimed >= limit then
    slots_heal(running, leases, where)
    claimed = redis.call('ZCOUNT', running, 0, 0)
  end
  -- one released above its owner's share (slots nobody else waited for) claims while they
  -- still are spare: the users' slots, its own among them, and one for each user marked
  -- waiting are not more than the live ones
  local spare = tonumber(redis.call('ZSCORE', running, this) or '0') > 0 and f.live > 0
    and f.total + f.waiting <= f.live and (hard == 0 or claimed < hard)
  if limit > 0 and claimed >= limit and not spare then
    redis.call('ZREM', running, this)  -- a slot released to it is given back
    redis.call('ZREM', leases, this)  -- a parked attempt is in `parked` alone
    -- one released and parked again (its slot taken on its way) keeps its place in the line
    local score = parked_at(where, this) or tonumber(ARGV[10]) * 1e13 + redis_ms()
    redis.call('HSET', where, this, ARGV[13] .. '\n' .. string.format('%.0f', score))
    redis.call('EXPIRE', where, ARGV[12])
    if redis.call('ZADD', parked, 'NX', score, this) == 1 then
      local why = ARGV[11]
      if limit ~= hard then why = string.format(ARGV[15], limit, f.live, f.users) end
      set_reason(flows_key, flow, why)
      emit(run_key, stream, channel, maxlen, run_id, EV_STATUS, flow, status_data(S_PENDING, why))
      redis.call('HINCRBY', KEYS[5], 'parked', 1)
    end
    redis.call('EXPIRE', parked, ARGV[12])
    redis.call('SADD', KEYS[10], owner)
    slots_mark(users, owner, running, parked)
    return 'wait'
  end
  redis.call('ZADD', running, 0, this)
  redis.call('EXPIRE', running, ARGV[12])
  redis.call('ZREM', parked, this)
  redis.call('HDEL', where, this)
  slots_mark(users, owner, running, parked)
end
local worker, holder = ARGV[6], false
local cut = string.find(worker, SEP, 1, true)
if cut then worker, holder = string.sub(ARGV[6], 1, cut - 1), string.sub(ARGV[6], cut + 1) end
redis.call('HSET', flows_key, flow, S_RUNNING, flow .. ':worker', worker)
if holder then redis.call('HSET', flows_key, flow .. ':holder', holder)
else redis.call('HDEL', flows_key, flow .. ':holder') end
set_reason(flows_key, flow, false)
redis.call('ZADD', leases, ARGV[7], this)
emit(run_key, stream, channel, maxlen, run_id, EV_STATUS, flow, status_data(S_RUNNING, false))
emit(run_key, stream, channel, maxlen, run_id, EV_CLEAR, flow, '{}')
redis.call('HINCRBY', KEYS[5], 'started', 1)
local reply = {'ok'}
for i = 15, #KEYS do reply[#reply + 1] = redis.call('HGET', KEYS[i], ARGV[i + 1]) end
return reply
"""
)

# KEYS: the step keys (run, flows, events, leases, metrics, done), then the flow's outputs hash,
#       then the owner's stored-bytes hash, flow slots (running), parked attempts and their
#       queues, the users with work, worker beats, worker slots and users marked waiting (each
#       '' for a run without an owner), then the running, parked and queues of each other user
#       named in ARGV
# ARGV: channel, maxlen, ttl, run_id, flow, attempt, ok, reason, duration, retryable,
#       max_retries, backoff_ms, expired_before, reserve_until, retry_reason, skip_reason,
#       n_children, children..., n_below, flows below it (plan order)..., n_outputs,
#       (name, value, preview)..., the hard cap of a user's slots (0: none), the oldest live
#       beat (ms), the owner, n, other users with parked attempts..., then the queues the
#       caller serves (parked attempts of those are released)
# A retryable failure goes back to pending while the flow's own retries last (`{f}:retries`,
# not the attempt number, which worker losses raise too), after backoff_ms * 2^retries_used.
# Flows it makes pending (ready children, a retried flow) get a reservation lease until
# `reserve_until` (plus the backoff): if nobody claims them by then (their worker died before
# sending or running them), the reaper sends them again.
# Outputs of a flow that ended well that would take its owner's runs past their quota change
# nothing: the answer is {'quota', their size, the quota}, and the caller finishes the attempt
# again, failed, without them (it has the flows below it to skip). A failed flow's previews
# that would pass it are not kept.
# The attempt's flow slot is free again: parked attempts it releases, its owner's or those of
# the other users (fair_share), are the last item of an 'ok' or 'retry' answer, as {user,
# member, ...} (their senders: the caller).
# Returns {'stale'} | {'alive'} | {'retry', next_attempt, delay_ms, released}
#         | {'ok', ready, final, released} | {'quota', bytes, quota}
FINISH = (
    PRELUDE
    + r"""
local run_key, flows_key, stream, leases = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local metrics, done, out_key = KEYS[5], KEYS[6], KEYS[7]
ACCT = KEYS[8] or ''
local channel, maxlen, ttl, run_id, flow, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local ok, reason, duration = ARGV[7] == '1', ARGV[8], ARGV[9]
local retryable, max_retries, backoff_ms = ARGV[10] == '1', tonumber(ARGV[11]), tonumber(ARGV[12])
local expired_before, reserve_until = tonumber(ARGV[13]), tonumber(ARGV[14])
local retry_reason, skip_reason = ARGV[15], ARGV[16]
local this = member(run_id, flow, attempt)
if redis.call('HGET', flows_key, flow .. ':attempt') ~= attempt
   or redis.call('HGET', flows_key, flow) ~= S_RUNNING then return {'stale'} end
if expired_before > 0 then
  local score = redis.call('ZSCORE', leases, this)
  if score and tonumber(score) > expired_before then return {'alive'} end
end
local i = 17
local children = {}
for j = 1, tonumber(ARGV[i]) do children[j] = ARGV[i + j] end
i = i + tonumber(ARGV[i]) + 1
local below = {}
for j = 1, tonumber(ARGV[i]) do below[j] = ARGV[i + j] end
i = i + tonumber(ARGV[i]) + 1
local n_out, stored = tonumber(ARGV[i]), 0
for j = 0, n_out - 1 do
  local name, value, preview = ARGV[i + 1 + 3 * j], ARGV[i + 2 + 3 * j], ARGV[i + 3 + 3 * j]
  stored = stored + 2 * #name + 4 + #preview
  if ok then stored = stored + #value end
end
local keep_previews = true
if stored > 0 and full(stored) then
  if ok then return {'quota', tostring(stored), redis.call('HGET', ACCT, 'quota')} end
  keep_previews, stored = false, 0  -- a failed flow's previews: not kept either
end
redis.call('ZREM', leases, this)
local slotted = KEYS[9] and KEYS[9] ~= ''
local slots_at, queues = i + 3 * n_out + 1, {}
local owner, others = ARGV[slots_at + 2], tonumber(ARGV[slots_at + 3] or '0')
for j = slots_at + 4 + others, #ARGV do queues[#queues + 1] = ARGV[j] end
-- this attempt's slot is free: parked attempts it releases (`coming`: the run's ready children,
-- about to claim, go first: a parked attempt never takes the slot of the next flow of a chain)
local function release(coming)
  if not slotted then return {} end
  local cands = {slots_user(owner, KEYS[9], KEYS[10], KEYS[11], coming)}
  for j = 1, others do
    local k = 15 + 3 * (j - 1)
    cands[#cands + 1] = slots_user(ARGV[slots_at + 3 + j], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], 0)
  end
  local f = fair_read(KEYS[12], KEYS[13], KEYS[14], KEYS[15], tonumber(ARGV[slots_at + 1]))
  return slots_release(cands, f, tonumber(ARGV[slots_at]), leases, reserve_until, queues)
end
if slotted then
  redis.call('ZREM', KEYS[9], this)
  slots_mark(KEYS[12], owner, KEYS[9], KEYS[10])
end
local cancelled = redis.call('HGET', run_key, 'cancelled') == '1'
local used = tonumber(redis.call('HGET', flows_key, flow .. ':retries') or '0')
if not ok and retryable and not cancelled and used < max_retries then
  local next_attempt = tonumber(attempt) + 1
  local delay = math.floor(backoff_ms * 2 ^ used)
  redis.call('HSET', flows_key, flow, S_PENDING, flow .. ':attempt', next_attempt,
             flow .. ':retries', used + 1, flow .. ':reason', retry_reason)
  redis.call('ZADD', leases, reserve_until + delay, member(run_id, flow, next_attempt))
  emit(run_key, stream, channel, maxlen, run_id, EV_STATUS, flow,
       status_data(S_PENDING, retry_reason))
  redis.call('HINCRBY', metrics, 'retried', 1)
  return {'retry', tostring(next_attempt), tostring(delay), release(0)}
end
redis.call('DEL', out_key)
charge(run_id, stored)
for j = 0, n_out - 1 do
  local name, value, preview = ARGV[i + 1 + 3 * j], ARGV[i + 2 + 3 * j], ARGV[i + 3 + 3 * j]
  if ok then redis.call('HSET', out_key, 'v:' .. name, value) end
  if keep_previews then redis.call('HSET', out_key, 'p:' .. name, preview) end
end
-- `_attempt` marks outputs a rerun may reuse (RedisStore.has): only those of a flow that ended well
if ok then redis.call('HSET', out_key, '_attempt', attempt) end
local left = redis.call('PTTL', run_key)  -- they go with the run (and its count), not later
if left > 0 then redis.call('PEXPIRE', out_key, left) else redis.call('EXPIRE', out_key, ttl) end
local status, index = S_ERROR, -1
if ok then
  status = S_READY
  index = redis.call('HINCRBY', run_key, 'completed', 1)
else
  redis.call('HSET', run_key, 'failed', '1')
end
if reason == '' then reason = false end
redis.call('HSET', flows_key, flow, status, flow .. ':index', index, flow .. ':duration', duration)
count_finished(metrics, status, tonumber(duration) or 0)
set_reason(flows_key, flow, reason)
emit(run_key, stream, channel, maxlen, run_id, EV_STATUS, flow,
     status_data(status, reason, ',"duration_s":' .. duration))
emit(run_key, stream, channel, maxlen, run_id, EV_INDEX, flow, '{"index":' .. index .. '}')
local unresolved = redis.call('HINCRBY', run_key, 'unresolved', -1)
local ready = {}
if ok then
  for _, child in ipairs(children) do
    local waiting = redis.call('HINCRBY', flows_key, child .. ':waiting', -1)
    if waiting == 0 and open(flows_key, child) then
      redis.call('HSET', flows_key, child, S_PENDING)
      local child_attempt = redis.call('HGET', flows_key, child .. ':attempt')
      redis.call('ZADD', leases, reserve_until, member(run_id, child, child_attempt))
      emit(run_key, stream, channel, maxlen, run_id, EV_STATUS, child, status_data(S_PENDING, false))
      ready[#ready + 1] = child
    end
  end
else
  for _, d in ipairs(below) do
    if open(flows_key, d) then
      redis.call('HSET', flows_key, d .. ':reason', skip_reason, d .. ':index', -2)
      emit(run_key, stream, channel, maxlen, run_id, EV_STATUS, d, status_data(S_IDLE, skip_reason))
      emit(run_key, stream, channel, maxlen, run_id, EV_INDEX, d, '{"index":-2}')
      unresolved = redis.call('HINCRBY', run_key, 'unresolved', -1)
    end
  end
end
local final = ''
if unresolved == 0 then final = finalize(run_key, done, stream, channel, maxlen, run_id) end
return {'ok', ready, final, release(#ready)}
"""
)

# KEYS: the step keys (run, flows, events, leases, metrics, done), then the owner's flow slots
#       (running), parked queues, parked attempts and the users with work ('' for a run without
#       an owner)
# ARGV: channel, maxlen, run_id, flow, attempt, expired_before, max_attempts, reserve_until,
#       cancel_reason, lost_reason (of the next attempt), the owner
# An attempt that ends here (gone, cancelled, taken over) frees its flow slot; the reaper
# releases the parked attempts that may then start (flow_slots.FlowSlots.heal).
# An attempt of a cancelled run is resolved here (error, cancelled, as when a worker kills it
# on cancel): sending it again would only meet CLAIM's "cancelled" and leave it unresolved.
REQUEUE = (
    PRELUDE
    + r"""
local run_key, flows_key, stream, leases, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[6]
local channel, maxlen, run_id, flow, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cancel_reason, lost_reason = ARGV[9], ARGV[10]
local this = member(run_id, flow, attempt)
local score = redis.call('ZSCORE', leases, this)
if score and tonumber(score) > tonumber(ARGV[6]) then return 'alive' end
local status = redis.call('HGET', flows_key, flow)
local running, where = KEYS[7] or '', KEYS[8] or ''
local function free_slot()  -- this attempt's, claimed or released to it
  if running == '' then return end
  redis.call('ZREM', running, this)
  redis.call('HDEL', where, this)
  slots_mark(KEYS[10], ARGV[11], running, KEYS[9])
end
if redis.call('HGET', flows_key, flow .. ':attempt') ~= attempt
   or (status ~= S_PENDING and status ~= S_RUNNING)
   or redis.call('HGET', run_key, 'final') ~= '0' then
  redis.call('ZREM', leases, this)
  free_slot()
  return 'gone'
end
if redis.call('HGET', run_key, 'cancelled') == '1' then
  redis.call('ZREM', leases, this)
  free_slot()
  local new_status = S_IDLE  -- not started: as CANCEL leaves the others
  if status == S_RUNNING then new_status = S_ERROR end
  redis.call('HSET', flows_key, flow, new_status, flow .. ':reason', cancel_reason)
  emit(run_key, stream, channel, maxlen, run_id, EV_STATUS, flow,
       status_data(new_status, cancel_reason))
  if status == S_RUNNING then
    redis.call('HINCRBY', KEYS[5], 'finished:' .. S_ERROR, 1)  -- started, never finished
    redis.call('HSET', run_key, 'failed', '1')
    redis.call('HSET', flows_key, flow .. ':index', -1)
    emit(run_key, stream, channel, maxlen, run_id, EV_INDEX, flow, '{"index":-1}')
  end
  resolved(run_key, done, stream, channel, maxlen, run_id)
  return 'cancelled'
end
if status == S_PENDING then
  redis.call('ZREM', leases, this)
  return 'resend'
end
local lost = tonumber(redis.call('HGET', flows_key, flow .. ':lost') or '0') + 1
if lost >= tonumber(ARGV[7]) then return 'exhausted' end
redis.call('ZREM', leases, this)
free_slot()
local next_attempt = tonumber(attempt) + 1
redis.call('HSET', flows_key, flow, S_PENDING, flow .. ':attempt', next_attempt,
           flow .. ':lost', lost, flow .. ':reason', lost_reason)
redis.call('ZADD', leases, ARGV[8], member(run_id, flow, next_attempt))
emit(run_key, stream, channel, maxlen, run_id, EV_STATUS, flow, status_data(S_PENDING, lost_reason))
return tostring(next_attempt)
"""
)
