"""The fair share of worker slots: how many flows one user's runs may run at once, and the Lua
rules that count, share out and hand on users' flow slots (`dizest_worker.flow_slots` says
who calls them; every Lua step that changes a user's slots is in `flow_scripts`, `scripts`).

The rule (`fair_limit`): a user with work (an attempt holding a slot or parked for one, or a
run submitted whose flows have not reached a worker yet) may hold `max(1, ceil(live / users))`
slots, where `live` is the flows the live workers run at once (`{p}:worker_slots`, counted while
the worker's beat in `{p}:workers` is younger than `liveness.WINDOW_S`) and `users` is how many
users have work (`{p}:flow_users`, and `{p}:flow_waiting` while its mark lasts). So a user alone
may use every slot of the cluster, and once another user submits, the first user's further
claims park while they hold their share or more; nothing running is stopped.
`DIZEST_USER_FLOW_SLOTS`, when set (0: none, the default), bounds the share from above. With no
live worker that says how many slots it has (workers older than this rule), the hard cap alone
bounds a user, as before it.

Invariants:
- A submit for a user marks them waiting (`fair_wait`, in CREATE, the step that makes the run:
  no window in which its flows are queued and the user not counted) until `WAITING_MS` later;
  their first claim or park removes the mark (they count by their slots from then on). So a
  user's first flow queued in the broker behind another user's backlog still counts: the other
  user's next claims park at their share and the workers reach it. A mark whose flows never
  arrive (a queue no worker serves) counts for `WAITING_MS` at most after the user's last
  submit; meanwhile spare slots are handed on as usual, less one per waiting user.
- `{p}:flow_users` holds each user whose running or parked set is not empty, with the size of
  the running one; every step that changes those sets rewrites the user's entry in the same
  script (`slots_mark`), and each reaper rewrites every entry each sweep, so a user whose sets
  expired with their runs stops counting.
- Freed slots go first to the users under their share, the one holding fewest first (then the
  most urgent attempt); then, while the users with work hold fewer slots than the live ones
  (spare: nobody under their share waits for them; one fewer per user marked waiting, whose
  flow is on its way), to the others, up to the hard cap. So the cluster stays busy while one
  user has parked work. A claim never takes spare slots (the
  broker's order would then give them to the user whose backlog is ahead): only an attempt
  released to it does, and it parks again, in its place, if the slots are no longer spare.
- A freeing step looks at its owner and at most `OTHER_USERS` other users with parked attempts
  (chosen at random each time); the reapers look at all of them every sweep.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import redis

from dizest_worker.keys import Keys, parse_lease

# How long a flow slot released to a parked attempt counts against further releases without a
# lease (its message waits in the broker), so that one free slot sends one message, not one a
# reaper sweep; past that, a release may send another. Claims count claimed attempts only.
SLOT_IN_FLIGHT_MS = 10_000
# How long a submit counts its user as having work before one of their flows is claimed or
# parked: long enough for a worker to free and reach their first flow behind another user's
# backlog (the other user's flows end; each later message of theirs then parks at once); short
# enough that a run whose queue no worker serves does not shrink the others' share for long.
WAITING_MS = 10 * 60 * 1000
SLOTS_SCAN = 256  # parked attempts of a user a release looks through for a served queue's
OTHER_USERS = 16  # users with parked attempts a finish may hand its slot on to (see above)
HEAL_USERS = 64  # users one reaper HEAL call looks at

Released = tuple[str, str, int]  # (run, flow, attempt) of an attempt released from parked


def user_keys(keys: Keys, user: str | None) -> list[str]:
    """A user's running and parked attempts and the queues of those ('' each for no user)."""
    if not user:
        return [""] * 3
    return [keys.user_running(user), keys.user_parked(user), keys.user_parked_queue(user)]


def cluster_keys(keys: Keys) -> list[str]:
    """What the share is computed from: users with work, worker beats, worker slots, users
    marked waiting."""
    return [keys.flow_users, keys.workers, keys.worker_slots, keys.flow_waiting]


def other_users(client: redis.Redis, keys: Keys, user: str | None) -> list[str]:
    """Up to OTHER_USERS users with parked attempts, other than `user`, picked at random: those
    a finish of `user`'s may hand its slot on to (none for a run without an owner)."""
    if not user:
        return []
    found = cast(list[bytes], client.srandmember(keys.parked, OTHER_USERS + 1) or [])
    return [u for u in sorted(x.decode() for x in found) if u != user][:OTHER_USERS]


