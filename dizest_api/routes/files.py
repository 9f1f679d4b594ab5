"""The caller's drive over HTTP (`dizest_api.drives`): list, download, upload, move, delete.

    GET    /files[/<folder>]?recursive=true    a folder's entries, and the drive's usage
    GET    /files/<file>                       the file's bytes
    PUT    /files/<file>                       the raw body becomes the file (created or replaced)
    POST   /files[/<folder>]                   multipart: every file part is stored in the folder
                                               under its file name (which may hold sub-folders);
                                               no part at all: the folder is created
    PATCH  /files/<path>  {"to": "new/path"}   move or rename a file or folder
    DELETE /files/<path>                       delete a file or a folder with its contents

Uploads may be up to `max_upload_bytes` (not the API's `max_request_bytes`; over it 413
`request_entity_too_large`, `too_large` for a chunked body) and must fit the user's quotas: 413
`quota_bytes`, 422 `quota_files` (files and folders count), 507 `insufficient_storage` below
the disk reserve. A path that would leave the drive (`..`,
absolute, a symlink out) or pass the depth and length limits (`dizest_api.drive_rules`; for a
move, with the moved folder's own depth) is 400 `bad_path`, and nothing is stored. A listing
gives at most `LIST_MAX_ENTRIES` entries (`truncated` says when some were left out).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, jsonify, request, send_file
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import RequestEntityTooLarge

from dizest_api.attachments import Attached
from dizest_api.auth import current
from dizest_api.drive_rules import BadPath, NoSuchPath, clean
from dizest_api.drives import UserDrive
from dizest_api.endpoint import Field, checked, endpoint, json_body, json_value
from dizest_api.errors import BadInput, BodyTooLarge
from dizest_api.schemas import ERR, Body
from dizest_api.services import services

bp = Blueprint("files", __name__)

MOVE = {"to": Field("string", True, description="the new path in your drive")}
LISTING = {"recursive": Field("boolean", description="list sub-folders too (true/false)")}
UPLOAD = "multipart/form-data"
# A file is served as bytes whatever its name: as its guessed type, a file `x.json` (any bytes)
# was application/json, which the document (and a client) takes for a folder's listing.
FILE_BYTES = "application/octet-stream"
LISTING_OR_FILE = Body(
    {"application/json": "Listing", FILE_BYTES: None},
    description="a folder: its listing (JSON); a file: its bytes, as an attachment",
)


def user_drive(username: str | None = None) -> UserDrive:
    found = services().settings
    return UserDrive(
        found.worker.drive_root,
        username or current().username,
        found.drive_quota_bytes,
        found.drive_quota_files,
        workdir_root=found.worker.workdir_root,
        reserve_mb=found.worker.engine.disk_reserve_mb,
    )


def attach(parts: list[tuple[str, Any]]) -> Attached:
    """The files attached to this request's submit, counted against the caller's drive."""
    return Attached(parts, user_drive(), services().settings.worker.workdir_root)


def allow_upload() -> None:
    """Let this request's body be up to `max_upload_bytes` (before anything reads it). One
    that a thread reads took one of its user's body slots already (`dizest_api.body_slots`)."""
    request.max_content_length = services().settings.max_upload_bytes


def uploaded_files(folder: str = "", upload: bool = True) -> list[tuple[str, FileStorage]]:
    """The multipart file parts of this request, each with its checked path below `folder`;
    BadPath (nothing stored) when any of them would leave it. `upload`: files for a drive or a
    run (`allow_upload`); else the request's own limit holds."""
    if upload:
        allow_upload()
    if request.mimetype != UPLOAD:
        raise BadInput(f"send the files as {UPLOAD}", {"content_type": request.mimetype})
    parts = []
    for field_name, storage in request.files.items(multi=True):
        name = storage.filename or field_name
        parts.append((clean(f"{folder}/{name}" if folder else name), storage))
    return parts


def _recursive() -> bool:
    """The `recursive` query parameter: checked for a file too, which does not use it."""
    recursive = request.args.get("recursive", "false").lower()
    if recursive not in ("true", "false", "1", "0"):
        raise BadInput("recursive must be true or false")
    return recursive in ("true", "1")


def _listing(drive: UserDrive, path: str) -> Response:
    items, truncated = drive.listing(path, recursive=_recursive())
    usage = drive.usage().to_dict(drive.quota_bytes, drive.quota_files)
    return jsonify(
        {
            "path": clean(path, allow_root=True),
            "items": items,
            "truncated": truncated,
            "usage": usage,
        }
    )


@endpoint(bp, "GET", "/files", "Your drive's top folder and its usage", query=LISTING,
          responses={200: "Listing"})  # fmt: skip
def list_root() -> Response:
    return _listing(user_drive(), "")


@endpoint(bp, "GET", "/files/<path:path>", "A folder's entries, or a file's bytes", query=LISTING,
          responses={200: LISTING_OR_FILE, 400: ERR})  # fmt: skip
def get_path(path: str) -> Response:
    drive, _ = user_drive(), _recursive()
    real = drive.resolve(path)
    if real == drive.path or os.path.isdir(real):
        return _listing(drive, path)
    if not os.path.isfile(real):
        raise NoSuchPath(f"no {path!r} in your drive")
    name = real.rsplit("/", 1)[-1]
    response = send_file(real, FILE_BYTES, as_attachment=True, download_name=name)
    # a drive file is this origin's own: no other site may load it as a script, style or image
    response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


