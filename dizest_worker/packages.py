"""The Python packages a worker's flows can import, as DIZEST's packages panel lists them (there
with install and uninstall; here read-only: one environment is shared by every user's flows,
so what is installed is the operator's to change, not a flow author's).

Invariants:
- A worker says it under its name in `{p}:worker_packages`: name -> JSON `{"python": "3.11.2",
  "packages": [[name, version], ...], "modules": [...]}`, its distributions sorted by PEP 503
  name and the top-level modules its flows can import (what `dizest_api.import_check` looks
  for). Its beating threads write it before their first beat (not the "ready" signal's
  handler, which a read of ~20-60 ms would delay), so within a beat of "ready"; then
  every `CHECK_S` they write it again if it is missing (one HEXISTS: a field a restart's cleanup
  or the reaper dropped while the worker lived is back within seconds) or if a directory of the
  path changed (a `pip install` while the worker runs: its next flows import the new package).
  It is dropped and pruned with the beat (`liveness._drop_beat`, the reaper's FORGET), so only
  live workers' lists are read.
- What is listed is the worker interpreter's own environment. A workflow with its own
  `executable` runs flows with that environment's site-packages first: not listed here.
- Reading (`environments`) groups the live workers by identical lists: a cluster of identical
  workers is one environment, a worker that differs (an upgrade half rolled out) shows apart.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import platform
import sys
import time
from importlib import metadata
from typing import TYPE_CHECKING, Any

from packaging.utils import canonicalize_name

from dizest_worker.keys import Keys

if TYPE_CHECKING:  # `dizest validate` reads `said` alone: no Redis client to import
    import redis

    from dizest_worker.settings import WorkerSettings

CHECK_S = 5.0  # how often a beating thread makes sure its worker's list is there
SETTLE_NS = 2_000_000_000  # a path changed this recently may change again within its mtime tick


def said() -> str:
    """This interpreter's packages and modules as JSON (~300 distributions: 20-60 ms)."""
    found: dict[str, list[str]] = {}
    for dist in metadata.distributions():  # in path order: the first of a name is imported
        name, version = dist.metadata["Name"], dist.version
        if name:
            found.setdefault(canonicalize_name(name), [name, version or ""])
    listed = [found[key] for key in sorted(found)]
    # the top-level modules on the path (not the current directory): a listing of each
    # directory, ~10-40 ms, where `packages_distributions` read every RECORD (~0.2-0.8 s)
    modules = sorted({m.name for m in pkgutil.iter_modules([p for p in sys.path if p])})
    body = {"python": platform.python_version(), "packages": listed, "modules": modules}
    return json.dumps(body, separators=(",", ":"))


def path_stamp() -> tuple[int, ...]:
    """When each directory of the path last changed: an install or an uninstall adds or
    removes entries of its site-packages, which changes its time."""
    stamp = []
    for place in sys.path:
        try:
            stamp.append(os.stat(place).st_mtime_ns if place else 0)
        except OSError:
            stamp.append(-1)
    return tuple(stamp)


class Publisher:
    """One beating thread's part: its worker's list there, checked at most every CHECK_S, and
    read again when the path changed (a `pip install` while the worker runs: its next flows
    can import what was installed, so the list says it too)."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.key = Keys(settings.prefix).worker_packages
        self.name = settings.worker_name
        self._next = 0.0
        self._stamp: tuple[int, ...] | None = None
        self._said = ""

    def check(self, client: redis.Redis) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + CHECK_S
        stamp = path_stamp()
        if stamp != self._stamp:  # the first check, or an install since the last one
            importlib.invalidate_caches()
            self._said = said()
            client.hset(self.key, self.name, self._said)
            # a change within the file system's clock tick of this read (an install still
            # writing) may leave the times as they are: read again at the next check
            settled = time.time_ns() - max(stamp, default=0) > SETTLE_NS
            self._stamp = stamp if settled else None
        elif not client.hexists(self.key, self.name):
            client.hset(self.key, self.name, self._said)


def environments(client: redis.Redis, settings: WorkerSettings, live: list[str]) -> list[Any]:
    """The `live` workers' environments, each `{"python", "workers", "packages": [{"name",
    "version"}]}`, the most used first; a worker that has not said its list yet is left out."""
    if not live:
        return []
    names = sorted(live)
    raws = client.hmget(Keys(settings.prefix).worker_packages, names)
    groups: dict[Any, list[str]] = {}
    for name, raw in zip(names, raws, strict=True):
        if raw:
            groups.setdefault(raw, []).append(name)
    out = []
    for raw, workers in sorted(groups.items(), key=lambda item: (-len(item[1]), item[1])):
        try:
            body = json.loads(raw)
            packages = [{"name": n, "version": v} for n, v in body["packages"]]
            python = str(body["python"])
            modules = [str(m) for m in body.get("modules", ())]
        except (ValueError, KeyError, TypeError):
            continue  # not a list this code wrote
        out.append({"python": python, "workers": workers, "packages": packages, "modules": modules})
    return out
