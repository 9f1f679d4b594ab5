"""A worker's info: what each worker says of itself with its beat, and the operators' view of
the live workers read from it (the API's `GET /api/v1/workers`, `dizest workers`, the console's
admin page), as Celery's Flower or Dask's "Workers" tab show them.

Invariants:
- Written with the beat, in its transaction (`liveness.beat`): one more HSET of one field,
  `{p}:worker_info` worker name -> JSON. So it lives exactly as long as the beat: deleted with
  it when the worker leaves or restarts (`liveness`), pruned with it an hour after the last one
  (the reaper's FORGET), and a worker counts in the view only while its beat is live
  (`liveness.WINDOW_S`).
- The JSON is made by `Reporter`: who the worker is (host, pid of its main process, dizest
  version, queues, started_at) once per process, and how its machine is (load average, memory
  available and total, free and total disk under its artifact and run directories) sampled at
  most every `MACHINE_S`, so between samples the info adds a clock read and that HSET to a
  beat, no system call (~30-45 us of CPU, and ~20 us a second of sampling: bench/beat_cost.py).
  Every pool process beats under its worker's name and says the same of it.
- What a worker runs now is not said by the beat (each pool process knows only its own flows):
  it is read where CLAIM records it, the attempts holding a lease whose holder id
  (`liveness.holder_id`) is one of that worker's processes, so it is right whichever process
  beat last.
- A worker that says nothing of itself (one from before this module) is still listed, with
  nulls for what it did not say.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Any

import redis

from dizest_worker import liveness
from dizest_worker.keys import Keys, parse_lease
from dizest_worker.settings import WorkerSettings
from dizest_worker.state import RedisRuns

# The kernel updates the load average every 5 s; memory and disk move no faster for a person
# looking at a table refreshed every few seconds.
MACHINE_S = 5.0
LEASE_SCAN_LIMIT = 10_000  # leases read for the running flows (running + reserved attempts)
MEMINFO = "/proc/meminfo"
# what the view says of a worker that did not (a worker from before this module)
UNSAID: dict[str, Any] = dict.fromkeys(
    ("host", "pid", "version", "queues", "started_at", "load", "memory", "disk")
)


def version() -> str:
    """The installed dizest's version."""
    try:
        return metadata.version("dizest")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def memory() -> dict[str, int] | None:
    """The machine's memory available (what can be used without swapping) and total, in bytes;
    None where /proc/meminfo is not (not Linux)."""
    try:
        fd = os.open(MEMINFO, os.O_RDONLY)  # half the CPU of open()
        try:
            head = os.read(fd, 512)
        finally:
            os.close(fd)
    except OSError:
        return None
    found = {}
    for line in head.split(b"\n"):
        name, _, rest = line.partition(b":")
        if name in (b"MemTotal", b"MemAvailable") and rest.split():
            found[name] = int(rest.split()[0]) * 1024  # kB
    if len(found) < 2:
        return None
    return {"available": found[b"MemAvailable"], "total": found[b"MemTotal"]}


def disk(path: str) -> dict[str, int] | None:
    """Free (for an unprivileged user) and total bytes of the file system `path` is on, or will
    be on once made (its nearest existing parent); None if none can be read."""
    place = os.path.abspath(path)
    while True:
        try:
            found = os.statvfs(place)
        except OSError:
            if os.path.dirname(place) == place:
                return None
            place = os.path.dirname(place)
            continue
        return {"free": found.f_bavail * found.f_frsize, "total": found.f_blocks * found.f_frsize}


def machine(dirs: Mapping[str, str]) -> dict[str, Any]:
    """How this machine is now: load average (1, 5, 15 min), memory, and the disk of `dirs`."""
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {"load": load, "memory": memory(), "disk": {k: disk(v) for k, v in dirs.items()}}


class Reporter:
    """The info one process writes with each beat of its worker (see the module docstring)."""

    def __init__(
        self, settings: WorkerSettings, queues: Iterable[str], pid: int, started_at: float
    ) -> None:
        self.said = {
            "host": socket.gethostname(),
            "pid": pid,
            "version": version(),
            "queues": sorted(queues),
            "started_at": round(started_at, 3),
        }
        self.dirs = {"artifacts": settings.artifact_dir, "runs": settings.workdir_root}
        self._json = ""
        self._until = 0.0

    def info(self) -> str:
        """The JSON to write now: the machine sampled at most every MACHINE_S."""
        now = time.monotonic()
        if now >= self._until:
            self._json = json.dumps({**self.said, **machine(self.dirs)}, separators=(",", ":"))
            self._until = now + MACHINE_S
        return self._json


def live_workers(client: redis.Redis, settings: WorkerSettings) -> list[dict[str, Any]]:
    """Every live worker, by name: what it says of itself, its slots, `last_beat_s`, its sandbox
    layers, and the flows its processes hold now (`flows`, `running`; read from the first
    LEASE_SCAN_LIMIT leases). Four round trips."""
    keys = Keys(settings.prefix)
    seen = liveness.live_beats(client, settings)
    names = sorted(seen)
    if not names:
        return []
    pipe = client.pipeline(transaction=False)
    pipe.hmget(keys.worker_slots, names)
    pipe.hmget(keys.worker_info, names)
    pipe.zrange(keys.leases, 0, LEASE_SCAN_LIMIT - 1)
    slots, infos, members = pipe.execute()
    layers = liveness.sandbox_layers(client, settings, names)
    now_ms = time.time() * 1000
    leases = [parse_lease(m.decode()) for m in members]
    held: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    for lease, holder in zip(leases, RedisRuns(client, settings).holders(leases), strict=True):
        worker = liveness.holder_worker(holder) if holder else None
        if worker in held:
            held[worker].append(dict(zip(("run_id", "flow_id", "attempt"), lease, strict=True)))
    return [
        {
            "name": name,
            **UNSAID,
            **_said(info),
            "slots": int(count or 0),
            "running": len(held[name]),
            "flows": held[name],
            "last_beat_s": round(max(0.0, now_ms - seen[name]) / 1000, 3),
            "sandbox": layers.get(name, {}),
        }
        for name, count, info in zip(names, slots, infos, strict=True)
    ]


def _said(raw: Any) -> dict[str, Any]:
    """What a worker's info JSON says, only the fields this view knows."""
    try:
        said = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return {k: v for k, v in said.items() if k in UNSAID} if isinstance(said, dict) else {}
