"""The child -> engine channel is untrusted: messages are JSON plus opaque bytes, every one is
checked, and a flow that sends anything else (a pickle, a file reference outside its artifact
folder) ends in error while the engine and the other flows carry on."""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import pytest

from dizest_core import wire
from dizest_core.errors import ProtocolError
from dizest_core.job import Artifact
from tests.conftest import package

MESSAGES = [
    (wire.RESULT, "chart", {"mime": "image/png", "data": "iVBOR"}),
    (wire.OUTPUT, "v", b"\x80\x05K\x01.", {"$type": "builtins.set", "$repr": "{1}"}),
    (wire.OUTPUT, "big", Artifact("/a/r/f/1/0.pkl", 12), [1, 2]),
    (
        wire.ERROR,
        {"type": "ValueError", "message": "boom \udc80", "traceback": "Tb", "compiled": True},
    ),
    (wire.DONE,),
]
RECORDS = [(wire.LOG, "line\none"), (wire.LOG, {"mime": "text/html", "data": "<b>"}), (wire.CLEAR,)]


def frame(fields: object, blob: bytes = b"") -> bytes:
    meta = json.dumps(fields).encode()
    body = struct.pack(">I", len(meta)) + meta + blob
    return struct.pack(">Q", len(body)) + body


@pytest.mark.parametrize("message", MESSAGES, ids=lambda m: m[0])
def test_frames_round_trip(message: tuple) -> None:
    head, blob = wire.encode_frame(message)
    data = head + blob
    reader = wire.FrameReader(limit=1 << 20)
    got = [m for i in range(len(data)) for m in reader.feed(data[i : i + 1])]  # byte by byte
    assert got == [message]


@pytest.mark.parametrize("message", RECORDS, ids=lambda m: m[0])
def test_records_round_trip_on_one_line(message: tuple) -> None:
    line = wire.encode_record(message)
    assert line.startswith(wire.LOG_MARK) and line.count(b"\n") == 1 and line.endswith(b"\n")
    assert wire.decode_record(line[len(wire.LOG_MARK) : -1]) == message


BAD_FRAMES = {
    "pickle": struct.pack(">Q", 20) + pickle.dumps(("done",), protocol=5).ljust(20, b"."),
    "not json": frame("x")[:12] + b"{nope" + b" " * 5,
    "not an object": frame(["done"]),
    "unknown kind": frame({"kind": "exec"}),
    "missing field": frame({"kind": "result", "name": "x"}),
    "extra field": frame({"kind": "done", "code": "import os"}),
    "wrong type": frame({"kind": "result", "name": 1, "value": {"mime": "a", "data": "b"}}),
    "bad payload": frame({"kind": "result", "name": "x", "value": {"mime": "a", "data": 1}}),
    "negative size": frame(
        {"kind": "output", "name": "v", "artifact": {"path": "/x", "size": -1}, "preview": 1}
    ),
    "bool size": frame(
        {"kind": "output", "name": "v", "artifact": {"path": "/x", "size": True}, "preview": 1}
    ),
    # resolving a 2 MB path held a worker process for 47 s (quadratic in its length)
    "a path longer than any": frame(
        {"kind": "output", "name": "v", "artifact": {"path": "/a" * 2049, "size": 1}, "preview": 1}
    ),
    "artifact and bytes": frame(
        {"kind": "output", "name": "v", "artifact": {"path": "/x", "size": 1}, "preview": 1}, b"x"
    ),
    "trailing bytes": frame({"kind": "done"}, b"x"),
    "log on the socket": frame({"kind": "log", "entry": "x"}),
    "NaN": frame({"kind": "output", "name": "v", "artifact": None, "preview": float("nan")}),
    "oversized": struct.pack(">Q", 1 << 40),
    "short": struct.pack(">Q", 2) + b"ab",
}


