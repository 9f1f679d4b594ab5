"""Deleting directory trees off the caller's path: a run's start must not wait for the files of
the run it forgets (on ext4 a run's artifact folders cost ~0.15 ms a directory to remove, which
for a ten-flow chain was a tenth of the next run's wall time).

One daemon thread per `Janitor`, started on first use; `close` waits until everything handed
over is gone, so the owner may then remove the root that held those trees.
"""

from __future__ import annotations

import contextlib
import queue
import threading

from dizest_core.tree import remove_tree


class Janitor:
    def __init__(self) -> None:
        self._paths: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def remove(self, path: str) -> None:
        """Delete the tree at `path` soon (missing or half-gone trees are fine)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="dizest-janitor")
                self._thread.daemon = True
                self._thread.start()
        self._paths.put(path)

    def close(self) -> None:
        """Return once every tree handed over so far is deleted."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._paths.put(None)
            thread.join()

    def _work(self) -> None:
        while (path := self._paths.get()) is not None:
            with contextlib.suppress(OSError):
                remove_tree(path)  # however deep a flow made it: no recursion
