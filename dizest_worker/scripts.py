"""The Lua scripts that advance a run in Redis; each is one atomic step with an "I was last" answer.

They apply the rules of `dizest_core.runstate` (tests/worker/test_run_state_contract.py proves it):
the run-level steps are here, the steps of one flow attempt in `flow_scripts`, and the prelude
they share (names, `emit`, `finalize`) in `lua_prelude`. Every key a script touches is in KEYS;
reasons, first events and what lies below a flow come from the Python side in ARGV.

    CREATE     a planned run: record, snapshot, flows, index, reservations, reused outputs,
               first events, its owner marked waiting for a flow slot (fair_share),
               idempotency key (written last)                    -> {1, run} | {0, existing run}
    CLAIM      pending flow attempt -> running, lease and its owner's flow slot taken, its
               input values read; parked when its owner holds their share of the
               cluster's slots (fair_share)
                                                        -> ok+values | stale | cancelled | wait
    FINISH     running attempt -> ready/error (or back to pending to retry, while its own
               retries last), outputs written, children whose last parent finished -> pending,
               descendants of a failure skipped, run finalized when nothing is left; its
               flow slot freed and parked attempts (its owner's, under-share users'
               first) released                                  -> {ok|retry|stale|alive, ...}
    REQUEUE    expired lease: running attempt -> next attempt pending        -> attempt
               pending flow nobody claimed -> send it again                   -> resend
               attempt of a cancelled run -> resolved as cancelled           -> cancelled
               running attempt lost too often (caller then FINISHes it)    -> exhausted
               otherwise                                                      -> gone | alive
    CANCEL     every not-started flow, in plan order -> idle (cancelled); workers told
                                                                     -> final | n
    EMIT       events for a run that has not ended                           -> ids
    RELEASE    drop reservations of flows still pending at that attempt (sent, unclaimed)
                                                                     -> n dropped
    HEARTBEAT  extend the leases of one run that still exist; is the run cancelled?
                                                                -> {1|0, 1|0 per lease}
    FORGET     drop workers (their slots, their info) whose last beat is older than a cutoff
                                                                     -> n dropped
    HEAL       (flow_slots) free users' flow slots nothing holds, release parked attempts
                                                      -> {user, member released, ...}

A flow's `{f}:reason` field always holds the reason its latest `flow.status` event gave (absent
for none), so the flows hash alone rebuilds every status even after the capped stream is trimmed.
User-code retries (`{f}:retries`) and worker losses (`{f}:lost`) are counted apart: `retries: 3`
means three retries of failing code whatever the number of lost workers, which `max_attempts`
bounds on its own.
"""

from __future__ import annotations

from dizest_worker.flow_scripts import CLAIM, FINISH, REQUEUE
from dizest_worker.lua_prelude import PRELUDE, bucket_name

__all__ = [
    "CANCEL",
    "CLAIM",
    "CREATE",
    "EMIT",
    "FINISH",
    "FORGET",
    "HEARTBEAT",
    "RELEASE",
    "REQUEUE",
    "bucket_name",
]

