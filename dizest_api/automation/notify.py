"""Who notices that a run ended, for its webhooks: a listener in `dizest beat`, not the workers.

Why here and not where a run's final status is set (`dizest_worker.orchestration`): the final
status is written by a Lua script in whichever worker finishes the last flow; calling out from
there would put network calls and webhook knowledge into the flow path, and a worker that dies
right after the script would lose the notice anyway. Instead:

- the listener follows `{p}:events` (pub/sub: each run's final `workflow.status`, published
  there by the step that ends the run) and dispatches the run it names;
- pub/sub loses what is published while nobody listens (no beat running, a Redis reconnect),
  so every `sweep_interval_s` it also looks at the runs created in the last `sweep_window_s`
  (`{p}:runs`) and dispatches those that are final and not yet notified.

A run is dispatched once: `SET {p}:run:{run}:notified NX` decides, whatever number of
listeners or sweeps see it. Only runs started through the service (with an owner in
`RunIndex`) have hooks; a hook fires only for runs that ended after it was made.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import redis

from dizest_api.automation.keys import AutoKeys
from dizest_api.automation.runtime import Runtime
from dizest_core.events import Event
from dizest_core.status import RUN_FINAL_VALUES
from dizest_worker.keys import Keys

log = logging.getLogger("dizest.automation")
Send = Callable[[str, dict[str, Any], str], None]  # hook id, payload, delivery id


def _iso(raw: str | None) -> str | None:
    return datetime.fromtimestamp(float(raw), UTC).isoformat() if raw else None


class Notifier:
    def __init__(self, rt: Runtime, send: Send) -> None:
        self.rt, self.send = rt, send
        self.keys, self.auto_keys = Keys(rt.settings.prefix), AutoKeys(rt.settings.prefix)

    def dispatch(self, run_id: str) -> int:
        """Send a final run's notices to its hooks (once per run); how many were sent."""
        record = self.rt.redis.hgetall(self.keys.run(run_id))
        if record.get("status") not in RUN_FINAL_VALUES:
            return 0
        info = self.rt.index.get(run_id)
        if info is None:  # not started through the service (or not claimed yet: the sweep)
            return 0
        notified = self.auto_keys.notified(run_id)
        if not self.rt.redis.set(notified, "1", nx=True, ex=self.rt.settings.ttl_s):
            return 0
        finished = float(record.get("finished_at") or time.time())
        hooks = [
            h
            for h in self.rt.hooks.for_run(info["owner"], info.get("workflow_id"))
            if h.created_at <= finished
        ]
        payload = {
            "event": "run.finished",
            "run_id": run_id,
            "status": record["status"],
            "workflow_id": info.get("workflow_id"),
            "owner": info["owner"],
            "created_at": _iso(record.get("created_at")),
            "started_at": _iso(record.get("created_at")),  # as the run's report says it
            "finished_at": _iso(record.get("finished_at")),
        }
        for hook in hooks:
            self.send(hook.id, payload, f"{run_id}.{hook.id}")
        return len(hooks)

    def sweep(self) -> int:
        """Dispatch the recent final runs whose end nobody dispatched yet."""
        since = (time.time() - self.rt.auto.sweep_window_s) * 1000
        run_ids = self.rt.redis.zrangebyscore(self.keys.runs, since, "+inf")
        pipe = self.rt.redis.pipeline(transaction=False)
        for run_id in run_ids:
            pipe.hget(self.keys.run(run_id), "status")
            pipe.exists(self.auto_keys.notified(run_id))
        answers = pipe.execute() if run_ids else []
        sent = 0
        for i, run_id in enumerate(run_ids):
            if answers[2 * i] in RUN_FINAL_VALUES and not answers[2 * i + 1]:
                sent += self.dispatch(run_id)
        return sent

    def listen(self, stop: threading.Event) -> None:
        """Follow the event channel and sweep now and then, until `stop` is set."""
        next_sweep = 0.0
        pubsub = None
        while not stop.is_set():
            try:
                if pubsub is None:
                    pubsub = self.rt.redis.pubsub(ignore_subscribe_messages=True)
                    pubsub.subscribe(self.keys.event_channel)
                    next_sweep = 0.0  # what ended while we were not listening
                if time.monotonic() >= next_sweep:
                    self.sweep()
                    next_sweep = time.monotonic() + self.rt.auto.sweep_interval_s
                message = pubsub.get_message(timeout=1.0)
                if message is not None:
                    self._on_message(message.get("data"))
            except redis.RedisError as exc:
                log.warning("run-end listener: %s; reconnecting", type(exc).__name__)
                pubsub = None
                stop.wait(1.0)
        if pubsub is not None:
            pubsub.close()

    def _on_message(self, data: Any) -> None:
        try:
            event = Event.from_dict(json.loads(data))
        except (ValueError, KeyError, TypeError):
            return
        if event.final:
            self.dispatch(event.run_id)
