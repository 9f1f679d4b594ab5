"""Output downloads that one user cannot turn against the API process: an artifact file changed
after its run is not read past its stored size, and one user's slow conversions do not hold up
another's. Against the app on a real worker (its converter sandboxed, in this process)."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from dizest_api.convert import MIB, Converter
from dizest_core.job import Artifact
from tests.api.test_runs import Live, serve_live
from tests.conftest import package, wait_for


@pytest.fixture(scope="module")
def live(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    with serve_live(redis_url, tmp_path_factory.mktemp("fair-out")) as found:
        yield found


@pytest.fixture
def converting(live: Live) -> Iterator[Live]:
    """`live`, its converter (a zygote, a child of this process) closed afterwards."""
    yield live
    found = live.app.extensions.pop("dizest_convert", None)
    if found is not None:
        found.close()


def produce(live: Live, headers: dict[str, str], code: str) -> str:
    """A finished run of one flow `f` with output `v`."""
    pkg = package({"a": {"code": code, "outputs": ["v"]}}, {"f": {"app": "a"}})
    answer = live.call("POST", "/runs", headers, json={"package": pkg})
    assert answer.status_code == 201, answer.json
    report = live.wait(answer.json["run_id"], headers, timeout=60)
    assert report["status"] == "ready", report
    return str(answer.json["run_id"])


def test_an_artifact_changed_after_its_run_is_refused_never_read_whole(converting: Live) -> None:
    live = converting
    alice = live.user("alice")
    run_id = produce(live, alice, "v = b'x' * (3 << 20)")  # over the inline limit: a file
    stored = live.services.client.output_value(run_id, "f", "v")
    assert isinstance(stored, Artifact)
    path = f"/runs/{run_id}/flows/f/outputs/v"
    whole = live.call("GET", f"{path}?format=pickle", alice)
    assert whole.status_code == 200 and pickle.loads(whole.data) == b"x" * (3 << 20)
    assert live.call("GET", f"{path}?format=bytes", alice).data == b"x" * (3 << 20)
    for size in (stored.size + (64 << 20), stored.size - 1):  # grown (sparse), cut short
        os.truncate(stored.path, size)
        for fmt in ("json", "bytes", "pickle"):
            answer = live.call("GET", f"{path}?format={fmt}", alice)
            assert answer.status_code == 409, (fmt, answer.status_code)
            error = answer.json["error"]
            assert error["code"] == "output_changed", error
            assert error["details"] == {"stored_bytes": stored.size, "file_bytes": size}


# A value whose unpickling (in the converter) says it started, then holds its converter until
# the test lets it go: a file `go` in its working directory.
HOLD = """
class Slow:
    def __reduce__(self):
        return (exec, ("import os, time\\nopen('started', 'w').close()\\n"
                       "while not os.path.exists('go'):\\n    time.sleep(0.02)\\n",))
v = Slow()
"""


def started(live: Live) -> list[Path]:
    """The working folders of conversions whose value has started unpickling."""
    assert live.worker_settings is not None
    root = Path(live.worker_settings.workdir_root)
    return [marker.parent for marker in root.glob(".convert-*/started")]


def let_go(folders: list[Path]) -> None:
    for folder in folders:
        with contextlib.suppress(FileNotFoundError):  # done and deleted already
            (folder / "go").touch()


def test_one_user_s_slow_conversions_do_not_hold_up_another_s(converting: Live) -> None:
    """mallory's value holds a converter: her second conversion is refused at once (429),
    alice's completes meanwhile; once eve's holds the other converter too, alice waits a few
    seconds at most (503, Retry-After), and gets hers once one is free."""
    live = converting
    mallory, eve, alice = live.user("mallory"), live.user("eve"), live.user("alice")
    slow = {name: produce(live, who, HOLD) for name, who in (("mallory", mallory), ("eve", eve))}
    mine = produce(live, alice, "v = 42")
    path = "/runs/{}/flows/f/outputs/v?format=json"
    pool = ThreadPoolExecutor(4)

    def get(headers: dict[str, str], run_id: str) -> Any:
        client = live.app.test_client()  # one per thread
        return client.get(f"/api/v1{path.format(run_id)}", headers=headers)

    held: list[Path] = []
    try:
        first = pool.submit(get, mallory, slow["mallory"])
        held += wait_for(lambda: started(live), timeout=30)
        again = pool.submit(get, mallory, slow["mallory"]).result(timeout=10)
        assert again.status_code == 429, again.status_code
        assert again.json["error"]["code"] == "too_many_conversions"
        assert int(again.headers["Retry-After"]) > 0
        answer = pool.submit(get, alice, mine).result(timeout=20)  # not behind mallory's
        assert (answer.status_code, answer.data) == (200, b"42")
        assert not first.done(), "mallory's conversion was not running meanwhile"
        blocker = pool.submit(get, eve, slow["eve"])
        held += wait_for(lambda: [f for f in started(live) if f not in held], timeout=30)
        busy = pool.submit(get, alice, mine).result(timeout=20)
        assert busy.status_code == 503, busy.status_code
        assert busy.json["error"]["code"] == "converter_busy"
        assert int(busy.headers["Retry-After"]) > 0
        let_go(held[:1])  # mallory's ends: alice gets its converter
        assert first.result(timeout=20).status_code == 200
        answer = pool.submit(get, alice, mine).result(timeout=20)
        assert (answer.status_code, answer.data) == (200, b"42")
        let_go(held)
        assert blocker.result(timeout=20).status_code == 200
    finally:
        let_go(held + started(live))
        pool.shutdown(wait=True)


@pytest.fixture
def small(live: Live) -> Iterator[Converter]:
    """`live` with a converter whose answers are at most 16 MiB, of which one user's downloads
    may hold 20 MiB at once (closed afterwards)."""
    assert live.worker_settings is not None
    found = Converter(live.worker_settings, max_answer_bytes=16 * MIB, held_bytes=20 * MIB)
    live.app.extensions["dizest_convert"] = found
    yield found
    live.app.extensions.pop("dizest_convert", None)
    found.close()


def fetch(live: Live, headers: dict[str, str], run_id: str, fmt: str) -> tuple[int, bytes]:
    """The output `v` of `run_id`'s flow `f`, over real HTTP."""
    url = f"{live.base_url}/api/v1/runs/{run_id}/flows/f/outputs/v?format={fmt}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def convert_files() -> list[str]:
    """What this process (the app's, its converter's parent) holds open of conversion folders."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if ".convert-" in (target := os.readlink(f"/proc/self/fd/{fd}")):
                found.append(target)
    return found


# A value whose unpickling (in the converter) patches `open`, so the converter's own
# open("out.bin", "wb") first writes GROW_KB kB there, past any error (a file-size limit's).
GROW = """
PATCH = (
    "import builtins\\n"
    "def _open(p, *a, _o=builtins.open, **k):\\n"
    "    f = _o(p, *a, **k)\\n"
    "    if p == 'out.bin':\\n"
    "        try:\\n"
    "            for _ in range({kb}):\\n"
    "                f.write(b'x' * 1024)\\n"
    "        except OSError:\\n"
    "            pass\\n"
    "    return f\\n"
    "builtins.open = _open\\n"
)
class Grow:
    def __reduce__(self):
        return (exec, (PATCH,))
