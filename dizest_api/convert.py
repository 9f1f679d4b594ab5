"""Outputs in open formats: a stored output (a pickle) turned into JSON, text, bytes, CSV,
Parquet, `.npy` or PNG, without this process ever unpickling it.

Unpickling runs code chosen by whoever made the pickle, and outputs are made by flows, which are
hostile. So the API process never calls `pickle.loads` on an output: each conversion runs as a
flow-like job in a sandboxed child, through the same `Supervisor` + zygote + `make_policy`
sandbox the workers use (own uid, namespaces, no network, Landlock, limits). The child unpickles
the value, picks a format from the value's type and the client's wishes, and writes the bytes
and a small JSON note (`{"media_type"}` or `{"error", "offered"}`) as plain files in a fresh
working directory; this process reads those two files and nothing else. What the child sends
over the wire is ignored.

Why a zygote in the API process rather than a job sent to the workers: a conversion is a
request/response step, and a run-less job through the broker would need a worker's claim, run
state and a reply channel for no gain in isolation (the sandbox is the same). Measured on this
2-core machine under load (10 conversions of a 100-row DataFrame to CSV after a first one): first
616 ms (zygote start), then a median of 484 ms, almost all of it importing pandas in the child;
`DIZEST_PRELOAD=pandas` (the zygote imports it once) removes that.

Sharing: each API process has `SLOTS` converters (a zygote each, started when first needed, as
long-lived as the process; a Supervisor is single-threaded), so one user's slow conversion never
holds up everyone's. A user has at most one conversion running or waiting per process (another
answers 429 at once); a conversion waits at most `WAIT_S` for a free slot (then 503 with
Retry-After, holding the server's thread no longer), and the output is read only once it has
its slot. Each conversion is bounded by a memory limit and by `TIMEOUT_S`: 20 s, a third of the
60 s it was. What takes longest is a large DataFrame to CSV, measured here (2 cores) at about
10 s per million rows of 4 float columns (30 MB pickled); 20 s keeps such tables up to about 2
million rows convertible under some load, while a hostile value that never finishes unpickling
holds a slot for 20 s per request. Larger values download as Parquet, `.npy` or pickle.

An answer is at most `MAX_ANSWER_BYTES`, 512 MiB (as much as the largest value converted): the
child builds it in memory beside the value, under `MEMORY_MB`, so a genuine answer stays well
below. A value's code can write the file itself (a probe's patched `open` wrote 1 GB per
answer): the child's file-size limit stops each file a MB past the cap (not at the flows' 4 GB),
and a larger file is refused (422), never kept. While being downloaded, a user's answers hold
at most `HELD_BYTES` of disk per process (`dizest_api.held_answers`).

`?format=pickle` returns the stored bytes as they are (Python only, and only for outputs you
trust: unpickling them runs code); it never needs the sandbox.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import BinaryIO

from dizest_api.errors import ApiError
from dizest_api.held_answers import HeldAnswers
from dizest_api.plainfile import open_beneath
from dizest_core.execution import Finished, Supervisor
from dizest_core.job import FlowJob
from dizest_core.model import InputSpec
from dizest_core.sandbox import make_policy
from dizest_core.settings import child_environment
from dizest_worker.client import WorkerSettings

TIMEOUT_S = 20.0  # one conversion at most (why this figure: the module's docstring)
SLOTS = 2  # conversions at once per API process, each in a zygote of its own
WAIT_S = 5.0  # the longest a conversion waits for a slot
MAX_NOTE_BYTES = 1 << 20  # the converter's out.json: a media type, or an error and offers
MEMORY_MB = 1024
MAX_ANSWER_BYTES = 512 << 20  # what one conversion may answer (why this figure: the docstring)
HELD_BYTES = 1 << 30  # what one user's downloads of answers may hold at once (`held_answers`)
MIB = 1 << 20
FORMATS = {  # ?format= -> media type
    "json": "application/json",
    "text": "text/plain",
    "bytes": "application/octet-stream",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
    "npy": "application/x-npy",
    "png": "image/png",
}
EXTENSIONS = {v: k for k, v in FORMATS.items()} | {"text/plain": "txt", "application/octet-stream": "bin"}  # fmt: skip

# Runs in the sandboxed child, with `dizest` and the value's input. Writes out.bin + out.json.
CONVERTER = r"""
import io, json
value = dizest.input("value")
wanted = dizest.input("wanted")

def offered():
    kind = type(value)
    mod = kind.__module__.split(".")[0]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return ["application/octet-stream"]
    if isinstance(value, str):
        return ["text/plain", "application/json"]
    if mod == "pandas" and hasattr(value, "to_csv") and hasattr(value, "columns"):
        return ["text/csv", "application/vnd.apache.parquet", "application/json"]
    if mod == "numpy" and hasattr(value, "dtype") and hasattr(value, "shape"):
        return ["application/x-npy", "application/json"]
    if hasattr(value, "savefig") or (mod == "PIL" and hasattr(value, "save")):
        return ["image/png"]
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return []
    return ["application/json"]

