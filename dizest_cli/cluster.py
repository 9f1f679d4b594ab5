"""Commands for a cluster: `dizest worker` starts a Celery worker (plus its reaper process)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

import click

from dizest_cli.terminal import Failure, Refusal, echo
from dizest_core import envconfig
from dizest_core.errors import DizestError

if TYPE_CHECKING:
    from dizest_worker.settings import WorkerSettings


@click.command()
@click.option(
    "--concurrency", "-c", type=click.IntRange(min=1), help="Pool processes (default: CPUs)."
)
@click.option("--queues", "-Q", help="Comma-separated queues to consume (default: DIZEST_QUEUE).")
@click.option("--name", "-n", help="Worker name (default: dizest@HOSTNAME).")
@click.option("--loglevel", "-l", default="INFO", show_default=True)
@click.option(
    "--pool",
    type=click.Choice(["prefork", "threads"]),
    default="prefork",
    show_default=True,
    help="Celery pool: processes, or threads of one process.",
)
@click.option("--settings-said", is_flag=True, hidden=True)  # by `dizest serve`, which started it
def worker(
    concurrency: int | None,
    queues: str | None,
    name: str | None,
    loglevel: str,
    pool: str,
    settings_said: bool,
) -> None:
    """Start a worker that runs flows from Redis (DIZEST_REDIS_URL)."""
    from dizest_api.unknown_settings import warn_unknown
    from dizest_core.options import QUEUE_NAME, QUEUE_RULE
    from dizest_worker.celery_app import create_celery
    from dizest_worker.settings import WorkerSettings

    if not settings_said:
        warn_unknown(lambda sentence: echo(f"dizest worker: {sentence}", err=True))
    try:
        settings = WorkerSettings.from_env()
        if name is not None:  # by the rule of DIZEST_WORKER_NAME, which it stands for
            settings = replace(settings, worker_name=name)
    except DizestError as exc:
        raise Refusal(str(exc)) from exc
    names = [q.strip() for q in (queues or settings.queue).split(",") if q.strip()]
    if not names or not all(QUEUE_NAME.fullmatch(q) for q in names):
        raise Refusal(f"--queues must list queues, each {QUEUE_RULE}, not {queues!r}")
    _reach_redis(settings)
    layers = _sandbox_layers(settings)
    app = create_celery(settings)
    app.conf.dizest_queues = names
    env = {**os.environ, **envconfig.to_env(settings)}  # the reaper gets this worker's settings
    reaper = subprocess.Popen(
        [sys.executable, "-m", "dizest_worker.reaper", str(os.getpid())], env=env
    )
    argv = [
        "worker",
        f"--queues={','.join(names)}",
        f"--hostname={settings.worker_name}",
        f"--loglevel={loglevel}",
        f"--pool={pool}",
        "--without-gossip",
        "--without-mingle",
    ]
    if concurrency:
        argv.append(f"--concurrency={concurrency}")
    _record_sandbox(settings, layers)
    _quiet_task_lines(loglevel)
    try:
        app.worker_main(argv)
    finally:
        reaper.send_signal(signal.SIGTERM)
        try:
            reaper.wait(timeout=10)
        except subprocess.TimeoutExpired:
            reaper.kill()


def _reach_redis(settings: WorkerSettings) -> None:
    """Wait (bounded) for Redis, saying at once which URL does not answer, not after the
    shared client's minute of retries; a Failure once it never did."""
    from dizest_worker.connection import REACH_S, reach

    try:
        reach(
            settings.redis_url, REACH_S, lambda problem: echo(f"dizest worker: {problem}", err=True)
        )
    except DizestError as exc:
        raise Failure(str(exc)) from exc


# Celery's INFO line per task message: "received" (main process), "succeeded" (pool process).
# Each costs a LogRecord, a format and a write: ~7 % of the main process's CPU and ~3 % of a
# pool process's on a run of no-op flows; our own lines say what happened to a flow.
PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


