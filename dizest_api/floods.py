"""Runs whose events come faster than the event hub hands them on: floods.

The hub reads every run it streams from one pubsub connection, in the order Redis sent them.
A run printing as fast as it can (a hostile or careless user's, ~40,000 lines a second from
two flows) put hundreds of its events ahead of every other run's: decoding, framing and
sending each to its watchers, the hub fell behind, and the other users' live views on that
process lagged by 0.6-1 s (a probe, 2026-12-03: p50 1 ms -> 608 ms).

So a run with FLOOD_BATCH or more events waiting in one read is in flood mode until QUIET_S
passes without another such read. Its events on pubsub are then counted, not decoded: its
streams are caught up from the run's stream instead, in bounded steps, by the writer thread
(owned streams) or their own threads (told RESYNC at most every TICK_S), and the pubsub thread
stays current for everyone else. When it leaves flood mode, its streams catch up once more
before live events flow again, so they still get every event once, in order (as long as the
run's stream still holds them: one that outruns its stream's length limit loses its oldest
events to its watchers, as it does to a replay).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# one run's events waiting at once in one read: the hub is behind on it (below what one read
# takes at most, run_channels.BATCH)
FLOOD_BATCH = 100
QUIET_S = 1.0  # a run leaves flood mode after this long without such a read
TICK_S = 0.2  # a flooding run's threaded streams are told to catch up at most this often


class Floods:
    """Which runs are in flood mode; used by the hub's pubsub thread alone."""

    def __init__(self) -> None:
        self.until: dict[str, float] = {}  # run -> when it leaves flood mode
        self._told: dict[str, float] = {}  # run -> when its threaded streams were last told
        self._owed: set[str] = set()  # runs whose threaded streams were not told yet
        self.started = 0  # floods seen since the hub started

    def note(self, counts: Mapping[str, int], now: float) -> tuple[set[str], list[str]]:
        """After a read of `counts` events by run: the runs in flood mode now, and those that
        have just left it."""
        for run, count in counts.items():
            if count >= FLOOD_BATCH:
                self.started += run not in self.until
                self.until[run] = now + QUIET_S
        ended = [run for run, until in self.until.items() if until <= now]
        for run in ended:  # told by the hub as it leaves
            del self.until[run]
            self._told.pop(run, None)
            self._owed.discard(run)
        return set(self.until), ended

    def tell(self, runs: Iterable[str], now: float) -> list[str]:
        """Of `runs` (flooding runs whose events were just skipped) and those owed it, the runs
        whose threaded streams to tell to catch up now: at most every TICK_S each; one refused
        is owed it, and told at a later read (the hub reads at least every IDLE_S), so the tail
        of a flood, its final event with it, waits no longer than that."""
        self._owed.update(runs)
        due = [run for run in self._owed if now - self._told.get(run, float("-inf")) >= TICK_S]
        for run in due:
            self._told[run] = now
            self._owed.discard(run)
        return due
