"""`dizest serve` heals and holds its secrets, end to end on a real serve: a child that dies is
restarted; a SIGKILLed master leaves no process behind and a new serve on the same port and data
dir is ready only once its own worker is; without a worker, submits are 503 no_worker; the
embedded Redis has a password that no log line or command line shows."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis

from tests.api.conftest import redis_url, session_prefix  # noqa: F401
from tests.conftest import wait_for
from tests.redis_server import free_port
from tests.serve_process import (
    DATA,
    PASSWORD,
    admin_token,
    call,
    launch,
    serving,
    stop_session,
    wait_ok,
)


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first), None if gone/zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in {"Z", "X"} else fields


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def started(pid: int) -> int | None:
    """When `pid` started (clock ticks since boot), None if gone: with the pid, one process."""
    fields = proc_stat(pid)
    return int(fields[19]) if fields is not None else None


def still_there(processes: dict[int, int | None]) -> list[int]:
    """The pids of `processes` (pid -> start time) that still name the same live process."""
    return [pid for pid, start in processes.items() if start is not None and started(pid) == start]


def tree(root: int) -> set[int]:
    """`root` and all its live descendants, from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := proc_stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[1])
    found, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return {pid for pid in found if proc_stat(pid) is not None}


def child(serve_pid: int, marker: str) -> int | None:
    """The live direct child of serve whose command line contains `marker`."""
    for pid in tree(serve_pid):
        fields = proc_stat(pid)
        if fields is not None and int(fields[1]) == serve_pid and marker in cmdline(pid):
            return pid
    return None


def embedded_redis(tmp: Path, log: Path) -> redis.Redis:
    """A client of the serve's embedded Redis (port from its log, password from its file)."""
    found = re.search(r"redis redis://:\*\*\*@127\.0\.0\.1:(\d+)/0", log.read_text())
    assert found, log.read_text()
    secret = (tmp / "data" / "redis.password").read_text().strip()
    return redis.Redis(host="127.0.0.1", port=int(found[1]), password=secret)


def flow_processes(serve_pid: int) -> list[int]:
    """The processes below a zygote (flows) in serve's tree."""
    zygotes = {pid for pid in tree(serve_pid) if "dizest_core.zygote" in cmdline(pid)}
    return [pid for zygote in zygotes for pid in tree(zygote) if pid != zygote]


def wait_run(base: str, token: dict[str, str], run_id: str, timeout: float = 60) -> dict:
    def ended() -> dict | None:
        status, report, _ = call(base, "GET", f"/api/v1/runs/{run_id}", headers=token)
        assert status == 200, report
        return None if report["status"] in {"pending", "running"} else report

    return wait_for(ended, timeout=timeout, interval=0.05)


FANOUT = json.loads((DATA / "c03_fanout.dwp").read_text())


def test_a_child_that_dies_is_restarted_and_says_how_it_died(tmp_path: Path) -> None:
    with serving(tmp_path) as served:
        worker = child(served.pid, "dizest_cli worker")
        api = child(served.pid, "dizest_api.gunicorn_app")
        assert worker and api
        os.kill(worker, signal.SIGKILL)
        log = served.log
        wait_for(lambda: f"worker (pid {worker}) killed by SIGKILL" in log.read_text(), 10)
        # its beat is gone with it: no run is accepted that nobody would take
        assert call(served.base, "GET", "/readyz")[0] == 503
        status, _, headers = call(served.base, "POST", "/api/v1/runs", {"package": FANOUT}, served.token)  # fmt: skip
        assert status == 503 and headers["Retry-After"] == "5"
        os.kill(api, signal.SIGKILL)
        wait_for(lambda: f"api (pid {api}) killed by SIGKILL" in log.read_text(), 10)
        new_worker = wait_for(lambda: child(served.pid, "dizest_cli worker"), 10)
        assert new_worker != worker
        wait_ok(served.base, "/readyz", _Alive(served.pid), time.monotonic() + 60)
        status, ready, _ = call(served.base, "GET", "/readyz")
        assert status == 200 and ready["workers"], ready
        if os.geteuid() == 0:  # the restarted worker runs flows in the whole sandbox again
            layers = ready["sandbox"][ready["workers"][0]]
            assert layers["identity"] == layers["pidns"] == layers["redis_auth"] == "active", layers
        status, run, _ = call(served.base, "POST", "/api/v1/runs", {"package": FANOUT}, served.token)  # fmt: skip
        assert status == 201, run
        assert wait_run(served.base, served.token, run["run_id"])["status"] == "ready"

        server = child(served.pid, "valkey-server")
        assert server
        os.kill(server, signal.SIGKILL)  # back on the same port, with the same password
        wait_for(lambda: f"redis (pid {server}) killed by SIGKILL" in log.read_text(), 10)
        client = embedded_redis(tmp_path, log)
        wait_for(lambda: _answers(client), timeout=15, interval=0.1)
        assert child(served.pid, "valkey-server") not in {None, server}


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:  # refused, or still loading its append-only file
        return False


