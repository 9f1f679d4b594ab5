"""The automation tasks, run by `dizest beat`'s worker: a schedule's tick submits its run; a
delivery calls one webhook, retried with exponential backoff.

One user's hooks cannot hold the beat up (a probe's four slow receivers held every thread of
it for minutes, and other users' ticks ran late): an attempt takes `webhook_timeout_s` at most,
all of it counted (`delivery.post`); deliveries go at a lower priority than ticks, so a free
thread takes a waiting tick first; one user has at most HOOK_CALLS deliveries in flight
over every beat (`{p}:hooks:calls:{user}`): another waits, re-sent later (1 s, doubling up to
30 s), without counting as an attempt; and at most DIZEST_WEBHOOK_PENDING deliveries queued
(`{p}:hooks:pending:{user}`): past it a new one is dropped and says so in its hook's log (a
probe's 5,000 pending deliveries, each re-sent every second, kept the beat at 70 % of a core
and delayed other users' deliveries in proportion).

A tick submits through `dizest_worker.client.Client.submit` with the workflow's stored version,
as the API does, under an idempotency key made of the schedule and the tick's time: a tick
delivered twice (a redelivered message, two beats after a lock expiry) still starts one run.
Its outcome goes to the schedule's history: the run id, or why it did not run (workflow gone,
the owner lost the right to run it, invalid inputs).
"""

from __future__ import annotations

import http.client
import json
import logging
import time
from typing import Any

from celery import Celery

from dizest_api.automation import delivery
from dizest_api.automation.celery_app import DELIVER, TICK
from dizest_api.automation.hooks import (
    SIGNATURE_HEADER,
    Hook,
    HookNotFound,
    UrlRefused,
    checked_addresses,
    sign,
)
from dizest_api.automation.runtime import Runtime, runtime
from dizest_api.automation.schedules import ScheduleNotFound
from dizest_api.data.library import WorkflowNotFound
from dizest_api.drives import drive_path
from dizest_core.errors import DizestError
from dizest_worker.client import take_place

log = logging.getLogger("dizest.automation")

DELIVERY_PRIORITY = 6  # of 0 (first) to 9: a tick (sent at 0) waiting goes first
HOOK_CALLS = 2  # one user's deliveries in flight at once, over every beat
BUSY_WAIT_S = 1.0  # a delivery whose user has HOOK_CALLS in flight is sent again after this,
BUSY_WAIT_MAX_S = 30.0  # doubled each time it finds them so, up to this


def run_tick(rt: Runtime, schedule_id: str, tick_at: str) -> dict[str, Any]:
    """Run schedule `schedule_id` for its tick at `tick_at`; returns the history record."""
    try:
        sched = rt.schedules.get(schedule_id)
    except ScheduleNotFound:
        return {"tick": tick_at, "error": "schedule deleted"}
    try:
        wf, version, package = rt.library.package(sched.workflow_id)
    except WorkflowNotFound:
        return _record(rt, sched.id, {"tick": tick_at, "error": f"workflow {sched.workflow_id!r} is gone"})  # fmt: skip
    refused = rt.may_run(sched.owner, wf)
    if refused is not None:
        return _record(rt, sched.id, {"tick": tick_at, "error": refused})
    limit = rt.settings.max_runs_per_user
    if rt.index.active(sched.owner, rt.status_of) >= limit:  # as a submit: the same limit
        return _record(rt, sched.id, {"tick": tick_at, "error": f"the owner already has {limit} unfinished run(s)"})  # fmt: skip
    key = f"{sched.owner}:schedule:{sched.id}:{tick_at}"
    try:
        rt.index.quota.prune(sched.owner)  # CREATE refuses a new run past the quota (not a
        # tick delivered again, whose key names its run already)
        claimed: list[bool] = []
        run_id = rt.client.submit(
            package, sched.inputs, None, key, sched.options, account=sched.owner,
            drive=drive_path(rt.settings.drive_root, sched.owner),
            stored=lambda new: claimed.append(rt.index.claim(
                new, sched.owner, wf.id, version=version, origin={"kind": "schedule", "id": sched.id}
            )),
        )  # fmt: skip
    except (DizestError, ValueError) as exc:
        return _record(rt, sched.id, {"tick": tick_at, "error": f"{type(exc).__name__}: {exc}"})
    if not claimed[0]:
        return {"tick": tick_at, "run_id": run_id, "duplicate": True}  # recorded the first time
    return _record(rt, sched.id, {"tick": tick_at, "run_id": run_id, "version": version})


def _record(rt: Runtime, sid: str, item: dict[str, Any]) -> dict[str, Any]:
    rt.schedules.record(sid, item)
    if "error" in item:
        log.warning("schedule %s tick %s did not run: %s", sid, item["tick"], item["error"])
    return item


