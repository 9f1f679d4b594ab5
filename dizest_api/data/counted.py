"""How many tokens, webhooks, schedules and triggers one owner may hold in the shared Redis.

Each is small, but each costs one request to make and they never expire on their own: without a
bound, one user could fill Redis for everyone (a schedule also stores its run inputs). So a user
holds at most `MAX_PER_SCOPE` API tokens and `MAX_PER_SCOPE` webhooks, and a workflow at most
`MAX_PER_SCOPE` schedules and `MAX_PER_SCOPE` triggers (a user's workflows are bounded by
`library_quota`). Fixed, as a hosted service's are (GitHub: 20 webhooks per repository): the
numbers are far above what a person manages by hand.

`add_within` counts and writes in one optimistic transaction on the index, so two creates at
once cannot both take the last place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dizest_core.errors import InputError

MAX_PER_SCOPE = 100


class CountQuota(InputError):
    """A create refused: its scope holds MAX_PER_SCOPE of these already (the API answers 422)."""


def add_within(
    redis: Any,
    index: str,
    what: str,
    scope: str,
    write: Callable[[Any], None],
    record_key: Callable[[str], str] | None = None,
) -> None:
    """Run `write(pipe)` (queued commands, executed atomically) unless the set or sorted set
    `index` holds MAX_PER_SCOPE members already: else CountQuota, `what` naming the things
    ("tokens") and `scope` their holder ("user alice"). With `record_key`, members whose record
    (`record_key(member)`) has expired are dropped from `index` and not counted."""

    def step(pipe: Any) -> None:
        sorted_set = pipe.type(index) == "zset"
        members = pipe.zrange(index, 0, -1) if sorted_set else pipe.smembers(index)
        dead = [m for m in members if record_key and not pipe.exists(record_key(m))]
        held = len(members) - len(dead)
        if held >= MAX_PER_SCOPE:
            raise CountQuota(
                f"quota_{what}",
                f"{scope} holds {held} {what}, the most allowed ({MAX_PER_SCOPE}); "
                "delete one first",
                {what: held, "max": MAX_PER_SCOPE},
            )
        pipe.multi()
        if dead:
            (pipe.zrem if sorted_set else pipe.srem)(index, *dead)
        write(pipe)

    redis.transaction(step, index)
