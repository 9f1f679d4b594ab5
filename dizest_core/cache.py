"""The opt-in cache across runs: a flow's outputs, log and results, keyed by what determines them.

The key is a SHA-256 over the app code, the flow's data, the run inputs it receives, and the
digest of every input value it reads. A flow whose key is cached is not run again. Entries are
files (one pickle each, written atomically) under the cache directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dizest_core.job import Artifact, FlowJob, Value


@dataclass(frozen=True)
class CachedFlow:
    outputs: dict[str, bytes]  # inline values only (runs with artifacts are not cached)
    previews: dict[str, Any]
    log: list[Any]
    results: list[dict[str, Any]]


def cache_key(job: FlowJob) -> str:
    h = hashlib.sha256()
    for part in (
        job.app_id,
        job.code,
        _json(job.data),
        _json(job.params),
        _json([(s.name, s.type, s.inputtype) for s in job.inputs]),
        _json(job.outputs),
    ):
        h.update(part.encode())
        h.update(b"\0")
    for name in sorted(job.sources):
        h.update(name.encode())
        for raw in job.sources[name]:
            h.update(b"-" if raw is None else digest(raw))
    return h.hexdigest()


def digest(value: Value) -> bytes:
    """SHA-256 of a serialized value, read in chunks when it is a file."""
    if not isinstance(value, Artifact):
        return hashlib.sha256(value).digest()
    h = hashlib.sha256()
    with open(value.path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.digest()


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr)


class FlowCache:
    """Cached flow results in a directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.pkl"

    def get(self, key: str) -> CachedFlow | None:
        try:
            with self._path(key).open("rb") as fh:
                entry = pickle.load(fh)
        except (OSError, EOFError, pickle.UnpicklingError):
            return None
        return entry if isinstance(entry, CachedFlow) else None

    def put(self, key: str, entry: CachedFlow) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(entry, fh, protocol=5)
        os.replace(tmp, path)
