"""Engine settings: one frozen dataclass, parsed and checked once from DIZEST_* variables.

Nothing else in dizest_core reads os.environ, except `child_environment`, which builds the
environment flows run with from an allow-list: `FLOW_ENV` (documented in docs/security.md) plus
the operator's `DIZEST_FLOW_ENV` names; never a DIZEST_* or CELERY_* setting.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dizest_core import envconfig
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


MIN_CPUS, MAX_CPUS = 0.01, 4096  # a flow's CPU cap (a quota of the scheduler's period)
NETWORKS = ("none", "egress", "full")  # what a flow may reach, least first (dizest_core.sandbox)

# the sandbox layers a worker refuses to start without, unless DIZEST_SANDBOX_REQUIRE says
REQUIRED_LAYERS: tuple[str, ...] = (
    "pidns",
    "cgroup",
    "mountns",
    "ipcns",
    "identity",
    "landlock",
    "seccomp",
    "redis_auth",
)


@dataclass(frozen=True)
class Settings:
    """How the engine runs flows. Every field has a DIZEST_<NAME> variable (upper case), read
    and written by `dizest_core.envconfig` (tuples of names are comma-separated)."""

    # flows of a local run at once; None: by measured CPU (a flow that sleeps or waits does not
    # hold a core), up to max_processes at once
    concurrency: int | None = None
    max_processes: int = field(default_factory=lambda: max(8, 4 * (os.cpu_count() or 1)))
    # spare flow children a local engine keeps between runs: forked as its second and later
    # runs end, while the caller goes on, for the next run's first flows (during a run: one
    # per slot, kept between runs too; see dizest_core.spares); 0: only those
    spare_reserve: int = 8
    flow_timeout: float | None = None
    memory_limit_mb: int | None = None
    # the most memory any flow may ask for (its package's or its run's `memory_limit_mb`): a
    # submit asking for more is refused; a flow without a limit gets this one; None: no ceiling
    memory_limit_mb_max: int | None = None
    # a retried flow (`"dizest": {"retries": n}`) waits this long, doubled at each retry
    retry_backoff_s: float = 1.0
    plugin_paths: tuple[str, ...] = field(
        default_factory=_default_plugin_paths, metadata=envconfig.spec(sep=os.pathsep)
    )
    cache_dir: str | None = None
    preload: tuple[str, ...] = ()
    max_log_entries: int = 1000
    max_render_bytes: int = 1_000_000
    max_preview_bytes: int = 65_536
    inline_max_bytes: int = 1 << 20
    # what one flow's outputs may hold in the engine in all (inline values and previews): the
    # engine keeps them in memory, a worker in Redis; past half of it outputs go to files
    max_output_bytes: int = 64 << 20
    # log lines and displayed results of one flow attempt, in bytes (dizest_core.logbudget)
    max_log_bytes: int = 16 << 20
    # what a run's inputs, options and package may be (dizest_core.limits, checked at submit)
    max_input_depth: int = 32
    max_input_bytes: int = 10 << 20  # UTF-8 JSON, all inputs of a run together
    max_input_nodes: int = 1_000_000
    max_input_string: int = 4 << 20  # characters
    max_input_keys: int = 100_000  # in one object
    # The flow sandbox (dizest_core.sandbox). auto: on in workers, off for `dizest run`.
    sandbox: str = "auto"
    sandbox_require: tuple[str, ...] = field(
        default=REQUIRED_LAYERS,
        metadata=envconfig.spec(empty="none"),  # DIZEST_SANDBOX_REQUIRE=none: require no layer
    )
    # more server paths flows must not see
    sandbox_hide: tuple[str, ...] = field(default=(), metadata=envconfig.spec(sep=os.pathsep))
    network: str = "egress"  # a flow's default network: none, egress or full
    # the most any flow may ask for (its package's or its run's `network`): a submit asking
    # for more is refused, and a flow that still does (settings changed since) gets this
    network_max: str = "full"
    flow_env: tuple[str, ...] = ()  # more variable names (or PREFIX_*) flows may see
    flow_uid_base: int = 1 << 30
    flow_gid: int = (1 << 30) - 1
    max_pids: int = 512
    # the most CPUs one flow's processes may use at once (the sandbox's cpu layer: a quota
    # of its slot's cgroup); None: no cap, busy flows share the cores evenly
    flow_cpus: float | None = None
    # the most CPUs any flow may ask for (its package's or its run's `cpus`): a submit asking
    # for more is refused; a flow that asks for none gets flow_cpus, else this; None: no ceiling
    flow_cpus_max: float | None = None
    max_open_files: int = 1024
    max_file_mb: int = 4096
    tmp_mb: int = 512
    # below this much free space (MB) where flows write, the flow writing the most is stopped
    # (dizest_core.diskguard); 0: no guard
    disk_reserve_mb: int = 512

    def __post_init__(self) -> None:
        if (self.concurrency is not None and self.concurrency < 1) or self.max_processes < 1:
            raise ConfigError("concurrency and max_processes must be at least 1")
        if self.flow_timeout is not None and self.flow_timeout <= 0:
            raise ConfigError("flow_timeout must be positive")
        if self.max_output_bytes < 2 * self.inline_max_bytes:  # the runtime inlines half of it
            raise ConfigError("max_output_bytes must be at least twice inline_max_bytes")
        if self.spare_reserve < 0:
            raise ConfigError("spare_reserve must be 0 (no reserve) or more")
        if self.disk_reserve_mb < 0:
            raise ConfigError("disk_reserve_mb must be 0 (no guard) or more")
        if not 0 <= self.retry_backoff_s < float("inf"):
            raise ConfigError("retry_backoff_s must be a number of seconds, 0 or more")
        for name in ("memory_limit_mb", "memory_limit_mb_max"):
            if getattr(self, name) is not None and getattr(self, name) < 64:
                raise ConfigError(f"{name} must be at least 64 (the interpreter needs ~30 MB)")
        ceiling = self.memory_limit_mb_max
        if ceiling is not None and (self.memory_limit_mb or 0) > ceiling:
            raise ConfigError("memory_limit_mb must not be above memory_limit_mb_max")
        if self.sandbox not in SANDBOX_MODES:
            raise ConfigError(f"sandbox must be one of {', '.join(SANDBOX_MODES)}")
        for name in ("network", "network_max"):
            if getattr(self, name) not in NETWORKS:
                raise ConfigError(f"{name} must be one of {', '.join(NETWORKS)}")
        if min(self.max_pids, self.max_open_files, self.max_file_mb, self.tmp_mb) < 1:
            raise ConfigError("max_pids, max_open_files, max_file_mb and tmp_mb must be positive")
        for name in ("flow_cpus", "flow_cpus_max"):
            value = getattr(self, name)
            if value is not None and not MIN_CPUS <= value <= MAX_CPUS:
                raise ConfigError(
                    f"{name} must be a number of CPUs from {MIN_CPUS} to {MAX_CPUS} (or unset)"
                )
        if self.flow_cpus_max is not None and (self.flow_cpus or 0) > self.flow_cpus_max:
            raise ConfigError("flow_cpus must not be above flow_cpus_max")
        if min(self.max_input_depth, self.max_input_bytes, self.max_input_nodes) < 1:
            raise ConfigError("max_input_depth, max_input_bytes and max_input_nodes must be >= 1")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        return envconfig.from_env(cls, environ)


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