class _Alive:
    """What `wait_ok` polls: a process that must stay alive meanwhile."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def poll(self) -> int | None:
        return None if proc_stat(self.pid) is not None else 1


SLOW = {
    "apps": {
        "nap": {
            "id": "nap",
            "title": "nap",
            "inputs": [],
            "outputs": [{"name": "v"}],
            "code": "import time\nprint('tick', flush=True)\ntime.sleep(120)\nv = 1",
        }
    },
    "flow": {"n": {"id": "n", "app_id": "nap", "active": True, "inputs": {}, "outputs": {}}},
}


def test_sigkill_of_the_master_leaves_no_orphan_and_a_new_serve_waits_for_its_worker(
    tmp_path: Path,
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = launch(tmp_path, port, log_name="first.log")
    second = None
    try:
        wait_ok(base, "/readyz", first, time.monotonic() + 60)
        token = admin_token(base)
        status, run, _ = call(base, "POST", "/api/v1/runs", {"package": SLOW}, token)
        assert status == 201, run
        # a flow process is running: the whole tree, down to it, must go with the master
        path = f"/api/v1/runs/{run['run_id']}"
        wait_for(lambda: call(base, "GET", path, headers=token)[1]["status"] == "running", 30)
        wait_for(lambda: flow_processes(first.pid), timeout=30)
        # each pid with its start time: the suite forks so much that pids wrap (pid_max 32768)
        # within seconds, and a pid alone may name another test's process by then
        before = {pid: started(pid) for pid in tree(first.pid)}
        names = {pid: cmdline(pid) for pid in before}
        assert len(before) >= 9, names  # serve, redis, worker (+pool, reaper, zygote, flow), api
        first.kill()
        first.wait(timeout=10)
        try:
            wait_for(lambda: not still_there(before), timeout=10)
        except AssertionError:
            raise AssertionError(f"left: {[names[p] for p in still_there(before)]}") from None

        launched_ms = time.time() * 1000
        second = launch(tmp_path, port, log_name="second.log")
        log = tmp_path / "second.log"
        deadline = time.monotonic() + 60
        while True:  # /readyz is 503 (or refused) until this serve's own worker beats
            assert second.poll() is None, log.read_text()
            with contextlib.suppress(OSError):
                if call(base, "GET", "/readyz")[0] == 200:
                    break
            assert time.monotonic() < deadline, "never ready"
            time.sleep(0.05)
        # what made it ready: beats written since the launch, none left by the first instance
        # (the whole first tree was gone before the launch)
        beats = embedded_redis(tmp_path, log).hgetall("dz:workers")
        assert beats and all(float(ms) >= launched_ms for ms in beats.values()), beats
        assert " ready." in log.read_text()
        token = admin_token(base)
        status, run, _ = call(base, "POST", "/api/v1/runs", {"package": FANOUT}, token)
        assert status == 201, run
        assert wait_run(base, token, run["run_id"])["status"] == "ready"
    finally:
        if first.poll() is None:  # killed above, its session id may be taken by now
            assert not stop_session(first), "processes of the first serve left behind"
        if second is not None:
            left = stop_session(second)
            assert not left, f"processes left behind: {left}"


def test_without_a_worker_submits_are_503_no_worker(tmp_path: Path) -> None:
    with serving(tmp_path, "--no-worker", ready=False) as served:
        status, _, _ = call(served.base, "GET", "/readyz")
        assert status == 503
        request = urllib_json(served.base, "/api/v1/runs", {"package": FANOUT}, served.token)
        assert request[0] == 503 and request[2]["Retry-After"] == "5", request
        assert request[1]["error"]["code"] == "no_worker", request
        status, made, _ = call(
            served.base,
            "POST",
            "/api/v1/workflows",
            {"title": "t", "package": FANOUT},
            served.token,
        )
        assert status == 201, made
        compat = urllib_json(served.base, f"/dizest/api/run/{made['id']}", {}, served.token)
        assert compat[0] == 503 and compat[1]["error"]["code"] == "no_worker", compat
        status, runs, _ = call(served.base, "GET", "/api/v1/runs", headers=served.token)
        assert status == 200 and runs["total"] == 0  # nothing was accepted


def urllib_json(
    base: str, path: str, body: object, headers: dict[str, str]
) -> tuple[int, dict, dict[str, str]]:
    """(status, JSON body even for an error, headers) of a POST."""
    import urllib.error
    import urllib.request

    sent = {"Content-Type": "application/json", **headers}
    request = urllib.request.Request(base + path, json.dumps(body).encode(), sent, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read()), dict(answer.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), dict(exc.headers)


def test_the_embedded_redis_password_is_kept_secret(tmp_path: Path) -> None:
    with serving(tmp_path) as served:
        secret_file = served.data / "redis.password"
        secret = secret_file.read_text().strip()
        assert len(secret) >= 32
        assert secret_file.stat().st_mode & 0o777 == 0o600
        assert (served.data / "redis" / "valkey.conf").stat().st_mode & 0o777 == 0o600
        status, run, _ = call(served.base, "POST", "/api/v1/runs", {"package": FANOUT}, served.token)  # fmt: skip
        assert status == 201, run
        assert wait_run(served.base, served.token, run["run_id"])["status"] == "ready"
        members = tree(served.pid)
        assert len(members) >= 5
        for pid in members:
            assert secret not in cmdline(pid), cmdline(pid)
        port = embedded_redis(tmp_path, served.log).connection_pool.connection_kwargs["port"]
        anonymous = redis.Redis(host="127.0.0.1", port=port)
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
        anonymous.close()
        assert redis.Redis(host="127.0.0.1", port=port, password=secret).ping()
    output = served.log.read_text()  # the whole output, stop included
    assert "redis redis://:***@127.0.0.1:" in output
    assert secret not in output
    assert PASSWORD not in output


@pytest.mark.skipif(os.geteuid() != 0, reason="the worker's sandbox layers as a root worker's")
def test_a_worker_that_refuses_its_configuration_stops_the_serve_not_restarted(
    tmp_path: Path,
    redis_url: str,  # noqa: F811
    session_prefix: str,  # noqa: F811
) -> None:
    """A Redis URL without a password (README's cluster example, followed literally): the
    worker refuses to start (redis_auth is a required layer). It was restarted forever, the
    wait doubling, while the API served without it; now the serve stops and says why."""
    if urlsplit(redis_url).password:
        pytest.skip("the test Redis has a password")
    proc = launch(tmp_path, free_port(), redis_url=redis_url, prefix=f"{session_prefix}refuse")
    try:
        assert proc.wait(timeout=60) != 0
    finally:
        assert not stop_session(proc), "processes left behind"
    output = (tmp_path / "serve.log").read_text()
    assert "redis_auth" in output and "DIZEST_REDIS_URL has no password" in output, output
    assert "the worker refused to start on its configuration" in output, output
    assert "restarting it" not in output and "worker restarted" not in output, output
