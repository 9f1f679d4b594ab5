"""`dizest serve`: the API under gunicorn, with (when needed) its own Redis and one worker, all
supervised by this process.

    dizest serve [--host 127.0.0.1] [--port 8000] [--workers 2] [--threads 128]
                 [--connections 1000] [--no-worker] [--beat] [--data-dir .dizest]
                 [--stop-timeout 15]

Without DIZEST_REDIS_URL, an embedded Redis with a password is started (`embedded_redis`); its
URL reaches every child through DIZEST_REDIS_URL, and logs show it redacted. Where it listens
is recorded in `<data-dir>/redis.json` for `dizest user` and `dizest token`. Unless
`--no-worker`, one `dizest worker -c 2` runs alongside (artifacts and working directories under
the data dir). With `--beat`, a `dizest beat` runs alongside too (schedules, webhooks; see
docs/automation.md). The first admin is created once here, before the API processes start: from
DIZEST_ADMIN_PASSWORD, or with a generated password printed once to stderr.

This process only supervises (`supervisor`): each child runs in its own process group, is
restarted when it ends (with a backoff and a log line saying how it ended), and dies with this
process, even by SIGKILL. Ctrl-C or SIGTERM stops the worker first: a warm shutdown (its main
process gets SIGTERM; it takes no new flow and lets the running ones end, watched through the API
meanwhile) for at most `--stop-timeout` seconds, or until a second Ctrl-C or SIGTERM, before its
process group is killed (a flow cut short is started again by the next worker); then the API
(graceful, 10 s), the beat and the embedded Redis.
"""

from __future__ import annotations

import math
import os
import signal
import sys
from pathlib import Path
from types import FrameType

import click

from dizest_api.embedded_redis import EmbeddedRedis, forget_location, record_location
from dizest_api.gunicorn_app import GRACEFUL_S, MIN_THREADS, stream_threads
from dizest_api.supervisor import Child, Refused, Supervisor
from dizest_api.unknown_settings import warn_unknown
from dizest_core.errors import DizestError
from dizest_worker.client import REACH_S, reach, redact_url

