"""Worker liveness: who may count as a worker that can take a flow now, and how it says so.

Invariants:
- A worker's heartbeat (`{p}:workers`, name -> ms) is written only once Celery has declared the
  worker ready (`worker_ready`, in its main process, before it logs "ready."), and afterwards by
  a thread in each pool process (or in the main process of a thread pool). So a beat proves a
  pool that consumes: a main process killed takes its pool with it (Celery ties pool processes
  to it with PR_SET_PDEATHSIG) and the beats stop.
- At start (`worker_init`, before the pool exists) a worker deletes its name's beat: a previous
  instance's leftover never makes a restarting worker look ready.
- A worker that stops cleanly (`worker_shutdown` after a warm shutdown with exit code 0: its
  pool has stopped, its broker channel has given back what it held) stops beating and deletes
  its beat (`leave`): it stops counting at once, and no lost-message audit follows, unless it
  lost a BRPOP reply with a connection in its life (`audit_due`). Any other end leaves the beat
  to age out, and an audit follows (`lost_messages`).
- A worker is live while its last beat is younger than `WINDOW_S`: one constant, used by
  /readyz, the submit check, /metrics, `dizest worker-alive` and the fair share of flow slots
  (`live_since_ms`). Beats come every `BEAT_S`, so a worker may miss four (a slow Redis call, a
  loaded machine) and stay live.
- Once ready, a worker records the queues it serves (`{p}:queues`): a run submitted for a user
  may use no other (`known_queues`), or its messages would wait in the broker for good.
- Each beat also writes how many flows the worker runs at once (`{p}:worker_slots`: its pool
  processes, known once it is ready, times `DIZEST_LOCAL_SLOTS`), in the same transaction, so
  the cluster's live slots (`dizest_worker.fair_share`) are those of the workers that beat; and
  what the worker says of itself (`{p}:worker_info`: host, pid, version, queues, its machine's
  load, memory and disk; `dizest_worker.worker_info`), for the operators' view. Both are
  deleted and pruned with the beat.
- A process holding flows is told from a dead one without a clock: each process that runs flows
  (its `Executor`) has a holder id of its own (`holder_id`: worker name, pid, random part) and
  stays subscribed to its holder channel (`Keys.holder_channel`) from before its first claim
  on; CLAIM records the id with the attempt (`{f}:holder`). When a process dies, however it
  dies, the kernel closes its socket and Redis drops the subscription at once; a process that
  is only slow (a GC pause, a busy CPU, a long Redis call) keeps it. `connected` reads that
  (PUBSUB NUMSUB, one call), and the reaper takes an expired lease over at once only from a
  process that is not connected. A restarted worker, or another under the same name, has
  other ids: it never vouches for the dead one's attempts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import threading
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import redis

from dizest_core.errors import InvalidOptions, Problem
from dizest_worker import audit_due
from dizest_worker.keys import Keys
from dizest_worker.settings import WorkerSettings

if TYPE_CHECKING:  # Celery is imported by `install` only: the Executor uses `holder_id`
    from celery import Celery

    from dizest_worker import worker_info

log = logging.getLogger("dizest.worker")
BEAT_S = 1.0
LEAVE_S = 2.0  # a stopping worker waits this long at most to delete its beat
WINDOW_S = 5.0  # how long a beat counts: short, so a dead worker stops counting within seconds


def live_since_ms() -> int:
    """The oldest beat (ms) that still makes a worker live."""
    return int((time.time() - WINDOW_S) * 1000)


def live_beats(client: redis.Redis, settings: WorkerSettings) -> dict[str, float]:
    """Name -> last beat (ms) of the workers whose last beat is within the window."""
    beats = client.hgetall(Keys(settings.prefix).workers)
    oldest = live_since_ms()
    return {_text(name): _ms(ms) for name, ms in beats.items() if _ms(ms) >= oldest}


def live_workers(client: redis.Redis, settings: WorkerSettings) -> list[str]:
    """Names of the workers whose last beat is within the window, sorted."""
    return sorted(live_beats(client, settings))


def live_slots(client: redis.Redis, settings: WorkerSettings) -> int:
    """The flows the live workers run at once (0: none live, or none said how many)."""
    names = live_workers(client, settings)
    counts = client.hmget(Keys(settings.prefix).worker_slots, names) if names else []
    return sum(int(c) for c in counts if c is not None and int(c) > 0)


def last_seen_s(client: redis.Redis, settings: WorkerSettings, name: str) -> float | None:
    """Seconds since `name` last beat, or None if it never did (or was forgotten)."""
    seen = client.hget(Keys(settings.prefix).workers, name)
    return None if seen is None else time.time() - _ms(seen) / 1000


def holder_id(settings: WorkerSettings) -> str:
    """A new holder id for this process (one per Executor): unique among every process and
    restart, and readable in the flows hash."""
    return f"{settings.worker_name}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def holder_worker(holder: str) -> str:
    """The name of the worker whose process has holder id `holder` (a name may hold '/')."""
    return holder.rsplit("/", 2)[0]


def connected(client: redis.Redis, settings: WorkerSettings, holders: Iterable[str]) -> set[str]:
    """Those of the holder ids whose process is connected to Redis now (subscribed)."""
    keys = Keys(settings.prefix)
    wanted = sorted(set(holders))
    if not wanted:
        return set()
    counts = client.pubsub_numsub(*(keys.holder_channel(holder) for holder in wanted))
    return {holder for holder, (_, n) in zip(wanted, counts, strict=True) if int(n) > 0}


def forget(client: redis.Redis, settings: WorkerSettings, name: str) -> None:
    """Delete `name`'s beat (a worker about to start under that name is not ready yet). A beat
    left over is a worker that stopped, perhaps killed with a message it had taken: the next
    reaper audits the broker for lost messages (`lost_messages`), as for a beat that aged out
    (a worker that stopped cleanly deleted its beat: `leave`)."""
    if _drop_beat(client, settings, name):
        audit_due.mark(client, settings)


def leave(client: redis.Redis, settings: WorkerSettings, name: str) -> None:
    """Delete `name`'s beat as it stops cleanly: it stops counting at once (the fair share, the
    submit check), and asks for no audit, as a warm shutdown has returned what it had taken."""
    _drop_beat(client, settings, name)


def _drop_beat(client: redis.Redis, settings: WorkerSettings, name: str) -> bool:
    """Delete `name`'s beat, slots, info and packages; whether it had a beat."""
    keys = Keys(settings.prefix)
    pipe = client.pipeline()
    pipe.hdel(keys.workers, name)
    pipe.hdel(keys.worker_slots, name)
    pipe.hdel(keys.worker_info, name)
    pipe.hdel(keys.worker_packages, name)
    return bool(pipe.execute()[0])


