"""One output of a run's flow as a download, in an open format (`dizest_api.convert`).

    GET /runs/<run>/flows/<flow>/outputs/<name>                    by type and `Accept`
    GET /runs/<run>/flows/<flow>/outputs/<name>?format=csv         or json, text, bytes, parquet,
                                                                   npy, png
    GET /runs/<run>/flows/<flow>/outputs/<name>?format=pickle      the stored pickle (Python only;
                                                                   trusted outputs only)

By type: JSON values -> application/json; str -> text/plain; bytes -> application/octet-stream;
pandas DataFrames -> text/csv (or application/vnd.apache.parquet when pyarrow is installed, or
JSON records); numpy arrays -> application/x-npy (or JSON); matplotlib figures and PIL images ->
image/png. No format the client accepts fits the value: 406 with the formats it could have
(`details.offered`); a value no open format fits: 406 too, naming `?format=pickle`.

An output kept in a file (an artifact) is served only while the file holds exactly the size
stored with its reference, and never more than that is read: a file changed after its flow ended
(grown sparse to gigabytes, or cut short) answers 409 `output_changed`.

A conversion is one of a few at once per API process, one per user (`dizest_api.convert`):
another of the same user's answers 429 `too_many_conversions`, and one that finds no converter
free within a few seconds 503 `converter_busy`, both with Retry-After. An answer over 512 MiB is
422 `not_convertible`; one that would take the user's downloads in progress past 1 GiB held on
this process's disk is 429 `too_many_downloads` (`dizest_api.held_answers`).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import threading
from typing import Any, BinaryIO

from flask import Blueprint, Response, current_app, request, send_file

from dizest_api.auth import current
from dizest_api.convert import FORMATS, ConversionError, Converter, wanted_types
from dizest_api.endpoint import endpoint
from dizest_api.errors import ApiError, NotFound
from dizest_api.plainfile import open_beneath
from dizest_api.routes.runs import open_run
from dizest_api.schemas import ERR, Body
from dizest_api.services import services
from dizest_core.job import Artifact

bp = Blueprint("outputs", __name__)

FORMAT = {"format": "json, text, bytes, csv, parquet, npy, png, or pickle (Python only, trusted)"}
PICKLE = "application/x-python-pickle"
MAX_CONVERT_BYTES = 512 << 20
CHUNK = 1 << 20  # bytes read at a time from a pickle being downloaded
MEDIA = (*FORMATS.values(), PICKLE)


class NotAcceptable(ApiError):
    status, code = 406, "not_acceptable"


class NotConvertible(ApiError):
    status, code = 422, "not_convertible"


class OutputChanged(ApiError):
    status, code = 409, "output_changed"


def converter() -> Converter:
    """The app's converter, made on first use (once: its per-user count is the process's)."""
    with _CONVERTER_LOCK:
        found: Converter | None = current_app.extensions.get("dizest_convert")
        if found is None:
            found = current_app.extensions["dizest_convert"] = Converter(services().settings.worker)  # fmt: skip
        return found


_CONVERTER_LOCK = threading.Lock()


@endpoint(bp, "GET", "/runs/<run_id>/flows/<flow_id>/outputs/<name>",
          "One output as a download, in an open format chosen by its type and Accept",
          query=FORMAT,
          responses={200: Body(MEDIA, None, "the output in the format asked for"), 406: ERR,
                     409: ERR, 422: ERR, 429: ERR, 503: ERR})  # fmt: skip
def download_output(run_id: str, flow_id: str, name: str) -> Response:
    open_run(run_id)
    value = services().client.output_value(run_id, flow_id, name)
    if value is None:
        raise NotFound(f"flow {flow_id!r} of run {run_id} has no output {name!r}")
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{flow_id}.{name}")
    fmt = request.args.get("format")
    if fmt == "pickle":
        return _same_origin(_pickle(value, stem))
    try:
        wanted = wanted_types(fmt, request.headers.get("Accept"))
        converted = converter().convert(lambda: _bytes(value), wanted, current().username)
    except ConversionError as exc:
        if exc.status == 400:
            raise ApiError(str(exc)) from None
        details = {"offered": exc.offered, "pickle": "?format=pickle (Python only, trusted only)"}
        raise (NotAcceptable if exc.status == 406 else NotConvertible)(str(exc), details) from None
    # The converter's folder goes now: its file is open, and is read through that handle until
    # the download ends. Not at the response's close: a file response (sendfile) never calls
    # it, and a probe left every conversion's folder on the disk (51x a small output, for good).
    shutil.rmtree(converted.folder, ignore_errors=True)
    try:
        response = send_file(
            converted.file,
            mimetype=converted.media_type,
            as_attachment=True,
            download_name=f"{stem}.{converted.extension}",
        )
    except BaseException:
        converted.file.close()  # gives its bytes back to the user's held downloads
        raise
    # the server's close of the body closes the file, ending its hold (`held_answers`); and a
    # server that sends it with sendfile sends this many bytes, never what the file grew to
    response.content_length = converted.size
    response.call_on_close(converted.file.close)
    return _same_origin(response)


def _same_origin(response: Response) -> Response:
    """A download is this origin's own: another site may not load it as a script, style or
    image (`no-cors`); the API's CORS answers to allowed origins are not affected."""
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


