"""Flow slots: how many flows the runs of one user run at once, over the whole cluster.

Workers take flow tasks from one broker queue in order, so without a bound one user's backlog
(a wide run, a hundred runs, flows that sleep for hours) would hold every worker slot while
everyone else's flows wait behind it. A run submitted for a user (through the service: the run
record's `account`) therefore holds at most `DIZEST_USER_FLOW_SLOTS` slots (16; 0: no limit):

- CLAIM takes a slot with the attempt, in the same atomic step (`{p}:user:{name}:running`,
  the attempt's lease member, score 0). An attempt that finds its owner's claimed attempts at
  the cap is *parked* instead (`{p}:user:{name}:parked`, most urgent level first, then oldest): it stays
  pending, without a lease and without a message, its reason says why, and its worker moves
  on to the next task. Another user's task is claimed as soon as it reaches a worker.
- The step that ends an attempt (FINISH, or REQUEUE when its worker is lost) frees its slot,
  and FINISH releases the parked attempts the free slots allow, atomically, after the run's
  children it made ready (they claim next) and only of the queues the finishing worker serves
  (a released message waiting behind a busy queue would hold the slot while this worker idles):
  each counts against further releases to its queue from then on (until its claim, or
  `SLOT_IN_FLIGHT_MS` without a lease), not against claims nor releases to other queues (its
  message may wait behind a busy queue; if a claim took the slot meanwhile, it parks again
  when it arrives), and holds a reservation lease while its sender sends it, so a reaper sends
  it again if that sender dies first. Attempts park at their flow's level in the plan (a message does not carry it).
- Each reaper looks at the users with parked attempts every sweep (`FlowSlots.heal`): it frees
  slots that nothing holds any more (an attempt that ended without saying so, as when its run
  expired) and releases what they allow, of any queue, so nothing stays parked for want of a
  finish on its queue.

Runs submitted by a program with its own Redis access (no account) hold no slot. The rules are
in `lua_prelude` (`slots_heal`, `slots_release`) and CLAIM/FINISH/REQUEUE (`flow_scripts`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from dizest_worker.keys import lease_member, parse_lease
from dizest_worker.lua_prelude import PRELUDE
from dizest_worker.messages import Enqueue, FlowTask, flow_task
from dizest_worker.state import RedisRuns

log = logging.getLogger("dizest.flow_slots")

# KEYS: the user's running and parked attempts and their queues, the set of users with parked
#       attempts, leases
# ARGV: the user's flow slots (0: no limit), reserve_until, the user
# Returns the members of the attempts released, of any queue (see slots_release).
HEAL = (
    PRELUDE
    + r"""
local out = slots_release(KEYS[1], KEYS[2], KEYS[3], KEYS[5], tonumber(ARGV[1]), ARGV[2], {}, 0)
if redis.call('EXISTS', KEYS[2]) == 0 then redis.call('SREM', KEYS[4], ARGV[3]) end
return out
"""
)


class FlowSlots:
    """Sending released attempts, and the reapers' look at the users with parked ones."""

    def __init__(self, runs: RedisRuns, enqueue: Enqueue) -> None:
        self.runs = runs
        self.enqueue = enqueue
        self._heal = runs.client.register_script(HEAL)

    def send(self, released: Iterable[tuple[str, str, int]], user: str | None) -> int:
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

    def heal(self) -> int:
        """For each user with parked attempts: free the slots nothing holds, send what that
        releases. Returns how many attempts were sent."""
        keys, settings = self.runs.keys, self.runs.settings
        sent = 0
        for raw in self.runs.client.smembers(keys.parked):
            user = raw.decode()
            members = self._heal(
                keys=[*self.runs.slot_keys(user), keys.leases],
                args=[settings.user_flow_slots, self.runs.reservation(), user],
            )
            released = [parse_lease(m.decode()) for m in members]
            if released:
                log.info("released %d parked flows of %s", len(released), user)
                try:
                    sent += self.send(released, user)
                except (ValueError, RecursionError):  # a record no door stores: the next user
                    log.exception("could not send the released flows of %s", user)
        return sent
