"""Removing a user with everything of theirs, so that nothing passes to whoever comes next.

`remove_user` is what `DELETE /api/v1/users/<name>` and `dizest user remove` both call:

1. The account goes (`retire`): the user's hash, tokens and sessions, in one transaction with
   the retirement of the name (`Keys.users_retired`). From then on nothing authenticates as
   the user, and the name is never given again: runs stay in Redis under their owner's name for
   their TTL (with their inputs, logs and outputs), and a new user of that name would get them.
2. Then what the user made that would otherwise live on: their webhooks (for all their runs and
   per workflow), the schedules and triggers they own on any workflow and every one of their own
   workflows' (whoever made them), their workflows and grants, and their drive.
3. The retirement is marked done. A removal cut short after 1 (Redis away, a crash) is run again
   by the same call: a name retired but not done is cleared again, rather than answered as an
   unknown user.
4. A request of the user's that authenticated before 1 may still be writing (a workflow, a
   file, a hook) when 2 is over. So every write request, once its view is done, looks whether
   its user is retired and, if so, clears again (`clear_late`, the app's teardown hook). Its
   look comes after its writes: it sees the retirement, or the retirement came after its writes
   and so did the removal's own clearing. For that, a clearing takes out of the user's indexes
   (their workflows, their hooks) only the ids it listed, never a whole index: one that deleted
   the index after listing it would unlist what a request wrote in between, and that request's
   own clearing, listing after, would miss it.

Runs are left to expire with their TTL (admins still see them); their files go with them.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass
from typing import Any

from dizest_api.automation.hooks import HookNotFound
from dizest_api.automation.schedules import ScheduleNotFound
from dizest_api.automation.service import Automation, drop_made_by
from dizest_api.data.accounts import Accounts, UserNotFound
from dizest_api.data.library import Library
from dizest_api.drives import remove_drive


@dataclass(frozen=True)
class Stores:
    """Where a user's things are: accounts, workflows, automation, and the drives' root."""

    accounts: Accounts
    library: Library
    automation: Automation
    drive_root: str


def remove_user(stores: Stores, username: str) -> str | None:
    """Remove `username` (UserNotFound if there is none, or was and is cleared already) with
    everything of theirs; the path their drive had, if they had one."""
    state = retired(stores.accounts, username)
    if state is None:
        retire(stores.accounts, username)
    elif state.get("done"):
        raise UserNotFound(f"no user {username!r}")
    drive = clear(stores, username)
    mark = json.dumps({**(retired(stores.accounts, username) or {}), "done": True})
    stores.accounts.redis.hset(stores.accounts.keys.users_retired, username, mark)
    return drive


def retired(accounts: Accounts, username: str) -> dict[str, Any] | None:
    """The retirement of `username` ({removed_at, done}), if it is a removed user's."""
    raw = accounts.redis.hget(accounts.keys.users_retired, username)
    return None if raw is None else dict(json.loads(raw))


def retire(accounts: Accounts, username: str) -> None:
    """Delete the account, its tokens and sessions, and retire the name, in one transaction."""
    keys = accounts.keys
    user_key, tokens_key = keys.user(username), keys.user_tokens(username)
    sessions_key, retired_names = keys.user_sessions(username), keys.users_retired
    mark = json.dumps({"removed_at": time.time(), "done": False})

    def remove(pipe: Any) -> None:
        if not pipe.exists(user_key):
            raise UserNotFound(f"no user {username!r}")
        tokens, sessions = pipe.smembers(tokens_key), pipe.smembers(sessions_key)
        pipe.multi()
        pipe.delete(
            user_key,
            tokens_key,
            sessions_key,
            *map(keys.token, tokens),
            *map(keys.session, sessions),
        )
        pipe.srem(keys.users, username)
        pipe.hset(retired_names, username, mark)

    accounts.redis.transaction(remove, user_key, tokens_key, sessions_key, retired_names)


def clear_late(stores: Stores, username: str) -> bool:
    """After a write request of `username`: if the user is retired (removed, or being removed),
    clear again what the request may have stored under the name (see 4. above)."""
    if retired(stores.accounts, username) is None:
        return False
    clear(stores, username)
    return True


def clear(stores: Stores, username: str) -> str | None:
    """Delete what `username` made (see the module's docstring); every step may run again."""
    redis, keys, auto = stores.accounts.redis, stores.library.keys, stores.automation
    owned = redis.zrange(keys.user_workflows(username), 0, -1)
    shared = redis.zrange(keys.user_shared(username), 0, -1)
    for wf_id in owned:  # what fires for their workflows, whoever made it
        auto.schedules.delete_for_workflow(wf_id)
        auto.triggers.delete_for_workflow(wf_id)
        auto.hooks.delete_for_workflow(wf_id)
    for wf_id in shared:  # what they made on workflows shared with them (as a revoke does)
        drop_made_by(auto, wf_id, {username})
    for sched in auto.schedules.find(owner=username):
        with contextlib.suppress(ScheduleNotFound):
            auto.schedules.delete(sched.id)
    clear_hooks(auto, username)
    stores.library.delete_owned_by(username)
    return remove_drive(stores.drive_root, username)


def clear_hooks(auto: Automation, username: str) -> None:
    """Delete the hooks `username` made. Only the ids listed leave their indexes, never the
    indexes whole: a hook a request of theirs makes meanwhile stays listed for that request's
    own clearing (or it would be kept, unlisted, under the name)."""
    redis, keys = auto.hooks.redis, auto.hooks.keys
    owned = redis.zrange(keys.owned_hooks(username), 0, -1)
    for_runs = redis.smembers(keys.user_hooks(username))
    for hook_id in sorted({*owned, *for_runs}):
        with contextlib.suppress(HookNotFound):
            auto.hooks.delete(hook_id)
    pipe = redis.pipeline()  # stale ids (their hook gone)
    if owned:
        pipe.zrem(keys.owned_hooks(username), *owned)
    if for_runs:
        pipe.srem(keys.user_hooks(username), *for_runs)
    pipe.execute()
