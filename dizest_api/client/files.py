"""Client calls for your drive and for outputs in open formats (docs/files.md)."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dizest_api.client.base import Base
from dizest_api.client.errors import _error
from dizest_api.payloads import decode_output, multipart


class FilesMixin(Base):
    """Your drive (files) and open-format outputs."""

    def _raw(
        self, method: str, path: str, data: bytes | None, headers: Mapping[str, str] | None = None
    ) -> Any:
        request = urllib.request.Request(
            self.server + "/api/v1" + path, data=data, method=method, headers=self._headers(headers)
        )
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                raise _error(exc.code, exc.read()) from None

    def _files(self, path: str) -> str:
        return (
            "/files/" + urllib.parse.quote(path.strip("/"), safe="/")
            if path.strip("/")
            else "/files"
        )

    def files_put(self, local: str | os.PathLike[str], remote: str) -> dict[str, Any]:
        """Upload a local file to `remote` in your drive (created or replaced)."""
        data = Path(local).read_bytes()
        headers = {"Content-Type": "application/octet-stream"}
        with self._raw("PUT", self._files(remote), data, headers) as answer:
            entry: dict[str, Any] = json.loads(answer.read())
        return entry

    def files_ls(self, path: str = "", recursive: bool = False) -> dict[str, Any]:
        """A folder of your drive: `{path, items: [{name, path, type, size, modified}], usage}`."""
        query = "?recursive=true" if recursive else ""
        listing: dict[str, Any] = self.request("GET", self._files(path) + query)
        return listing

    def files_get(self, remote: str) -> bytes:
        """The bytes of a file of your drive."""
        with self._raw("GET", self._files(remote), None) as answer:
            data: bytes = answer.read()
        return data

    def files_mkdir(self, path: str) -> dict[str, Any]:
        with self._raw("POST", self._files(path), b"") as answer:
            made: dict[str, Any] = json.loads(answer.read())
        return made

    def files_mv(self, src: str, dst: str) -> dict[str, Any]:
        moved: dict[str, Any] = self.request("PATCH", self._files(src), {"to": dst})
        return moved

    def files_rm(self, path: str) -> None:
        """Delete a file, or a folder and its contents."""
        self.request("DELETE", self._files(path))

    def submit_files(
        self,
        body: Mapping[str, Any],
        files: Mapping[str, str | os.PathLike[str]],
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """POST /runs as multipart: `body` is the JSON submit, `files` maps a path in the run's
        working directory to a local file; the answer is the new run's summary (with a known
        `idempotency_key`, that key's run: nothing new is started nor attached)."""
        parts = [("json", "", "application/json", json.dumps(dict(body)).encode())]
        parts += [("file", name, "application/octet-stream", Path(p).read_bytes()) for name, p in files.items()]  # fmt: skip
        data, content_type = multipart(parts)
        headers = {"Content-Type": content_type}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        with self._raw("POST", "/runs", data, headers) as answer:
            made: dict[str, Any] = json.loads(answer.read())
        return made

    def output(self, run_id: str, flow_id: str, name: str, pickled: bool = False) -> Any:
        """The output's value itself: decoded from the open format the server chose (JSON,
        text, bytes; a DataFrame from CSV and an array from .npy when pandas/numpy are here;
        a PNG as bytes). `pickled=True` asks for the pickle and unpickles it: only for outputs
        you trust (unpickling runs code)."""
        path = f"/runs/{self._q(run_id)}/flows/{self._q(flow_id)}/outputs/{self._q(name)}"
        query = "?format=pickle" if pickled else ""
        with self._raw("GET", path + query, None, {"Accept": "*/*"}) as answer:
            data, kind = answer.read(), answer.headers.get_content_type()
        return decode_output(data, kind)
