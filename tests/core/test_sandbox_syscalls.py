"""Holes a hostile probe found on 2026-12-03, each closed by a layer and held here by a flow that
tries it (real zygote, real forks, sandbox on as in workers: the engine is root):

- System V IPC: a flow saw the host's segments and left its own behind after its run (holding
  memory charged to a slot cgroup the next flow reuses) -> `ipcns`;
- `fallocate`: blocks reserved past the file-size limit and unseen by the disk guard -> the
  `seccomp` filter answers EOPNOTSUPP (glibc's posix_fallocate then writes, which both see);
- network `none` still reached a host service through a Unix socket named by a path -> the
  filter denies `socket(AF_UNIX)` to such flows;
- every flow held the zygote's signal wake-up pipe, and writing to it kept the zygote busy;
- a flow without a memory limit could exhaust the machine with the kernel free to kill Redis
  or the API first -> flows are the OOM killer's first choice;
- a key left in a slot uid's keyring was read by the next user's flow in that slot, and flows
  could make user namespaces -> the filter denies the key calls and CLONE_NEWUSER.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import socket
import threading
from pathlib import Path

import pytest

from tests.conftest import package

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox needs a root engine")

IPC_CREAT = 0o1000
IPC_RMID = 0


def run_one(make_workflow, tmp_path: Path, code: str, network: str | None = None, **settings):
    pkg = package({"x": {"code": code, "outputs": ["v"]}}, {"f": {"app": "x"}})
    if network:
        pkg["flow"]["f"]["dizest"] = {"network": network}
    report = make_workflow(pkg, sandbox="on", **settings).run(workdir=tmp_path, timeout=60)
    flow = report["flows"]["f"]
    assert flow["status"] == "ready", flow
    return flow["outputs"]["v"]


def host_segments() -> dict[int, int]:
    """key -> owner uid of every System V shared memory segment of the host's namespace."""
    lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    return {int(f[0]): int(f[7]) for f in (line.split() for line in lines)}


def test_a_flow_has_a_system_v_ipc_of_its_own_that_ends_with_it(make_workflow, tmp_path):
    libc = ctypes.CDLL(None, use_errno=True)
    host_key, flow_key = (0x5D000000 + secrets.randbelow(1 << 20) for _ in range(2))
    host_id = libc.shmget(host_key, 4096, IPC_CREAT | 0o666)  # anyone may attach to it
    assert host_id >= 0, os.strerror(ctypes.get_errno())
    code = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        f"host = libc.shmget({host_key}, 0, 0)\n"
        "seen = ctypes.get_errno() if host < 0 else 'attached'\n"
        f"mine = libc.shmget({flow_key}, 1 << 20, {IPC_CREAT} | 0o666)\n"
        "v = {'host': seen, 'mine': mine >= 0}\n"
    )
    try:
        found = run_one(make_workflow, tmp_path, code)
        assert found == {"host": errno.ENOENT, "mine": True}
        segments = host_segments()
        assert host_key in segments  # the host's own is untouched
        assert flow_key not in segments  # the flow's went with its namespace
    finally:
        libc.shmctl(host_id, IPC_RMID, None)


def test_fallocate_reserves_nothing_past_the_file_size_limit(make_workflow, tmp_path):
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "fd = os.open('big', os.O_CREAT | os.O_RDWR, 0o600)\n"
        "kept = libc.fallocate(fd, 1, ctypes.c_long(0), ctypes.c_long(64 << 20))  # KEEP_SIZE\n"
        "kept = ctypes.get_errno() if kept < 0 else 'allocated'\n"
        "import fcntl, struct\n"
        "try:  # FS_IOC_RESVSP64: the same reservation through an ioctl\n"
        "    fcntl.ioctl(fd, 0x4030582A, struct.pack('hhqq4q', 0, 0, 0, 64 << 20, 0, 0, 0, 0))\n"
        "    ioctl = 'allocated'\n"
        "except OSError as exc:\n"
        "    ioctl = exc.errno\n"
        "try:\n"
        "    os.posix_fallocate(fd, 0, 64 << 20)\n"
        "    grown = 'allocated'\n"
        "except OSError as exc:\n"
        "    grown = exc.errno\n"
        "blocks_mb = os.fstat(fd).st_blocks * 512 >> 20\n"
        "v = {'keep_size': kept, 'ioctl': ioctl, 'posix': grown, 'blocks_mb': blocks_mb}\n"
    )
    found = run_one(make_workflow, tmp_path, code, max_file_mb=8)
    assert found["keep_size"] == found["ioctl"] == errno.EOPNOTSUPP
    assert found["posix"] == errno.EFBIG  # glibc wrote the blocks instead: the limit held
    assert found["blocks_mb"] <= 8