WORKER_STOP_S = 15.0
STOP_TIMEOUT_MAX_S = 86400.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
BEAT_STOP_S = 15.0


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    """The first SIGTERM or SIGINT ends serving; any other, until the stop listens for a second
    one (`Supervisor.stop_all`), is ignored rather than raised inside the stop."""
    for stop in STOP_SIGNALS:
        signal.signal(stop, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def _stop_timeout(ctx: click.Context, param: click.Parameter, value: float) -> float:
    if math.isnan(value):
        raise click.BadParameter("must be a number of seconds")
    return value


def _say(message: str) -> None:
    click.echo(f"dizest: {message}", err=True)


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
    type=click.IntRange(min=MIN_THREADS),
    help="Per process; up to 3/4 of them hold WebSocket streams (DIZEST_MAX_STREAM_THREADS).",
)
@click.option(
    "--connections",
    default=1000,
    show_default=True,
    type=click.IntRange(min=1),
    help="Open connections per process, and its most SSE/WebSocket streams (DIZEST_MAX_STREAMS).",
)
@click.option("--no-worker", is_flag=True, help="Do not start a `dizest worker` alongside.")
@click.option("--beat", is_flag=True, help="Also run `dizest beat` (schedules, webhooks).")
@click.option(
    "--stop-timeout",
    default=WORKER_STOP_S,
    show_default=True,
    type=click.FloatRange(min=0, max=STOP_TIMEOUT_MAX_S),
    callback=_stop_timeout,
    help="Seconds a stop waits for the worker's running flows to end before it kills them.",
)
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
    beat: bool,
    stop_timeout: float,
    data_dir: str,
) -> None:
    """Serve the HTTP API (gunicorn), with an embedded Redis and a worker when none is given."""
    if connections <= threads:
        raise click.UsageError("--connections must be above --threads")
    warn_unknown(_say)  # before this command sets any: those are known
    root = Path(data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    previous = {stop: signal.signal(stop, _exit_on_signal) for stop in STOP_SIGNALS}
    children = Supervisor(_say)
    try:
        os.environ.setdefault("DIZEST_DATA_DIR", str(root))
        os.environ.setdefault("DIZEST_ARTIFACT_DIR", str(root / "artifacts"))
        os.environ.setdefault("DIZEST_WORKDIR_ROOT", str(root / "runs"))
        os.environ.setdefault("DIZEST_DRIVE_ROOT", str(root / "drives"))
        # the whole data dir (its Redis files, keys, users' folders) hidden from flows, wherever
        # it is: not only the run, artifact and drive roots the worker hides of itself
        hidden = [p for p in os.environ.get("DIZEST_SANDBOX_HIDE", "").split(os.pathsep) if p]
        os.environ["DIZEST_SANDBOX_HIDE"] = os.pathsep.join(dict.fromkeys([*hidden, str(root)]))
        if not os.environ.get("DIZEST_REDIS_URL"):
            embedded = EmbeddedRedis(root)
            children.start(embedded.child)
            embedded.wait_ready()
            os.environ["DIZEST_REDIS_URL"] = embedded.url
            record_location(root, embedded.public_url)  # for `dizest user` and `dizest token`
        else:
            forget_location(root)
        _bootstrap(forget_worker=not no_worker)
        if not no_worker:
            command = [sys.executable, "-m", "dizest_cli", "worker", "-c", "2", "--settings-said"]
            worker = Child("worker", command, stop_timeout, warm=True, on_exit=_forget_worker)
            children.start(worker)
        if beat:
            command = [sys.executable, "-m", "dizest_cli", "beat"]
            children.start(Child("beat", command, BEAT_STOP_S))
        os.environ.setdefault("DIZEST_MAX_STREAMS", str(connections))
        os.environ.setdefault("DIZEST_MAX_STREAM_THREADS", str(stream_threads(threads)))
        api = [sys.executable, "-m", "dizest_api.gunicorn_app", f"{host}:{port}"]
        children.start(Child("api", [*api, *map(str, (workers, threads, connections))], GRACEFUL_S + 5))  # fmt: skip
        _say(f"serving http://{host}:{port}/")
        _say(f"redis {redact_url(os.environ['DIZEST_REDIS_URL'])}")
        children.run()
    except (DizestError, Refused) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        for stop in STOP_SIGNALS:
            signal.signal(stop, signal.SIG_IGN)
        children.stop_all()
        for stop, handler in previous.items():
            signal.signal(stop, handler)


def _bootstrap(forget_worker: bool) -> None:
    """Create the first admin; and delete the beat of the worker about to start, so a previous
    instance's beat never makes /readyz answer before this one's worker is ready."""
    from dizest_api.app import create_app
    from dizest_api.settings import ApiSettings

    settings = ApiSettings.from_env()
    reach(settings.worker.redis_url, REACH_S, _say)  # said at once, not after a minute
    app = create_app(settings, client=object())
    found = app.extensions["dizest"]
    password = found.bootstrap()
    if password:
        _say(f"created user 'admin' with password {password}")
    found.redis.close()
    if forget_worker:
        _forget_worker()


def _forget_worker() -> None:
    """Delete the beat of this serve's worker: it is not ready (about to start, or just died),
    so /readyz and submits must not count it until it beats again."""
    import redis

    from dizest_worker.client import WorkerSettings, forget_worker

    settings = WorkerSettings.from_env()  # one try, bounded: this runs in the supervision loop
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        forget_worker(client, settings, settings.worker_name)
    except redis.RedisError as exc:  # Redis down too: the beat ages out within the window
        _say(f"could not reset the worker's heartbeat: {type(exc).__name__}")
    finally:
        client.close()