def beat(client: redis.Redis, settings: WorkerSettings, slots: int = 0, info: str = "") -> None:
    """This worker is live now, runs `slots` flows at once (0: not known yet), and says `info`
    of itself (a `worker_info.Reporter`'s JSON; "": nothing)."""
    keys = Keys(settings.prefix)
    pipe = client.pipeline()  # one transaction: a beat never counts another's slots
    pipe.hset(keys.workers, settings.worker_name, int(time.time() * 1000))
    if slots > 0:
        pipe.hset(keys.worker_slots, settings.worker_name, slots)
    if info:
        pipe.hset(keys.worker_info, settings.worker_name, info)
    pipe.execute()


def record_sandbox(client: redis.Redis, settings: WorkerSettings, layers: dict[str, str]) -> None:
    """Which flow sandbox layers this worker runs with (shown by /readyz)."""
    client.hset(Keys(settings.prefix).sandbox, settings.worker_name, json.dumps(layers))


def record_queues(client: redis.Redis, settings: WorkerSettings, queues: Iterable[str]) -> None:
    """The queues this worker serves are known from now on (`known_queues`)."""
    now = int(time.time() * 1000)
    client.hset(Keys(settings.prefix).queues, mapping=dict.fromkeys(queues, now))


def check_served(client: redis.Redis, settings: WorkerSettings, queues: Iterable[str]) -> None:
    """InvalidOptions unless some worker has served each of `queues`: a run submitted for a
    user may use no other queue (a probe's runs to made-up queues left their messages in the
    broker for good, counted nowhere). No worker that records its queues: no check."""
    raw = client.hkeys(Keys(settings.prefix).queues)
    known = {q.decode() if isinstance(q, bytes) else str(q) for q in raw}
    unknown = sorted(set(queues) - known)
    if known and unknown:
        served = ", ".join(sorted(known))
        raise InvalidOptions(
            [
                Problem(
                    "invalid_option",
                    f"no worker serves queue {q!r} (served: {served})",
                    field="dizest.queue",
                )
                for q in unknown
            ]
        )


def sandbox_layers(
    client: redis.Redis, settings: WorkerSettings, names: list[str]
) -> dict[str, dict[str, str]]:
    """Worker name -> its sandbox layers, for the named workers that recorded them."""
    if not names:
        return {}
    raw = client.hmget(Keys(settings.prefix).sandbox, names)
    return {name: json.loads(value) for name, value in zip(names, raw, strict=True) if value}


def _ms(raw: Any) -> float:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return 0.0