@pytest.mark.parametrize("data", BAD_FRAMES.values(), ids=list(BAD_FRAMES))
def test_malformed_frames_are_protocol_errors(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        wire.FrameReader(limit=1 << 20).feed(data)


def test_records_accept_only_log_and_clear() -> None:
    with pytest.raises(ProtocolError):
        wire.decode_record(json.dumps({"kind": "done"}).encode())
    with pytest.raises(ProtocolError):
        wire.decode_record(b'{"kind": "log", "entry": 5}')


# --------------------------------------------------------------------------- through real runs

FIND_SOCKET = (
    "import os, socket, stat\n"
    "def engine_socket():\n"
    "    for name in os.listdir('/proc/self/fd'):\n"
    "        try:\n"
    "            if stat.S_ISSOCK(os.fstat(int(name)).st_mode):\n"
    "                return socket.socket(fileno=os.dup(int(name)))\n"
    "        except OSError:\n"
    "            pass\n"
)


def run_hostile(make_workflow, tmp_path: Path, code: str) -> dict:
    pkg = package(
        {
            "evil": {"code": FIND_SOCKET + code, "outputs": ["v"]},
            "use": {"code": "v = dizest.input('x')", "inputs": ["x"], "outputs": ["v"]},
            "ok": {"code": "v = 'fine'", "outputs": ["v"]},
        },
        {"evil": {"app": "evil"}, "use": {"app": "use", "in": {"x": [("evil", "v")]}}},
    )
    pkg["flow"]["other"] = {"id": "other", "app_id": "ok", "active": True, "data": {}}
    report = make_workflow(pkg).run(workdir=tmp_path, timeout=60)
    flows = report["flows"]
    assert flows["other"]["outputs"] == {"v": "fine"}  # the engine carried on
    assert (flows["use"]["status"], flows["use"]["reason"]) == ("idle", "upstream failed: evil")
    assert flows["evil"]["status"] == "error"
    return flows["evil"]


def test_a_pickle_sent_by_a_flow_never_runs_in_the_engine(make_workflow, tmp_path):
    marker = tmp_path / "unpickled-in-the-engine"
    code = (
        "import pickle, struct\n"
        "class Evil:\n"
        "    def __reduce__(self):\n"
        f"        return (open, ({str(marker)!r}, 'w'))\n"
        "body = pickle.dumps(Evil())\n"
        "engine_socket().sendall(struct.pack('>Q', len(body)) + body)\n"
        "v = 1\n"
    )
    flow = run_hostile(make_workflow, tmp_path, code)
    assert not marker.exists()
    assert flow["reason"].startswith("protocol error: the flow sent a frame that ")


FIND_FOLDER = (
    "import gc\n"
    "job = next(o for o in gc.get_objects() if type(o).__name__ == 'FlowJob')\n"
    "folder = os.path.join(job.artifact_dir, job.run_id, job.flow_id, str(job.attempt))\n"
    "os.makedirs(folder, exist_ok=True)\n"
)
ARTIFACTS = {
    "outside the folder": "path = SECRET\n",
    "symlink out of the folder": "path = folder + '/0.pkl'\nos.symlink(SECRET, path)\n",
    "another attempt's folder": (
        "path = folder[:-1] + '9/0.pkl'\nos.makedirs(os.path.dirname(path))\n"
        "open(path, 'w').write(open(SECRET).read())\n"
    ),
    "wrong size": "path = folder + '/0.pkl'\nopen(path, 'w').write('x')\n",
    "a directory": "path = folder + '/0.pkl'\nos.mkdir(path)\n",
}


@pytest.mark.parametrize("setup", ARTIFACTS.values(), ids=list(ARTIFACTS))
def test_an_output_file_must_be_the_flows_own(make_workflow, tmp_path, setup):
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2\n")
    code = (
        FIND_FOLDER
        + f"SECRET = {str(secret)!r}\n"
        + setup
        + "from dizest_core import wire\n"
        + "from dizest_core.job import Artifact\n"
        + "size = os.path.getsize(SECRET)\n"
        + "wire.send_frame(engine_socket(), (wire.OUTPUT, 'stolen', Artifact(path, size), None))\n"
        + "v = 1\n"
    )
    flow = run_hostile(make_workflow, tmp_path, code)
    assert flow["reason"].startswith("protocol error: output 'stolen' refers to ")


def test_a_garbled_log_record_is_shown_as_text(make_workflow, tmp_path):
    # The pipe is shared with subprocesses; a broken record must not fail the flow.
    code = "import os\nos.write(1, b'\\x1edizest\\x1f{not json}\\n')\nprint('after')\nv = 1\n"
    pkg = package({"a": {"code": code, "outputs": ["v"]}}, {"f": {"app": "a"}})
    flow = make_workflow(pkg).run(workdir=tmp_path)["flows"]["f"]
    assert flow["status"] == "ready"
    assert flow["log"] == ["{not json}", "after"]


def test_a_message_of_many_json_containers_is_refused_before_it_is_parsed() -> None:
    """25 MB of `{},` parse to 8.5 million dicts (2 GB, a probe found): past MAX_CONTAINERS
    objects and arrays a message is refused whole; brackets inside strings do not count."""
    many = frame({"kind": "output", "name": "v", "artifact": None, "preview": [{}] * 10_001})
    with pytest.raises(ProtocolError, match="10003 JSON objects and arrays"):
        wire.FrameReader().feed(many)
    text = "{[" * 100_000 + '\\"{'  # a long repr full of brackets, as a preview may be
    fine = frame({"kind": "output", "name": "v", "artifact": None, "preview": {"$repr": text}})
    (message,) = wire.FrameReader().feed(fine)
    assert message[3] == {"$repr": text}
    record = json.dumps({"kind": "log", "entry": [[]] * 10_001}).encode()
    with pytest.raises(ProtocolError, match="JSON objects and arrays"):
        wire.decode_record(record)


def test_a_flow_that_sends_a_frame_of_millions_of_objects_costs_the_engine_little(
    make_workflow, tmp_path
):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code = (
        "import struct\n"
        'meta = b\'{"kind":"output","name":"v","artifact":null,"preview":[\' + b\'{},\' * 3_000_000 + b\'{}]}\'\n'
        "body = struct.pack('>I', len(meta)) + meta\n"
        "engine_socket().sendall(struct.pack('>Q', len(body)) + body)\n"
        "v = 1\n"
    )
    flow = run_hostile(make_workflow, tmp_path, code)
    assert "3000003 JSON objects and arrays (at most 10000)" in flow["reason"], flow["reason"]
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 150_000, grown_kb  # 3 million dicts parsed would be ~250 MB
