"""Where flow outputs live between flows: a narrow port and its in-memory implementation.

Outputs are stored serialized (pickle protocol 5 bytes) per (run, flow, output name), with a
JSON preview per output for reports. Writes are fenced by attempt number: a put from an older
attempt than the one already stored is ignored, so a stale attempt never overwrites a newer one.
The Redis implementation (dizest_worker) passes the same contract tests.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from dizest_core.job import Value


@dataclass(frozen=True)
class StoredOutputs:
    values: Mapping[str, Value]
    previews: Mapping[str, Any]
    attempt: int


class OutputStore(Protocol):
    def put(
        self,
        run_id: str,
        flow_id: str,
        values: Mapping[str, Value],
        previews: Mapping[str, Any],
        attempt: int = 1,
    ) -> bool:
        """Store a flow's outputs; False (and nothing written) if a newer attempt already wrote."""
        ...

    def get(self, run_id: str, flow_id: str, name: str) -> Value | None:
        """One serialized output, or None when the flow did not produce it."""
        ...

    def has(self, run_id: str, flow_id: str) -> bool:
        """Whether the flow's outputs were stored (possibly none)."""
        ...

    def previews(self, run_id: str, flow_id: str) -> dict[str, Any]:
        """JSON previews of a flow's outputs ({} when none)."""
        ...

    def copy(self, src_run: str, dst_run: str, flow_id: str) -> bool:
        """Make a flow's outputs of one run available in another; False if there were none."""
        ...

    def delete_run(self, run_id: str) -> None:
        """Forget every output of a run."""
        ...


class MemoryStore:
    """OutputStore in a dict; thread-safe."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str], StoredOutputs] = {}
        self._lock = threading.Lock()

    def put(
        self,
        run_id: str,
        flow_id: str,
        values: Mapping[str, Value],
        previews: Mapping[str, Any],
        attempt: int = 1,
    ) -> bool:
        with self._lock:
            current = self._data.get((run_id, flow_id))
            if current is not None and current.attempt > attempt:
                return False
            self._data[(run_id, flow_id)] = StoredOutputs(dict(values), dict(previews), attempt)
            return True

    def get(self, run_id: str, flow_id: str, name: str) -> Value | None:
        stored = self._data.get((run_id, flow_id))
        return None if stored is None else stored.values.get(name)

    def has(self, run_id: str, flow_id: str) -> bool:
        return (run_id, flow_id) in self._data

    def previews(self, run_id: str, flow_id: str) -> dict[str, Any]:
        stored = self._data.get((run_id, flow_id))
        return {} if stored is None else dict(stored.previews)

    def copy(self, src_run: str, dst_run: str, flow_id: str) -> bool:
        with self._lock:
            stored = self._data.get((src_run, flow_id))
            if stored is None:
                return False
            self._data[(dst_run, flow_id)] = stored
            return True

    def delete_run(self, run_id: str) -> None:
        with self._lock:
            for key in [k for k in self._data if k[0] == run_id]:
                del self._data[key]