# KEYS: run, flows, events, pkg, runs (index), leases, idempotency ('' for none), done,
#       the record of the run the idempotency key named when read ('' for none),
#       the owner's stored-bytes hash and stored runs ('' for none), the users marked waiting
#       for a flow slot ('' for none), then (source outputs, outputs) of each reused flow,
#       then the keep key of each run whose artifacts it reuses
# ARGV: channel, maxlen, run_id, ttl_s, now_ms, reserve_until, the run the idempotency key
#       named when read ('' for none), snapshot, n, record (field, value)..., n, flows
#       (field, value)..., n, roots..., n, events (type, flow, data_json)..., n reused flows,
#       the owner's quota in bytes ('' for none), the owner, how long (ms) a run with flows to
#       send marks its owner waiting (fair_share.fair_wait: in this step, so no flow of theirs
#       is queued before the share counts them)
# The snapshot, the record and the reused outputs it copies count towards the owner's quota; a
# new run of an owner whose runs hold it already is refused ({3, bytes held}); the account
# lives as long as the owner's newest run.
# The idempotency key is written last and only names a run that exists: a script that fails
# half-way leaves no key behind, and a key whose run is gone is taken over. The key is read
# before the script (so the run it names comes in KEYS); if it changed since, the answer is
# {2, run} and the caller reads it again.
CREATE = (
    PRELUDE
    + r"""
local run_key, flows_key, stream, pkg_key, runs_key, leases, idem, done =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local channel, maxlen, run_id, ttl, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
if idem ~= '' then
  local existing = redis.call('GET', idem)
  if existing and existing ~= ARGV[7] then return {2, existing} end
  if existing and redis.call('EXISTS', KEYS[9]) == 1 then return {0, existing} end
end
local function hset_from(key, i)  -- HSET the n (field, value) args after ARGV[i]; next index
  local n = tonumber(ARGV[i])
  for j = i + 1, i + n, 2000 do  -- in slices: unpack() has a stack limit
    redis.call('HSET', key, unpack(ARGV, j, math.min(j + 1999, i + n)))
  end
  return i + n + 1
end
ACCT = KEYS[10]
if ACCT ~= '' then  -- a new run for a user whose runs hold their quota: refused here, atomically
  local at = 9  -- past the record, the flows, the roots and the events: the quota
  for _, per in ipairs({1, 1, 1, 3}) do at = at + tonumber(ARGV[at]) * per + 1 end
  local held = tonumber(redis.call('HGET', ACCT, 'bytes') or '0')
  if held >= tonumber(ARGV[at + 1]) then return {3, tostring(held)} end
end
local function strlen_sum(from, to)
  local n = 0
  for j = from, to do n = n + #ARGV[j] end
  return n
end
local function strlen_sum_of(hash)
  local n = 0
  for _, v in ipairs(redis.call('HVALS', hash)) do n = n + #v end
  return n
end
redis.call('SET', pkg_key, ARGV[8], 'EX', ttl)
local i = hset_from(run_key, 9)
charge(run_id, RUN_COST + #ARGV[8] + strlen_sum(10, i - 1))
redis.call('HSET', run_key, 'final', '0')
redis.call('EXPIRE', run_key, ttl)
if tonumber(ARGV[i]) > 0 then
  local first = i + 1
  i = hset_from(flows_key, i)
  charge(run_id, strlen_sum(first, i - 1))
  redis.call('EXPIRE', flows_key, ttl)
else
  i = i + 1
end
redis.call('ZADD', runs_key, now, run_id)
redis.call('ZREMRANGEBYSCORE', runs_key, '-inf', '(' .. (tonumber(now) - ttl * 1000))
redis.call('EXPIRE', runs_key, ttl)  -- refreshed by each run: once it lapses, all theirs did
local n_roots = tonumber(ARGV[i])
for j = i + 1, i + n_roots do  -- roots: reserved until the submitter has sent them
  redis.call('ZADD', leases, ARGV[6], member(run_id, ARGV[j], '1'))
end
i = i + n_roots + 1
for j = i + 1, i + tonumber(ARGV[i]) * 3, 3 do
  emit(run_key, stream, channel, maxlen, run_id, ARGV[j], ARGV[j + 1], ARGV[j + 2])
end
local n_reused_at = i + tonumber(ARGV[i]) * 3 + 1
if ACCT ~= '' then  -- the account and its runs live as long as the newest run, never less
  redis.call('HSET', ACCT, 'quota', ARGV[n_reused_at + 1])
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[11], t[1] * 1000 + math.floor(t[2] / 1000), run_id)
  for _, key in ipairs({ACCT, KEYS[11]}) do
    if redis.call('PTTL', key) < ttl * 1000 then redis.call('EXPIRE', key, ttl) end
  end
end
if KEYS[12] ~= '' and n_roots > 0 then
  fair_wait(KEYS[12], ARGV[n_reused_at + 2], tonumber(ARGV[n_reused_at + 3]))
end
local last_copy = 12 + 2 * tonumber(ARGV[n_reused_at])
for k = 13, last_copy, 2 do
  redis.call('COPY', KEYS[k], KEYS[k + 1], 'REPLACE')
  redis.call('EXPIRE', KEYS[k + 1], ttl)
  charge(run_id, strlen_sum_of(KEYS[k + 1]))
end
for k = last_copy + 1, #KEYS do redis.call('SET', KEYS[k], '1', 'EX', ttl) end
if tonumber(redis.call('HGET', run_key, 'unresolved')) <= 0 then
  finalize(run_key, done, stream, channel, maxlen, run_id)
end
if idem ~= '' then redis.call('SET', idem, run_id, 'EX', ttl) end
return {1, run_id}
"""
)

