"""The automation tasks, run by `dizest beat`'s worker: a schedule's tick submits its run; a
delivery calls one webhook, retried with exponential backoff.

A tick submits through `dizest_worker.client.Client.submit` with the workflow's stored version,
as the API does, under an idempotency key made of the schedule and the tick's time: a tick
delivered twice (a redelivered message, two beats after a lock expiry) still starts one run.
Its outcome goes to the schedule's history: the run id, or why it did not run (workflow gone,
the owner lost the right to run it, invalid inputs).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import requests
from celery import Celery

from dizest_api.automation.celery_app import DELIVER, TICK
from dizest_api.automation.hooks import (
    SIGNATURE_HEADER,
    Hook,
    HookNotFound,
    UrlRefused,
    check_url,
    sign,
)
from dizest_api.automation.runtime import Runtime, runtime
from dizest_api.automation.schedules import ScheduleNotFound
from dizest_api.data.library import WorkflowNotFound
from dizest_core.errors import DizestError

log = logging.getLogger("dizest.automation")


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
            stored=lambda new: claimed.append(rt.index.claim(new, sched.owner, wf.id)),
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


def post(rt: Runtime, hook: Hook, body: bytes, delivery: str) -> dict[str, Any]:
    """One delivery attempt: {"status_code"} or {"error"}, with its duration."""
    started = time.monotonic()
    try:
        check_url(hook.url, rt.auto.webhook_allow_private)  # the name may resolve elsewhere now
        answer = requests.post(
            hook.url,
            data=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": "dizest-webhook/1",
                "X-Dizest-Event": "run.finished",
                "X-Dizest-Delivery": delivery,
                SIGNATURE_HEADER: sign(hook.secret, body),
            },
            timeout=rt.auto.webhook_timeout_s,
            allow_redirects=False,  # a redirect could lead to an address the check refuses
        )
        result: dict[str, Any] = {"status_code": answer.status_code}
    except UrlRefused as exc:
        result = {"error": str(exc), "permanent": True}
    except requests.RequestException as exc:
        result = {"error": type(exc).__name__}
    result["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
    return result


def register(app: Celery) -> None:
    @app.task(name=TICK, acks_late=True, ignore_result=True)
    def schedule_tick(schedule_id: str, tick: str = "", **_: Any) -> None:
        run_tick(runtime(app), schedule_id, tick or time.strftime("%Y-%m-%dT%H:%M"))

    @app.task(name=DELIVER, bind=True, acks_late=True, ignore_result=True, max_retries=None)
    def deliver_hook(self: Any, hook_id: str, payload: dict[str, Any], delivery: str) -> None:
        rt = runtime(app)
        try:
            hook = rt.hooks.get(hook_id, with_secret=True)
        except HookNotFound:
            return  # deleted meanwhile: nothing to call
        attempt = self.request.retries + 1
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        result = post(rt, hook, body, delivery)
        ok = 200 <= result.get("status_code", 0) < 300
        rt.hooks.log(
            hook_id,
            {"delivery": delivery, "run_id": payload.get("run_id"), "attempt": attempt,
             "at": time.time(), "ok": ok, **result},
        )  # fmt: skip
        if ok or result.get("permanent") or attempt >= rt.auto.webhook_attempts:
            return
        raise self.retry(countdown=rt.auto.webhook_backoff_s * 2 ** (attempt - 1))
