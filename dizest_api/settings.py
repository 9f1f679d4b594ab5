"""API settings: one frozen dataclass, parsed once from DIZEST_* variables at start-up.

The secret key signs nothing a client can forge into a session (sessions live in Redis); it keys
the CSRF tokens and Flask itself. When DIZEST_SECRET_KEY is unset, one is generated once and kept
in `<DIZEST_DATA_DIR>/secret_key` (mode 600), so restarts and several API processes sharing the
data directory agree on it.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dizest_api.data.library_quota import LibraryLimits
from dizest_core import envconfig
from dizest_core.envconfig import at_least, matching
from dizest_core.errors import ConfigError
from dizest_core.settings import MAX_SECONDS
from dizest_worker.client import WorkerSettings

MIB = 1024 * 1024
# well-known public CDNs: none of them lets a package's author read who asked for what
UI_CDN_HOSTS = ("cdn.jsdelivr.net", "unpkg.com", "cdnjs.cloudflare.com")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PORT = r"6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}"
# a host name, or *. and a name of two labels at least (never a whole top-level domain); a port
CDN_HOST = re.compile(rf"(?:\*\.{_LABEL}(?:\.{_LABEL})+|{_LABEL}(?:\.{_LABEL})*)(?::(?:{_PORT}))?")


@dataclass(frozen=True)
class ApiSettings:
    """What the HTTP service needs on top of the worker settings it shares with the cluster."""

    secret_key: str = field(repr=False, default_factory=lambda: secrets.token_hex(32))
    data_dir: str = field(
        default_factory=lambda: os.path.abspath(".dizest"), metadata=envconfig.spec(path=True)
    )
    admin_password: str | None = field(repr=False, default=None)
    max_request_bytes: int = field(default=10 * MIB, metadata=at_least(1024))
    # one request to /files or a submit with --file (at least max_request_bytes)
    max_upload_bytes: int = field(default=256 * MIB, metadata=at_least(1024))
    # request bodies a server thread reads (uploads, and any other over 32 KiB or chunked) of one
    # user in flight at once, over the API processes (dizest_api.body_slots)
    user_bodies: int = field(default=2, metadata=at_least(1))
    drive_quota_bytes: int = field(default=1024 * MIB, metadata=at_least(1))  # per user
    drive_quota_files: int = field(default=10_000, metadata=at_least(1))
    # stored workflows, per user (dizest_api.data.library_quota)
    max_workflows_per_user: int = field(default=LibraryLimits.max_workflows, metadata=at_least(1))
    workflow_versions_kept: int = field(default=LibraryLimits.versions_kept, metadata=at_least(1))
    library_quota_bytes: int = field(default=LibraryLimits.quota_bytes, metadata=at_least(1))
    # SSE/WebSocket clients per API process (`dizest serve` sets it)
    max_streams: int = field(default=1000, metadata=at_least(1))
    # of them, streams that hold a server thread (WebSocket; SSE where the socket cannot be handed
    # to the event hub): `dizest serve` keeps some threads free for ordinary requests
    max_stream_threads: int = field(default=1000, metadata=at_least(1))
    # a request's head (request line and headers) arrives whole within this, from its
    # connection's accept (kept alive: from its next request's first byte); its body pauses at
    # most request_body_timeout_s between two reads, and after its first request_body_timeout_s
    # comes at request_body_min_rate bytes a second on average at least (Apache's MinRate; 0:
    # any); else 408 and the connection closes (dizest_api.request_reads: a head on its way
    # holds no server thread)
    request_head_timeout_s: float = field(default=20.0, metadata=at_least(0.1, 3600))
    request_body_timeout_s: float = field(default=60.0, metadata=at_least(0.1, 3600))
    request_body_min_rate: int = field(default=500, metadata=at_least(0, 1 << 30))
    # a response's write that makes no progress (its client reads none of it) for this ends the
    # response, and the connection is reset (dizest_api.response_writes; nginx's send_timeout)
    response_send_timeout_s: float = field(default=60.0, metadata=at_least(0.1, 3600))
    # quiet streams: SSE heartbeat comment / WebSocket ping
    heartbeat_s: float = field(default=15.0, metadata=at_least(0.1, 300))
    session_ttl_s: int = field(default=12 * 3600, metadata=at_least(1, MAX_SECONDS))
    cookie_secure: bool = False
    bcrypt_rounds: int = field(default=12, metadata=at_least(4, 31))  # what bcrypt takes
    # failed logins of one name from one address in login_window_s before the rest are refused
    login_max_failures: int = field(default=5, metadata=at_least(1))
    login_window_s: int = field(default=300, metadata=at_least(1, MAX_SECONDS))
    # Origins besides the server's own whose pages may open a cookie-authenticated WebSocket
    # (DIZEST_ALLOWED_ORIGINS, comma-separated, e.g. https://console.example.com)
    allowed_origins: tuple[str, ...] = field(default=(), metadata=envconfig.spec(trim="/"))
    # Hosts an app's UI may load its `cdn` scripts and styles from (dizest_api.console.cdn_hosts;
    # DIZEST_UI_CDN_HOSTS, comma-separated: a name, or *.example.org for the names under it; a
    # :port for another than 443); `none`: no host, the UI's own inline code only
    ui_cdn_hosts: tuple[str, ...] = field(
        default=UI_CDN_HOSTS,
        metadata={
            **envconfig.spec(empty="none"),
            **matching(CDN_HOST, "host names (cdn.example.org, *.example.org, host:port) or none"),
        },
    )
    worker: WorkerSettings = field(default_factory=WorkerSettings)

    def __post_init__(self) -> None:
        envconfig.check(self)
        if len(self.secret_key) < 16:
            raise ConfigError("DIZEST_SECRET_KEY must have at least 16 characters")
        if self.max_upload_bytes < self.max_request_bytes:
            raise ConfigError("DIZEST_MAX_UPLOAD_BYTES must be at least DIZEST_MAX_REQUEST_BYTES")

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
