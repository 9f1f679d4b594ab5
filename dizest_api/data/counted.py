"""How many tokens, webhooks, schedules and triggers one owner may hold in the shared Redis.

Each is small, but each costs one request to make and they never expire on their own: without a
bound, one user could fill Redis for everyone (a schedule also stores its run inputs). So a user
holds at most `MAX_PER_SCOPE` API tokens and `MAX_PER_SCOPE` webhooks, and a workflow at most
`MAX_PER_SCOPE` schedules and `MAX_PER_SCOPE` triggers (a user's workflows are bounded by
`library_quota`). Fixed, as a hosted service's are (GitHub: 20 webhooks per repository): the
numbers are far above what a person manages by hand. A thing may count in more than one scope
(`also`): a schedule counts in its workflow's and in its owner's (`DIZEST_MAX_SCHEDULES_PER_USER`:
each one is a tick the single firing beat sends, so a user's total is bounded, not only theirs
per workflow).

`add_within` counts and writes in one optimistic transaction on the indexes, so two creates at
once cannot both take the last place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
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
    also: Sequence[tuple[str, str, int]] = (),
) -> None:
    """Run `write(pipe)` (queued commands, executed atomically) unless the set or sorted set
    `index` holds MAX_PER_SCOPE members already: else CountQuota, `what` naming the things
    ("tokens") and `scope` their holder ("user alice"). `also`: more `(index, scope, most)`
    bounds, checked in the same transaction. With `record_key`, members whose record
    (`record_key(member)`) has expired are dropped from the indexes and not counted."""
    bounds = [(index, scope, MAX_PER_SCOPE), *also]

    def step(pipe: Any) -> None:
        drops = [_check(pipe, key, what, name, most, record_key) for key, name, most in bounds]
        pipe.multi()
        for drop in drops:
            drop()
        write(pipe)

    redis.transaction(step, *(key for key, _, _ in bounds))


def _check(
    pipe: Any,
    index: str,
    what: str,
    scope: str,
    most: int,
    record_key: Callable[[str], str] | None,
) -> Callable[[], None]:
    """CountQuota if `index` holds `most` live members; else what drops its dead ones (to be
    queued in the transaction)."""
    sorted_set = pipe.type(index) == "zset"
    members = pipe.zrange(index, 0, -1) if sorted_set else pipe.smembers(index)
    dead = [m for m in members if record_key and not pipe.exists(record_key(m))]
    held = len(members) - len(dead)
    if held >= most:
        raise CountQuota(
            f"quota_{what}",
            f"{scope} holds {held} {what}, the most allowed ({most}); delete one first",
            {what: held, "max": most},
        )
    if not dead:
        return lambda: None
    return lambda: (pipe.zrem if sorted_set else pipe.srem)(index, *dead)
