"""Outputs in open formats, chosen by type and Accept, against a real `dizest serve`; pickle only
when asked; the API process never unpickles an output (a hostile one runs in the sandbox)."""

from __future__ import annotations

import io
import json
import os
import pickle
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy
import pandas
import pytest

from dizest_api.client import Client
from tests.conftest import package
from tests.serve_process import serving

CODE = """
import os
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + dizest.input("marker"),))

PLANT = (  # run by the converter's unpickling: out.bin becomes a link to a root-only file
    "import builtins, os\\n"
    "builtins.open = lambda p, *a, _o=builtins.open, **k: "
    "_o(os.devnull if p == 'out.bin' else p, *a, **k)\\n"
    f"os.symlink({dizest.input('secret')!r}, 'out.bin')\\n"
)

class Planted:
    def __reduce__(self):
        return (exec, (PLANT,))

FLOOD = (  # run by the converter's unpickling: a frame of 1 TB announced, 300 MB sent
    "import os, socket, struct\\n"
    "fds = [int(f) for f in os.listdir('/proc/self/fd')\\n"
    "       if os.path.exists(f'/proc/self/fd/{f}') and os.readlink(f'/proc/self/fd/{f}').startswith('socket:')]\\n"
    "s = socket.socket(fileno=fds[0])\\n"
    "s.sendall(struct.pack('>Q', 1 << 40))\\n"
    "for _ in range(300):\\n"
    "    s.sendall(b'A' * (1 << 20))\\n"
)

class Flood:
    def __reduce__(self):
        return (exec, (FLOOD,))

fig = Figure(figsize=(2, 2))
fig.add_subplot().plot([1, 2, 3])
dizest.output(
    as_json={"a": [1, 2.5, None], "b": "x"},
    as_text="héllo",
    as_bytes=b"\\x00\\x01raw",
    frame=pd.DataFrame({"x": [1, 2], "y": ["a", "b"]}),
    array=np.arange(6, dtype="int32").reshape(2, 3),
    figure=fig,
    image=Image.new("RGB", (3, 2), "red"),
    evil=Evil(),
    planted=Planted(),
    flood=Flood(),
)
"""
OUTPUTS = ["as_json", "as_text", "as_bytes", "frame", "array", "figure", "image", "evil", "planted", "flood"]  # fmt: skip
INPUTS = [("marker", "variable", "text"), ("secret", "variable", "text")]
PACKAGE = package({"make": {"code": CODE, "outputs": OUTPUTS, "inputs": INPUTS}}, {"m": {"app": "make"}})  # fmt: skip
SECRET = b"root-only: never served"
SERVED: dict[str, Any] = {}  # the pid of `dizest serve`, its data dir


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Client, str, Path]]:
    tmp = tmp_path_factory.mktemp("outputs")
    marker = tmp / "unpickled-here"
    secret = tmp / "root-only.txt"
    secret.write_bytes(SECRET)
    secret.chmod(0o600)
    with serving(tmp) as served:
        SERVED["pid"], SERVED["data"] = served.pid, str(served.data)
        api = Client(served.base, served.token["Authorization"].removeprefix("Bearer "), 60)
        run_id = api.submit(PACKAGE, inputs={"marker": str(marker), "secret": str(secret)})
        report = api.wait(run_id, timeout=120)
        assert report["status"] == "ready", json.dumps(report)[:2000]
        yield api, run_id, marker


def get(api: Client, run_id: str, name: str, accept: str = "*/*", query: str = "") -> tuple[int, str, bytes]:  # fmt: skip
    url = f"{api.server}/api/v1/runs/{run_id}/flows/m/outputs/{name}{query}"
    headers = {"Authorization": f"Bearer {api.token}", "Accept": accept}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as r:
            return r.status, r.headers.get_content_type(), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get_content_type(), exc.read()


def test_each_type_in_its_open_format(run: tuple[Client, str, Path]) -> None:
    api, run_id, _ = run
    assert get(api, run_id, "as_json")[1:] == ("application/json", b'{"a": [1, 2.5, null], "b": "x"}')  # fmt: skip
    assert get(api, run_id, "as_text")[1:] == ("text/plain", "héllo".encode())
    assert get(api, run_id, "as_bytes")[1:] == ("application/octet-stream", b"\x00\x01raw")
    status, kind, body = get(api, run_id, "frame")
    assert (status, kind, body) == (200, "text/csv", b"x,y\n1,a\n2,b\n")
    status, kind, body = get(api, run_id, "array")
    assert kind == "application/x-npy"
    assert numpy.load(io.BytesIO(body), allow_pickle=False).tolist() == [[0, 1, 2], [3, 4, 5]]
    for name in ("figure", "image"):
        status, kind, body = get(api, run_id, name)
        assert (status, kind, body[:8]) == (200, "image/png", b"\x89PNG\r\n\x1a\n"), name


def test_accept_and_format_choose_among_the_offered(run: tuple[Client, str, Path]) -> None:
    api, run_id, _ = run
    status, kind, body = get(api, run_id, "frame", accept="application/json")
    assert (kind, json.loads(body)) == ("application/json", [{"x": 1, "y": "a"}, {"x": 2, "y": "b"}])  # fmt: skip
    assert json.loads(get(api, run_id, "array", query="?format=json")[2]) == [[0, 1, 2], [3, 4, 5]]
    status, _, body = get(api, run_id, "frame", accept="image/png")
    assert status == 406, body
    assert "text/csv" in json.loads(body)["error"]["details"]["offered"]
    status, _, body = get(api, run_id, "frame", query="?format=parquet")
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        message = json.loads(body)["error"]["message"]
        assert status == 406 and "pyarrow" in message, body
        assert message.endswith("(type pandas.DataFrame)"), message  # it said "(type None)"
    else:
        assert status == 200 and body[:4] == b"PAR1"
    assert get(api, run_id, "frame", query="?format=yaml")[0] == 400


