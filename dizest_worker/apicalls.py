"""Calls of an app's `api` functions on the cluster: the message, the worker side, the caller side.

A call is a Celery task (`dizest.api_call`) on the flow's queue, so it lands on any worker that
may run that flow; the worker runs it in a forked child in the flow sandbox, like a flow
(`dizest_core.apiruntime`), with the flow's wired inputs and its outputs of the run, and pushes
the answer to a reply list of its own (`Keys.call_reply`, one item, REPLY_TTL_S) that the
caller BLPOPs. Nothing of the run changes: a call reads its state and writes none.

The caller waits `timeout_s` plus QUEUE_GRACE_S (the task may wait for a free worker); the task
expires when nobody would read its answer any more, and the child is killed at `timeout_s`.
Every ending is an `Answer`: the function's own, 404 (no such run, flow or function), 422 (the
function raised: its traceback as text), 503 (the worker could not run it), 504 (timeout).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dizest_core.apiruntime import error_body
from dizest_core.errors import DizestError, UnknownFlowError
from dizest_core.execution import Finished
from dizest_core.job import ApiCall, build_job
from dizest_core.traverse import make_passable
from dizest_worker.liveness import live_slots
from dizest_worker.redis_store import RedisStore, decode_value

if TYPE_CHECKING:
    from redis import Redis

    from dizest_worker.client import Client
    from dizest_worker.orchestration import Executor

log = logging.getLogger("dizest.worker")

API_CALL = "dizest.api_call"
REPLY_TTL_S = 60
QUEUE_GRACE_S = 10.0
DEFAULT_TIMEOUT_S = 30.0
MAX_TIMEOUT_S = 300.0
CALL_ATTEMPT = 0  # a call's artifact folder (run/flow/0) is never a flow attempt's


class InvalidCall(DizestError, ValueError):
    """A call message that does not describe an `api` call."""


@dataclass(frozen=True)
class CallTask:
    """The message of one call; validates itself."""

    call_id: str
    run_id: str
    flow_id: str
    name: str
    timeout_s: float = DEFAULT_TIMEOUT_S
    method: str = "POST"
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None
    path: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def decode(cls, payload: Any) -> CallTask:
        if not isinstance(payload, dict):
            raise InvalidCall(f"call payload must be an object, not {type(payload).__name__}")
        for name in ("call_id", "run_id", "flow_id", "name", "method"):
            if not isinstance(payload.get(name), str) or not payload[name]:
                raise InvalidCall(f"call payload needs a non-empty {name!r} string")
        timeout = payload.get("timeout_s")
        if not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT_S:
            raise InvalidCall(f"call 'timeout_s' must be in (0, {MAX_TIMEOUT_S:g}]")
        params, headers = payload.get("params", {}), payload.get("headers", {})
        if not isinstance(params, dict) or not isinstance(headers, dict):
            raise InvalidCall("call 'params' and 'headers' must be objects")
        return cls(
            payload["call_id"], payload["run_id"], payload["flow_id"], payload["name"],
            float(timeout), payload["method"], params, payload.get("body"),
            str(payload.get("path", "")), {str(k): str(v) for k, v in headers.items()},
        )  # fmt: skip

    def encode(self) -> dict[str, Any]:
        return {
            "call_id": self.call_id, "run_id": self.run_id, "flow_id": self.flow_id,
            "name": self.name, "timeout_s": self.timeout_s, "method": self.method,
            "params": self.params, "body": self.body, "path": self.path, "headers": self.headers,
        }  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """What a call answers: an HTTP status, a media type and the body."""

    status: int
    media_type: str
    body: bytes

    @classmethod
    def error(cls, status: int, code: str, message: str) -> Answer:
        """An error of ours, in the API's error shape."""
        return cls(status, "application/json", error_body(code, message))

    @classmethod
    def text(cls, status: int, text: str) -> Answer:
        return cls(status, "text/plain; charset=utf-8", text.encode("utf-8", "replace"))

    def encode(self) -> bytes:
        head = json.dumps({"status": self.status, "media_type": self.media_type}).encode()
        return head + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> Answer:
        head, _, body = raw.partition(b"\n")
        fields = json.loads(head)
        return cls(int(fields["status"]), str(fields["media_type"]), body)


# --------------------------------------------------------------------------- worker side


def answer(executor: Executor, task: CallTask) -> None:
    """Run one call on this worker and push its answer (whatever happens, one answer)."""
    try:
        reply = _run(executor, task)
    except Exception as exc:  # a dead zygote, Redis trouble: the call fails, the worker goes on
        log.exception("api call %s of run %s flow %s failed", task.name, task.run_id, task.flow_id)
        reply = Answer.error(
            503, "worker_error", f"the worker could not run the call: {type(exc).__name__}"
        )
        executor._rebuild()
    key = executor.runs.keys.call_reply(task.call_id)
    pipe = executor.runs.client.pipeline()
    pipe.rpush(key, reply.encode())
    pipe.expire(key, REPLY_TTL_S)
    pipe.execute()


