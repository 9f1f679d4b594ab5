"""Flow slots: how many flows the runs of one user run at once, over the whole cluster.

Workers take flow tasks from one broker queue in order, so without a bound one user's backlog
(a wide run, a hundred runs, flows that sleep for hours) would hold every worker slot while
everyone else's flows wait behind it. A run submitted for a user (through the service: the run
record's `account`) therefore holds at most its owner's fair share of the cluster's live worker
slots (`dizest_worker.fair_share`: all of them for a user alone, and never more than
`DIZEST_USER_FLOW_SLOTS` when that is set):

- CLAIM takes a slot with the attempt, in the same atomic step (`{p}:user:{name}:running`,
  the attempt's lease member, score 0). An attempt that finds its owner's claimed attempts at
  their share is *parked* instead (`{p}:user:{name}:parked`, most urgent level first, then
  oldest): it stays pending, without a lease and without a message, its reason says why, and
  its worker moves on to the next task. Another user's task is claimed as soon as it reaches a
  worker (under their share). A user counts from their submit (CREATE marks them waiting,
  `fair_share.fair_wait`), so the share is smaller for both before then: the first user's
  backlog parks and the workers reach the other's first flow.
- The step that ends an attempt (FINISH, or REQUEUE when its worker is lost) frees its slot,
  and FINISH hands on what the free slots allow, atomically, after the run's children it made
  ready (they claim next): to parked attempts of its owner and of other users with parked
  attempts, those under their share first (fair_share), only of the queues the finishing worker
  serves (a released message waiting behind a busy queue would hold the slot while this worker
  idles). Each counts against further releases to its queue from then on (until its claim, or
  `SLOT_IN_FLIGHT_MS` without a lease), not against claims nor releases to other queues (its
  message may wait behind a busy queue; if a claim took the slot meanwhile, it parks again
  when it arrives), and holds a reservation lease while its sender sends it, so a reaper sends
  it again if that sender dies first. Attempts park at their flow's level in the plan (a
  message does not carry it).
- Each reaper looks at every user with work every sweep (`FlowSlots.heal`): it frees slots
  that nothing holds any more (an attempt that ended without saying so, as when its run
  expired), forgets users with none, and releases what the shares and spare slots allow, of
  any queue, so nothing stays parked for want of a finish on its queue.

Runs submitted by a program with its own Redis access (no account) hold no slot. The rules are
in `fair_share` (`slots_heal`, `slots_release`, `fair_limit`) and CLAIM/FINISH/REQUEUE
(`flow_scripts`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from dizest_worker.fair_share import HEAL_USERS, Released, by_user, cluster_keys, user_keys
from dizest_worker.keys import lease_member
from dizest_worker.liveness import live_since_ms
from dizest_worker.lua_prelude import PRELUDE
from dizest_worker.messages import Enqueue, FlowTask, flow_task
from dizest_worker.state import FinishResult, RedisRuns

log = logging.getLogger("dizest.flow_slots")

# KEYS: leases, the set of users with parked attempts, the users with work, worker beats,
#       worker slots, users marked waiting, then the running and parked attempts and their
#       queues of each user
# ARGV: the hard cap of a user's slots (0: none), reserve_until, the oldest live beat (ms),
#       the users
# Expired waiting marks are dropped.
# Returns {user, member, ...} of the attempts released, of any queue (see slots_release).

HEAL = (
    PRELUDE
    + r"""
redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', redis_ms())
local cands = {}
for j = 4, #ARGV do
  local k = 6 + 3 * (j - 4)
  local c = slots_user(ARGV[j], KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], 0)
  slots_heal(c.running, KEYS[1], c.where)
  slots_mark(KEYS[3], c.user, c.running, c.parked)
  cands[#cands + 1] = c
end
local f = fair_read(KEYS[3], KEYS[4], KEYS[5], KEYS[6], tonumber(ARGV[3]))
local out = slots_release(cands, f, tonumber(ARGV[1]), KEYS[1], ARGV[2], {})
for _, c in ipairs(cands) do
  if redis.call('EXISTS', c.parked) == 0 then redis.call('SREM', KEYS[2], c.user) end
end
return out
"""
)

# KEYS: what the share is computed from (cluster_keys)   ARGV: the oldest live beat (ms)
# Returns {live slots, users with work} as the share counts them now.
SHARE = (
    PRELUDE
    + r"""
local f = fair_read(KEYS[1], KEYS[2], KEYS[3], KEYS[4], tonumber(ARGV[1]))
return {f.live, f.users}
"""
)


class FlowSlots:
    """Sending released attempts, and the reapers' look at the users with parked ones."""

    def __init__(self, runs: RedisRuns, enqueue: Enqueue) -> None:
        self.runs = runs
        self.enqueue = enqueue
        self._heal = runs.client.register_script(HEAL)
        self._share = runs.client.register_script(SHARE)

    def send(self, released: Iterable[Released], user: str | None) -> int:
        """Enqueue attempts of `user` released from parked, then drop their reservations (the
        broker holds them now); returns how many. One whose run is gone gives its slot back."""
        tasks: list[tuple[FlowTask, str]] = []
        for run_id, flow_id, attempt in released:
            ctx = self.runs.context(run_id)
            if ctx is None or flow_id not in ctx.plan.parents:
                if user:  # its reservation expires: the reaper finds nothing to send
                    member = lease_member(run_id, flow_id, attempt)
                    self.runs.client.zrem(self.runs.keys.user_running(user), member)
                    self.runs.client.hdel(self.runs.keys.user_parked_queue(user), member)
                continue
            queue = ctx.flow_options(flow_id, self.runs.settings).queue
            tasks.append((flow_task(ctx, flow_id, attempt), queue))
        if tasks:
            self.enqueue(tasks, 0.0)
            self.runs.release([(t.run_id, t.flow_id, t.attempt) for t, _ in tasks])
        return len(tasks)

    def hand_on(self, result: FinishResult, owner: str | None) -> int:
        """Send what a finish released: its owner's parked attempts, then other users'."""
        sent = self.send(result.released, owner)
        others: dict[str, list[Released]] = {}
        for user, attempt in result.handed_on:
            others.setdefault(user, []).append(attempt)
        return sent + sum(self.send(attempts, user) for user, attempts in others.items())

    def heal(self) -> int:
        """For each user with work: free the slots nothing holds, send what that and the
        shares release. Returns how many attempts were sent."""
        keys, settings, client = self.runs.keys, self.runs.settings, self.runs.client
        users = sorted(
            {u.decode() for u in [*client.hkeys(keys.flow_users), *client.smembers(keys.parked)]}
        )
        sent = 0
        for at in range(0, len(users), HEAL_USERS):
            chunk = users[at : at + HEAL_USERS]
            answer = self._heal(
                keys=[keys.leases, keys.parked, *cluster_keys(keys)]
                + [key for user in chunk for key in user_keys(keys, user)],
                args=[settings.user_flow_slots, self.runs.reservation(), live_since_ms(), *chunk],
            )
            for user, released in by_user(answer).items():
                log.info("released %d parked flows of %s", len(released), user)
                try:
                    sent += self.send(released, user)
                except (ValueError, RecursionError):  # a record no door stores: the next user
                    log.exception("could not send the released flows of %s", user)
        return sent

    def share(self) -> tuple[int, int]:
        """The flows the live workers run at once and the users with work, as the share counts
        them now (fair_share)."""
        live, users = self._share(keys=cluster_keys(self.runs.keys), args=[live_since_ms()])
        return int(live), int(users)

    def live_slots(self) -> int:
        """The flows the live workers run at once, as the share counts them (fair_share)."""
        return self.share()[0]
