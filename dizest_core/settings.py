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
from dizest_core.cgroups import PID_MAX
from dizest_core.envconfig import above, at_least, one_of
from dizest_core.errors import ConfigError
from dizest_core.sandbox import UID_STRIDE

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
MIN_MEMORY_MB = 64  # the interpreter alone needs ~30 MB
MAX_MEMORY_MB = 1 << 24  # 16 TiB: above any machine, yet still a valid RLIMIT_AS
MAX_FILE_MB = envconfig.INT_MAX >> 20  # RLIMIT_FSIZE, in bytes, is a signed 64-bit number
# the longest duration any setting takes: a century, past any use, yet in ms an integer that
# Redis's Lua numbers still hold exactly (a longer DIZEST_TTL_S failed every submit)
MAX_SECONDS = 100 * 365 * 24 * 3600
# Flow uids and the flow gid: above the 16-bit ids systems hand out (users, systemd's dynamic
# users, nobody 65534), and below 2**32 - 1, which setresuid reads as "unchanged" (root kept).
MIN_FLOW_ID, MAX_FLOW_ID = 1 << 16, (1 << 32) - 2
MAX_FLOW_UID_BASE = MAX_FLOW_ID + 1 - PID_MAX * UID_STRIDE  # the last slot's uid is MAX_FLOW_ID

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
    concurrency: int | None = field(default=None, metadata=at_least(1))
    max_processes: int = field(
        default_factory=lambda: max(8, 4 * (os.cpu_count() or 1)), metadata=at_least(1)
    )
    # spare flow children a local engine keeps between runs: forked as its second and later
    # runs end, while the caller goes on, for the next run's first flows (during a run: one
    # per slot, kept between runs too; see dizest_core.spares); 0: only those
    spare_reserve: int = field(default=8, metadata=at_least(0))
    flow_timeout: float | None = field(default=None, metadata=above(0, MAX_SECONDS))
    memory_limit_mb: int | None = field(
        default=None, metadata=at_least(MIN_MEMORY_MB, MAX_MEMORY_MB)
    )
    # the most memory any flow may ask for (its package's or its run's `memory_limit_mb`): a
    # submit asking for more is refused; a flow without a limit gets this one; None: no ceiling
    memory_limit_mb_max: int | None = field(
        default=None, metadata=at_least(MIN_MEMORY_MB, MAX_MEMORY_MB)
    )
    # a retried flow (`"dizest": {"retries": n}`) waits this long, doubled at each retry
    retry_backoff_s: float = field(default=1.0, metadata=at_least(0, MAX_SECONDS))
    plugin_paths: tuple[str, ...] = field(
        default_factory=_default_plugin_paths, metadata=envconfig.spec(sep=os.pathsep)
    )
    cache_dir: str | None = None
    preload: tuple[str, ...] = ()
    max_log_entries: int = field(default=1000, metadata=at_least(0))
    max_render_bytes: int = field(default=1_000_000, metadata=at_least(0))
    max_preview_bytes: int = field(default=65_536, metadata=at_least(0))
    inline_max_bytes: int = field(default=1 << 20, metadata=at_least(0))
    # what one flow's outputs may hold in the engine in all (inline values and previews): the
    # engine keeps them in memory, a worker in Redis; past half of it outputs go to files
    max_output_bytes: int = field(default=64 << 20, metadata=at_least(1))
    # log lines and displayed results of one flow attempt, in bytes (dizest_core.logbudget)
    max_log_bytes: int = field(default=16 << 20, metadata=at_least(0))
    # what a run's inputs, options and package may be (dizest_core.limits, checked at submit)
    max_input_depth: int = field(default=32, metadata=at_least(1))
    # UTF-8 JSON, all inputs of a run together
    max_input_bytes: int = field(default=10 << 20, metadata=at_least(1))
    max_input_nodes: int = field(default=1_000_000, metadata=at_least(1))
    max_input_string: int = field(default=4 << 20, metadata=at_least(1))  # characters
    max_input_keys: int = field(default=100_000, metadata=at_least(1))  # in one object
    # The flow sandbox (dizest_core.sandbox). auto: on in workers, off for `dizest run`.
    sandbox: str = field(default="auto", metadata=one_of(SANDBOX_MODES))
    sandbox_require: tuple[str, ...] = field(
        default=REQUIRED_LAYERS,
        metadata=envconfig.spec(empty="none"),  # DIZEST_SANDBOX_REQUIRE=none: require no layer
    )
    # more server paths flows must not see
    sandbox_hide: tuple[str, ...] = field(default=(), metadata=envconfig.spec(sep=os.pathsep))
    # a flow's default network: none, egress or full
    network: str = field(default="egress", metadata=one_of(NETWORKS))
    # the most any flow may ask for (its package's or its run's `network`): a submit asking
    # for more is refused, and a flow that still does (settings changed since) gets this
    network_max: str = field(default="full", metadata=one_of(NETWORKS))
    flow_env: tuple[str, ...] = ()  # more variable names (or PREFIX_*) flows may see
    flow_uid_base: int = field(default=1 << 30, metadata=at_least(MIN_FLOW_ID, MAX_FLOW_UID_BASE))
    flow_gid: int = field(default=(1 << 30) - 1, metadata=at_least(MIN_FLOW_ID, MAX_FLOW_ID))
    max_pids: int = field(default=512, metadata=at_least(1, PID_MAX))  # no more can exist
    # the most CPUs one flow's processes may use at once (the sandbox's cpu layer: a quota
    # of its slot's cgroup); None: no cap, busy flows share the cores evenly
    flow_cpus: float | None = field(default=None, metadata=at_least(MIN_CPUS, MAX_CPUS))
    # the most CPUs any flow may ask for (its package's or its run's `cpus`): a submit asking
    # for more is refused; a flow that asks for none gets flow_cpus, else this; None: no ceiling
    flow_cpus_max: float | None = field(default=None, metadata=at_least(MIN_CPUS, MAX_CPUS))
    max_open_files: int = field(default=1024, metadata=at_least(1))
    max_file_mb: int = field(default=4096, metadata=at_least(1, MAX_FILE_MB))
    tmp_mb: int = field(default=512, metadata=at_least(1, MAX_MEMORY_MB))  # a tmpfs is memory
    # below this much free space (MB) where flows write, the flow writing the most is stopped
    # (dizest_core.diskguard); 0: no guard
    disk_reserve_mb: int = field(default=512, metadata=at_least(0))

    def __post_init__(self) -> None:
        envconfig.check(self)
        if self.max_output_bytes < 2 * self.inline_max_bytes:  # the runtime inlines half of it
            raise ConfigError(
                "DIZEST_MAX_OUTPUT_BYTES must be at least twice DIZEST_INLINE_MAX_BYTES"
            )
        ceiling = self.memory_limit_mb_max
        if ceiling is not None and (self.memory_limit_mb or 0) > ceiling:
            raise ConfigError("DIZEST_MEMORY_LIMIT_MB must not be above DIZEST_MEMORY_LIMIT_MB_MAX")
        if self.flow_cpus_max is not None and (self.flow_cpus or 0) > self.flow_cpus_max:
            raise ConfigError("DIZEST_FLOW_CPUS must not be above DIZEST_FLOW_CPUS_MAX")

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
