"""Users' drives and files attached to runs, against a real `dizest serve` (API + worker).

A run reads its user's drive through `dizest.drive()` (read-only, after its own working
directory), files attached to a submit land in the run's working directory before its flows
start, and paths that would leave a drive are refused with nothing stored.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dizest_api.client import ApiError, Client
from dizest_api.payloads import multipart
from tests.conftest import package
from tests.serve_process import ROOT, serving

SALES = ROOT / "examples" / "sales_report.dwp"
CSV = ROOT / "examples" / "data" / "sales.csv"
QUOTA_BYTES = 200_000
QUOTA_FILES = 20
_DATA: dict[str, str] = {}  # base URL -> the server's data directory


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """(base URL, admin bearer headers) of a `dizest serve` with small drive quotas."""
    tmp = tmp_path_factory.mktemp("files")
    quotas = {"drive_quota_bytes": str(QUOTA_BYTES), "drive_quota_files": str(QUOTA_FILES)}
    with serving(tmp, max_upload_bytes=str(20 << 20), **quotas) as served:
        _DATA[served.base] = str(served.data)
        yield served.base, served.token


def client(server: tuple[str, dict[str, str]]) -> Client:
    base, headers = server
    return Client(base, headers["Authorization"].removeprefix("Bearer "), timeout=60)


def raw(base: str, method: str, path: str, data: bytes | None, headers: dict[str, str]) -> tuple[int, bytes]:  # fmt: skip
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_upload_list_download_move_delete(server: tuple[str, dict[str, str]], tmp_path: Path) -> None:  # fmt: skip
    api = client(server)
    local = tmp_path / "a.txt"
    local.write_bytes(b"hello drive\n")
    entry = api.files_put(local, "crud/a.txt")
    assert entry == {**entry, "path": "crud/a.txt", "type": "file", "size": 12}
    base, headers = server
    body, kind = multipart([("f", "sub/b.bin", "application/octet-stream", b"\x00\x01")])
    status, answer = raw(base, "POST", "/api/v1/files/crud", body, {**headers, "Content-Type": kind})  # fmt: skip
    assert status == 201, answer
    assert [i["path"] for i in json.loads(answer)["items"]] == ["crud/sub/b.bin"]
    listing = api.files_ls("crud", recursive=True)
    assert [i["path"] for i in listing["items"]] == ["crud/a.txt", "crud/sub", "crud/sub/b.bin"]
    assert api.files_get("crud/a.txt") == b"hello drive\n"
    api.files_mv("crud/sub", "crud/moved")
    assert api.files_get("crud/moved/b.bin") == b"\x00\x01"
    api.files_mkdir("crud/empty")
    api.files_rm("crud/moved")
    names = [i["path"] for i in api.files_ls("crud", recursive=True)["items"]]
    assert names == ["crud/a.txt", "crud/empty"]
    with pytest.raises(ApiError) as gone:
        api.files_get("crud/moved/b.bin")
    assert gone.value.status == 404
    api.files_rm("crud")


def test_quota_bytes_413_and_files_422(server: tuple[str, dict[str, str]], tmp_path: Path) -> None:  # fmt: skip
    api = client(server)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (QUOTA_BYTES + 1))
    with pytest.raises(ApiError) as full:
        api.files_put(big, "quota/big.bin")
    assert full.value.status == 413 and full.value.code in {"quota_bytes", "too_large"}
    assert not any(i["path"].startswith("quota") for i in api.files_ls()["items"])
    small = tmp_path / "s.txt"
    small.write_bytes(b"s")
    used = api.files_ls()["usage"]["files"]
    for n in range(QUOTA_FILES - used - 1):  # the folder `quota` counts one
        api.files_put(small, f"quota/{n}.txt")
    with pytest.raises(ApiError) as many:
        api.files_put(small, "quota/one-too-many.txt")
    assert many.value.status == 422 and many.value.code == "quota_files"
    api.files_put(small, "quota/0.txt")  # replacing a file adds none
    api.files_rm("quota")
    assert api.files_ls()["usage"]["files"] == used


@pytest.mark.parametrize(
    "path", ["../escape.txt", "a/../../escape.txt", "%2E%2E/escape.txt", "a/%2E%2E/%2E%2E/x"]
)
def test_traversal_is_refused_and_nothing_stored(server: tuple[str, dict[str, str]], path: str) -> None:  # fmt: skip
    base, headers = server
    status, answer = raw(base, "PUT", f"/api/v1/files/{path}", b"evil", headers)
    assert 400 <= status < 500, answer
    assert json.loads(answer)["error"]["code"] in {"bad_path", "not_found"}
    body, kind = multipart([("f", path.replace("%2E", "."), "text/plain", b"evil")])
    status, answer = raw(base, "POST", "/api/v1/files/up", body, {**headers, "Content-Type": kind})
    assert status == 400 and json.loads(answer)["error"]["code"] == "bad_path", answer
    names = [i["path"] for i in client(server).files_ls(recursive=True)["items"]]
    assert not any("escape" in n or n.startswith("up") for n in names), names


def test_a_symlink_out_of_the_drive_is_not_followed(server: tuple[str, dict[str, str]], tmp_path: Path) -> None:  # fmt: skip
    api = client(server)
    api.files_put(CSV, "links/here.csv")
    drives = Path(server_data(server)) / "drives" / "admin" / "links"
    (drives / "out").symlink_to(tmp_path)
    (tmp_path / "secret.txt").write_text("secret")
    with pytest.raises(ApiError) as refused:
        api.files_get("links/out/secret.txt")
    assert refused.value.status == 400 and refused.value.code == "bad_path"
    with pytest.raises(ApiError):
        api.files_put(CSV, "links/out/planted.csv")
    assert not (tmp_path / "planted.csv").exists()
    api.files_rm("links")


def server_data(server: tuple[str, dict[str, str]]) -> str:
    return _DATA[server[0]]


def test_sales_report_reads_the_uploaded_csv(server: tuple[str, dict[str, str]]) -> None:
    api = client(server)
    api.files_put(CSV, "examples/data/sales.csv")
    run_id = api.submit(SALES)
    report = api.wait(run_id, timeout=120)
    assert report["status"] == "ready", json.dumps(report)[:2000]
    api.files_rm("examples")


def test_sales_report_with_the_csv_attached(server: tuple[str, dict[str, str]]) -> None:
    api = client(server)
    assert not any(i["path"] == "examples" for i in api.files_ls()["items"])
    made = api.submit_files(
        {"package": json.loads(SALES.read_text())}, {"examples/data/sales.csv": CSV}
    )
    report = api.wait(made["run_id"], timeout=120)
    assert report["status"] == "ready", json.dumps(report)[:2000]


READER = package(
    {
        "reader": {
            "code": (
                "d = dizest.drive()\n"
                "attached = d.read('notes/a.txt')\n"
                "shared = d.read('shared/b.txt')\n"
                "with open('notes/a.txt') as f:\n"
                "    direct = f.read()\n"
                "d.write('made.txt', 'written by the flow')\n"
                "try:\n"
                "    open(d.abspath('shared/b.txt'), 'a').write('x')\n"
                "    wrote = 'yes'\n"
                "except OSError as exc:\n"
                "    wrote = type(exc).__name__\n"
                "out = [attached, shared, direct, wrote]\n"
            ),
            "outputs": ["out"],
        }
    },
    {"r": {"app": "reader"}},
)


def test_attached_file_and_drive_file_read_in_a_flow(server: tuple[str, dict[str, str]], tmp_path: Path) -> None:  # fmt: skip
    api = client(server)
    shared, note = tmp_path / "b.txt", tmp_path / "a.txt"
    shared.write_text("from the drive")
    note.write_text("attached")
    api.files_put(shared, "shared/b.txt")
    made = api.submit_files({"package": READER}, {"notes/a.txt": note})
    report = api.wait(made["run_id"], timeout=120)
    assert report["status"] == "ready", json.dumps(report)[:2000]
    attached, from_drive, direct, wrote = report["flows"]["r"]["outputs"]["out"]
    assert (attached, from_drive, direct) == ("attached", "from the drive", "attached")
    assert wrote != "yes"  # the drive is read-only to runs
    assert api.files_get("shared/b.txt") == b"from the drive"
    assert "made.txt" not in [i["path"] for i in api.files_ls()["items"]]


def test_a_raw_dwp_is_stored_both_ways(server: tuple[str, dict[str, str]]) -> None:
    base, headers = server
    raw_dwp = SALES.read_bytes()
    status, answer = raw(base, "POST", "/api/v1/workflows", raw_dwp, {**headers, "Content-Type": "application/json"})  # fmt: skip
    assert status == 201, answer
    made = json.loads(answer)
    assert made["title"] in {"Untitled", json.loads(raw_dwp).get("title")}
    status, answer = raw(base, "POST", "/api/v1/workflows?title=Daily", raw_dwp, {**headers, "Content-Type": "application/json"})  # fmt: skip
    assert status == 201 and json.loads(answer)["title"] == "Daily", answer
    body, kind = multipart([("file", "sales_report.dwp", "application/json", raw_dwp)])
    status, answer = raw(base, "POST", "/api/v1/workflows", body, {**headers, "Content-Type": kind})
    assert status == 201, answer
    stored = json.loads(answer)
    assert stored["title"] == "sales_report"
    status, answer = raw(base, "GET", f"/api/v1/workflows/{stored['id']}", None, headers)
    assert json.loads(answer)["package"]["apps"].keys() == json.loads(raw_dwp)["apps"].keys()
    body, kind = multipart([("file", "broken.dwp", "application/json", b"{not json")])
    status, answer = raw(base, "POST", "/api/v1/workflows", body, {**headers, "Content-Type": kind})
    assert status == 400 and json.loads(answer)["error"]["code"] == "bad_request", answer


def test_dizest_files_and_submit_file(server: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    base, headers = server
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZEST_")}
    env.update(DIZEST_SERVER=base, DIZEST_TOKEN=headers["Authorization"].removeprefix("Bearer "))
    env["XDG_CONFIG_HOME"] = str(tmp_path)  # no profile of this machine's user

    def dizest(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "dizest_cli", *args]
        return subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)  # fmt: skip

    put = dizest("files", "put", str(CSV), "cli/sales.csv")
    assert put.returncode == 0, put.stderr
    listed = dizest("files", "ls", "cli", "--json")
    assert [i["path"] for i in json.loads(listed.stdout)["items"]] == ["cli/sales.csv"]
    usage = dizest("files", "ls", "cli").stderr  # for people: "1.4 KiB of 195 KiB, ..."
    size = r"\d+(\.\d)? (B|[KMGTP]iB)"  # (the drive holds what other tests here put too)
    assert re.match(rf"{size} of {size}, \d+ of \d+ files", usage), usage
    got = dizest("files", "get", "cli/sales.csv", "copy.csv")
    assert got.returncode == 0 and (tmp_path / "copy.csv").read_bytes() == CSV.read_bytes()
    assert dizest("files", "rm", "cli").returncode == 0
    refused = dizest("files", "put", str(CSV), "../out.csv")
    assert refused.returncode == 1 and "bad_path" in refused.stderr, refused.stderr
    (tmp_path / "examples" / "data").mkdir(parents=True)
    (tmp_path / "examples" / "data" / "sales.csv").write_bytes(CSV.read_bytes())
    submitted = dizest("submit", str(SALES), "--file", "examples/data/sales.csv", "--wait", "--json")  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr[-2000:]
    assert json.loads(submitted.stdout)["status"] == "ready"


def test_a_multipart_submit_takes_a_package_as_large_as_a_json_one(server: tuple[str, dict[str, str]], tmp_path: Path) -> None:  # fmt: skip
    """The `json` field of a multipart submit holds the same body as a JSON submit, up to the
    same `max_request_bytes` (10 MiB), not the form parser's own 500 kB: a 2 MB package with a
    file attached was refused with a 413 that a JSON submit of it is not."""
    api, note = client(server), tmp_path / "a.txt"
    note.write_text("attached")
    big = package(
        {
            "big": {
                "code": "# " + "x" * (2 << 20) + "\nout = open('notes/a.txt').read()\n",
                "outputs": ["out"],
            }
        },
        {"b": {"app": "big"}},
    )
    made = api.submit_files({"package": big}, {"notes/a.txt": note})
    report = api.wait(made["run_id"], timeout=120)
    assert report["status"] == "ready", json.dumps(report)[:2000]
    assert report["flows"]["b"]["outputs"]["out"] == "attached"


def test_a_multipart_submit_over_the_request_limit_says_which_limit(server: tuple[str, dict[str, str]], tmp_path: Path) -> None:  # fmt: skip
    base, headers = server
    body = {"package": package({"a": {"code": "# " + "x" * (11 << 20)}}, {"a": {"app": "a"}})}
    data, content_type = multipart(
        [
            ("json", "", "application/json", json.dumps(body).encode()),
            ("f", "notes/a.txt", "text/plain", b"attached"),
        ]
    )
    status, answer = raw(base, "POST", "/api/v1/runs", data, {**headers, "Content-Type": content_type})  # fmt: skip
    assert status == 413, answer[:500]
    error = json.loads(answer)["error"]
    assert error["code"] == "body_too_large", error
    assert "'json' field" in error["message"] and error["details"]["max_request_bytes"] == 10 << 20
