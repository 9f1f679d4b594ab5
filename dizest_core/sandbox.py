"""The flow sandbox: what a flow process may see and do, in layers, each on where Linux allows it.

A flow runs hostile code. Its process (forked by the zygote, still root when the worker is) puts
itself in the sandbox before the user's first line, in this order:

  layer       what it gives                                          needs
  pidns       the zygote and its flows live in their own PID         CAP_SYS_ADMIN
              namespace: a flow cannot name, signal or read the
              worker, the API or anything else of the server
  cgroup      memory and process count bounded for the whole tree;   a writable cgroup
              the whole tree killed when the flow ends (setsid too)  (root, or a delegated v2 group)
  mountns     private /proc (only the zygote's namespace), /tmp and  CAP_SYS_ADMIN
              /dev/shm (tmpfs, sized); the server's data directories
              hidden behind empty read-only tmpfs, the flow's own
              working directory, artifact folder and input files
              bound back in
  ipcns       System V IPC and POSIX message queues of its own:      CAP_SYS_ADMIN
              gone with the flow, never another flow's or the host's
  netns       network `none`: a network namespace of its own         CAP_SYS_ADMIN
  identity    a uid of its own per zygote slot (never the worker's)  root
              and the shared flow group; no supplementary groups
  landlock    file access allow-list (read: the Python installation  Linux >= 5.13 with Landlock
              and system directories; write: working directory,
              artifact folder, /tmp); no signals or abstract sockets
              outside the sandbox (ABI 6); network `egress` cannot
              listen, `none` cannot use TCP (ABI 4)
  seccomp     no fallocate (blocks no write counts), no io_uring;    seccomp filters
              network `none`: no Unix sockets (see `seccomp`)        (x86_64, aarch64)
  rlimits     open files, file size, core dumps, processes per uid;  always
              the OOM killer's first choice (oom_score_adj 1000)
  env         an allow-list of variables (see `settings.flow_env`)   always

`probe` finds which layers the machine allows (in a throw-away child) so the worker can print
them, report them in /readyz and refuse to start when a required one is missing. Whatever a layer
cannot do here is reported, never silently skipped. The kill of the whole tree at the end of a
flow is the zygote's job (`dizest_core.zygote`), by cgroup, by uid, or by process group.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dizest_core.cgroups import PID_MAX, Group  # PID_MAX: uids of two live zygotes never collide

if TYPE_CHECKING:  # flow children import this module, never the settings (see runtime)
    from dizest_core.settings import Settings

LAYERS = (
    "pidns", "cgroup", "cpu", "mountns", "ipcns", "netns", "identity", "landlock", "seccomp", "rlimits",
    "env",
)  # fmt: skip
UID_STRIDE = 64  # slots per zygote; a flow's uid = flow_uid_base + zygote_pid * UID_STRIDE + slot
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc", "/sys")
HIDE_DEFAULT = ("/root", "/home", "/var/lib/dizest", "/etc/dizest", "/run/secrets")


@dataclass(frozen=True)
class Policy:
    """The server's sandbox rules, fixed when the zygote starts (sent to it as JSON)."""

    enabled: bool = True
    uid_base: int = 1 << 30
    gid: int = (1 << 30) - 1
    network: str = "egress"  # a flow's default; per-flow option `network` overrides it
    hide: tuple[str, ...] = ()  # server data (workdir root, artifacts, data dir) + HIDE_DEFAULT
    read: tuple[str, ...] = ()  # read-only besides the system: Python installation, plugins
    tmp_mb: int = 512
    max_pids: int = 512
    max_open_files: int = 1024
    max_file_mb: int = 4096
    cpus: float = 0.0  # a flow's CPU cap (Settings.flow_cpus); 0: none

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Policy:
        raw: dict[str, Any] = json.loads(text)
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
        return cls(**fields)


@dataclass
class Prepared:
    """What the zygote sets up once for all its flows (`confine.prepare`): its own mount
    namespace with the private homes covered, and open handles on the paths every flow may read
    (Landlock rules are added from these, so a flow opens none of them itself)."""

    covers: tuple[str, ...] = ()  # covered per flow: the server's data dirs, /tmp, /dev/shm
    rebind: tuple[str, ...] = ()  # read-only paths under those covers (a venv in /tmp ...)
    static_rules: tuple[tuple[int, int], ...] = ()  # (O_PATH fd, Landlock access)
    mounted: bool = False  # the zygote's own mount namespace is in place


