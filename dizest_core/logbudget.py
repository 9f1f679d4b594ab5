"""What one flow attempt may emit as log lines and displayed results: `FlowJob.max_log_bytes`.

Each line or result becomes an event, which a worker keeps in the run's Redis stream for the
run's lifetime and every report reads back: without a bound, a flow printing 1 MB lines grew
Redis by 380 MB in 16 s, and one report of it by 283 MB. Past the budget, the flow's further
lines and results are dropped (it keeps running) and one engine line says so. The engine's own
lines ("dizest: ...") are never dropped; every item costs at least `MIN_COST`, so a flow that
clears its log in a loop is bounded too.
"""

from __future__ import annotations

from collections.abc import Sequence

from dizest_core.outcome import Finished, Signal

MIN_COST = 64  # bytes: what an event costs the stream besides its text


class LogBudget:
    """Per running flow, the bytes it may still emit; `admit` filters a poll's items."""

    def __init__(self) -> None:
        self._left: dict[str, int] = {}
        self._limit: dict[str, int] = {}

    def start(self, flow_id: str, limit: int) -> None:
        self._left[flow_id] = self._limit[flow_id] = limit

    def spent(self, flow_id: str) -> bool:
        """Whether the flow is past its budget: all it prints or shows from now on is dropped."""
        return self._left.get(flow_id, 0) < 0

    def admit(self, items: Sequence[Signal | Finished]) -> list[Signal | Finished]:
        out: list[Signal | Finished] = []
        for item in items:
            flow_id = item.flow_id
            if isinstance(item, Finished):
                self._left.pop(flow_id, None)
                self._limit.pop(flow_id, None)
            elif flow_id in self._left and item.data.get("stream") != "engine":
                left = self._left[flow_id]
                self._left[flow_id] = left - max(MIN_COST, _size(item))
                if self._left[flow_id] < 0:
                    if left >= 0:  # the first item over: say so, once
                        out.append(_notice(flow_id, self._limit[flow_id]))
                    continue
            out.append(item)
        return out


def _size(item: Signal) -> int:
    """UTF-8 bytes of a line, or of a rich entry's or result's payload ({"mime", "data"})."""
    payload = item.data.get("entry" if item.kind == "log" else "value")
    if isinstance(payload, dict):
        return sum(_utf8_len(str(payload.get(k) or "")) for k in ("mime", "data"))
    return _utf8_len(payload) if isinstance(payload, str) else 0


def _utf8_len(text: str) -> int:
    """`text`'s UTF-8 length, a lone surrogate (which user code may print: the wire keeps it)
    counted as its 3 bytes: a plain `encode()` raised on it, and the error ended the worker's
    task, so the flow was retried and reported "worker lost" instead of what it printed."""
    return len(text.encode("utf-8", "surrogatepass"))


def _notice(flow_id: str, limit: int) -> Signal:
    mb = limit / (1 << 20)
    text = (
        f"dizest: this flow's log and results passed {mb:g} MB (DIZEST_MAX_LOG_BYTES): "
        "what it prints or shows from here on is dropped"
    )
    return Signal(flow_id, "log", {"entry": text, "stream": "engine"})
