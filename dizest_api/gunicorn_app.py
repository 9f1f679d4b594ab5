"""The API under gunicorn: the settings `dizest serve` applies (and deploy/gunicorn.conf.py
reuses), and the entry point of the API process that `dizest serve` supervises:

    python -m dizest_api.gunicorn_app HOST:PORT WORKERS THREADS CONNECTIONS

Gunicorn's workers are tied to its arbiter (PR_SET_PDEATHSIG, set after each fork), so killing
the arbiter, even with SIGKILL, leaves no worker holding the port.
"""

from __future__ import annotations

import logging
import resource
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from dizest_core import envconfig
from dizest_core.envconfig import at_least
from dizest_core.errors import ConfigError
from dizest_core.lifeline import die_with_parent

GRACEFUL_S = 10
MIN_THREADS = 2  # one may hold a stream, one stays free for ordinary requests (stream_threads)


@dataclass(frozen=True)
class GunicornSettings:
    """The variables of deploy/gunicorn.conf.py: where and how many (`dizest serve` takes
    them as flags, with the same bounds)."""

    bind: str = "127.0.0.1:8000"
    api_workers: int = field(default=2, metadata=at_least(1))
    api_threads: int = field(default=128, metadata=at_least(MIN_THREADS))
    api_connections: int = field(default=1000, metadata=at_least(1))

    def __post_init__(self) -> None:
        envconfig.check(self)
        if self.api_connections <= self.api_threads:  # as `dizest serve --connections`
            raise ConfigError("DIZEST_API_CONNECTIONS must be above DIZEST_API_THREADS")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GunicornSettings:
        return envconfig.from_env(cls, environ)

    def options(self) -> dict[str, Any]:
        return gunicorn_options(self.bind, self.api_workers, self.api_threads, self.api_connections)


def stream_threads(threads: int) -> int:
    """How many of a process's threads may hold streams (WebSocket; an SSE stream holds one only
    while it replays, then the event hub owns its socket): the rest (a quarter, 8 to 64) stay
    free for ordinary requests, so a crowd of watchers never blocks the API."""
    return max(1, threads - min(64, max(8, threads // 4)))


def gunicorn_options(bind: str, workers: int, threads: int, connections: int) -> dict[str, Any]:
    """The gunicorn settings of `dizest serve` (also used by deploy/gunicorn.conf.py)."""
    return {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_connections": connections,
        # gthread (bcrypt must not block a loop), letting SSE streams go to the event hub
        "worker_class": "dizest_api.stream_worker.StreamWorker",
        "backlog": max(2048, connections),  # a crowd of clients connecting at once
        "graceful_timeout": GRACEFUL_S,
        "errorlog": "-",
        "proc_name": "dizest-api",
        "control_socket_disable": True,  # one shared ~/.gunicorn socket otherwise
        "post_fork": post_fork,
        "post_worker_init": post_worker_init,
        "when_ready": when_ready,
    }


def post_fork(server: Any, worker: Any) -> None:
    """The worker dies with its arbiter (gunicorn forks from the arbiter's only thread)."""
    die_with_parent(signal.SIGKILL, worker.ppid)


def post_worker_init(worker: Any) -> None:
    """On SIGTERM, end this process's streams at once (clients resume elsewhere with
    Last-Event-ID), then let gunicorn finish the other requests gracefully."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: FrameType | None) -> None:
        hub = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("dizest.events")
        if hub is not None:
            # In a thread, never here: the handler runs on top of whatever the main thread was
            # doing, and a second SIGTERM (the arbiter's, after a killpg's) interrupted the first
            # inside a client queue's lock, deadlocking the worker until its graceful timeout.
            threading.Thread(target=hub.shutdown, name="dizest-hub-shutdown", daemon=True).start()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


def when_ready(server: Any) -> None:
    """Before the arbiter forks its workers: the API's log lines go where gunicorn's do."""
    api_log_to(server.log.error_log)


def api_log_to(server_log: logging.Logger) -> None:
    """The API's lines (`dizest.api...` loggers) through gunicorn's error log, at its level:
    with no logging configured, Python printed their warnings bare and dropped their INFO
    lines (a host an app's UI was refused). Logging the operator configured is left alone."""
    api = logging.getLogger("dizest.api")
    if api.handlers or logging.getLogger().handlers:
        return
    api.addHandler(_Forward(server_log))
    api.setLevel(server_log.level)
    api.propagate = False


class _Forward(logging.Handler):
    """Hands each record to another logger's handlers as they are then (gunicorn replaces its
    own when it reloads)."""

    def __init__(self, target: logging.Logger) -> None:
        super().__init__()
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


def raise_open_files(wanted: int) -> None:
    """Each stream is an open socket: raise this process's soft RLIMIT_NOFILE toward `wanted`
    (as far as the hard limit allows; its workers inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        top = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, top), hard))


def application(options: dict[str, Any]) -> Any:
    """A gunicorn application with `options` (gunicorn is imported only when serving)."""
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                if key in self.cfg.settings:  # control_socket_disable: gunicorn >= 27 only
                    self.cfg.set(key, value)

        def load(self) -> Any:
            from dizest_api.wsgi import create

            return create()

    return Application()


def main(argv: list[str]) -> None:
    bind, workers, threads, connections = argv[0], *(int(a) for a in argv[1:4])
    raise_open_files(connections + threads + 256)
    application(gunicorn_options(bind, workers, threads, connections)).run()


if __name__ == "__main__":
    main(sys.argv[1:])