def test_pickle_only_when_asked(run: tuple[Client, str, Path]) -> None:
    api, run_id, _ = run
    for name in OUTPUTS:
        assert get(api, run_id, name)[1] != "application/x-python-pickle", name
    status, kind, body = get(api, run_id, "as_json", query="?format=pickle")
    assert (status, kind) == (200, "application/x-python-pickle")
    assert pickle.loads(body) == {"a": [1, 2.5, None], "b": "x"}


def test_the_api_never_unpickles_an_output(run: tuple[Client, str, Path]) -> None:
    api, run_id, marker = run
    status, _, body = get(api, run_id, "evil")
    assert status in {200, 406, 422}, body  # whatever the sandboxed child made of it
    assert not marker.exists(), "the output was unpickled outside the sandbox"


def test_the_python_client_returns_the_value(run: tuple[Client, str, Path]) -> None:
    api, run_id, _ = run
    assert api.output(run_id, "m", "as_json") == {"a": [1, 2.5, None], "b": "x"}
    assert api.output(run_id, "m", "as_text") == "héllo"
    assert api.output(run_id, "m", "as_bytes") == b"\x00\x01raw"
    frame = api.output(run_id, "m", "frame")
    assert isinstance(frame, pandas.DataFrame) and frame["y"].tolist() == ["a", "b"]
    assert api.output(run_id, "m", "array").shape == (2, 3)
    assert api.output(run_id, "m", "as_json", pickled=True) == {"a": [1, 2.5, None], "b": "x"}


def peak_rss_kb(root: int) -> dict[int, int]:
    """The peak resident size (VmHWM, kB) of `root` and each of its descendants."""
    parent, peaks = {}, {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            parent[int(pid)] = int(
                Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            )
            status = Path(f"/proc/{pid}/status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peaks[int(pid)] = int(line.split()[1])

    def under(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = parent.get(pid, 0)
        return False

    return {pid: kb for pid, kb in peaks.items() if under(pid)}


def test_a_conversion_leaves_no_folder_behind(run: tuple[Client, str, Path]) -> None:
    """Its folder goes as its download starts (a probe left one per conversion, 51x a small
    output's size, for good: a file response never called the close hook that deleted it)."""
    api, run_id, _ = run
    for name, fmt in (("as_json", "?format=json"), ("frame", "?format=csv"), ("evil", "")):
        get(api, run_id, name, query=fmt)
    work = Path(SERVED["data"]) / "runs"
    assert sorted(p.name for p in work.iterdir() if p.name.startswith(".convert-")) == []


def test_a_converted_value_that_floods_its_channel_costs_the_api_nothing(
    run: tuple[Client, str, Path],
) -> None:
    """The converter's child announces a frame of 1 TB and sends 300 MB of it: refused at its
    header (a conversion sends no value), not buffered by the API process."""
    api, run_id, _ = run
    before = peak_rss_kb(SERVED["pid"])
    status, kind, body = get(api, run_id, "flood")
    assert (status, kind) == (422, "application/json"), (status, body[:300])
    after = peak_rss_kb(SERVED["pid"])
    grown = {pid: after[pid] - kb for pid, kb in before.items() if pid in after}
    assert len(grown) >= 3 and max(grown.values()) < 100_000, grown  # kB: 300 MB before the fix


def test_a_link_the_converted_value_plants_is_never_followed(run: tuple[Client, str, Path]) -> None:
    """Unpickling runs the value's code in the converter's folder: a symlink it leaves as the
    converter's answer must not make the API (root, the host's view) serve the file it names."""
    api, run_id, _ = run
    status, kind, body = get(api, run_id, "planted")
    assert status == 422 and kind == "application/json", (status, body[:200])
    assert SECRET not in body and b"nonsense" in body


def test_an_artifact_reached_through_a_link_below_the_root_is_not_served(api) -> None:
    """A flow may leave a symlink in its own artifact folder naming another run's file (it
    cannot see that file, the API process could): a reference through it is not served."""
    from dizest_api.errors import NotFound
    from dizest_api.routes.outputs import _inside_artifacts

    root = Path(api.app.extensions["dizest"].settings.worker.artifact_dir)
    other = root / "alice-run" / "f" / "1" / "0.pkl"
    other.parent.mkdir(parents=True)
    other.write_bytes(pickle.dumps("alice's"))
    mine = root / "mallory-run" / "g" / "1"
    mine.mkdir(parents=True)
    (mine / "0.pkl").symlink_to(other)
    with api.app.test_request_context():
        with _inside_artifacts(str(other)) as f:  # a plain file: served
            assert pickle.loads(f.read()) == "alice's"
        with pytest.raises(NotFound):
            _inside_artifacts(str(mine / "0.pkl"))
        (root / "linked").symlink_to(other.parent.parent.parent)  # a folder link on the way
        with pytest.raises(NotFound):
            _inside_artifacts(str(root / "linked" / "f" / "1" / "0.pkl"))
        for outside in ("/etc/passwd", str(root / ".." / "x.pkl"), str(root)):
            with pytest.raises(NotFound):
                _inside_artifacts(outside)
