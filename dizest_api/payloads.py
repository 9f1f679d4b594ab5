"""Bodies the Python client sends and reads besides JSON: multipart uploads (files for a drive
or a submit) and outputs in open formats. Standard library only; pandas and numpy are used when
they are installed, to give back a DataFrame or an array.
"""

from __future__ import annotations

import io
import json
import os
import pickle
from typing import Any


def multipart(parts: list[tuple[str, str, str, bytes]]) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request: parts are (field, file name or
    "", content type, bytes)."""
    boundary = f"dizest{os.urandom(12).hex()}"
    out = bytearray()
    for field, filename, kind, data in parts:
        disposition = f'form-data; name="{field}"' + (
            f'; filename="{filename}"' if filename else ""
        )
        head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: {kind}\r\n\r\n"
        out += head.encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def decode_output(data: bytes, kind: str) -> Any:
    """An output's value from its open format (see `Client.output`)."""
    if kind == "application/json":
        return json.loads(data)
    if kind.startswith("text/") and kind != "text/csv":
        return data.decode("utf-8")
    if kind == "text/csv":
        try:
            import pandas

            return pandas.read_csv(io.BytesIO(data))
        except ImportError:
            return data.decode("utf-8")
    if kind == "application/x-npy":
        import numpy

        return numpy.load(io.BytesIO(data), allow_pickle=False)
    if kind == "application/x-python-pickle":
        return pickle.loads(data)  # asked for explicitly: trusted outputs only
    return data