def _pickle(value: bytes | Artifact, stem: str) -> Response:
    if isinstance(value, Artifact):
        capped = io.BufferedReader(_Capped(_artifact(value), value.size), CHUNK)
        return send_file(capped, mimetype=PICKLE, as_attachment=True,
                         download_name=f"{stem}.pickle")  # fmt: skip
    disposition = f'attachment; filename="{stem}.pickle"'
    return Response(bytes(value), mimetype=PICKLE, headers={"Content-Disposition": disposition})


def _bytes(value: bytes | Artifact) -> bytes:
    """The serialized value (read, never unpickled, here)."""
    if not isinstance(value, Artifact):
        return bytes(value)
    if value.size > MAX_CONVERT_BYTES:
        raise NotConvertible(f"outputs over {MAX_CONVERT_BYTES} bytes are only served as ?format=pickle")  # fmt: skip
    with _artifact(value) as f:
        data = f.read(value.size)
    if len(data) != value.size:  # cut short since it was opened
        raise _changed(value, len(data))
    return data


def _artifact(value: Artifact) -> BinaryIO:
    """The artifact's file, opened, if it still holds the size stored with the reference (the
    flow wrote it before the engine checked it; a file changed since, grown to gigabytes or
    cut short, is not what was checked and is not served). Read no more than `value.size`."""
    found = _inside_artifacts(value.path)
    size = os.fstat(found.fileno()).st_size
    if size != value.size:
        found.close()
        raise _changed(value, size)
    return found


def _changed(value: Artifact, size: int) -> OutputChanged:
    return OutputChanged(
        f"this output's file holds {size} bytes, not the {value.size} stored with it: it "
        "changed after its flow ended, and is not served",
        {"stored_bytes": value.size, "file_bytes": size},
    )


class _Capped(io.RawIOBase):
    """The first `left` bytes of a file, whatever it holds past them."""

    def __init__(self, file: BinaryIO, left: int) -> None:
        super().__init__()
        self._file, self._left = file, left

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._file.read(min(len(buffer), self._left))
        self._left -= len(data)
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


def _inside_artifacts(path: str) -> BinaryIO:
    """The artifact file, opened, only if it lies in the artifact directory and is reached
    without a symlink below it (`plainfile`): a reference in Redis must never make this process
    serve another file of the server, and a flow may plant a link in its own folder (to a file
    of another run it cannot see, but this process could)."""
    configured = os.path.abspath(services().settings.worker.artifact_dir)
    found = open_beneath(configured, os.path.relpath(os.path.abspath(path), configured))
    if found is None:
        raise NotFound("this output's file is gone")
    return found
