"""Owns stored workflows: .dwp packages that belong to a user, kept by version, shared by grants.

Invariants:
- a package is validated (`dizest_core.options.checked`, plugin apps included) before it is
  stored, and stored as the caller's original JSON, every field kept.
- versions are numbered 1, 2, ... per workflow; replacing adds the next version in one atomic
  script, and the last `versions_kept` versions stay readable until the workflow is deleted.
  A replace whose package is the latest version's (the same JSON text) adds none: it answers
  that version (`Saved.stored` false), as git makes no empty commit.
- a package's warnings (app code that does not compile, ...) never refuse it: a work in
  progress is stored, its warnings answered with it (`Saved.warnings`).
- what a user's workflows hold is bounded (`library_quota`): workflows owned, versions kept,
  bytes; checked by the same script that writes, so nothing is stored past a limit.
- a grant gives one user one level: viewer (read), runner (read + run), editor (read + write);
  the owner's own rights are not a grant. Each user's index of workflows granted to them is
  changed in the same transaction as the grants themselves.
- deleting a workflow removes its versions, grants and index entries together.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

from dizest_api.data import library_quota
from dizest_api.data.library_quota import LibraryLimits
from dizest_api.ids import new_id
from dizest_core import limits as value_limits
from dizest_core import options
from dizest_core.errors import DizestError, InputError, Problem, ValidationError
from dizest_core.model import App
from dizest_core.settings import Settings
from dizest_worker.keys import Keys

LEVELS = ("viewer", "runner", "editor")  # in increasing order of rights


def _json_text(package: Mapping[str, Any]) -> str:
    """The package as JSON text; ValidationError (not_json) when it holds NaN or Infinity:
    Python's parser takes them, no JSON reader does, and every run refuses them."""
    try:
        return json.dumps(package, ensure_ascii=False, allow_nan=False)
    except ValueError:
        problem = Problem("not_json", "the package holds NaN or Infinity: JSON has no such number")
        raise ValidationError([problem]) from None


class WorkflowNotFound(DizestError, LookupError):
    """No stored workflow with this id (or no such version)."""


class VersionConflict(DizestError):
    """A replace based on a version that is no longer the latest: someone saved since."""

    def __init__(self, title: str, base: int, latest: int) -> None:
        # named by its title, as a person knows it (the caller holds its id; `details` the versions)
        super().__init__(
            f"workflow {title!r} is at version {latest}, not {base}: "
            "someone saved a newer version since you loaded it"
        )
        self.base, self.latest = base, latest


class GrantError(DizestError):
    """A grant names an unknown level or the owner."""


@dataclass(frozen=True)
class StoredWorkflow:
    id: str
    owner: str
    title: str
    version: int
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "title": self.title,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class Saved:
    """What a create or replace did: the workflow now, whether a version was stored, and the
    package's warnings."""

    workflow: StoredWorkflow
    stored: bool
    warnings: list[Problem]

    def to_dict(self) -> dict[str, Any]:
        warnings = [p.to_dict() for p in self.warnings]
        return {**self.workflow.to_dict(), "stored": self.stored, "warnings": warnings}


@dataclass(frozen=True)
class Page:
    items: list[StoredWorkflow]
    total: int


