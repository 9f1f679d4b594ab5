"""Hostile flows against real workers: every attack of issue 7 fails with a clear result, and
another user's run, submitted alongside, finishes correctly and on time.

The workers run as root (as in the compose and systemd deployments) with the sandbox on; each
attack is a flow whose output says what it achieved, so a test fails if an attack works."""

from __future__ import annotations

import os
import pickle
import signal
import time
from pathlib import Path

import pytest

from dizest_core.job import Artifact
from tests.conftest import package, wait_for

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containment is tested as root")

READ_ENVIRON = """
import os
found = []
for pid in [p for p in os.listdir('/proc') if p.isdigit()] + [str(os.getppid()), '1']:
    try:
        found += [k.split(b'=')[0].decode() for k in open(f'/proc/{pid}/environ', 'rb').read().split(b'\\0') if k.startswith(b'DIZEST_')]
    except OSError:
        pass
v = {'dizest_vars': sorted(set(found)), 'mine': sorted(k for k in os.environ if k.startswith('DIZEST'))}
"""

# Aims only at the worker's own processes (its pid is given) and whatever the flow can see in
# /proc that is not its own tree: never a blanket kill, so a regression cannot take the machine.
SIGNAL_WORKER = """
import os, signal
mine = {os.getpid()}
targets = {os.getppid(), int(dizest.input('worker'))}
for pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:
    try:
        if os.getsid(pid) != os.getsid(0) and open(f'/proc/{pid}/cmdline', 'rb').read().find(b'dizest') >= 0:
            targets.add(pid)
    except OSError:
        pass
hits = []
for pid in sorted(targets - mine - {0}):
    try:
        os.kill(pid, signal.SIGKILL)
        hits.append(pid)
    except OSError:
        pass
v = {'killed': hits}
"""

FILES = """
import os
secret, artifact_root, other_artifact = dizest.input('secret'), dizest.input('root'), dizest.input('victim')
done = {}
def attempt(name, fn):
    try:
        fn()
        done[name] = 'succeeded'
    except Exception as e:
        done[name] = type(e).__name__
attempt('read secret', lambda: open(secret).read())
try:
    done['artifact runs seen'] = os.listdir(artifact_root)
except OSError as e:
    done['artifact runs seen'] = type(e).__name__
attempt('read other run', lambda: open(other_artifact, 'rb').read(10))
attempt('overwrite other run', lambda: open(other_artifact, 'r+b').write(b'tampered'))
attempt('write above workdir', lambda: open(os.path.join(os.getcwd(), '..', 'escape.txt'), 'w').write('x'))
attempt('write etc', lambda: open('/etc/dizest-escape', 'w').write('x'))
attempt('write own workdir', lambda: open('mine.txt', 'w').write('ok'))
attempt('uid is not root', lambda: os.getuid() == 0 and (_ for _ in ()).throw(PermissionError('root')))
v = done
"""

FORK_BOMB = """
import os, time
n = 0
try:
    for _ in range(1000):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        n += 1
except OSError:
    pass
v = n
"""

MEMORY = """
import os
kids = []
for _ in range(8):
    pid = os.fork()
    if pid == 0:
        try:
            block = bytearray(1 << 30)
            block[::4096] = b'x' * len(block[::4096])
            os._exit(0)
        except MemoryError:
            os._exit(3)
    kids.append(pid)
v = [os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids]
"""

SETSID = """
import subprocess
p = subprocess.Popen(['setsid', 'sleep', '1000' + dizest.input('tag')])
v = p.pid
"""

SOCKET = """
import socket
try:
    socket.create_connection(('127.0.0.1', int(dizest.input('port'))), timeout=2).close()
    v = 'connected'
except OSError as e:
    v = type(e).__name__
"""

VICTIM = "v = b'precious' * (300 * 1024)"  # 2.4 MB: kept as an artifact file
BYSTANDER = {"a": {"code": "v = 21", "outputs": ["v"]}, "b": {"code": "v = dizest.input('x') * 2", "inputs": ["x"], "outputs": ["v"]}}  # fmt: skip


def _attack(code: str, inputs: tuple[str, ...] = (), **dizest: object) -> dict:
    vars_ = [(name, "variable", "text") for name in inputs]
    pkg = package({"x": {"code": code, "inputs": vars_, "outputs": ["v"]}}, {"f": {"app": "x"}})
    if dizest:
        pkg["flow"]["f"]["dizest"] = dizest
    return pkg


def _bystander() -> dict:
    flows = {"a": {"app": "a"}, "b": {"app": "b", "in": {"x": [("a", "v")]}}}
    return package(BYSTANDER, flows)


