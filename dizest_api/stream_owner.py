"""The SSE streams the event hub owns: sockets handed over after their replay, no thread each.

Invariants (every one under the hub's lock, shared with `EventHub`):
- Writes to an owned socket are non-blocking and in stream order; what the socket does not take
  at once waits in the stream's outbox, flushed when it becomes writable. A client more than
  `queue_size` events behind has its response ended after them (it resumes with Last-Event-ID);
  one whose outbox has not moved for two heartbeat periods is cut off. Neither delays the others.
- `last` is the id of the last event queued to the client; nothing at or before it is sent again.
- One writer thread owns the selector: it registers (at its next turn: no wake-up per socket handed
  over) and closes the sockets, flushes outboxes, sees clients leave, sends heartbeats, and catches
  each run up from its stream every heartbeat period and after the hub resubscribed (live events
  are held back meanwhile, so a client gets every event once, in order, whatever pubsub lost). A
  run far ahead of its clients (a flood) is caught up in steps of `queue_size` events, each
  followed by a rest as long as it took (a resync meanwhile waits for the next step, which reads
  what it wants): one run's catch-ups take at most half of this thread. A failed catch-up is tried
  again after a backoff; after CATCH_UP_TRIES in a row, over a heartbeat period at least, the run's
  streams end, as if it expired: their clients resume with Last-Event-ID.
- A stream ends after its run's final event, when the run expires, or on shutdown: the chunked
  response's last chunk, then the socket closes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from dizest_api.sse_frames import HEARTBEAT, LAST_CHUNK, frame, newer, stream_key
from dizest_core.events import Event

log = logging.getLogger("dizest.api.streaming")

REPLAY_BATCH = 500  # events read at once to replay or catch up
# what waits for one slow client before its response ends (a probe's 4 clients that did not
# read 1 MB lines held 2 GB of the API when only events were counted)
MAX_OUTBOX_BYTES = 8 << 20
CATCH_UP_TRIES = 3  # catch-ups of a run failing in a row before its streams end (and resume)
RETRY_S = 0.1  # a failed catch-up is tried again after this, doubled each time (live events wait)


class RunFeed(Protocol):
    """What a stream reads of the cluster: `dizest_worker.client.Client` is one."""

    def record(self, run_id: str) -> dict[str, str] | None: ...

    def event_batch(
        self, run_id: str, after: str | None = None, count: int = 1000
    ) -> list[Event]: ...


@dataclass(eq=False)
class Stream:
    run_id: str
    sock: socket.socket
    last: str | None
    runs: RunFeed
    outbox: deque[tuple[bytes, int]] = field(default_factory=deque)  # (bytes, events in them)
    behind: int = 0  # events in the outbox
    pending: int = 0  # bytes in the outbox
    held: list[Event] | None = None  # live events held back while the run catches up
    ending: bool = False  # the last chunk is queued: close once the outbox is empty
    gone: bool = False  # dropped or ended: the writer closes it
    written_at: float = field(default_factory=time.monotonic)
    stalled_at: float | None = None  # since when the outbox has not moved


class OwnedStreams:
    def __init__(self, lock: threading.Lock, queue_size: int, heartbeat_s: float) -> None:
        self._lock = lock
        self.queue_size = queue_size
        self.heartbeat_s = heartbeat_s
        self.by_run: dict[str, set[Stream]] = {}
        self._attention: set[Stream] = set()  # for the writer: register, watch, close
        self._new: set[Stream] = set()  # handed over: the writer registers them at its next turn
        self._catch_up: set[str] = set()  # runs to catch up at once (the hub resubscribed)
        self._paced: dict[str, float] = {}  # run -> when its next catch-up step may start
        self._checked: dict[str, float] = {}  # run -> when it was last caught up
        self._failed: dict[str, tuple[int, float]] = {}  # run -> failed catch-ups in a row, since
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def count(self) -> int:
        return sum(len(s) for s in self.by_run.values())

    # ------------------------------------------------------------------ under the hub lock

    def add(self, run_id: str, sock: socket.socket, last: str | None, runs: RunFeed) -> Stream:
        sock.setblocking(False)
        stream = Stream(run_id, sock, last, runs)
        self.by_run.setdefault(run_id, set()).add(stream)
        self._checked.setdefault(run_id, time.monotonic())
        self._new.add(stream)  # a wake-up per connect was a turn of the writer (and the GIL)
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="dizest-sse-writer", daemon=True)
            self._thread.start()
        return stream

    def deliver(self, run_id: str, events: list[Event], frames: dict[str, bytes]) -> None:
        """Live events of one run (in stream order) to its streams; `frames`: its chunks (`frame`)."""
        joined: dict[str | None, tuple[bytes, list[Event]]] = {}
        for stream in self.by_run.get(run_id, ()):
            if stream.gone or stream.ending:
                continue
            if stream.held is not None:
                stream.held.extend(events)
                if len(stream.held) > self.queue_size:
                    self.end(stream)
                continue
            if stream.last not in joined:  # streams of a run mostly share `last`: join once
                todo = newer(events, stream.last)
                joined[stream.last] = (b"".join(frame(e, frames) for e in todo), todo)
            self._queue(stream, *joined[stream.last])

    def deliver_each(self, stream: Stream, events: list[Event], frames: dict[str, bytes]) -> None:
        todo = newer(events, stream.last)
        self._queue(stream, b"".join(frame(e, frames) for e in todo), todo)

    def resync(self, runs: Iterable[str] | None = None) -> None:
        """The hub (re)subscribed the channels of `runs` (None: of all; its lock held): what
        pubsub published before is lost, so their streams hold live events back until the
        writer has caught their run up from the stream. A live event sent first would move
        `last` past the gap, and the catch-up would start after it (a probe under load lost
        801 of 4,007 events so)."""
        todo = [r for r in (self.by_run if runs is None else runs) if r in self.by_run]
        for run_id in todo:
            for stream in self.by_run[run_id]:
                if stream.held is None and not (stream.gone or stream.ending):
                    stream.held = []
        if todo:
            self._catch_up.update(todo)
            self._wake()

    def end_all(self) -> None:
        for streams in self.by_run.values():
            for stream in streams:
                self.end(stream)

    def _queue(self, stream: Stream, data: bytes, events: list[Event]) -> None:
        if not events:
            return
        stream.last = events[-1].id
        self._send(stream, data, len(events))
        if events[-1].final:
            self.end(stream)

    def _send(self, stream: Stream, data: bytes, events: int = 0) -> None:
        if stream.gone or stream.ending:
            return
        self._write(stream, data, events)
        # a slow client, many events or bytes behind: its response ends here, it resumes
        if stream.behind > self.queue_size or stream.pending > MAX_OUTBOX_BYTES:
            self.end(stream)

    def _write(self, stream: Stream, data: bytes, events: int) -> None:
        stream.written_at = time.monotonic()
        if not stream.outbox:
            try:
                sent = stream.sock.send(data)
            except BlockingIOError:
                sent = 0
            except OSError:  # the client is gone
                self._drop(stream)
                return
            if sent == len(data):
                return
            # the events of what is left, about: one large write (a catch-up's step) half
            # taken by a client that reads is not that many events behind
            events = -(-events * (len(data) - sent) // len(data))
            data = data[sent:]
            stream.stalled_at = stream.written_at
            self._notice(stream)
        stream.outbox.append((data, events))
        stream.behind += events
        stream.pending += len(data)

    def end(self, stream: Stream) -> None:
        """The response's last chunk after what is queued; the socket closes once it is sent."""
        if stream.gone or stream.ending:
            return
        stream.ending = True
        self._write(stream, LAST_CHUNK, 0)
        self._notice(stream)

    def _drop(self, stream: Stream) -> None:
        stream.gone = True
        self._notice(stream)

    def _flush(self, stream: Stream) -> None:
        while stream.outbox and not stream.gone:
            data, events = stream.outbox[0]
            try:
                sent = stream.sock.send(data)
            except BlockingIOError:
                return
            except OSError:
                self._drop(stream)
                return
            stream.stalled_at = time.monotonic()  # it moved
            stream.pending -= sent
            if sent < len(data):
                stream.outbox[0] = (data[sent:], events)
                return
            stream.outbox.popleft()
            stream.behind -= events
        stream.stalled_at = None
        self._notice(stream)

    def _notice(self, stream: Stream) -> None:
        if not self._attention:  # else a wake-up is pending already: the writer takes them all
            self._wake()
        self._attention.add(stream)

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError):  # a wake-up is pending already
            os.write(self._wake_w, b"\0")

    # ------------------------------------------------------------------ the writer thread

    def stop(self) -> None:
        self._stop.set()
        self._wake()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        with self._lock:
            streams = [s for group in self.by_run.values() for s in group]
            self.by_run.clear()
        for stream in streams:
            with contextlib.suppress(OSError):
                stream.sock.close()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._wake_r, selectors.EVENT_READ, None)
        watched: dict[Stream, int] = {}
        tick = min(1.0, self.heartbeat_s / 2)
        next_tick = time.monotonic() + tick
        try:
            while not self._stop.is_set():
                wake_at = min([next_tick, *self._paced.values()])
                ready = selector.select(max(0.0, wake_at - time.monotonic()))
                for key, mask in ready:
                    if key.data is None:
                        with contextlib.suppress(BlockingIOError):
                            os.read(self._wake_r, 4096)
                        continue
                    if mask & selectors.EVENT_READ:
                        self._readable(key.data)
                    if mask & selectors.EVENT_WRITE:
                        with self._lock:
                            self._flush(key.data)
                with self._lock:
                    todo, self._attention, self._new = self._attention | self._new, set(), set()
                    now = time.monotonic()  # a paced run's next step reads what a resync wants
                    runs = {r for r in self._catch_up if self._paced.get(r, now) <= now}
                    runs.update(r for r, at in self._paced.items() if at <= now)
                    self._catch_up -= runs
                    self._paced = {r: at for r, at in self._paced.items() if at > now}
                for stream in todo:
                    self._reconcile(selector, watched, stream)
                for run_id in runs:
                    self._catch_up_run(run_id, check=False)
                if time.monotonic() >= next_tick:
                    self._tick()
                    next_tick = time.monotonic() + tick
        except Exception:  # never expected: end every stream rather than leave them hanging
            log.exception("the SSE writer failed; ending its streams")
            with self._lock:
                self.end_all()
        finally:
            selector.close()

    def _failing(self, run_id: str, failed: bool) -> bool:
        """Whether `run_id`'s catch-ups failed CATCH_UP_TRIES times in a row, over a heartbeat
        period at least (a flooding run's come back to back: a blip must not end them). A failed
        one is tried again after RETRY_S, doubled each time up to a heartbeat period."""
        if not failed:
            self._failed.pop(run_id, None)
            return False
        tries, since = self._failed.get(run_id, (0, time.monotonic()))
        self._failed[run_id] = (tries + 1, since)
        self._paced[run_id] = time.monotonic() + min(self.heartbeat_s, RETRY_S * 2**tries)
        return tries + 1 >= CATCH_UP_TRIES and time.monotonic() - since >= self.heartbeat_s

    def _readable(self, stream: Stream) -> None:
        """An event-stream client says nothing: EOF (it left) or anything else ends it."""
        try:
            stream.sock.recv(1)
        except BlockingIOError:
            return
        except OSError:
            pass
        with self._lock:
            self._drop(stream)

    def _reconcile(
        self, selector: selectors.BaseSelector, watched: dict[Stream, int], stream: Stream
    ) -> None:
        with self._lock:
            done = stream.gone or (stream.ending and not stream.outbox)
            if done:
                stream.gone = True
                group = self.by_run.get(stream.run_id)
                if group is not None:
                    group.discard(stream)
                    if not group:
                        del self.by_run[stream.run_id]
                        self._checked.pop(stream.run_id, None)
                        self._failed.pop(stream.run_id, None)
            want = selectors.EVENT_READ | (selectors.EVENT_WRITE if stream.outbox else 0)
        if done:
            if watched.pop(stream, None) is not None:
                selector.unregister(stream.sock)
            with contextlib.suppress(OSError):
                stream.sock.close()
            return
        try:
            if stream not in watched:
                selector.register(stream.sock, want, stream)
            elif watched[stream] != want:
                selector.modify(stream.sock, want, stream)
            watched[stream] = want
        except (OSError, ValueError, KeyError):  # closed meanwhile (the hub stopped)
            with self._lock:
                self._drop(stream)

    def _tick(self) -> None:
        """Heartbeats to quiet streams, drops stalled ones, catches quiet runs up."""
        now = time.monotonic()
        stall = max(2 * self.heartbeat_s, 1.0)
        with self._lock:
            for streams in self.by_run.values():
                for stream in streams:
                    if stream.stalled_at is not None and now - stream.stalled_at > stall:
                        self._drop(stream)
                    elif not stream.outbox and now - stream.written_at >= self.heartbeat_s:
                        self._send(stream, HEARTBEAT)
            due = [r for r, at in self._checked.items() if now - at >= self.heartbeat_s]
        for run_id in due:
            self._catch_up_run(run_id, check=True)

    def _catch_up_run(self, run_id: str, check: bool) -> None:
        """Events of the run's stream its clients lack (pubsub may lose some while the hub
        resubscribes); with `check`, end the streams of a run that expired."""
        with self._lock:
            streams = [s for s in self.by_run.get(run_id, ()) if not (s.gone or s.ending)]
            if not streams:
                return
            started = self._checked[run_id] = time.monotonic()
            for stream in streams:
                stream.held = stream.held or []
            lasts = [s.last for s in streams]
            after = None if None in lasts else min(lasts, key=lambda i: stream_key(str(i)))
        batch: list[Event] = []
        expired = partial = failed = False
        try:
            expired = check and streams[0].runs.record(run_id) is None
            while not expired:
                more = streams[0].runs.event_batch(run_id, after, count=REPLAY_BATCH)
                batch += more
                if len(more) < REPLAY_BATCH:
                    break
                after = more[-1].id
                if len(batch) >= self.queue_size:  # a bounded step; the next one goes on at once
                    partial = True
                    break
        except Exception:  # Redis away: tried again after a backoff (_failing)
            log.warning("catching run %s up failed", run_id, exc_info=True)
            failed = True
        frames: dict[str, bytes] = {}
        with self._lock:
            expired = expired or self._failing(run_id, failed)  # its clients resume elsewhere
            for stream in streams:
                if expired:
                    stream.held = None
                    self.end(stream)
                elif stream.gone or stream.ending:
                    continue
                elif partial or failed:  # live events held may lie past a gap: they wait
                    self.deliver_each(stream, batch, frames)
                else:
                    held, stream.held = stream.held or [], None
                    self.deliver_each(stream, batch + held, frames)
            if partial:  # a run far ahead (a flood): the next step after as long a rest, so its
                # watchers' catch-ups take at most half of this thread (and of the GIL it holds
                # meanwhile): the pubsub thread's live events for every other run come first
                self._paced[run_id] = 2 * time.monotonic() - started
