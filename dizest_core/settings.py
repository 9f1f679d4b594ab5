"""Engine settings: one frozen dataclass, parsed and checked once from DIZEST_* variables.

Nothing else in dizest_core reads os.environ, except `child_environment`, which builds the
environment flows run with from an allow-list: `FLOW_ENV` (documented in docs/security.md) plus
the operator's `DIZEST_FLOW_ENV` names; never a DIZEST_* or CELERY_* setting.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dizest_core.errors import ConfigError

NEVER_TO_FLOWS = re.compile(r"^(DIZEST_|CELERY_)", re.IGNORECASE)
# What flows see of the server's environment by default: locale, paths, thread counts and
# device selection; nothing that commonly carries a credential. "*" ends a prefix.
FLOW_ENV = (
    "PATH", "LANG", "LANGUAGE", "LC_*", "TZ", "TERM", "VIRTUAL_ENV", "PYTHONPATH",
    "PYTHONHASHSEED", "PYTHONIOENCODING", "PYTHONUTF8", "PYTHONDONTWRITEBYTECODE", "MPLBACKEND",
    "OMP_NUM_THREADS", "OPENBLAS_*", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "SSL_CERT_FILE", "SSL_CERT_DIR",
)  # fmt: skip
SANDBOX_MODES = ("auto", "on", "off")


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
    # what a run's inputs, options and package may be (dizest_core.limits, checked at submit)
    max_input_depth: int = 32
    max_input_bytes: int = 10 << 20  # UTF-8 JSON, all inputs of a run together
    max_input_nodes: int = 1_000_000
    max_input_string: int = 4 << 20  # characters
    max_input_keys: int = 100_000  # in one object
    # The flow sandbox (dizest_core.sandbox). auto: on in workers, off for `dizest run`.
    sandbox: str = "auto"
    sandbox_require: tuple[str, ...] = (
        "pidns", "cgroup", "mountns", "identity", "landlock", "redis_auth"
    )  # fmt: skip
    sandbox_hide: tuple[str, ...] = ()  # more server paths flows must not see
    network: str = "egress"  # a flow's default network: none, egress or full
    flow_env: tuple[str, ...] = ()  # more variable names (or PREFIX_*) flows may see
    flow_uid_base: int = 1 << 30
    flow_gid: int = (1 << 30) - 1
    max_pids: int = 512
    max_open_files: int = 1024
    max_file_mb: int = 4096
    tmp_mb: int = 512

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1")
        if self.flow_timeout is not None and self.flow_timeout <= 0:
            raise ConfigError("flow_timeout must be positive")
        if self.memory_limit_mb is not None and self.memory_limit_mb < 64:
            raise ConfigError("memory_limit_mb must be at least 64 (the interpreter needs ~30 MB)")
        if self.sandbox not in SANDBOX_MODES:
            raise ConfigError(f"sandbox must be one of {', '.join(SANDBOX_MODES)}")
        if self.network not in ("none", "egress", "full"):
            raise ConfigError("network must be none, egress or full")
        if min(self.max_pids, self.max_open_files, self.max_file_mb, self.tmp_mb) < 1:
            raise ConfigError("max_pids, max_open_files, max_file_mb and tmp_mb must be positive")
        if min(self.max_input_depth, self.max_input_bytes, self.max_input_nodes) < 1:
            raise ConfigError("max_input_depth, max_input_bytes and max_input_nodes must be >= 1")

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
    "max_input_depth": int,
    "max_input_bytes": int,
    "max_input_nodes": int,
    "max_input_string": int,
    "max_input_keys": int,
    "sandbox": str,
    "sandbox_require": lambda raw: () if raw.strip() == "none" else _names(raw),
    "sandbox_hide": _paths,
    "network": str,
    "flow_env": _names,
    "flow_uid_base": int,
    "flow_gid": int,
    "max_pids": int,
    "max_open_files": int,
    "max_file_mb": int,
    "tmp_mb": int,
}


def child_environment(
    environ: Mapping[str, str] | None = None, extra: tuple[str, ...] = ()
) -> dict[str, str]:
    """The environment flows run with: only the allow-listed variables of the server's."""
    env = os.environ if environ is None else environ
    names = FLOW_ENV + extra
    exact = {n for n in names if not n.endswith("*")}
    prefixes = tuple(n[:-1] for n in names if n.endswith("*"))
    return {
        k: v
        for k, v in env.items()
        if (k in exact or k.startswith(prefixes)) and not NEVER_TO_FLOWS.search(k)
    }