def post(rt: Runtime, hook: Hook, body: bytes, delivery_id: str) -> dict[str, Any]:
    """One delivery attempt: {"status_code"} or {"error"}, with its duration."""
    started = time.monotonic()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "dizest-webhook/1",
        "X-Dizest-Event": "run.finished",
        "X-Dizest-Delivery": delivery_id,
        SIGNATURE_HEADER: sign(hook.secret, body),
    }
    timeout_s = rt.auto.webhook_timeout_s
    try:  # the name may resolve elsewhere now: checked again, and the checked address called
        addresses = delivery.within(  # the name's resolution counts in the attempt's deadline
            lambda: checked_addresses(hook.url, rt.auto.webhook_allow_private),
            timeout_s,
            hook.owner,
        )
        deadline = started + timeout_s  # what the resolution took is counted
        status = delivery.post(hook.url, addresses, body, headers, timeout_s, deadline)
        result: dict[str, Any] = {"status_code": status}  # a redirect is an answer, not followed
    except UrlRefused as exc:
        result = {"error": str(exc), "permanent": True}
    except delivery.DeadlinePassed:
        result = {"error": "Timeout"}
    except (OSError, http.client.HTTPException) as exc:
        result = {"error": type(exc).__name__}
    except ValueError as exc:  # what http.client refuses to send (a hook stored before the
        result = {"error": type(exc).__name__, "permanent": True}  # URL check said so)
    result["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def register(app: Celery) -> None:
    @app.task(name=TICK, acks_late=True, ignore_result=True)
    def schedule_tick(schedule_id: str, tick: str = "", **_: Any) -> None:
        run_tick(runtime(app), schedule_id, tick or time.strftime("%Y-%m-%dT%H:%M"))

    @app.task(name=DELIVER, acks_late=True, ignore_result=True)
    def deliver_hook(
        hook_id: str, payload: dict[str, Any], delivery_id: str, attempt: int = 1, waited: int = 0
    ) -> None:
        rt = runtime(app)
        keys = rt.hooks.keys
        try:
            hook = rt.hooks.get(hook_id, with_secret=True)
        except HookNotFound:
            return  # deleted meanwhile: nothing to call (its pending place expires)
        again, pending = (hook_id, payload, delivery_id), keys.hook_pending(hook.owner)
        if attempt == 1 and waited == 0 and not _admitted(rt, pending, delivery_id):
            rt.hooks.log(hook_id, {
                "delivery": delivery_id, "run_id": payload.get("run_id"), "attempt": 0,
                "at": time.time(), "ok": False,
                "error": f"dropped: {rt.auto.webhook_pending} deliveries of this user's hooks "
                "are pending",
            })  # fmt: skip
            return
        calls, member = keys.hook_calls(hook.owner), f"{delivery_id}:{attempt}"
        deadline_ms = int((time.time() + rt.auto.webhook_timeout_s + 5) * 1000)
        if not take_place(rt.redis, calls, member, deadline_ms, HOOK_CALLS):  # not an attempt
            wait_s = min(BUSY_WAIT_S * 2**waited, BUSY_WAIT_MAX_S)  # yet: sent again, later
            send_delivery(deliver_hook, again, attempt, wait_s, waited + 1)
            return
        try:
            body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
            result = post(rt, hook, body, delivery_id)
        finally:
            rt.redis.zrem(calls, member)
        ok = 200 <= result.get("status_code", 0) < 300
        rt.hooks.log(
            hook_id,
            {"delivery": delivery_id, "run_id": payload.get("run_id"), "attempt": attempt,
             "at": time.time(), "ok": ok, **result},
        )  # fmt: skip
        if ok or result.get("permanent") or attempt >= rt.auto.webhook_attempts:
            rt.redis.zrem(pending, delivery_id)  # done with, one way or the other
            return
        backoff = rt.auto.webhook_backoff_s * 2 ** (attempt - 1)
        send_delivery(deliver_hook, again, attempt + 1, backoff)


def _admitted(rt: Runtime, pending: str, delivery_id: str) -> bool:
    """A new delivery counts among its user's pending ones until it is done with (or for as long
    as its attempts could take at most), unless `webhook_pending` are pending already."""
    auto = rt.auto
    longest = auto.webhook_backoff_s * 2**auto.webhook_attempts + auto.webhook_attempts * (
        auto.webhook_timeout_s + BUSY_WAIT_MAX_S
    )
    return take_place(
        rt.redis, pending, delivery_id, int((time.time() + longest) * 1000), auto.webhook_pending
    )


def send_delivery(
    task: Any, args: tuple[Any, ...], attempt: int = 1, after_s: float = 0, waited: int = 0
) -> None:
    """Queue delivery `attempt` of a hook's notice, after `after_s`, behind waiting ticks
    (`waited`: times it found its user's HOOK_CALLS in flight)."""
    task.apply_async(
        args, {"attempt": attempt, "waited": waited}, countdown=after_s or None,
        priority=DELIVERY_PRIORITY,
    )  # fmt: skip
