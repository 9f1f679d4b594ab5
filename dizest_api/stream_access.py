"""Whether a live stream's reader may still read its run: asked when the stream opens
(`routes.run_events.follow_run`) and again every period while it lasts (`AccessWatch`).

A stream may last as long as its run, hours. Its reader's right may end before it: a grant
taken away or lowered, a token revoked or expired, a session ended (a logout, a password
change), the reader or the run's workflow removed. Every new request of theirs is refused at
once, but a stream opened before went on with every event of the run: a probe's viewer, whose
grant the run's owner took away, kept receiving the run's log lines until it ended. Now the hub
asks each stream's reader again every period (its heartbeat period) with the very rule that
opened it, and ends the streams of a reader refused; they are refused again when they resume.

Invariants:
- One question a round per `Reader.key` (who, with which credential, reads which run): the
  streams of one viewer of one run cost one check however many they are.
- A reader is refused only by a refusal (`allowed()` False); an error (Redis away) leaves the
  stream alone until the next round, as a blip must not end every stream of the process.
- An owned stream ends with its last chunk; one holding a thread at its next event or
  heartbeat (`Held`); one being handed over is not taken (`EventHub.own`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import current_app, g

from dizest_api.auth import presented, principal_of
from dizest_api.errors import Forbidden, NotFound, Unauthenticated

if TYPE_CHECKING:
    from dizest_api.stream_leases import Lease

log = logging.getLogger("dizest.api.streaming")


@dataclass(frozen=True)
class Reader:
    """Who reads which run: `key` names them; `allowed()` asks whether they still may (False:
    refused; raising: not known now)."""

    key: Hashable
    allowed: Callable[[], bool]


def request_reader(what: Hashable, may_read: Callable[[], object]) -> Reader:
    """This request's caller as a stream's reader of `what`: `may_read()` (which raises
    NotFound or Forbidden when the principal in `g` may not read it) is asked again with the
    credential the request presented, authenticated again (revoked, expired, ended: refused)."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    sent = presented()

    def allowed() -> bool:
        with app.app_context():
            try:
                g.principal = principal_of(*sent)
                may_read()
            except (Unauthenticated, Forbidden, NotFound):
                return False
        return True

    return Reader((*sent, what), allowed)


class AccessWatch:
    """Every `period_s`, asks the readers of `leases()` again and `revoke`s the refused ones'."""

    def __init__(
        self,
        leases: Callable[[], list[Lease]],
        revoke: Callable[[Lease], None],
        period_s: float,
    ) -> None:
        self._leases, self._revoke, self.period_s = leases, revoke, period_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def want(self) -> None:
        """A stream with a reader is open: make sure the rounds run."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._run, name="dizest-stream-access", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def check(self) -> int:
        """One round: the streams ended (their readers refused)."""
        by_key: dict[Hashable, list[Lease]] = {}
        for lease in self._leases():
            if lease.reader is not None:
                by_key.setdefault(lease.reader.key, []).append(lease)
        ended = 0
        for leases in by_key.values():
            reader = leases[0].reader
            assert reader is not None
            try:
                allowed = reader.allowed()
            except Exception:  # not known now: asked again next round
                log.warning("could not check a stream's reader again", exc_info=True)
                continue
            if not allowed:
                for lease in leases:
                    self._revoke(lease)
                ended += len(leases)
        return ended

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            try:
                self.check()
            except Exception:  # never expected: the next round tries again
                log.exception("checking the streams' readers failed")