def _text(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


class _Heart:
    """This process's part: the ready flag shared with the pool (set up before it forks)."""

    ready: Any = None  # multiprocessing.RawValue("b"): 1 once the main process is ready
    slots: Any = None  # multiprocessing.RawValue("i"): the worker's flow slots, once ready
    pid = 0  # the worker's main process, and when it started (its pool inherits both)
    started_at = 0.0
    started = False
    beating = threading.Lock()  # held by this process's beat thread while it beats
    told_of_losses = False  # broker_fix tells this process's lost BRPOP replies


def _slots() -> int:
    return int(_Heart.slots.value) if _Heart.slots is not None else 0


def _reporter(settings: WorkerSettings, queues: Iterable[str]) -> worker_info.Reporter:
    from dizest_worker import worker_info  # it reads through liveness: imported when beating

    pid, started = _Heart.pid or os.getpid(), _Heart.started_at or time.time()
    return worker_info.Reporter(settings, queues, pid, started)


def _beat_forever(settings: WorkerSettings, queues: list[str]) -> None:
    from dizest_worker import packages
    from dizest_worker.connection import redis_client

    client = redis_client(settings)
    reporter = _reporter(settings, queues)
    publisher = packages.Publisher(settings)
    while True:
        with _Heart.beating:
            if _Heart.ready is not None and _Heart.ready.value:
                try:  # its packages first: a live worker has said them
                    publisher.check(client)
                    beat(client, settings, _slots(), reporter.info())
                except redis.RedisError as exc:  # Redis away: not live until it is back
                    log.warning("heartbeat failed: %s", type(exc).__name__)
        time.sleep(BEAT_S)


def _start_beating(settings: WorkerSettings, queues: list[str]) -> None:
    if not _Heart.started:
        _Heart.started = True
        threading.Thread(target=_beat_forever, args=(settings, queues), daemon=True).start()


def install(app: Celery) -> None:
    """Connect the heartbeat to the worker's life cycle (once per process; only a worker
    process ever sends these signals)."""
    from celery import signals

    settings: WorkerSettings = app.conf.dizest_settings

    def queues() -> list[str]:
        return list(app.conf.get("dizest_queues") or [settings.queue])

    def on_init(sender: Any = None, **_: Any) -> None:
        _Heart.ready = multiprocessing.RawValue("b", 0)
        _Heart.slots = multiprocessing.RawValue("i", 0)
        _Heart.pid, _Heart.started_at = os.getpid(), time.time()
        from dizest_worker.connection import redis_client

        with contextlib.suppress(redis.RedisError):  # Redis down: the old beat ages out anyway
            forget(redis_client(settings), settings, settings.worker_name)

    def on_ready(sender: Any = None, **_: Any) -> None:
        from celery.concurrency.prefork import TaskPool

        from dizest_worker.connection import redis_client

        if _Heart.slots is not None:  # pool processes (threads) times the flows each runs
            pool_size = getattr(getattr(sender, "pool", None), "limit", 0)  # sender: the consumer
            _Heart.slots.value = int(pool_size or 0) * settings.local_slots
        if _Heart.ready is not None:
            _Heart.ready.value = 1
        with contextlib.suppress(redis.RedisError):
            client = redis_client(settings)
            record_queues(client, settings, queues())
            # before Celery logs "ready."
            beat(client, settings, _slots(), _reporter(settings, queues()).info())
        if not isinstance(getattr(sender, "pool", None), TaskPool):
            _start_beating(settings, queues())  # a thread pool: this process runs the flows

    def on_process_init(**_: Any) -> None:
        _start_beating(settings, queues())

    def on_shutdown(sender: Any = None, **_: Any) -> None:
        """At the end of a warm shutdown (Celery sends it once the pool has stopped and the
        broker channel is closed; not when WorkerTerminate ends the worker): beat no more, and
        leave; a worker that lost a BRPOP reply on the way asks for an audit as it goes."""
        from dizest_worker.connection import redis_client

        if _Heart.ready is None or getattr(sender, "exitcode", None) != 0:
            return  # never beat; or stopped on an error, maybe with a message half taken
        _Heart.ready.value = 0
        gone = forget if audit_due.lost_any() else leave

        def go() -> None:
            with _Heart.beating, contextlib.suppress(redis.RedisError):  # a beat under way first
                gone(redis_client(settings), settings, settings.worker_name)

        # Redis away: the client's retries would hold the exit up ~45 s; the beat ages out then
        leaving = threading.Thread(target=go, name="dizest-leave", daemon=True)
        leaving.start()
        leaving.join(LEAVE_S)

    if not _Heart.told_of_losses:  # once per process, as the signals' dispatch_uid do
        from dizest_worker import broker_fix  # kombu: only a worker process gets here

        _Heart.told_of_losses = True
        broker_fix.on_lost_reply(lambda: audit_due.lost_a_reply(settings))

    signals.worker_init.connect(on_init, weak=False, dispatch_uid="dizest.liveness.init")
    signals.worker_ready.connect(on_ready, weak=False, dispatch_uid="dizest.liveness.ready")
    signals.worker_process_init.connect(
        on_process_init, weak=False, dispatch_uid="dizest.liveness.process"
    )
    signals.worker_shutdown.connect(on_shutdown, weak=False, dispatch_uid="dizest.liveness.stop")
