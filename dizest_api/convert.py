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
`DIZEST_PRELOAD=pandas` (the zygote imports it once) removes that. The zygote starts on the first
conversion in each API process and lives as long as it. Conversions in one process take turns
on one lock (a Supervisor is single-threaded); each is bounded by `TIMEOUT_S` and a memory limit.

`?format=pickle` returns the stored bytes as they are (Python only, and only for outputs you
trust: unpickling them runs code); it never needs the sandbox.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
from dataclasses import dataclass
from typing import BinaryIO

from dizest_api.plainfile import open_beneath
from dizest_core.execution import Finished, Supervisor
from dizest_core.job import FlowJob
from dizest_core.model import InputSpec
from dizest_core.sandbox import make_policy
from dizest_core.settings import child_environment
from dizest_worker.client import WorkerSettings

TIMEOUT_S = 60.0
MAX_NOTE_BYTES = 1 << 20  # the converter's out.json: a media type, or an error and offers
MEMORY_MB = 1024
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
    note = {"error": "parquet needs pyarrow, which is not installed on the server", "offered": offer}
elif media is None:
    note["error"] = "no format you accept fits this output"
    note["offered"] = offer
with open("out.json", "w") as f:
    json.dump(note, f)
if data is not None:
    with open("out.bin", "wb") as f:
        f.write(data)
"""


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


class Converter:
    """One sandboxed zygote per API process, started on first use; conversions take turns."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._supervisor: Supervisor | None = None

    def _started(self) -> Supervisor:
        if self._supervisor is None or self._supervisor.zygote.proc.poll() is not None:
            s, engine = self.settings, self.settings.engine
            policy = make_policy(engine, server=True, hide=(s.workdir_root, s.artifact_dir, s.drive_root))  # fmt: skip
            env = child_environment(extra=engine.flow_env)
            self._supervisor = Supervisor(env, engine.preload, (), policy, engine.disk_reserve_mb)
        return self._supervisor

    def convert(self, pickled: bytes, wanted: list[str]) -> Converted:
        """Convert one serialized value to the first of `wanted` media types it can take."""
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
        )
        try:
            finished = self._run(job)
            return self._answer(finished, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _run(self, job: FlowJob) -> Finished:
        with self._lock:
            supervisor = self._started()
            supervisor.launch(job, TIMEOUT_S)
            try:
                while True:
                    for item in supervisor.poll(1.0):
                        if isinstance(item, Finished):
                            return item
            finally:
                supervisor.settle()  # what a converter that said DONE left: none polls after

    @staticmethod
    def _answer(finished: Finished, folder: str) -> Converted:
        note_file = open_beneath(folder, "out.json")
        if not finished.ok or note_file is None:
            if note_file is not None:
                note_file.close()
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
        return Converted(media, data, folder, EXTENSIONS[media])

    def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.close()


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