# KEYS: run, flows, events, done, the owner's parked attempts, flow slots, parked queues, the
#       users with work and the users marked waiting ('' each for a run without an owner)
# ARGV: channel, maxlen, run_id, control_channel, reason, the owner, the run's flows in plan
#       order...
# Its parked attempts leave the owner's parked set and those released to it give their slots
# back (sent, they would only hold one until their claim); the owner's waiting mark goes (a run
# cancelled at once kept halving the others' share for its 10 minutes).
CANCEL = (
    PRELUDE
    + r"""
local run_key, flows_key, stream, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local parked, slots, where = KEYS[5] or '', KEYS[6] or '', KEYS[7] or ''
local channel, maxlen, run_id, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
if redis.call('EXISTS', run_key) == 0 then return -1 end
if redis.call('HGET', run_key, 'final') == '1' then return 'final' end
redis.call('HSET', run_key, 'cancelled', '1')
local running = 0
for i = 7, #ARGV do
  local flow = ARGV[i]
  local status = redis.call('HGET', flows_key, flow)
  if status == S_RUNNING then running = running + 1 end
  if status == S_PENDING and parked ~= '' then
    local m = member(run_id, flow, redis.call('HGET', flows_key, flow .. ':attempt'))
    redis.call('ZREM', parked, m)
    redis.call('HDEL', where, m)
    if tonumber(redis.call('ZSCORE', slots, m) or '0') > 0 then redis.call('ZREM', slots, m) end
  end
  if status == S_PENDING or open(flows_key, flow) then
    redis.call('HSET', flows_key, flow, S_IDLE, flow .. ':reason', reason)
    emit(run_key, stream, channel, maxlen, run_id, EV_STATUS, flow, status_data(S_IDLE, reason))
    redis.call('HINCRBY', run_key, 'unresolved', -1)
  end
end
if slots ~= '' then
  slots_mark(KEYS[8], ARGV[6], slots, parked)
  redis.call('ZREM', KEYS[9], ARGV[6])
end
redis.call('PUBLISH', ARGV[4], 'cancel ' .. run_id)
if tonumber(redis.call('HGET', run_key, 'unresolved')) <= 0 then
  finalize(run_key, done, stream, channel, maxlen, run_id)
  return 'final'
end
return running
"""
)

# KEYS: run, events, the owner's stored-bytes hash (optional)
# ARGV: channel, maxlen, run_id, (type, flow, data_json)...
# Once the owner's runs hold their quota, logs and results are dropped (statuses never are), and
# the first drop in the run says so, once, as a line of the engine.
EMIT = (
    PRELUDE
    + r"""
ACCT = KEYS[3] or ''
local ids = {}
for i = 4, #ARGV, 3 do
  local etype = ARGV[i]
  if (etype == EV_LOG or etype == EV_RESULT) and full(event_cost(#ARGV[i + 2])) then
    if redis.call('HGET', KEYS[1], 'final') == '0'  -- never remake a gone run's record
       and redis.call('HSETNX', KEYS[1], 'quota_full', '1') == 1 then
      local quota = redis.call('HGET', ACCT, 'quota')
      local entry = 'dizest: the runs of its owner hold their storage quota (' .. quota
        .. ' bytes) until they expire: further logs and results of this run are dropped'
      emit(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], EV_LOG, ARGV[i + 1],
           '{"entry":' .. cjson.encode(entry) .. ',"stream":"engine"}')
    end
  else
    local id = emit(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], etype, ARGV[i + 1], ARGV[i + 2])
    if id then ids[#ids + 1] = id end
  end
end
return ids
"""
)

# KEYS: leases, then the flows hash of each flow's run   ARGV: (run_id, flow, attempt) of each
# A reservation and the lease its claim takes are one member, run\x1fflow\x1fattempt (CLAIM's ZADD
# replaces the one with the other), and a claim may land between the enqueue and this release.
# So the entry is only dropped while it still is a reservation: its flow pending at that attempt.
# Deleting a claimed attempt's lease would leave it running unseen by the reaper for good.
RELEASE = (
    PRELUDE
    + r"""
local dropped = 0
for i = 2, #KEYS do
  local j = (i - 2) * 3
  local run_id, flow, attempt = ARGV[j + 1], ARGV[j + 2], ARGV[j + 3]
  if redis.call('HGET', KEYS[i], flow) == S_PENDING
     and redis.call('HGET', KEYS[i], flow .. ':attempt') == attempt then
    dropped = dropped + redis.call('ZREM', KEYS[1], member(run_id, flow, attempt))
  end
end
return dropped
"""
)

# KEYS: leases, run   ARGV: expiry_ms, the members of that run's leases...
# -> {cancelled 1|0, then 1|0 for each member: still there (extended) or taken over}
# The cancelled flag rides on the heartbeat so that a worker sees a cancel within lease/3 s
# even when the control message was lost (pub/sub drops it across a reconnect).
HEARTBEAT = r"""
local reply = {0}
if redis.call('HGET', KEYS[2], 'cancelled') == '1' then reply[1] = 1 end
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
    reply[i] = 1
  else
    reply[i] = 0
  end
end
return reply
"""

# KEYS: workers, then the hashes of what a worker says with its beat (worker_slots, worker_info,
# worker_packages)
# ARGV: cutoff_ms
# One step, so a worker that beats meanwhile is never dropped on a stale reading; what its beat
# writes goes with it (and that of a worker with no beat at all).
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
for k = 2, #KEYS do
  for _, name in ipairs(redis.call('HKEYS', KEYS[k])) do
    if redis.call('HEXISTS', KEYS[1], name) == 0 then redis.call('HDEL', KEYS[k], name) end
  end
end
return gone
"""