v = Grow()
"""


def test_an_answer_over_the_cap_is_refused_and_no_file_kept(small: Converter, live: Live) -> None:
    """bob's value makes the converter's answer grow past the cap: stopped by the child's
    file-size limit (64 MiB asked), or past the cap and under that limit (16.5 MiB): a JSON
    422 either way, its file gone (before: a 200 of each, the file held while it was read)."""
    bob = live.user("bob")
    for kb in (64 << 10, (16 << 10) + 512):
        run_id = produce(live, bob, GROW.replace("{kb}", str(kb)))
        status, body = fetch(live, bob, run_id, "json")
        assert status == 422, (kb, status, body[:200])
        error = json.loads(body)["error"]
        assert error["code"] == "not_convertible" and str(16 * MIB) in error["message"], error
        assert convert_files() == [], "a refused answer's file is still held"
        assert small.held.held("bob") == 0
    fine = produce(live, bob, GROW.replace("{kb}", str(8 << 10)))  # under the cap: served
    status, body = fetch(live, bob, fine, "json")
    assert (status, len(body)) == (200, (8 << 20) + len(b"null"))
    work = Path(live.worker_settings.workdir_root)  # type: ignore[union-attr]
    assert list(work.glob(".convert-*")) == []


def hold_download(live: Live, headers: dict[str, str], run_id: str) -> socket.socket:
    """A GET of `run_id`'s output as bytes by a client that, once its status line is in,
    reads no more (a small receive buffer: the server's writes soon block)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(60)
    sock.connect(("127.0.0.1", int(live.base_url.rsplit(":", 1)[1])))
    request = (
        f"GET /api/v1/runs/{run_id}/flows/f/outputs/v?format=bytes HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\nAuthorization: {headers['Authorization']}\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def test_one_user_s_held_downloads_are_bounded(small: Converter, live: Live) -> None:
    """mallory holds a download of a 12 MiB answer open, reading nothing: her next answer
    would take her past the 20 MiB her downloads may hold (429, its file not kept), alice's
    is served; once mallory's client goes, hers are served again (before: every one was
    served, each holding its file until its slow reader was done)."""
    mallory, alice = live.user("mallory"), live.user("alice")
    run_id = produce(live, mallory, "v = b'x' * (12 << 20)")
    theirs = produce(live, alice, "v = b'y' * (12 << 20)")
    held = hold_download(live, mallory, run_id)
    try:
        status, body = fetch(live, mallory, run_id, "bytes")
        assert status == 429, (status, body[:200])
        error = json.loads(body)["error"]
        assert error["code"] == "too_many_downloads", error
        assert error["details"]["held_bytes"] == 12 * MIB, error
        assert len(convert_files()) == 1, convert_files()  # the held one's, no other
        assert fetch(live, alice, theirs, "bytes") == (200, b"y" * (12 << 20))
    finally:
        held.close()
    wait_for(lambda: small.held.held("mallory") == 0, timeout=30)
    assert fetch(live, mallory, run_id, "bytes") == (200, b"x" * (12 << 20))
    # the server closes the answer's file after its last write, which the client may read first
    wait_for(lambda: convert_files() == [], timeout=30)