@pytest.fixture
def host_unix_socket():
    """A Unix socket anyone may connect to, at a path flows see (outside every cover)."""
    folder = Path("/var/tmp") / f"dizest-test-{secrets.token_hex(4)}"
    folder.mkdir(mode=0o755)
    path = folder / "service.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    path.chmod(0o777)
    server.listen(8)
    accepted: list[socket.socket] = []
    thread = threading.Thread(target=lambda: _accept(server, accepted), daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.close()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()
        shutil.rmtree(folder)


def _accept(server: socket.socket, accepted: list[socket.socket]) -> None:
    while True:
        try:
            accepted.append(server.accept()[0])
        except OSError:
            return


CONNECT = """
import socket
try:
    s = socket.socket(socket.AF_UNIX)
    s.connect({path!r})
    s.close()
    a, b = socket.socketpair()  # a channel between the flow's own processes
    a.send(b'x')
    v = 'connected' if b.recv(1) == b'x' else 'no socketpair'
except OSError as exc:
    v = exc.errno
try:  # a datagram pair's socket could sendto() the host's path
    c, d = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    c.sendto(b'hi', {path!r})
    v = [v, 'sent']
except OSError as exc:
    v = [v, exc.errno]
"""


def test_network_none_reaches_no_unix_socket_of_the_host(make_workflow, tmp_path, host_unix_socket):
    code = CONNECT.format(path=str(host_unix_socket))
    assert run_one(make_workflow, tmp_path, code, network="none") == [errno.EACCES, errno.EACCES]
    # the same socket with network egress: the test would see a filter that let `none` through
    (tmp_path / "egress").mkdir()
    # (a stream socket refuses a datagram: EPROTOTYPE, yet the call went out)
    egress = run_one(make_workflow, tmp_path / "egress", code, network="egress")
    assert egress == ["connected", errno.EPROTOTYPE]


def test_a_flow_holds_no_descriptor_the_zygote_has(make_workflow, tmp_path):
    code = (
        "import os\n"
        "v = [os.readlink(f'/proc/self/fd/{fd}') for fd in os.listdir('/proc/self/fd')\n"
        "     if os.path.exists(f'/proc/self/fd/{fd}')]\n"
    )
    pkg = package({"x": {"code": code, "outputs": ["v"]}}, {"f": {"app": "x"}})
    wf = make_workflow(pkg, sandbox="on")
    report = wf.run(workdir=tmp_path, timeout=60)
    flow_links = {link for link in report["flows"]["f"]["outputs"]["v"] if ":[" in link}
    outer = wf.runner.supervisor.zygote.proc.pid  # pid 1 of its namespace is its child
    inner = Path(f"/proc/{outer}/task/{outer}/children").read_text().split()
    zygote_links = set()
    for pid in [outer, *map(int, inner)]:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):  # closed meanwhile
                zygote_links.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    assert flow_links and not flow_links & zygote_links


MANY_OUTPUTS = """
for i in range(24):
    dizest.output(f'o{i}', bytes([i]) * (1 << 20))  # 24 MB inline would pass half of 16 MB
v = 'sent'
"""

RAW_FRAMES = """
import os, socket, stat
from dizest_core import wire
def is_socket(fd):
    try:
        return stat.S_ISSOCK(os.fstat(fd).st_mode)
    except OSError:
        return False
fd = next(fd for fd in range(3, 1024) if is_socket(fd))
conn = socket.socket(fileno=fd)
for i in range(40):  # past the runtime: 1 MB frames straight to the engine, 40 MB in all
    wire.send_frame(conn, (wire.OUTPUT, f'o{i}', b'x' * (1 << 20), None))
v = 'sent'
"""


def test_what_a_flow_sends_the_engine_is_bounded(make_workflow, tmp_path):
    apps = {
        "many": {"code": MANY_OUTPUTS, "outputs": ["v"]},
        "raw": {"code": RAW_FRAMES, "outputs": ["v"]},
        "ok": {"code": "v = 'fine'", "outputs": ["v"]},
        "use": {
            "code": "x = dizest.input('x')\nv = [len(x), x[0]]",
            "inputs": ["x"],
            "outputs": ["v"],
        },
    }
    flows = {
        "many": {"app": "many"},
        "use": {"app": "use", "in": {"x": [("many", "o23")]}},
        "raw": {"app": "raw"},
        "other": {"app": "ok"},
    }
    wf = make_workflow(package(apps, flows), sandbox="on", max_output_bytes=16 << 20)
    report = wf.run(workdir=tmp_path, timeout=60)
    flows_out = report["flows"]
    assert flows_out["other"]["outputs"] == {"v": "fine"}
    # the runtime's own outputs go to files once they fill half the budget: all arrive
    many = flows_out["many"]
    assert many["status"] == "ready", many
    assert sorted(many["outputs"]) == sorted([*(f"o{i}" for i in range(24)), "v"])
    assert flows_out["use"]["outputs"] == {"v": [1 << 20, 23]}  # read back from its file
    # frames written past the runtime stop at the budget, with the reason
    raw = flows_out["raw"]
    assert raw["status"] == "error"
    assert "over 16 MB of outputs in all" in raw["reason"]