def by_user(flat: Sequence[bytes]) -> dict[str, list[Released]]:
    """A release's answer (user, member, user, member...) as user -> attempts, in its order."""
    out: dict[str, list[Released]] = {}
    for user, member in zip(flat[::2], flat[1::2], strict=True):
        out.setdefault(user.decode(), []).append(parse_lease(member.decode()))
    return out


LUA = (
    f"local SLOT_IN_FLIGHT_MS, SLOTS_SCAN = {SLOT_IN_FLIGHT_MS}, {SLOTS_SCAN}\n"
    + r"""
-- A user's flow slots. `running`: the attempts holding one, scored 0 once claimed (held while a
-- lease of theirs lasts) or by the deadline of one released from `parked` whose message is on
-- its way; `where`: the queue (and place, see `queue_of`) of each parked or released attempt.
-- Drop those no attempt holds any more (claimed, and no lease: ended without saying so, as when
-- the run expired; released, past the deadline without a lease).
local function slots_heal(running, leases, where)
  local now = redis_ms()
  local items = redis.call('ZRANGE', running, 0, -1, 'WITHSCORES')
  for i = 1, #items, 2 do
    local deadline = tonumber(items[i + 1])
    if (deadline == 0 or deadline < now) and not redis.call('ZSCORE', leases, items[i]) then
      redis.call('ZREM', running, items[i])
      redis.call('HDEL', where, items[i])
    end
  end
end

-- `where` holds each parked or released attempt's queue and, after a newline, its place in
-- `parked` (level * 1e13 + when it was first parked, ms)
local function queue_of(where, m)
  return string.match(redis.call('HGET', where, m) or '', '^[^\n]*')
end

local function parked_at(where, m)
  return tonumber(string.match(redis.call('HGET', where, m) or '', '\n(%d+)$'))
end

-- `user`'s entry in `users` ({p}:flow_users) after a change of their running or parked set
local function slots_mark(users, user, running, parked)
  if users == '' or user == '' then return end
  local held = redis.call('ZCARD', running)
  if held + redis.call('ZCARD', parked) > 0 then redis.call('HSET', users, user, held)
  else redis.call('HDEL', users, user) end
end

-- `user` submitted a run: they count as having work until `ms` from now (or a later mark)
local function fair_wait(waiting, user, ms)
  local now = redis_ms()
  redis.call('ZREMRANGEBYSCORE', waiting, '-inf', now)
  redis.call('ZADD', waiting, 'GT', now + ms, user)
  if redis.call('PTTL', waiting) < ms then redis.call('PEXPIRE', waiting, ms) end
end

-- The cluster as the share sees it: `live`, the slots of the workers whose beat is not older
-- than `live_since` (ms); `users`, the users with work (and `user`, about to have some);
-- `total`, the slots they hold; `waiting`, the users other than `user` counted by their mark
-- alone (a submit whose flows are still on their way: each may want a slot).
local function fair_read(users, workers, worker_slots, waiting, live_since, user)
  local f = {key = users, live = 0, users = 0, total = 0, waiting = 0}
  local slots = {}
  local pairs_ = redis.call('HGETALL', worker_slots)
  for i = 1, #pairs_, 2 do slots[pairs_[i]] = tonumber(pairs_[i + 1]) or 0 end
  local beats = redis.call('HGETALL', workers)
  for i = 1, #beats, 2 do
    if (tonumber(beats[i + 1]) or 0) >= live_since then f.live = f.live + (slots[beats[i]] or 0) end
  end
  local held, counted = redis.call('HGETALL', users), {}
  for i = 1, #held, 2 do
    f.users = f.users + 1
    f.total = f.total + (tonumber(held[i + 1]) or 0)
    counted[held[i]] = true
  end
  for _, u in ipairs(redis.call('ZRANGEBYSCORE', waiting, '(' .. redis_ms(), '+inf')) do
    if not counted[u] then
      f.users, counted[u] = f.users + 1, true
      if u ~= user then f.waiting = f.waiting + 1 end
    end
  end
  if user and not counted[user] then f.users = f.users + 1 end
  return f
end

-- The most slots one user may hold now: their share of the live slots, at most `hard` (0: no
-- hard cap); 0: no bound at all (no live worker says how many it has, and no hard cap).
local function fair_limit(hard, f)
  local limit = 0
  if f.live > 0 then limit = math.max(1, math.ceil(f.live / math.max(1, f.users))) end
  if hard > 0 and (limit == 0 or hard < limit) then limit = hard end
  return limit
end

-- one user a release may hand slots to; `coming`: their attempts about to claim (a finish's
-- ready children: a parked attempt never takes the slot of the next flow of a chain)
local function slots_user(user, running, parked, where, coming)
  return {user = user, running = running, parked = parked, where = where, coming = coming}
end

-- Release parked attempts of the users `cands` (see the module docstring for the order), of the
-- first SLOTS_SCAN of each: those whose flow goes to one of `queues` (a worker that just freed a
-- slot serves them), or of any queue with `queues` empty (a reaper). A user's claimed and coming
-- attempts and those released to the same queue, still on their way, count against the bound
-- (a message waiting behind a busy queue so never holds back a release to another). Each takes
-- a reservation lease until `reserve_until` (a reaper sends it again if its sender dies first).
-- Returns {user, member, user, member, ...}; `f` (fair_read) and each user's entry follow.
local function slots_release(cands, f, hard, leases, reserve_until, queues)
  local out, served, coming = {}, {}, 0
  for _, q in ipairs(queues) do served[q] = true end
  local limit = fair_limit(hard, f)
  for _, c in ipairs(cands) do
    c.todo, c.on_way, coming = {}, {}, coming + c.coming
    if redis.call('EXISTS', c.parked) == 1 then
      slots_heal(c.running, leases, c.where)
      c.claimed = redis.call('ZCOUNT', c.running, 0, 0) + c.coming
      c.load = c.claimed
      for _, m in ipairs(redis.call('ZRANGEBYSCORE', c.running, '(0', '+inf')) do
        local q = queue_of(c.where, m)
        c.on_way[q] = (c.on_way[q] or 0) + 1
        c.load = c.load + 1
      end
      local items = redis.call('ZRANGE', c.parked, 0, SLOTS_SCAN - 1, 'WITHSCORES')
      for i = 1, #items, 2 do
        local q = queue_of(c.where, items[i])
        if #queues == 0 or served[q] then
          c.todo[#c.todo + 1] = {m = items[i], q = q, at = tonumber(items[i + 1])}
        end
      end
      c.ttl = redis.call('PTTL', c.parked)  -- CLAIM's: ttl_s from the newest
    end
  end
  local function next_of(c, bound)  -- c's next attempt that keeps it under `bound` (0: none)
    for _, x in ipairs(c.todo) do
      if not x.sent and (bound == 0 or c.claimed + (c.on_way[x.q] or 0) < bound) then return x end
    end
  end
  local function pick(bound)  -- the user holding fewest, then the most urgent attempt
    local best, bx
    for _, c in ipairs(cands) do
      local x = next_of(c, bound)
      if x and (not best or c.load < best.load or (c.load == best.load and x.at < bx.at)) then
        best, bx = c, x
      end
    end
    return best, bx
  end
  local deadline = redis_ms() + SLOT_IN_FLIGHT_MS
  while true do
    local c, x = pick(limit)  -- under their share
    if not c and f.live > 0 and f.total + coming + f.waiting < f.live then  -- spare
      c, x = pick(hard)
    end
    if not c then break end
    x.sent = true
    redis.call('ZREM', c.parked, x.m)
    redis.call('ZADD', c.running, deadline, x.m)
    if c.ttl > 0 and redis.call('PTTL', c.running) < c.ttl then
      redis.call('PEXPIRE', c.running, c.ttl)
    end
    redis.call('ZADD', leases, reserve_until, x.m)
    c.on_way[x.q] = (c.on_way[x.q] or 0) + 1
    c.load, f.total = c.load + 1, f.total + 1
    out[#out + 1] = c.user
    out[#out + 1] = x.m
  end
  for _, c in ipairs(cands) do slots_mark(f.key, c.user, c.running, c.parked) end
  return out
end
"""
)