@endpoint(bp, "PUT", "/files/<path:path>", "Store the raw body as a file (created or replaced)",
          responses={201: "DriveEntry", 400: ERR, 409: ERR, 413: ERR, 422: ERR})  # fmt: skip
def put_file(path: str) -> tuple[Response, int]:
    allow_upload()
    drive = user_drive()
    limit = services().settings.max_upload_bytes
    entry = drive.store(path, request.stream, limit, expected=request.content_length)
    return jsonify(entry), 201


@endpoint(bp, "POST", "/files", "Upload files (multipart) into your drive's top folder",
          responses={201: "Uploaded", 400: ERR, 413: ERR, 422: ERR})  # fmt: skip
def upload_root() -> tuple[Response, int]:
    return _upload("")


@endpoint(bp, "POST", "/files/<path:path>", "Upload files (multipart) into a folder; no file: "
          "create the folder",
          responses={201: "Uploaded", 400: ERR, 409: ERR, 413: ERR, 422: ERR})  # fmt: skip
def upload_into(path: str) -> tuple[Response, int]:
    return _upload(path)


def _upload(folder: str) -> tuple[Response, int]:
    drive = user_drive()
    limit = services().settings.max_upload_bytes
    if folder:
        drive.resolve(folder)
    parts = uploaded_files(clean(folder, allow_root=True)) if request.content_length else []
    items: list[dict[str, Any]] = []
    if not parts:
        if not folder:
            raise BadInput("no file in the request")
        items.append(drive.mkdir(folder))
    for rel, storage in parts:
        items.append(drive.store(rel, storage.stream, limit))
    usage = drive.usage().to_dict(drive.quota_bytes, drive.quota_files)
    return jsonify({"items": items, "usage": usage}), 201


@endpoint(bp, "PATCH", "/files/<path:path>", "Move or rename a file or folder", body=MOVE,
          responses={200: "DriveEntry", 409: ERR})  # fmt: skip
def move_path(path: str) -> Response:
    body = json_body(MOVE)
    return jsonify(user_drive().move(path, body["to"]))


@endpoint(bp, "DELETE", "/files/<path:path>", "Delete a file, or a folder and its contents",
          responses={204: None, 400: ERR})  # fmt: skip
def delete_path(path: str) -> Response:
    drive = user_drive()
    if clean(path, allow_root=True) == "":
        raise BadPath("refusing to delete your whole drive")
    drive.delete(path)
    return Response(status=204)


# -- files attached to a submit -----------------------------------------------------------
SUBMIT_FIELD = "json"  # the multipart field that holds the submit's JSON body


def submit_body(fields: Mapping[str, Field]) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
    """A submit's body and its attached files: a JSON body (no files), or multipart with the
    same JSON in the `json` field and file parts whose file names are paths in the run's
    working directory (`dizest submit my.dwp --file data/sales.csv`)."""
    if request.mimetype != UPLOAD:
        return json_body(fields), []
    allow_upload()
    # the `json` field is the JSON body of the other form: the same limit, not the form
    # parser's own 500 kB (a 2 MB package with a file attached was a 413)
    limit = request.max_form_memory_size = services().settings.max_request_bytes
    try:
        raw = request.form.get(SUBMIT_FIELD)
    except RequestEntityTooLarge:
        if (request.content_length or 0) > (request.max_content_length or 0):
            raise  # the whole body: the upload limit says so
        raise BodyTooLarge(
            f"the {SUBMIT_FIELD!r} field of a multipart submit is over {limit} bytes"
            " (max_request_bytes, as a JSON body)",
            {"max_request_bytes": limit},
        ) from None
    if raw is None:
        raise BadInput(f"a multipart submit needs its JSON body in the {SUBMIT_FIELD!r} field")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise BadInput(f"malformed JSON in {SUBMIT_FIELD!r}: {exc}") from None
    return checked(body, fields), uploaded_files()


# -- a .dwp as DIZEST writes it ------------------------------------------------------------
def workflow_body(fields: Mapping[str, Field]) -> dict[str, Any]:
    """A new workflow's `{title, package}`: the envelope itself, or the .dwp as DIZEST writes it
    (a JSON body with `apps` and `flow` at the top, or a multipart file upload), titled by
    `?title=`, else the file's name without `.dwp`, else the package's own title. A .dwp sent
    as a file is a request body like the JSON one, at most `max_request_bytes`: it was read
    whole and parsed at `max_upload_bytes` (a probe's 100 MB one took the API process from
    56 MB to 1.16 GB)."""
    if request.mimetype == UPLOAD:
        parts = uploaded_files(upload=False)
        if len(parts) != 1:
            raise BadInput("upload exactly one .dwp file")
        name, storage = parts[0]
        try:
            package = json.loads(storage.read())
        except (ValueError, RecursionError) as exc:
            raise BadInput(f"{name} is not a .dwp (JSON): {exc}") from None
        title = os.path.basename(name).removesuffix(".dwp")
    else:
        package = json_value()
        if not (isinstance(package, dict) and "apps" in package and "flow" in package):
            return checked(package, fields)
        title = ""
    if not isinstance(package, dict):
        raise BadInput("a .dwp is a JSON object with apps and flow")
    title = request.args.get("title") or title or str(package.get("title") or "") or "Untitled"
    return {"title": title, "package": package}