class Library:
    """The stored workflows of one dizest installation (one key prefix)."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        extra_apps: Mapping[str, App] | None = None,
        clock: Callable[[], float] = time.time,
        limits: LibraryLimits | None = None,
        option_bounds: options.Bounds | None = None,
        engine: Settings | None = None,
    ) -> None:
        """`option_bounds`: the most the server lets a flow ask for, for the `"dizest"` options
        of what is stored (`dizest_core.options`; none: no bound); `engine`: whose input limits
        a stored package must keep, as every submit of it is held to them (none: no limit)."""
        # A text client (`text_client`): replies are str, which redis-py's types cannot express.
        self.redis: Any = client
        self.keys, self.clock = keys, clock
        self.extra_apps = dict(extra_apps or {})
        self.limits = limits or LibraryLimits()
        self.option_bounds = option_bounds or options.Bounds()
        self.engine = engine
        self._create = client.register_script(library_quota.CREATE)
        self._replace = client.register_script(library_quota.REPLACE)
        self._usage = client.register_script(library_quota.USAGE)
        self._versions = library_quota.versions_template(keys)

    def validate(self, package: Mapping[str, Any]) -> tuple[str, list[Problem]]:
        """The package as JSON text with its warnings, once `problems` found no error (else
        ValidationError naming every one; InvalidOptions when only options every submit would
        refuse are)."""
        found = self.problems(package)
        options.raise_errors(found)
        if self.engine is not None:  # (a package its runs would refuse: `package_string_too_long`)
            value_limits.check_value(package, "the package", "package", self.engine)
        return _json_text(package), [p for p in found if p.severity != "error"]

    def problems(self, package: Any) -> list[Problem]:
        """Every problem of `package` at once, without raising: `options.checked`'s (the
        package's own and its `"dizest"` options', as a submit finds them), and NaN or Infinity
        in it (what `validate` would refuse)."""
        _, found = options.checked(package, self.option_bounds, extra_apps=self.extra_apps)
        try:
            _json_text(package)
        except ValidationError as exc:
            return [*found, *exc.problems]
        return found

    def create(self, owner: str, title: str, package: Mapping[str, Any]) -> Saved:
        _check_title(title)
        (text, warnings), now = self.validate(package), self.clock()
        wf = StoredWorkflow(new_id(), owner, title, 1, now, now)
        keys = [
            self.keys.workflow(wf.id),
            self.keys.workflow_versions(wf.id),
            self.keys.workflows,
            self.keys.user_workflows(owner),
            self.keys.user_library(owner),
        ]
        limits = self.limits
        args: list[str | int | float] = [
            text, wf.id, int(now * 1000), limits.max_workflows, limits.quota_bytes,
        ]  # fmt: skip
        fields = [x for pair in _fields(wf).items() for x in pair]
        kind, used = self._create(keys=keys, args=[*args, *self._versions, *fields])
        if kind != "ok":
            raise library_quota.refused(kind, int(used), len(text.encode()), limits, owner)
        return Saved(wf, True, warnings)

    def get(self, wf_id: str) -> StoredWorkflow:
        raw = self.redis.hgetall(self.keys.workflow(wf_id)) if len(wf_id) < 64 else {}
        if not raw:
            raise WorkflowNotFound(f"no workflow {wf_id!r}")
        return _workflow(wf_id, raw)

    def package(self, wf_id: str, version: int | None = None) -> tuple[StoredWorkflow, int, Any]:
        """The workflow, the version read and its package (the latest unless `version`)."""
        wf = self.get(wf_id)
        number = wf.version if version is None else version
        text = self.redis.hget(self.keys.workflow_versions(wf_id), str(number))
        if text is None:
            kept = self.limits.versions_kept
            why = f" (only its last {kept} versions are kept)" if 1 <= number < wf.version else ""
            raise WorkflowNotFound(f"workflow {wf_id!r} has no version {number}{why}")
        return wf, number, json.loads(text)

    def replace(
        self,
        wf_id: str,
        package: Mapping[str, Any],
        title: str | None = None,
        base_version: int | None = None,
    ) -> Saved:
        """Store `package` as the next version (and rename, if `title`), unless it is the latest
        version's (then nothing but the title is stored). With `base_version`, only if that is
        still the latest version (checked in the same script as the write, so two editors saving
        the same version cannot both pass): else VersionConflict."""
        if title is not None:
            _check_title(title)
        text, warnings = self.validate(package)
        stored = self.get(wf_id)  # its owner never changes: its usage key can be named up front
        owner = stored.owner
        keys = [
            self.keys.workflow(wf_id),
            self.keys.workflow_versions(wf_id),
            self.keys.user_workflows(owner),
            self.keys.user_library(owner),
        ]
        base = "" if base_version is None else str(base_version)
        args: list[str | float | int] = [
            text, self.clock(), "0" if title is None else "1", title or "", base,
            self.limits.versions_kept, self.limits.quota_bytes, *self._versions,
        ]  # fmt: skip
        kind, value = self._replace(keys=keys, args=args)
        if kind == "missing":
            raise WorkflowNotFound(f"no workflow {wf_id!r}")
        if kind == "conflict":
            raise VersionConflict(stored.title, base_version or 0, int(value))
        if kind not in ("ok", "same"):
            raise library_quota.refused(kind, int(value), len(text.encode()), self.limits, owner)
        return Saved(self.get(wf_id), kind == "ok", warnings)

    def delete(self, wf_id: str) -> None:
        meta, grants_key = self.keys.workflow(wf_id), self.keys.workflow_grants(wf_id)
        versions = self.keys.workflow_versions(wf_id)

        def remove(pipe: Any) -> None:
            owner = pipe.hget(meta, "owner")
            if owner is None:
                raise WorkflowNotFound(f"no workflow {wf_id!r}")
            usage = self.keys.user_library(owner)
            pipe.watch(usage)
            grantees = pipe.hkeys(grants_key)
            size = sum(pipe.hstrlen(versions, v) for v in pipe.hkeys(versions))
            counted = pipe.hexists(usage, "bytes")  # else the next save counts from scratch
            pipe.multi()
            pipe.delete(meta, versions, grants_key)
            pipe.zrem(self.keys.workflows, wf_id)
            pipe.zrem(self.keys.user_workflows(owner), wf_id)
            for name in grantees:
                pipe.zrem(self.keys.user_shared(name), wf_id)
            if counted:
                pipe.hincrby(usage, "bytes", -size)

        self.redis.transaction(remove, meta, grants_key, versions)

    def delete_owned_by(self, username: str) -> None:
        """Delete every workflow of a user (when the user is removed), and their grants. Only
        the ids it listed leave the user's indexes, never the indexes whole: a workflow a
        request of theirs creates meanwhile stays listed for that request's own clearing."""
        owned_key, shared_key = self.keys.user_workflows(username), self.keys.user_shared(username)
        owned = self.redis.zrange(owned_key, 0, -1)
        for wf_id in owned:
            with contextlib.suppress(WorkflowNotFound):  # deleted meanwhile
                self.delete(wf_id)
        shared = self.redis.zrange(shared_key, 0, -1)
        for wf_id in shared:
            self.redis.hdel(self.keys.workflow_grants(wf_id), username)
        pipe = self.redis.pipeline()
        for key, ids in ((owned_key, owned), (shared_key, shared)):
            if ids:  # stale ids too (their workflow gone)
                pipe.zrem(key, *ids)
        pipe.delete(self.keys.user_library(username))  # a count: the next save counts anew
        pipe.execute()

    def usage(self, username: str) -> dict[str, int]:
        """What `username`'s workflows hold against the limits (bytes counted if not yet)."""
        owned = self.keys.user_workflows(username)
        keys = [self.keys.user_library(username), owned]
        used = self._usage(keys=keys, args=list(self._versions))
        owned_n = int(self.redis.zcard(owned))
        return self.limits.usage(owned_n, int(used))

    # -- grants --------------------------------------------------------------------------

    def grants(self, wf_id: str) -> dict[str, str]:
        self.get(wf_id)
        return dict(sorted(self.redis.hgetall(self.keys.workflow_grants(wf_id)).items()))

    def level(self, wf: StoredWorkflow, username: str) -> str | None:
        """The level granted to `username` on `wf`, or None."""
        level: str | None = self.redis.hget(self.keys.workflow_grants(wf.id), username)
        return level

    def set_grants(self, wf_id: str, grants: Mapping[str, str]) -> dict[str, str]:
        """Replace every grant of a workflow at once."""
        meta, grants_key = self.keys.workflow(wf_id), self.keys.workflow_grants(wf_id)
        bad = {u: lvl for u, lvl in grants.items() if lvl not in LEVELS}
        if bad:
            raise GrantError(f"grant levels must be one of {list(LEVELS)}: {bad}")

        def change(pipe: Any) -> None:
            owner = pipe.hget(meta, "owner")
            if owner is None:
                raise WorkflowNotFound(f"no workflow {wf_id!r}")
            if owner in grants:
                raise GrantError("the owner needs no grant")
            old = pipe.hkeys(grants_key)
            pipe.multi()
            pipe.delete(grants_key)
            for name in old:
                pipe.zrem(self.keys.user_shared(name), wf_id)
            if grants:
                pipe.hset(grants_key, mapping=dict(grants))
            for name in grants:
                pipe.zadd(self.keys.user_shared(name), {wf_id: int(self.clock() * 1000)})

        self.redis.transaction(change, meta, grants_key)
        return dict(sorted(grants.items()))

    def shared_with(self, username: str) -> list[tuple[str, str]]:
        """(workflow id, its owner) of every workflow granted to `username`."""
        ids = self.redis.zrange(self.keys.user_shared(username), 0, -1)
        pipe = self.redis.pipeline(transaction=False)
        for wf_id in ids:
            pipe.hget(self.keys.workflow(wf_id), "owner")
        return [(i, owner) for i, owner in zip(ids, pipe.execute(), strict=True) if owner]

    # -- listing -------------------------------------------------------------------------

    def visible(
        self, username: str | None, title: str = "", offset: int = 0, limit: int = 50
    ) -> Page:
        """Workflows `username` owns or was granted (every one if None), newest first."""
        if username is None:
            ids = self.redis.zrange(self.keys.workflows, 0, -1)
        else:
            ids = self.redis.zrange(self.keys.user_workflows(username), 0, -1)
            ids += self.redis.zrange(self.keys.user_shared(username), 0, -1)
        pipe = self.redis.pipeline(transaction=False)
        for wf_id in dict.fromkeys(ids):
            pipe.hgetall(self.keys.workflow(wf_id))
        found = [
            _workflow(wf_id, raw)
            for wf_id, raw in zip(dict.fromkeys(ids), pipe.execute(), strict=True)
            if raw
        ]
        needle = title.casefold()
        found = [wf for wf in found if needle in wf.title.casefold()]
        found.sort(key=lambda wf: (wf.created_at, wf.id), reverse=True)
        return Page(found[offset : offset + limit], len(found))


def _fields(wf: StoredWorkflow) -> dict[str, str | int | float]:
    return {
        "owner": wf.owner,
        "title": wf.title,
        "version": wf.version,
        "created_at": wf.created_at,
        "updated_at": wf.updated_at,
    }


def _workflow(wf_id: str, raw: Mapping[str, str]) -> StoredWorkflow:
    return StoredWorkflow(
        wf_id,
        raw["owner"],
        raw["title"],
        int(raw["version"]),
        float(raw["created_at"]),
        float(raw["updated_at"]),
    )


MAX_TITLE = 200  # characters: a title is a label in lists, not a document


def _check_title(title: str) -> None:
    if len(title) > MAX_TITLE:
        raise InputError(
            "title_too_long",
            f"a workflow title has at most {MAX_TITLE} characters, not {len(title)}",
            {"limit": "max_title", "max": MAX_TITLE},
        )