def encode(media):
    if media == "application/octet-stream":
        return bytes(value)
    if media == "text/plain":
        return value.encode("utf-8")
    if media == "text/csv":
        return value.to_csv(index=False).encode("utf-8")
    if media == "application/vnd.apache.parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            return None
        buf = io.BytesIO()
        value.to_parquet(buf, index=False)
        return buf.getvalue()
    if media == "application/x-npy":
        import numpy
        buf = io.BytesIO()
        numpy.save(buf, value, allow_pickle=False)
        return buf.getvalue()
    if media == "image/png":
        buf = io.BytesIO()
        if hasattr(value, "savefig"):
            value.savefig(buf, format="png")
        else:
            value.save(buf, format="PNG")
        return buf.getvalue()
    if hasattr(value, "to_json"):
        return value.to_json(orient="records").encode("utf-8")
    if hasattr(value, "tolist"):
        return json.dumps(value.tolist()).encode("utf-8")
    return json.dumps(value, allow_nan=False, ensure_ascii=False).encode("utf-8")

def pick(offer):
    for want in wanted:
        if want == "*/*" and offer:
            return offer[0]
        if want.endswith("/*") and any(o.startswith(want[:-1]) for o in offer):
            return next(o for o in offer if o.startswith(want[:-1]))
        if want in offer:
            return want
    return None

offer = offered()
media = pick(offer)
note = {"media_type": media, "type": type(value).__module__ + "." + type(value).__qualname__}
data = encode(media) if media else None
if media == "application/vnd.apache.parquet" and data is None:
    note["error"] = "parquet needs pyarrow, which is not installed on the server"
    note["offered"] = offer
elif media is None:
    note["error"] = "no format you accept fits this output"
    note["offered"] = offer
with open("out.json", "w") as f:
    json.dump(note, f)
if data is not None:
    with open("out.bin", "wb") as f:
        f.write(data)