def _quiet_task_lines(loglevel: str) -> None:
    """Keep Celery's per-task INFO lines out of the log unless DEBUG was asked for (their
    warnings and errors stay; Celery reads the level when the pool forks, after this)."""
    if logging.getLevelName(loglevel.upper()) == logging.DEBUG:
        return
    for name in PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def _sandbox_layers(settings: WorkerSettings) -> dict[str, str]:
    """Probe the flow sandbox, print its layers, and refuse to start without a required one."""
    from urllib.parse import urlsplit

    from dizest_core import probe
    from dizest_core.sandbox import make_policy, missing

    engine = settings.engine
    hide = (settings.workdir_root, settings.artifact_dir, settings.drive_root)  # as orchestration's
    policy = make_policy(engine, server=True, hide=hide)
    if not policy.enabled:
        echo("dizest worker: flow sandbox OFF (DIZEST_SANDBOX=off)", err=True)
        return {"sandbox": "off"}
    from dizest_core.cgroups import delegate

    if os.geteuid() == 0:
        echo(f"dizest worker: cgroup v2 delegation: {delegate()}", err=True)
    layers = probe.report(policy)
    layers["redis_auth"] = (
        "active"
        if urlsplit(settings.redis_url).password
        else "unavailable: DIZEST_REDIS_URL has no password, so a flow that reaches Redis "
        "could act on it (set requirepass and put it in the URL)"
    )
    for name, state in layers.items():
        echo(f"dizest worker: sandbox layer {name:<9} {state}", err=True)
    if os.geteuid() == 0:  # flows run as uids of their own: they must pass to their folders
        from dizest_core.confine import covered
        from dizest_core.traverse import blocked

        shut = blocked(hide, covered(policy, layers))
        if shut:
            raise Refusal(
                "refusing to start: flows run as other users, who cannot pass "
                + "; ".join(shut)
                + ", on the way to DIZEST_WORKDIR_ROOT, DIZEST_ARTIFACT_DIR or DIZEST_DRIVE_ROOT."
                " Let others pass (chmod o+x; systemd: StateDirectoryMode=0711)."
            )
    absent = missing(layers, engine.sandbox_require)
    if absent:
        raise Refusal(
            "refusing to start: required flow sandbox layers are missing: "
            + "; ".join(absent)
            + ". Fix the deployment (docs/security.md), or name the layers you require in "
            "DIZEST_SANDBOX_REQUIRE (DIZEST_SANDBOX_REQUIRE=none runs flows without them)."
        )
    return layers


def _record_sandbox(settings: WorkerSettings, layers: dict[str, str]) -> None:
    from dizest_worker import liveness
    from dizest_worker.connection import redis_client

    try:
        liveness.record_sandbox(redis_client(settings), settings, layers)
    except Exception as exc:  # Redis not up yet: /readyz shows the layers once it is
        echo(f"dizest worker: could not record sandbox layers: {exc}", err=True)


@click.command("worker-alive")
@click.option("--name", "-n", help="Worker name (default: DIZEST_WORKER_NAME, dizest@HOSTNAME).")
def worker_alive(name: str | None) -> None:
    """Exit 0 if the worker beat lately (`dizest_worker.liveness`), 1 otherwise: a health check."""
    from dizest_worker import liveness
    from dizest_worker.connection import redis_client
    from dizest_worker.settings import WorkerSettings

    try:
        settings = WorkerSettings.from_env()
    except DizestError as exc:
        raise Failure(str(exc)) from exc
    worker_name = name or settings.worker_name
    window_s = liveness.WINDOW_S  # as /readyz counts a worker live
    try:
        age_s = liveness.last_seen_s(redis_client(settings), settings, worker_name)
    except Exception as exc:  # Redis unreachable: not healthy, whatever the error
        echo(f"{worker_name}: redis unreachable ({type(exc).__name__})", err=True)
        sys.exit(1)
    if age_s is None or age_s > window_s:
        echo(f"{worker_name}: not seen in the last {window_s:g} s", err=True)
        sys.exit(1)
    echo(f"{worker_name}: seen {age_s:.1f} s ago")
