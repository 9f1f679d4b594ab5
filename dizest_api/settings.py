"""API settings: one frozen dataclass, parsed once from DIZEST_* variables at start-up.

The secret key signs nothing a client can forge into a session (sessions live in Redis); it keys
the CSRF tokens and Flask itself. When DIZEST_SECRET_KEY is unset, one is generated once and kept
in `<DIZEST_DATA_DIR>/secret_key` (mode 600), so restarts and several API processes sharing the
data directory agree on it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dizest_api.data.library_quota import LibraryLimits
from dizest_core import envconfig
from dizest_core.errors import ConfigError
from dizest_worker.client import WorkerSettings

MIB = 1024 * 1024


@dataclass(frozen=True)
class ApiSettings:
    """What the HTTP service needs on top of the worker settings it shares with the cluster."""

    secret_key: str = field(repr=False, default_factory=lambda: secrets.token_hex(32))
    data_dir: str = field(
        default_factory=lambda: os.path.abspath(".dizest"), metadata=envconfig.spec(path=True)
    )
    admin_password: str | None = field(repr=False, default=None)
    max_request_bytes: int = 10 * MIB
    max_upload_bytes: int = 256 * MIB  # one request to /files or a submit with --file
    drive_quota_bytes: int = 1024 * MIB  # per user (dizest_api.drives)
    drive_quota_files: int = 10_000
    # stored workflows, per user (dizest_api.data.library_quota)
    max_workflows_per_user: int = LibraryLimits.max_workflows
    workflow_versions_kept: int = LibraryLimits.versions_kept
    library_quota_bytes: int = LibraryLimits.quota_bytes
    max_streams: int = 1000  # SSE/WebSocket clients per API process (`dizest serve` sets it)
    # of them, streams that hold a server thread (WebSocket; SSE where the socket cannot be handed
    # to the event hub): `dizest serve` keeps some threads free for ordinary requests
    max_stream_threads: int = 1000
    heartbeat_s: float = 15.0  # quiet streams: SSE heartbeat comment / WebSocket ping
    session_ttl_s: int = 12 * 3600
    cookie_secure: bool = False
    bcrypt_rounds: int = 12
    login_max_failures: int = 5
    login_window_s: int = 300
    # Origins besides the server's own whose pages may open a cookie-authenticated WebSocket
    # (DIZEST_ALLOWED_ORIGINS, comma-separated, e.g. https://console.example.com)
    allowed_origins: tuple[str, ...] = field(default=(), metadata=envconfig.spec(trim="/"))
    worker: WorkerSettings = field(default_factory=WorkerSettings)

    def __post_init__(self) -> None:
        if len(self.secret_key) < 16:
            raise ConfigError("DIZEST_SECRET_KEY must have at least 16 characters")
        if self.max_request_bytes < 1024 or min(self.max_streams, self.max_stream_threads) < 1:
            raise ConfigError(
                "max_request_bytes must be >= 1024; max_streams and max_stream_threads >= 1"
            )
        if self.max_upload_bytes < self.max_request_bytes or min(self.drive_quota_bytes, self.drive_quota_files) < 1:  # fmt: skip
            raise ConfigError("max_upload_bytes must be >= max_request_bytes; drive quotas >= 1")
        try:
            self.library_limits()
        except ValueError:
            raise ConfigError(
                "DIZEST_MAX_WORKFLOWS_PER_USER, DIZEST_WORKFLOW_VERSIONS_KEPT and "
                "DIZEST_LIBRARY_QUOTA_BYTES must be at least 1"
            ) from None
        if not 0.1 <= self.heartbeat_s <= 300:
            raise ConfigError("DIZEST_HEARTBEAT_S must be between 0.1 and 300 seconds")
        if not 4 <= self.bcrypt_rounds <= 31:
            raise ConfigError("DIZEST_BCRYPT_ROUNDS must be between 4 and 31")

    def library_limits(self) -> LibraryLimits:
        return LibraryLimits(
            self.max_workflows_per_user, self.workflow_versions_kept, self.library_quota_bytes
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiSettings:
        kwargs = envconfig.read(cls, environ)
        data_dir = str(kwargs.setdefault("data_dir", os.path.abspath(".dizest")))
        if "secret_key" not in kwargs:
            kwargs["secret_key"] = stored_secret_key(Path(data_dir))
        return cls(**kwargs)  # type: ignore[arg-type]


def stored_secret_key(data_dir: Path) -> str:
    """The key kept in `data_dir/secret_key`, created (mode 600) by the first process to ask."""
    path = data_dir / "secret_key"
    data_dir.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written whole under a private name, then linked: no process ever reads a partial key.
        tmp = data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        with contextlib.suppress(FileExistsError):  # another process won the race: use its key
            os.link(tmp, path)
        tmp.unlink()
    key = path.read_text().strip()
    if not key:
        raise ConfigError(f"{path} is empty; delete it or set DIZEST_SECRET_KEY")
    return key