def _run(executor: Executor, task: CallTask) -> Answer:
    ctx = executor.runs.context(task.run_id)
    if ctx is None or task.flow_id not in ctx.package.flows:
        return Answer.error(404, "not_found", f"run {task.run_id} has no flow {task.flow_id!r}")
    package, settings = ctx.package, executor.settings
    flow = package.flows[task.flow_id]
    app = package.app_of(flow)
    source = app.raw.get("api")
    if not isinstance(source, str) or not source.strip():
        return Answer.error(404, "not_found", f"app {app.id!r} has no api functions")
    client, keys = executor.runs.client, executor.runs.keys
    store = RedisStore(client, keys, settings.ttl_s)
    values = [store.get(task.run_id, c.node, c.output) for _, c in package.wired(flow)]
    own = client.hgetall(keys.outputs(task.run_id, task.flow_id))
    last = {k[2:].decode(): decode_value(v) for k, v in own.items() if k.startswith(b"v:")}
    workdir = os.path.join(settings.workdir_root, task.run_id)
    make_passable(workdir)  # a umask of 077 would shut the call's process out
    options = ctx.flow_options(task.flow_id, settings)
    call = ApiCall(
        task.name, source, task.method, task.params, task.body, task.path, task.headers,
        {k: v for k, v in last.items() if v is not None},
    )  # fmt: skip
    job = build_job(
        package, task.flow_id, task.run_id, values, settings.engine, workdir=workdir,
        params=ctx.params(task.flow_id), memory_limit_mb=options.memory_limit_mb,
        network=options.network, cpus=options.cpus, attempt=CALL_ATTEMPT, artifact_dir=settings.artifact_dir,
        drive=executor._drive(ctx), call=call,
    )  # fmt: skip
    if executor.supervisor.zygote.proc.poll() is not None:
        executor._rebuild()
    supervisor = executor.supervisor
    supervisor.launch(job, task.timeout_s)
    try:
        while True:
            for item in supervisor.poll(1.0):
                if isinstance(item, Finished):
                    return _answer_of(item)
    finally:
        supervisor.settle()  # what a call that said DONE left: no poll may come for a while


def _answer_of(finished: Finished) -> Answer:
    if finished.answer is not None:
        return Answer(*finished.answer)
    reason = finished.reason or "the call ended without an answer"
    if reason.startswith("timeout"):
        return Answer.error(504, "timeout", f"the api function did not answer: {reason}")
    if finished.error is not None and finished.error.traceback:
        return Answer.text(422, finished.error.traceback)
    return Answer.text(422, reason)


# --------------------------------------------------------------------------- caller side


# KEYS: the holder's places (a zset: member -> deadline, ms); ARGV: now (ms), the new place's
# deadline (ms), its member, the cap. Returns 1 when it is taken (counted), 0 when `cap` are
# held already. The set lives until its latest deadline: a short place after a long one must
# not expire it.
TAKE_PLACE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if tonumber(ARGV[4]) > 0 and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
return 1
"""


def take_place(redis: Redis, key: str, member: str, deadline_ms: int, cap: int) -> bool:
    """Count `member` among the places held in `key` until `deadline_ms` (or until it is
    removed), unless `cap` are held already (False; cap 0: no limit)."""
    take = redis.register_script(TAKE_PLACE)
    return bool(take(keys=[key], args=[int(time.time() * 1000), deadline_ms, member, cap]))


def take_call(client: Client, caller: str, call_id: str, deadline_ms: int) -> bool:
    """Count `call_id` among `caller`'s running calls until `deadline_ms`, unless they have
    `user_api_calls` running already (False)."""
    key, cap = client.runs.keys.user_calls(caller), client.settings.user_api_calls
    return take_place(client.redis, key, call_id, deadline_ms, cap)


class TooManyCalls(DizestError):
    """The caller has DIZEST_USER_API_CALLS `api` calls running already, or the cluster runs
    calls in half its worker slots."""


def call(client: Client, task: CallTask, caller: str | None = None) -> Answer:
    """Send `task` to a worker of the flow's queue and wait for its answer. A `caller` (a
    user) has at most `user_api_calls` running at once over the cluster, and all users' calls
    together at most half the live worker slots (TooManyCalls): each call holds a slot that no
    fair share hands back, and a probe's four 120 s calls on two slots held another user's run
    back two minutes; now flows always keep half the slots."""
    if caller is None:
        return _call(client, task)
    deadline = int((time.time() + task.timeout_s + QUEUE_GRACE_S) * 1000)
    keys = client.runs.keys
    if not take_call(client, caller, task.call_id, deadline):
        cap = client.settings.user_api_calls
        raise TooManyCalls(f"you already have {cap} api call(s) running; retry when one ends")
    try:
        live = live_slots(client.redis, client.settings)
        if not take_place(client.redis, keys.calls, task.call_id, deadline, max(1, (live + 1) // 2)):  # fmt: skip
            raise TooManyCalls(
                f"the cluster runs api calls in half its {live} worker slot(s) already (the "
                "rest are kept for flows); retry when one ends"
            )
        try:
            return _call(client, task)
        finally:
            client.redis.zrem(keys.calls, task.call_id)
    finally:
        client.redis.zrem(keys.user_calls(caller), task.call_id)


def _call(client: Client, task: CallTask) -> Answer:
    ctx = client.runs.context(task.run_id)
    if ctx is None:
        from dizest_worker.client import RunNotFound

        raise RunNotFound(f"no run {task.run_id!r}")
    if task.flow_id not in ctx.package.flows:
        raise UnknownFlowError(f"run {task.run_id} has no flow {task.flow_id!r}")
    queue = ctx.flow_options(task.flow_id, client.settings).queue
    wait = task.timeout_s + QUEUE_GRACE_S
    client.app.send_task(API_CALL, args=[task.encode()], queue=queue, expires=wait)
    key = client.runs.keys.call_reply(task.call_id)
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        got = client.redis.blpop([key], timeout=max(1, min(int(left), 5)))
        if got is not None:
            return Answer.decode(got[1])  # type: ignore[arg-type]  # bytes: no decode_responses
    return Answer.error(504, "timeout", f"no worker answered the call within {wait:g} s")


def new_call_id() -> str:
    return secrets.token_hex(16)