"""


class ConverterBusy(ApiError):
    status, code = 503, "converter_busy"


class TooManyConversions(ApiError):
    status, code = 429, "too_many_conversions"


class ConversionError(Exception):
    """The output could not be converted; `status` 406 (no acceptable format) or 422."""

    def __init__(self, status: int, message: str, offered: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.offered = offered or []


@dataclass(frozen=True)
class Converted:
    media_type: str
    file: BinaryIO  # the converter's out.bin, opened; close it and delete `folder` once sent
    folder: str
    extension: str
    size: int  # of `file`, at most the converter's `max_answer_bytes`


class Converter:
    """`slots` sandboxed zygotes per API process, started when first needed; one conversion
    each at a time, one per user running or waiting."""

    def __init__(
        self,
        settings: WorkerSettings,
        slots: int = SLOTS,
        wait_s: float = WAIT_S,
        timeout_s: float = TIMEOUT_S,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        held_bytes: int = HELD_BYTES,
    ) -> None:
        self.settings = settings
        self.wait_s, self.timeout_s = wait_s, timeout_s
        self.max_answer_bytes = max_answer_bytes
        self.held = HeldAnswers(held_bytes)  # the answers each user's downloads still hold
        self._slots = [_Slot() for _ in range(slots)]
        self._free: queue.LifoQueue[_Slot] = queue.LifoQueue()  # the warmest zygote first
        for slot in self._slots:
            self._free.put(slot)
        self._users: set[str] = set()  # users with a conversion running or waiting
        self._lock = threading.Lock()

    def _started(self, slot: _Slot) -> Supervisor:
        if slot.supervisor is None or slot.supervisor.zygote.proc.poll() is not None:
            s, engine = self.settings, self.settings.engine
            policy = make_policy(engine, server=True, hide=(s.workdir_root, s.artifact_dir, s.drive_root))  # fmt: skip
            # each file the child writes stops a MB past the largest answer (not at the flows'
            # DIZEST_MAX_FILE_MB, 4 GB): an answer over the cap is then seen, and refused
            limit_mb = -(-self.max_answer_bytes // MIB) + 1
            policy = replace(policy, max_file_mb=min(policy.max_file_mb, limit_mb))
            env = child_environment(extra=engine.flow_env)
            slot.supervisor = Supervisor(env, engine.preload, (), policy, engine.disk_reserve_mb)
        return slot.supervisor

    def convert(self, read: Callable[[], bytes], wanted: list[str], user: str) -> Converted:
        """Convert one serialized value (`read` once this conversion has its slot) to the first
        of `wanted` media types it can take; for `user`, who may have one at a time. The
        answer's file counts against `user`'s held bytes until it is closed (`held_answers`)."""
        with self._turn(user) as slot:
            pickled = read()
            folder = os.path.join(self.settings.workdir_root, f".convert-{secrets.token_hex(8)}")
            os.makedirs(folder, mode=0o700)
            job = FlowJob(
                run_id="convert",
                flow_id=os.path.basename(folder),
                app_id="dizest.convert",
                code=CONVERTER,
                inputs=(InputSpec("value"),),
                outputs=(),
                workdir=folder,
                sources={"value": [pickled]},
                params={"wanted": wanted},
                memory_limit_mb=MEMORY_MB,
                network="none",
                # bounds what the child may send (`wire.max_frame`): it sends no value, and a
                # frame that announces more is refused at its header, not buffered (a probe's
                # hostile pickle grew this process by 150 MB/s with no artifact folder set)
                artifact_dir=folder,
                inline_max=0,  # and its frames to an error's text, 64 kB of it
                max_render_bytes=MAX_NOTE_BYTES // 16,
                max_preview_bytes=MAX_NOTE_BYTES // 16,
            )
            del pickled  # the job holds it, until it is sent
            try:
                answer = self._answer(self._run(slot, job), folder)
                return replace(answer, file=self.held.hold(user, answer.file))
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise

    @contextmanager
    def _turn(self, user: str) -> Iterator[_Slot]:
        """A free slot for `user`'s conversion: TooManyConversions if they have one running or
        waiting already, ConverterBusy if none is free within `wait_s`."""
        with self._lock:
            if user in self._users:
                raise TooManyConversions(
                    "you already have an output being converted on this server; retry once "
                    "it is done",
                    {"max_conversions_per_user": 1, "retry_after": 2},
                )
            self._users.add(user)
        try:
            try:
                slot = self._free.get(timeout=self.wait_s)
            except queue.Empty:
                raise ConverterBusy(
                    f"every output converter of this server is busy ({len(self._slots)}); "
                    "retry shortly",
                    {"converters": len(self._slots), "retry_after": max(1, round(self.wait_s))},
                ) from None
            try:
                yield slot
            finally:
                self._free.put(slot)
        finally:
            with self._lock:
                self._users.discard(user)

    def _run(self, slot: _Slot, job: FlowJob) -> Finished:
        supervisor = self._started(slot)
        supervisor.launch(job, self.timeout_s)
        try:
            while True:
                for item in supervisor.poll(1.0):
                    if isinstance(item, Finished) and item.flow_id == job.flow_id:
                        return item
        except BaseException:
            slot.supervisor = None  # never hand a child left in it to the next conversion
            supervisor.close()
            raise
        finally:
            if slot.supervisor is supervisor:
                supervisor.settle()  # what a converter that said DONE left: none polls after

    def _answer(self, finished: Finished, folder: str) -> Converted:
        note_file = open_beneath(folder, "out.json")
        if not finished.ok or note_file is None:
            if note_file is not None:
                note_file.close()
            if self._over(os.path.join(folder, "out.bin")):  # stopped by its file-size limit
                raise self._too_large()
            why = finished.error.message if finished.error else finished.reason
            raise ConversionError(422, f"the output could not be converted: {why}")
        with note_file:
            try:  # JSON, never pickle: the child may be compromised
                note = json.loads(note_file.read(MAX_NOTE_BYTES))
            except (ValueError, RecursionError):
                note = None
        if not isinstance(note, dict):
            raise ConversionError(422, "the converter answered nonsense")
        if note.get("error"):
            offered = [str(o) for o in note.get("offered") or [] if isinstance(o, str)]
            raise ConversionError(406, f"{note['error']} (type {note.get('type')})", offered)
        media = str(note.get("media_type"))
        data = open_beneath(folder, "out.bin") if media in EXTENSIONS else None
        if data is None:
            raise ConversionError(422, "the converter answered nonsense")
        size = os.fstat(data.fileno()).st_size
        if size > self.max_answer_bytes:
            data.close()
            raise self._too_large()
        return Converted(media, data, folder, EXTENSIONS[media], size)

    def _over(self, path: str) -> bool:
        try:
            return os.lstat(path).st_size > self.max_answer_bytes
        except OSError:
            return False

    def _too_large(self) -> ConversionError:
        return ConversionError(
            422,
            f"the converted output would be over the {self.max_answer_bytes} bytes a conversion "
            "may answer: download it as ?format=pickle",
        )

    def close(self) -> None:
        for slot in self._slots:
            if slot.supervisor is not None:
                slot.supervisor.close()
                slot.supervisor = None


class _Slot:
    """One converter: its Supervisor, used by one conversion at a time."""

    supervisor: Supervisor | None = None


def wanted_types(fmt: str | None, accept: str | None) -> list[str]:
    """Media types the client accepts, best first: `?format=` wins over `Accept`."""
    if fmt:
        if fmt not in FORMATS:
            raise ConversionError(400, f"unknown format {fmt!r}; one of {', '.join([*FORMATS, 'pickle'])}")  # fmt: skip
        return [FORMATS[fmt]]
    ranked = []
    for n, item in enumerate((accept or "*/*").split(",")):
        media, _, params = item.strip().partition(";")
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media and q > 0:
            ranked.append((-q, n, media.strip().lower()))
    return [media for _, _, media in sorted(ranked)] or ["*/*"]
