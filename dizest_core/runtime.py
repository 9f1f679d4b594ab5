"""The child side of a flow: the only code that runs user code, always in a child process.

`main(conn_fd)` reads one FlowJob from the engine, runs the app's code with the in-flow `dizest`
API (compatible with DIZEST's, see `FlowAPI`), and reports what happens as `wire` messages:
log entries as records in the stdout pipe, results, outputs and errors as frames on the socket.
stdout and stderr are one engine pipe (set up before `main`), so raw output from C extensions
and subprocesses reaches the log too, in the order the flow produced it. Invariant: whatever
user code does, the last message is DONE unless the process dies; errors are sent as data.

The zygote imports this module and everything it imports, and every flow child carries those
pages in its resident memory (a 100 MB value's producer peaks at the value plus them, issue 12).
So what only some flows use (`dizest.drive`, `flow.active()`, an api call's download, an HTML
fragment) is imported where it is used, and the engine's own modules (settings, the package
parser) never come in: a test lists what a flow child holds.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import os
import pickle
import resource
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dizest_core import confine, inflow, render, warmup, wire
from dizest_core.errors import ErrorInfo
from dizest_core.flowerror import NotCompiled, compile_flow, format_error
from dizest_core.job import Artifact, FlowJob, Value
from dizest_core.model import VARIABLE
from dizest_core.outvalue import as_str, preview, store
from dizest_core.sandbox import Policy, Slot

if TYPE_CHECKING:
    from dizest_core.drive import Drive

_UNSET = object()
_PRINTABLE = {"text/plain", "application/json"}


class FlowAPI:
    """The `dizest` object app code sees: input, inputs, output, result, drive, clear, flow."""

    def __init__(self, job: FlowJob, emit: Callable[[tuple[Any, ...]], None]) -> None:
        self._job = job
        self._emit = emit
        self._specs = {spec.name: spec for spec in job.inputs}
        self._loaded: dict[str, list[Any]] = {}
        self.outputs: dict[str, Any] = {}
        self.flow = inflow.flow_of(job)

    def input(self, name: str, default: Any = None) -> Any:
        """A run input named `name` if given, else the flow's variable or the last wired value.
        A run input for a variable is that variable's value for the run, read as its stored
        value is (`convert_variable`: a form's "2.5" is the float a `number` gives); None, given,
        is None (DIZEST's run parameters: the default is then ignored)."""
        spec = self._specs.get(name)
        if name in self._job.params:
            value = self._job.params[name]
            if spec is None or spec.type != VARIABLE or value is None:
                return value
            return convert_variable(value, spec.inputtype, default)
        if spec is None:
            return default
        if spec.type == VARIABLE:
            return convert_variable(self._job.data.get(name), spec.inputtype, default)
        for value in reversed(self._sources(name)):
            if value is not None:
                return value
        return default

    def inputs(self, name: str) -> list[Any]:
        """Every wired value of an output-type input, in connection order (None where missing)."""
        spec = self._specs.get(name)
        if spec is None or spec.type == VARIABLE:
            return []
        return list(self._sources(name))

    def _sources(self, name: str) -> list[Any]:
        if name not in self._loaded:
            self._loaded[name] = [_load(name, raw) for raw in self._job.sources.get(name, [])]
        return self._loaded[name]

    def output(self, *args: Any, **values: Any) -> Any:
        """`output(name)` reads an output; `output(name, value)` and `output(k=v)` set them."""
        if len(args) > 2:
            raise TypeError("output() takes a name and an optional value")
        if len(args) == 1 and not values:
            return self.outputs.get(args[0])
        if len(args) == 2:
            self.outputs[args[0]] = args[1]
        self.outputs.update(values)
        return None

    def result(self, name: str, value: Any) -> None:
        """Show a named, rendered result (not part of the log)."""
        self._emit((wire.RESULT, str(name), self._render(value)))

    def clear(self) -> None:
        """Clear this flow's log."""
        self._emit((wire.CLEAR,))

    def drive(self, *path: str) -> Drive:
        """A file-system handle rooted at the run's working directory (it cannot escape it);
        reads fall back to its user's drive, read-only (`Drive`'s lookup order)."""
        from dizest_core.drive import Drive  # on use: see the module's story

        root = Drive(self._job.workdir, self._job.drive)
        return root.cd(*path) if path else root

    def print(
        self,
        *args: Any,
        sep: str | None = " ",
        end: str | None = "\n",
        file: Any = None,
        flush: bool = False,
    ) -> None:
        """One log entry per call; rich values (figures, tables, images) become their own entries."""
        if file is not None and file is not sys.stdout:
            builtins.print(*args, sep=sep, end=end, file=file, flush=flush)
            return
        texts: list[str] = []
        for arg in args:
            payload = self._render(arg)
            if payload["mime"] in _PRINTABLE:
                texts.append(arg if isinstance(arg, str) else as_str(arg))
                continue
            self._flush_text(texts, sep)
            self._emit((wire.LOG, payload))
        self._flush_text(texts, sep, always=not args)

    def display(self, *args: Any) -> None:
        """Each value rendered as its own log entry (JSON stays JSON, text stays text)."""
        for arg in args:
            payload = self._render(arg)
            self._emit((wire.LOG, payload["data"] if payload["mime"] == "text/plain" else payload))

    def _flush_text(self, texts: list[str], sep: str | None, always: bool = False) -> None:
        if texts or always:
            text = (" " if sep is None else sep).join(texts)
            self._emit((wire.LOG, _bounded(text, self._job.max_render_bytes)))
            texts.clear()

    def _render(self, value: Any) -> render.Payload:
        return render.render(value, max_bytes=self._job.max_render_bytes)


def convert_variable(value: Any, inputtype: str | None, default: Any) -> Any:
    """DIZEST's conversion of a flow's stored variable, with JSON numbers handled correctly."""
    if isinstance(value, bool):
        return value
    if value is None or value == "":
        return default
    if inputtype == "number":
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
    if isinstance(value, (list, dict, tuple)) and len(value) == 0:
        return default
    return value


def _load(name: str, raw: Value | None) -> Any:
    if raw is None:
        return None
    try:
        if isinstance(raw, Artifact):
            with open(raw.path, "rb") as fh:
                return pickle.load(fh)
        return pickle.loads(raw)
    except Exception as exc:
        raise RuntimeError(
            f"input {name!r} could not be loaded: {type(exc).__name__}: {exc}"
        ) from exc


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    payload = render.render(text, max_bytes=limit)
    return payload["data"]


def _report_error(
    info: ErrorInfo, limit: int, emit: Callable[[tuple[Any, ...]], None], compiled: bool = True
) -> None:
    """The error as its log entry and ERROR message, each text bounded like any log entry;
    `compiled` False: the flow's own code did not compile (the engine does not retry it)."""
    info = ErrorInfo(
        info.type[:200], _bounded(info.message, limit), _bounded(info.traceback, limit)
    )
    emit((wire.LOG, info.traceback or f"{info.type}: {info.message}"))
    emit((wire.ERROR, {**info.to_dict(), "compiled": compiled}))


def flow_globals(api: FlowAPI) -> dict[str, Any]:
    """The globals user code runs in, the same for a flow's code and for an app's `api` code."""
    return {
        "__name__": "__dizest_flow__",
        "__builtins__": builtins,
        "dizest": api,
        "print": api.print,
        "display": api.display,
        "flow": api.flow,
    }


def execute(env: dict[str, Any], api: FlowAPI, job: FlowJob, code: str, filename: str) -> None:
    """Bind the job's params and inputs in `env`, then run `code` there (`compile_flow`)."""
    env.update(job.params)
    for spec in job.inputs:
        env[spec.name] = api.input(spec.name)
    exec(compile_flow(code, filename), env)


def run(job: FlowJob, emit: Callable[[tuple[Any, ...]], None]) -> bool:
    """Run one flow's code; emit its messages; return True when it finished without error."""
    api = FlowAPI(job, emit)
    filename = f"<flow {job.flow_id}>"
    env = flow_globals(api)
    workflow = inflow.workflow_of(job)
    if workflow is not None:
        env["workflow"] = workflow
    ok = True
    try:
        execute(env, api, job, job.code, filename)
    except BaseException as exc:  # user code may raise anything, SystemExit included
        ok = False
        compiled = not isinstance(exc, NotCompiled)
        _report_error(format_error(exc, filename), job.max_render_bytes, emit, compiled)
    if ok:  # as in DIZEST, outputs come from globals only when the code ran to the end
        for name in job.outputs:
            if name not in api.outputs and name in env:
                api.outputs[name] = env[name]
    ok = _emit_outputs(job, api.outputs, emit) and ok
    return ok


def _emit_outputs(job: FlowJob, outputs: dict[str, Any], emit: Callable[..., None]) -> bool:
    """One OUTPUT message per value; the first that cannot be serialized ends it in error.
    Values go inline until they fill half of what the engine takes from a flow
    (`job.max_output`), then to files: many outputs never cost the engine's memory."""
    room = job.max_output // 2
    for name, value in outputs.items():
        if not wire.is_name(name):
            info = ErrorInfo(
                "OutputError",
                f"output name {ascii(name)[:80]} is not valid text (a str without lone surrogates)",
            )
            _report_error(info, job.max_render_bytes, emit)
            return False
        try:
            raw = store(job, value, max(0, min(job.inline_max, room)))
            room -= len(raw) if isinstance(raw, bytes) else 0
        except Exception as exc:
            info = ErrorInfo(
                "OutputError",
                f"output {name!r} ({type(value).__name__}) cannot be serialized: {exc}",
            )
            _report_error(info, job.max_render_bytes, emit)
            return False
        emit((wire.OUTPUT, name, raw, preview(value, job.max_preview_bytes)))
    return True


class _Channel:
    """The child's two ways to the engine: log records go into the stdout pipe (through a
    private duplicate of fd 1, so user code that closes or redirects fd 1 keeps its log), the
    other messages go over the socket."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.log_fd = os.dup(1)  # not inheritable: subprocesses do not get it

    def emit(self, message: tuple[Any, ...]) -> None:
        _flush_std()  # what Python code wrote before this message comes before it
        if message[0] in wire.RECORD_KINDS:
            _write_all(self.log_fd, wire.encode_record(message))
        else:
            wire.send_frame(self.conn, message)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # user code may have closed or replaced them
            stream.flush()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def main(
    conn_fd: int,
    policy: Policy | None = None,
    slot: Slot | None = None,
    memory_mb: int | None = None,
) -> int:
    """Entry point in a freshly forked child: its stdout/stderr are already the engine's pipe.
    It may be forked ahead of its job (a spare): what of the sandbox does not depend on the job
    (`confine.ahead`, for the memory limit it was forked for) is done before the job arrives,
    the rest (`confine.enter`) after, before anything of the job runs. Exits without a word
    when the engine closes the channel before sending a job (an unused spare)."""
    conn = socket.socket(fileno=conn_fd)
    early: OSError | None = None
    done = confine.Ahead()
    if policy is not None and slot is not None:
        try:
            done = confine.ahead(policy, slot, memory_mb)
        except OSError as exc:  # said once the job is here (it may never come)
            early = exc
    warmup.warm_up(run)  # the job's path, once, while no job waits (see `warmup`)
    try:
        job = wire.recv_job(conn)
    except EOFError:
        return 0
    channel = _Channel(conn)
    try:
        if policy is not None and slot is not None:
            try:
                if early is not None:
                    raise early
                if job.memory_limit_mb != memory_mb:
                    raise OSError(
                        errno.EINVAL, f"set up for {memory_mb} MB, not {job.memory_limit_mb}"
                    )
                confine.enter(job, policy, slot, done)
            except OSError as exc:
                raise OSError(exc.errno, f"cannot enter the flow sandbox: {exc}") from exc
        _prepare(job, tree_memory=slot is not None and slot.group is not None)
    except Exception as exc:  # the flow cannot run at all: say why, as data
        _report_error(ErrorInfo("FlowSetupError", str(exc)), job.max_render_bytes, channel.emit)
        ok = False
    else:
        if job.call is not None:  # an `api` function of the app, not its code
            from dizest_core import apiruntime

            ok = apiruntime.call(job, channel.emit)
        else:
            ok = run(job, channel.emit)
    channel.emit((wire.DONE,))
    conn.close()
    return 0 if ok else 1


def load_renderer_files(paths: tuple[str, ...]) -> None:
    """Run plugin files that register renderers (once, in the zygote: children inherit them)."""
    for path in paths:
        try:
            source = Path(path).read_text(encoding="utf-8")
            exec(compile(source, path, "exec"), {"__name__": "dizest_plugin_renderers"})
        except Exception as exc:  # a broken plugin must not break the flows
            print(f"dizest: plugin renderers {path} failed to load: {exc!r}", file=sys.stderr)


def _prepare(job: FlowJob, tree_memory: bool) -> None:
    try:
        os.chdir(job.workdir)
    except OSError as exc:
        raise OSError(
            f"cannot enter the working directory {job.workdir!r}: {exc.strerror}"
        ) from exc
    sys.path[0:0] = [job.workdir, *job.site_paths]
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if job.memory_limit_mb and not tree_memory:
        # no memory cgroup holds the flow's tree: a per-process bound is better than none
        limit = job.memory_limit_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
