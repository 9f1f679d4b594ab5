"""What a flow's child process is given to run one flow attempt: `FlowJob`, built by `build_job`.

Input values travel already serialized (`Value`: bytes, or an `Artifact` file for large ones),
exactly as the store holds them, so the engine never unpickles user objects. How a job and the
child's answers cross the process boundary is `dizest_core.wire`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dizest_core.model import OUTPUT, InputSpec, Package

if TYPE_CHECKING:  # flow children import this module, never the settings (see runtime)
    from dizest_core.settings import Settings

# App code that names `workflow` gets DIZEST's `workflow` global, a view of the whole package;
# only then is the package copied into the job (dag1000 would otherwise pickle 1000 packages).
_USES_WORKFLOW = re.compile(r"\bworkflow\b")
RUN_ID = re.compile(r"[0-9a-f]{32}")  # dizest_core.runner.new_run_id: uuid4().hex
MAX_NAME_BYTES = 255  # of one part of a path (NAME_MAX)
_UNSAFE_CHAR = re.compile(r"[/\\\x00-\x1f\x7f]")  # a path separator or a control character


def unsafe_flow_id(key: str) -> str | None:
    """Why `key` cannot be a flow id, or None. It names the flow's artifact folder
    (<root>/<run>/<flow>/<attempt>), made by root before the flow's sandbox: one path part,
    never `.` or `..`, no separator, no control character (DIZEST's own are `{app}-{ms}`)."""
    if key in ("", ".", ".."):
        return f"flow id {key!r} names no folder of its own"
    if _UNSAFE_CHAR.search(key):  # the usual id has none: one scan in C, not a set per id
        bad = sorted(set(_UNSAFE_CHAR.findall(key)))
        return f"flow id has {', '.join(map(repr, bad))}: no path separator or control character"
    size = len(key) if key.isascii() else len(key.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        return f"flow id of {size} bytes (UTF-8): a folder name has at most {MAX_NAME_BYTES}"
    return None


MAX_ARTIFACT_PATH = 4096  # bytes: the runtime names files <artifact folder>/<short name>


@dataclass(frozen=True)
class Artifact:
    """A serialized value kept in a file (large outputs): its path and size in bytes."""

    path: str
    size: int


Value = bytes | Artifact  # a serialized output as stores and jobs carry it


@dataclass(frozen=True)
class ApiCall:
    """A call of one of the app's `api` functions (DIZEST's HTTP functions), carried by the
    FlowJob it runs in: the child runs `api` instead of `code` (see dizest_core.apiruntime)."""

    name: str
    source: str  # the app's `api` code
    method: str = "POST"
    params: dict[str, Any] = field(default_factory=dict)  # query values, then a JSON object body
    body: Any = None  # the request's JSON body (any JSON value), None when it had none
    path: str = ""  # what follows the function's name in the URL (DIZEST's `request.uri()`)
    headers: dict[str, str] = field(default_factory=dict)
    # the flow's outputs of its run, as stored (read lazily by `dizest.output(name)`)
    last_outputs: dict[str, Value] = field(default_factory=dict)


@dataclass(frozen=True)
class FlowJob:
    """One flow attempt, as the child process receives it."""

    run_id: str
    flow_id: str
    app_id: str
    code: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[str, ...]
    workdir: str
    title: str = ""
    # a folder the flow reads as the fallback of `dizest.drive()` (its user's drive), read-only
    drive: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    # input name -> the sources' serialized values in package order (None: source has no value)
    sources: dict[str, list[Value | None]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    memory_limit_mb: int | None = None
    network: str | None = None  # none, egress or full (None: the server's default)
    cpus: float | None = None  # the most CPUs its processes use at once (None: no cap)
    max_render_bytes: int = 1_000_000
    max_preview_bytes: int = 65_536
    attempt: int = 1
    # outputs larger than `inline_max` are written by the child to files under `artifact_dir`
    artifact_dir: str | None = None
    inline_max: int = 1 << 20
    max_output: int = 64 << 20  # OUTPUT frames together, in bytes (`wire.max_output`)
    max_log_bytes: int = 16 << 20  # log lines and results together (`logbudget`)
    # the DIZEST documents behind `dizest.flow` / `flow` and `workflow` (see dizest_core.inflow)
    flow_raw: dict[str, Any] = field(default_factory=dict)
    app_raw: dict[str, Any] = field(default_factory=dict)
    package_raw: dict[str, Any] | None = None
    call: ApiCall | None = None  # set: run the app's `api` function instead of its code
    site_paths: tuple[str, ...] = ()  # the workflow's `executable` environment (interpreter.py)

    def artifact_folder(self) -> str | None:
        """The one directory this attempt may write output files to (None: no artifact dir)."""
        if self.artifact_dir is None:
            return None
        return os.path.join(self.artifact_dir, self.run_id, self.flow_id, str(self.attempt))


def build_job(
    package: Package,
    flow_id: str,
    run_id: str,
    values: list[Value | None],
    settings: Settings,
    **fields: Any,
) -> FlowJob:
    """The job of one flow: `values` are its wired inputs' values, in `Package.wired` order;
    `fields` set the rest (workdir, params, memory_limit_mb, network, attempt, artifact_dir:
    the flow's options, `dizest_core.options`)."""
    from dizest_core import interpreter  # the engine's, not a flow child's (see runtime)

    flow = package.flows[flow_id]
    app = package.app_of(flow)
    sources: dict[str, list[Value | None]] = {s.name: [] for s in app.inputs if s.type == OUTPUT}
    for (name, _), value in zip(package.wired(flow), values, strict=True):
        sources[name].append(value)
    return FlowJob(
        run_id=run_id,
        flow_id=flow_id,
        app_id=app.id,
        code=app.code,
        inputs=app.inputs,
        outputs=app.outputs,
        title=flow.title,
        data=dict(flow.data),
        sources=sources,
        max_render_bytes=settings.max_render_bytes,
        max_preview_bytes=settings.max_preview_bytes,
        inline_max=settings.inline_max_bytes,
        max_output=settings.max_output_bytes,
        max_log_bytes=settings.max_log_bytes,
        # shared, not copied: a job is only ever read in the engine, and pickled to its child
        flow_raw=dict(flow.raw),
        app_raw=dict(app.raw),
        package_raw=dict(package.raw) if _USES_WORKFLOW.search(app.code) else None,
        site_paths=interpreter.site_paths(package.raw),
        **fields,
    )
