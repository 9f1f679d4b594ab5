"""Fixtures for automation tests: the API app on a real worker's settings, `dizest beat`
processes started and stopped by process group, and a local HTTP receiver for webhooks."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dizest_api.app import create_app
from dizest_api.automation.service import Automation, install
from dizest_api.automation.settings import AutomationSettings
from dizest_api.settings import ApiSettings
from dizest_core import envconfig
from tests.api.conftest import Api
from tests.worker.conftest import (  # noqa: F401
    ROOT,
    ServiceProcess,
    cluster,
    cluster_overrides,
    redis_url,
    stop_all,
)

AUTO_ENV = {
    "DIZEST_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver listens on 127.0.0.1
    "DIZEST_WEBHOOK_BACKOFF_S": "0.2",
    "DIZEST_BEAT_INTERVAL_S": "1",
    "DIZEST_SWEEP_INTERVAL_S": "1",
}


class BeatProcess(ServiceProcess):
    """A `dizest beat` in its own process group, output captured."""

    stop_timeout_s = 20

    def __init__(self, env: dict[str, str], concurrency: int = 2) -> None:
        super().__init__(["beat", "-c", str(concurrency)], env)


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST and answers `statuses` in turn
    (then 200)."""

    statuses: list[int] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            found.calls.append({"headers": dict(self.headers), "body": body})
            status = found.statuses.pop(0) if found.statuses else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    found.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield found
    server.shutdown()
    server.server_close()


@dataclass
class Stack:
    api: Api
    auto: Automation
    env: dict[str, str]
    start_beat: Callable[..., BeatProcess]


@pytest.fixture
def stack(cluster: Any, tmp_path: Path) -> Iterator[Stack]:  # noqa: F811
    """A worker, the API app on its settings (allowing private webhook URLs) and a factory of
    `dizest beat` processes; everything stopped at the end."""
    cluster("w1")
    settings = ApiSettings(
        secret_key="k" * 32,
        data_dir=str(tmp_path / "data"),
        bcrypt_rounds=4,
        worker=cluster.settings,
    )
    app = create_app(settings, client=cluster.client)
    app.config["TESTING"] = True
    auto = install(app, AutomationSettings.from_env(AUTO_ENV))
    env = {**envconfig.to_env(cluster.settings), **AUTO_ENV}
    beats: list[BeatProcess] = []

    def start_beat(concurrency: int = 2, **more_env: str) -> BeatProcess:
        beats.append(BeatProcess({**env, **more_env}, concurrency))
        return beats[-1]

    yield Stack(Api(app, app.test_client()), auto, env, start_beat)
    stop_all([*beats, *cluster.workers])  # together: each takes about a second
    queue = f"{cluster.settings.queue}.automation"
    cluster.client.redis.delete(queue, f"_kombu.binding.{queue}")


def signed(secret: str, body: bytes) -> str:
    import hashlib
    import hmac

    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def payload(call: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(call["body"])
    return result
