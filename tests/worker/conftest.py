"""Fixtures for distributed tests: real Redis, real `dizest worker` processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import redis

from dizest_core import envconfig
from dizest_core.settings import Settings
from dizest_worker.client import Client
from dizest_worker.connection import redis_client
from dizest_worker.messages import broker_lists
from dizest_worker.settings import WorkerSettings
from tests.conftest import package, wait_for
from tests.redis_server import session_redis_url

ROOT = Path(__file__).resolve().parents[2]

SLOW = "import os, time\nprint('started', os.getpid(), os.getuid(), flush=True)\ntime.sleep(%s)\nv = 21"
USE = "v = dizest.input('x') * 2"


def alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def host_pid(ns_pid: int, uid: int) -> int:
    """The pid, as this process sees it, of a flow that saw itself as `ns_pid` with `uid`: in the
    sandbox a flow lives in its zygote's PID namespace, and its slot uid is unique on the machine."""
    if uid == os.getuid():  # no identity layer: no PID namespace either (or its own pid)
        return ns_pid
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        if fields.get("Uid", "").split()[:1] == [str(uid)] and fields.get("NSpid", "").split()[
            -1:
        ] == [str(ns_pid)]:
            return int(entry)
    return -1  # gone already


def slow_then_use(seconds: float = 3, slow_options: dict | None = None) -> dict:
    pkg = package(
        {
            "slow": {"code": SLOW % seconds, "outputs": ["v"]},
            "use": {"code": USE, "inputs": ["x"], "outputs": ["v"]},
        },
        {"s": {"app": "slow"}, "u": {"app": "use", "in": {"x": [("s", "v")]}}},
    )
    if slow_options:
        pkg["flow"]["s"]["dizest"] = slow_options
    return pkg


def started(client: Client, run_id: str, flow_id: str, after: str | None = None) -> int:
    """Wait for the flow's next 'started <pid>' line (after event `after`); return the pid."""
    return started_at(client, run_id, flow_id, after)[0]


def started_at(
    client: Client, run_id: str, flow_id: str, after: str | None = None
) -> tuple[int, str]:
    for event in client.events(run_id, after=after):
        entry = event.data.get("entry")
        if event.flow_id == flow_id and isinstance(entry, str) and entry.startswith("started"):
            _, pid, uid = entry.split()
            return host_pid(int(pid), int(uid)), event.id
    raise AssertionError("the run ended before the flow started")


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, server = session_redis_url(tmp_path_factory.mktemp("redis"))
    yield url
    if server is not None:
        server.stop()


# the test Redis may have no password; every kernel layer is still required
KERNEL_LAYERS = tuple(layer for layer in Settings().sandbox_require if layer != "redis_auth")


_MADE: list[WorkerSettings] = []  # by make_settings during the current test: cleaned after it


@pytest.fixture(autouse=True)
def _clean_made_settings(redis_url: str) -> Iterator[None]:
    """The keys and queues of every WorkerSettings a test made go with the test, also where it
    left messages no worker took: they piled up in the shared test Redis."""
    start = len(_MADE)
    yield
    made, _MADE[start:] = _MADE[start:], []
    for settings in made:
        if settings.redis_url == redis_url:  # a test's own server is stopped by now
            with contextlib.suppress(redis.RedisError):
                cleanup(settings)


def make_settings(redis_url: str, root: Path, **overrides: object) -> WorkerSettings:
    tag = uuid.uuid4().hex[:10]
    base = WorkerSettings(
        redis_url=redis_url,
        prefix=f"dzt{tag}",
        queue=f"q{tag}",
        artifact_dir=str(root / "artifacts"),
        workdir_root=str(root / "runs"),
        drive_root=str(root / "drives"),
        lease_s=2.0,
        reaper_interval_s=0.5,
        max_flow_timeout_s=300,
        worker_name=f"w{tag}",
        engine=Settings(concurrency=2, sandbox_require=KERNEL_LAYERS, retry_backoff_s=0.2),
    )
    made = replace(base, **overrides)  # type: ignore[arg-type]
    _MADE.append(made)
    return made


class ServiceProcess:
    """A `dizest` command that says " ready." once started (worker, beat), in its own process
    group with its output captured; `stop` gives it `stop_timeout_s` after SIGTERM."""

    stop_timeout_s: float = 15

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dizest_cli", *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.output: list[str] = []
        self._terminated = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for(
            lambda: any(" ready." in line for line in self.output) or self.proc.poll(), timeout=60
        )
        assert self.proc.poll() is None, "".join(self.output)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            self.output.append(line.decode(errors="replace"))

    @property
    def log(self) -> str:
        return "".join(self.output)

    def terminate(self) -> None:
        """SIGTERM, once, without waiting: `stop` waits (`stop_all` stops several at once)."""
        if self.proc.poll() is None and not self._terminated:
            self._terminated = True
            os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        self.terminate()
        if self.proc.poll() is None:
            try:
                self.proc.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        with contextlib.suppress(ProcessLookupError):  # what is left in the group goes too
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._reader.join(timeout=5)


def stop_all(processes: Iterable[ServiceProcess]) -> None:
    """Stop these together: each is told first, then waited for (a warm shutdown takes about a
    second, which one after the other added up per worker)."""
    processes = list(processes)
    for process in processes:
        process.terminate()
    for process in processes:
        process.stop()


class WorkerProcess(ServiceProcess):
    """A `dizest worker` command in its own process group, with its output captured."""

    def __init__(
        self,
        settings: WorkerSettings,
        name: str,
        concurrency: int = 2,
        queues: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        args = ["worker", "-c", str(concurrency), "-n", name]
        if queues:
            args += ["-Q", queues]
        super().__init__(args, {**envconfig.to_env(settings), **(env or {})})

    def kill(self) -> None:
        """SIGKILL the whole worker: main process, pool, reaper, zygotes."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def cluster_overrides() -> dict[str, object]:
    """WorkerSettings fields `cluster` gives other values than make_settings's: a module
    overrides this fixture (a shorter lease where a test waits for leases to expire)."""
    return {}


@pytest.fixture
def cluster(
    redis_url: str, tmp_path: Path, cluster_overrides: dict[str, object]
) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory of workers sharing this test's settings (`cluster.settings`, `cluster.client`)."""
    settings = make_settings(redis_url, tmp_path, **cluster_overrides)
    started: list[WorkerProcess] = []

    def start(name: str = "w1", **kwargs: object) -> WorkerProcess:
        worker = WorkerProcess(settings, name, **kwargs)  # type: ignore[arg-type]
        started.append(worker)
        return worker

    start.settings = settings  # type: ignore[attr-defined]
    start.client = Client(settings)  # type: ignore[attr-defined]
    start.workers = started  # type: ignore[attr-defined]  # to stop with other processes
    yield start
    stop_all(started)
    cleanup(settings)


def queued(client: redis.Redis, queue: str) -> int:
    """Messages waiting in `queue`, at every priority level."""
    return sum(int(client.llen(name)) for name in broker_lists(queue))


def cleanup(settings: WorkerSettings) -> None:
    client = redis_client(settings)
    keys = list(client.scan_iter(match=f"{settings.prefix}:*", count=1000))
    for queue in (settings.queue, f"{settings.queue}-gpu", f"{settings.queue}-b"):
        keys += [q.encode() for q in broker_lists(queue)]  # the broker's own keys
    # the broker's bindings of these queues (kombu's `_kombu.binding.` and
    # `_kombu.binding_permanent.` sets, the automation queue's too): left, they pile up
    keys += client.scan_iter(match=f"_kombu.binding*.{settings.queue}*", count=1000)
    client.delete(*keys)
