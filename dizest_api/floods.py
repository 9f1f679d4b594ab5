"""Runs whose events come faster than the event hub hands them on: floods.

The hub reads every run it streams from one pubsub connection, in the order Redis sent them.
A run printing as fast as it can (a hostile or careless user's, ~40,000 lines a second from
two flows) put hundreds of its events ahead of every other run's: decoding, framing and
sending each to its watchers, the hub fell behind, and the other users' live views on that
process lagged by 0.6-1 s (a probe, 2026-12-03: p50 1 ms -> 608 ms).

So a run with FLOOD_BATCH or more events waiting in one read is in flood mode until QUIET_S
passes without another such read. Meanwhile the hub does not want its channel (it is
unsubscribed: Redis no longer sends its events to this process, and any still on their way are
counted, not decoded), and its streams are caught up from the run's stream at most every TICK_S,
in bounded steps, by the writer thread (owned streams) or their own threads (told RESYNC): the
pubsub connection stays current for everyone else. When it leaves flood mode its channel is
subscribed again, and the subscription's confirmation has its streams catch up once more before
live events flow, so they still get every event once, in order (as long as the run's stream
still holds them: one that outruns its stream's length limit loses its oldest events to its
watchers, as it does to a replay). A run still flooding floods the first read after that, and
is unsubscribed again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

# one run's events waiting at once in one read: the hub is behind on it (below what one read
# takes at most, run_channels.BATCH)
FLOOD_BATCH = 100
QUIET_S = 1.0  # a run leaves flood mode after this long without such a read
TICK_S = 0.2  # a flooding run's streams are caught up at most this often


class Floods:
    """Which runs are in flood mode; used by the hub's pubsub thread alone."""

    def __init__(self) -> None:
        self.until: dict[str, float] = {}  # run -> when it leaves flood mode
        self._told: dict[str, float] = {}  # run -> when its streams were last caught up
        self.started = 0  # floods seen since the hub started

    def note(self, counts: Mapping[str, int], now: float) -> tuple[set[str], list[str], list[str]]:
        """After a read of `counts` events by run: the runs in flood mode now, those that have
        just left it, and those that have just entered it."""
        started = []
        for run, count in counts.items():
            if count >= FLOOD_BATCH:
                if run not in self.until:
                    started.append(run)
                self.until[run] = now + QUIET_S
        self.started += len(started)
        ended = [run for run, until in self.until.items() if until <= now]
        for run in ended:
            del self.until[run]
            self._told.pop(run, None)
        return set(self.until), ended, started

    def tell(self, runs: Iterable[str], now: float) -> list[str]:
        """Of `runs` (flooding), those whose streams to catch up now: each at most every
        TICK_S (the hub reads, and so asks, at least every IDLE_S)."""
        due = [run for run in runs if now - self._told.get(run, float("-inf")) >= TICK_S]
        for run in due:
            self._told[run] = now
        return due
