"""Engine settings: one frozen dataclass, parsed and checked once from DIZEST_* variables.

Nothing else in dizest_core reads os.environ, except `child_environment`, which builds the
scrubbed environment flows run with: no DIZEST_* settings, and no variable whose name looks like
a secret (tokens, passwords, keys, credentials, connection URLs).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dizest_core.errors import ConfigError

SECRET_NAME = re.compile(
    r"^(DIZEST_|CELERY_)|SECRET|PASSW|TOKEN|API_?KEY|PRIVATE|CREDENTIAL|AUTH|"
    r"(REDIS|DATABASE|BROKER|AMQP|POSTGRES|MYSQL|MONGO)_?(URL|URI|DSN)",
    re.IGNORECASE,
)


def _default_plugin_paths() -> tuple[str, ...]:
    bundled = Path(__file__).resolve().parent.parent / "plugins"
    return (str(bundled),) if bundled.is_dir() else ()


@dataclass(frozen=True)
class Settings:
    """How the engine runs flows. Every field has a DIZEST_<NAME> variable (upper case)."""

    concurrency: int = field(default_factory=lambda: os.cpu_count() or 1)
    flow_timeout: float | None = None
    memory_limit_mb: int | None = None
    plugin_paths: tuple[str, ...] = field(default_factory=_default_plugin_paths)
    cache_dir: str | None = None
    preload: tuple[str, ...] = ()
    max_log_entries: int = 1000
    max_render_bytes: int = 1_000_000
    max_preview_bytes: int = 65_536
    inline_max_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.flow_timeout is not None and self.flow_timeout <= 0:
            raise ConfigError("flow_timeout must be positive")
        if self.memory_limit_mb is not None and self.memory_limit_mb < 64:
            raise ConfigError("memory_limit_mb must be at least 64 (the interpreter needs ~30 MB)")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        return cls(**read_env(_PARSERS, environ))  # type: ignore[arg-type]


def read_env(
    parsers: Mapping[str, Callable[[str], object]], environ: Mapping[str, str] | None = None
) -> dict[str, object]:
    """The DIZEST_<NAME> variables that are set, parsed; a malformed one is a ConfigError."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name, parse in parsers.items():
        raw = env.get(f"DIZEST_{name.upper()}")
        if raw:
            try:
                values[name] = parse(raw)
            except ValueError as exc:
                raise ConfigError(f"DIZEST_{name.upper()}={raw!r}: {exc}") from None
    return values


def _paths(raw: str) -> tuple[str, ...]:
    return tuple(p for p in raw.split(os.pathsep) if p)


def _names(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


_PARSERS: dict[str, Callable[[str], object]] = {
    "concurrency": int,
    "flow_timeout": float,
    "memory_limit_mb": int,
    "plugin_paths": _paths,
    "cache_dir": str,
    "preload": _names,
    "max_log_entries": int,
    "max_render_bytes": int,
    "max_preview_bytes": int,
    "inline_max_bytes": int,
}


def child_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment flows run with: the server's, minus settings and anything secret-looking."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in env.items() if not SECRET_NAME.search(k)}