@dataclass
class Slot:
    """What the zygote tells a child before fork: its uid and group, and which layers are on."""

    uid: int | None
    gid: int | None
    group: Group | None
    layers: dict[str, str] = field(default_factory=dict)
    prepared: Prepared = field(default_factory=Prepared)


def with_read(policy: Policy, paths: tuple[str, ...]) -> Policy:
    """`policy` that also allows reading `paths` (more of the Python path), by the same rules."""
    more = python_paths(policy.hide, roots=tuple(p for p in paths if p))
    return replace(policy, read=tuple(dict.fromkeys((*policy.read, *more))))


def python_paths(hide: tuple[str, ...], roots: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Directories of the Python installation to allow read-only: prefixes and sys.path. One
    that holds server data (a hidden path other than the private homes of HIDE_DEFAULT) is not
    allowed whole: only its children that hold none are. Shared scratch places and homes are
    never allowed as such (a script run from /tmp puts /tmp on sys.path), only what is in them."""
    if roots is None:
        # not the directory the server was started from (`python -m` puts it on sys.path): a
        # project's folder, with its .env and data, is no part of the Python installation;
        # dizest's own package is (an editable install has it there)
        here = os.path.realpath(os.getcwd())
        paths = [p for p in sys.path if p and os.path.realpath(p) != here]
        own = os.path.dirname(os.path.abspath(__file__))
        roots = (sys.prefix, sys.base_prefix, sys.exec_prefix, *paths, own)
    data = [os.path.realpath(h) for h in hide if h not in HIDE_DEFAULT]
    never = {os.path.realpath(p) for p in ("/", "/tmp", "/dev/shm", "/var/tmp", *HIDE_DEFAULT)}
    allowed: list[str] = []
    for root in sorted(set(roots)):
        if os.path.isdir(root) and os.path.realpath(root) not in never:
            allowed.extend(_exposable(os.path.realpath(root), data, depth=3))
    return tuple(dict.fromkeys(allowed))


def _exposable(root: str, data: list[str], depth: int) -> list[str]:
    if any(_within(root, d) for d in data):
        return []
    if not any(_within(d, root) for d in data):
        return [root]
    if depth == 0:
        return []
    try:
        names = os.listdir(root)
    except OSError:
        return []
    out: list[str] = []
    for name in names:
        path = os.path.join(root, name)
        if os.path.isdir(path) and not name.startswith("."):
            out.extend(_exposable(path, data, depth - 1))
    return out


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def slot_uid(policy: Policy, zygote_pid: int, slot: int) -> int:
    return policy.uid_base + (zygote_pid % PID_MAX) * UID_STRIDE + slot


def rlimits(policy: Policy, memory_limit_mb: int | None, tree_memory: bool) -> None:
    """Per-process limits; RLIMIT_NPROC counts per uid, so with `identity` it bounds the tree."""
    mb = 1024 * 1024
    limits = {
        resource.RLIMIT_NOFILE: policy.max_open_files,
        resource.RLIMIT_FSIZE: policy.max_file_mb * mb,
        resource.RLIMIT_CORE: 0,
        resource.RLIMIT_NPROC: policy.max_pids,
    }
    if memory_limit_mb and not tree_memory:
        limits[resource.RLIMIT_AS] = memory_limit_mb * mb
    for which, value in limits.items():
        hard = resource.getrlimit(which)[1]
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))


def make_policy(settings: Settings, server: bool, hide: tuple[str, ...] = ()) -> Policy:
    """The policy a zygote gets: on when asked, or by default in servers (`server=True`).
    `hide`: the server's data directories (working roots, artifacts, cache, data dir)."""
    enabled = settings.sandbox == "on" or (settings.sandbox == "auto" and server)
    hidden = tuple(
        dict.fromkeys(os.path.abspath(p) for p in (*hide, *settings.sandbox_hide, *HIDE_DEFAULT))
    )
    return Policy(
        enabled=enabled,
        uid_base=settings.flow_uid_base,
        gid=settings.flow_gid,
        network=settings.network,
        hide=hidden,
        read=python_paths(hidden) + tuple(settings.plugin_paths) if enabled else (),
        tmp_mb=settings.tmp_mb,
        max_pids=settings.max_pids,
        max_open_files=settings.max_open_files,
        max_file_mb=settings.max_file_mb,
        cpus=settings.flow_cpus or 0.0,
    )


def missing(layers: dict[str, str], required: tuple[str, ...]) -> list[str]:
    """The required layers that are not active, each with its reason."""
    return [
        f"{name}: {layers.get(name, 'unknown layer')}"
        for name in required
        if layers.get(name) != "active"
    ]