def test_an_output_frame_counts_once_however_it_arrives_and_results_do_not():
    """The budget is what the engine keeps: each OUTPUT frame once, when complete (a frame read
    in many pieces was once counted at every piece), and never a RESULT, which is passed on."""
    from dizest_core import wire

    head, body = wire.encode_frame((wire.OUTPUT, "v", b"x" * (1 << 20), None))
    frame = head + body
    reader = wire.FrameReader(total=(3 << 20) + 4096)
    for _ in range(3):  # three 1 MB outputs in 64 kB reads: 3 MB and a little, under budget
        got = [m for at in range(0, len(frame), 1 << 16) for m in reader.feed(frame[at : at + (1 << 16)])]  # fmt: skip
        assert [m[0] for m in got] == [wire.OUTPUT]
    assert 3 << 20 < reader.kept <= (3 << 20) + 4096
    head, body = wire.encode_frame((wire.RESULT, "plot", {"mime": "text/plain", "data": "y" * (1 << 20)}))  # fmt: skip
    for _ in range(10):
        assert reader.feed(head + body)[0][0] == wire.RESULT
    with pytest.raises(wire.ProtocolError, match="outputs in all"):
        reader.feed(frame)


def test_the_kernel_kills_flows_first_when_memory_runs_out(make_workflow, tmp_path):
    code = (
        "score = open('/proc/self/oom_score_adj').read().strip()\n"
        "try:\n"
        "    open('/proc/self/oom_score_adj', 'w').write('0')\n"
        "    lowered = 'lowered'\n"
        "except OSError as exc:\n"
        "    lowered = type(exc).__name__\n"
        "v = [score, lowered]\n"
    )
    assert run_one(make_workflow, tmp_path, code) == ["1000", "PermissionError"]


def test_an_output_budget_below_twice_the_inline_limit_is_a_config_error():
    from dizest_core.errors import ConfigError
    from dizest_core.settings import Settings

    with pytest.raises(ConfigError, match="DIZEST_MAX_OUTPUT_BYTES must be at least twice"):
        Settings(max_output_bytes=(1 << 20) + 1)
    assert Settings(max_output_bytes=2 << 20).max_output_bytes == 2 << 20


KEYS_AND_USERNS = """
import ctypes, os, platform, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
NR = {'x86_64': (248, 250, 272), 'aarch64': (217, 219, 97)}[platform.machine()]
def call(*args):
    return ctypes.get_errno() if libc.syscall(*args) < 0 else 'allowed'
# add_key("user", "mallory-left-this", "secret", 6, KEY_SPEC_USER_KEYRING)
add_key = call(NR[0], b'user', b'mallory-left-this', b'secret', 6, -4)
keyctl = call(NR[1], 0, -4, 0)  # KEYCTL_GET_KEYRING_ID of @u
userns = call(NR[2], 0x10000000)  # unshare(CLONE_NEWUSER)
ran = []
t = threading.Thread(target=lambda: ran.append('thread'))
t.start(); t.join()
ran.append(subprocess.run(['/bin/echo', 'child'], capture_output=True, text=True).stdout.strip())
v = {'add_key': add_key, 'keyctl': keyctl, 'userns': userns, 'ran': ran}
"""


def test_a_flow_gets_no_kernel_keyring_and_no_user_namespace(make_workflow, tmp_path):
    """Slot uids are reused and a uid's keyring outlives its processes: a key one user's flow
    added to @u was read by the next user's flow in that slot. A user namespace makes a flow
    "root" to much kernel code. Threads and subprocesses still start (clone3 answers ENOSYS,
    and glibc falls back to clone)."""
    found = run_one(make_workflow, tmp_path, KEYS_AND_USERNS)
    assert found == {
        "add_key": errno.EPERM,
        "keyctl": errno.EPERM,
        "userns": errno.EPERM,
        "ran": ["thread", "child"],
    }