def _sleepers(tag: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if f"1000{tag}".encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(int(pid))
        except OSError:
            pass
    return found


def test_hostile_flows_fail_and_the_other_user_is_unharmed(cluster, tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    secret = data / "secret_key"
    secret.write_text("s3cret")
    secret.chmod(0o600)
    worker = cluster("w1", concurrency=2, env={"DIZEST_SANDBOX_HIDE": str(data)})
    client, settings = cluster.client, cluster.settings
    victim = client.wait(client.submit(package({"p": {"code": VICTIM, "outputs": ["v"]}}, {"p": {"app": "p"}})), 60)  # fmt: skip
    artifact = next(Path(settings.artifact_dir, victim["run_id"]).rglob("*.pkl"))
    tag = str(time.monotonic_ns())
    port = settings.redis_url.rsplit(":", 1)[1].split("/")[0]
    attacks = {
        "environ": (_attack(READ_ENVIRON), {}),
        "signals": (_attack(SIGNAL_WORKER, ("worker",)), {"worker": str(worker.proc.pid)}),
        "files": (
            _attack(FILES, ("secret", "root", "victim")),
            {"secret": str(secret), "root": settings.artifact_dir, "victim": str(artifact)},
        ),
        "fork": (_attack(FORK_BOMB), {}),
        "memory": (_attack(MEMORY, memory_limit_mb=512), {}),
        "setsid": (_attack(SETSID, ("tag",)), {"tag": tag}),
        "socket": (_attack(SOCKET, ("port",), network="none"), {"port": port}),
    }
    started = time.monotonic()
    runs = {name: client.submit(pkg, inputs=inputs) for name, (pkg, inputs) in attacks.items()}
    others = [client.submit(_bystander()) for _ in range(3)]
    for run_id in others:  # the other user's runs finish, correctly, while attacks go on
        report = client.wait(run_id, timeout=60)
        assert report["status"] == "ready" and report["flows"]["b"]["outputs"]["v"] == 42
    reports = {name: client.wait(run_id, timeout=120) for name, run_id in runs.items()}
    out = {name: r["flows"]["f"].get("outputs", {}).get("v") for name, r in reports.items()}
    assert time.monotonic() - started < 90

    assert out["environ"] == {"dizest_vars": [], "mine": []}
    assert out["signals"]["killed"] == []  # nothing outside its own tree could be named
    assert worker.proc.poll() is None
    assert out["files"].pop("artifact runs seen") == [runs["files"]]  # its own run, no other
    assert out["files"] == {
        "read secret": "FileNotFoundError",  # hidden: the data dir is an empty tmpfs
        "read other run": "FileNotFoundError",
        "overwrite other run": "FileNotFoundError",
        "write above workdir": "PermissionError",
        "write etc": "PermissionError",
        "write own workdir": "succeeded",
        "uid is not root": "succeeded",
    }
    assert not Path("/etc/dizest-escape").exists()
    assert artifact.read_bytes()[:2] == b"\x80\x05"  # still the victim's pickle
    value = client.output_value(victim["run_id"], "p", "v")
    assert isinstance(value, Artifact) and value.path == str(artifact)
    assert pickle.loads(artifact.read_bytes()) == b"precious" * (300 * 1024)
    assert 0 < out["fork"] < 1000  # stopped at the flow's process limit
    assert reports["memory"]["flows"]["f"]["status"] == "ready"
    assert all(code != 0 for code in out["memory"])  # no child got its GB under 512 MB
    assert reports["setsid"]["flows"]["f"]["status"] == "ready"
    wait_for(lambda: not _sleepers(tag), timeout=10)  # the setsid process died with its flow
    assert out["socket"] in ("ConnectionRefusedError", "OSError", "PermissionError")
    # the worker took all of it and still runs flows
    after = client.wait(client.submit(_bystander()), timeout=60)
    assert after["flows"]["b"]["outputs"]["v"] == 42


def test_a_flow_cannot_kill_its_worker_by_pid(cluster):
    """Even knowing the worker's pid (read from the test), a flow cannot signal it."""
    worker = cluster("w1", concurrency=1)
    code = f"import os, signal\ntry:\n    os.kill({worker.proc.pid}, signal.SIGKILL)\n    v = 'killed'\nexcept OSError as e:\n    v = type(e).__name__"  # fmt: skip
    report = cluster.client.wait(cluster.client.submit(_attack(code)), timeout=60)
    assert report["flows"]["f"]["outputs"]["v"] in ("ProcessLookupError", "PermissionError")
    assert worker.proc.poll() is None
    os.kill(worker.proc.pid, 0)  # still there
    assert signal.SIGKILL  # the attack used the real signal


STAY = """
import os, subprocess, time
subprocess.Popen(['sleep', '1000' + dizest.input('tag')])  # lives as long as the flow's tree
os._exit = lambda code: time.sleep(300)  # DONE, then never exits
v = 1
"""


def test_a_flow_that_will_not_exit_after_done_is_killed(cluster):
    """The flow's result is in, then its process sleeps instead of exiting (and what it
    started lives on with it): the worker has its tree killed as the task ends (`settle`)."""
    cluster("w1", concurrency=1)
    tag = str(time.monotonic_ns())
    run_id = cluster.client.submit(_attack(STAY, ("tag",)), inputs={"tag": tag})
    report = cluster.client.wait(run_id, timeout=60)
    assert report["flows"]["f"]["status"] == "ready", report["flows"]["f"]
    wait_for(lambda: not _sleepers(tag), timeout=10)
