"""Issue 7's escalation, replayed as a second user against a real `dizest serve` (root, embedded
Redis with a password, sandboxed flows): the flow finds no secret in any environment or file it
can see, Redis refuses it (NOAUTH), another run's artifact is out of reach, the user's token
cannot list users, and the first user's run finishes untouched."""

from __future__ import annotations

import json
import os
import pickle
import re
from pathlib import Path

import pytest

from tests.api.test_serve_heal import wait_run
from tests.conftest import package
from tests.serve_process import PASSWORD, call, password_session, serving

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containment is tested as root")

ESCALATE = r"""
import os, socket
seen = {}
secrets = []
for pid in [p for p in os.listdir('/proc') if p.isdigit()]:
    try:
        secrets += [k.split(b'=')[0].decode() for k in open(f'/proc/{pid}/environ', 'rb').read().split(b'\0') if b'PASSWORD' in k or k.startswith(b'DIZEST_')]
    except OSError:
        pass
seen['environ secrets'] = sorted(set(secrets))
for name in ('secret_key', 'redis.password', 'redis/valkey.conf'):
    try:
        open(os.path.join(dizest.input('data'), name)).read()
        seen[name] = 'read'
    except OSError as e:
        seen[name] = type(e).__name__
try:
    open(dizest.input('victim'), 'r+b').write(b'tampered')
    seen['victim'] = 'overwritten'
except OSError as e:
    seen['victim'] = type(e).__name__
s = socket.create_connection(('127.0.0.1', int(dizest.input('port'))), timeout=5)
s.sendall(b'HSET dz:tokens:evil scopes admin\r\n')
seen['redis'] = s.recv(200).decode().split(' ')[0]
v = seen
"""

VICTIM = "v = b'precious' * (300 * 1024)"  # 2.4 MB: an artifact file


def session(base: str, user: dict[str, str]) -> dict[str, str]:
    """Cookie and CSRF headers of a logged-in session."""
    return password_session(base, user["username"], user["password"])[0]


def new_users(base: str, *names: str) -> dict[str, dict[str, str]]:
    """Each of `names` made a user by the admin, with an API token of its own: the token as
    made (`token`, `id`), by name."""
    admin = session(base, {"username": "admin", "password": PASSWORD})
    made = {}
    for name in names:
        user = {"username": name, "password": f"{name}-password-1"}
        assert call(base, "POST", "/api/v1/users", user, admin)[0] == 201
        made[name] = call(base, "POST", "/api/v1/tokens", {"name": "t"}, session(base, user))[1]
    return made


def test_a_second_user_cannot_escalate_or_touch_the_first(tmp_path: Path) -> None:
    with serving(tmp_path) as served:
        port = re.search(r"redis redis://:\*\*\*@127\.0\.0\.1:(\d+)/0", served.log.read_text())
        assert port, served.log.read_text()
        user = {"username": "mallory", "password": "mallory-password-1"}
        admin = session(served.base, {"username": "admin", "password": PASSWORD})
        assert call(served.base, "POST", "/api/v1/users", user, admin)[0] == 201
        status, made, _ = call(
            served.base, "POST", "/api/v1/tokens", {"name": "m"}, session(served.base, user)
        )
        assert status == 201
        mallory = {"Authorization": f"Bearer {made['token']}"}

        victim_pkg = package({"p": {"code": VICTIM, "outputs": ["v"]}}, {"p": {"app": "p"}})
        status, victim, _ = call(served.base, "POST", "/api/v1/runs", {"package": victim_pkg}, served.token)  # fmt: skip
        assert status == 201
        assert wait_run(served.base, served.token, victim["run_id"])["status"] == "ready"
        artifact = next((served.data / "artifacts" / victim["run_id"]).rglob("*.pkl"))

        inputs = [(name, "variable", "text") for name in ("data", "victim", "port")]
        attack = package({"x": {"code": ESCALATE, "inputs": inputs, "outputs": ["v"]}}, {"f": {"app": "x"}})  # fmt: skip
        values = {"data": str(served.data), "victim": str(artifact), "port": port[1]}
        status, run, _ = call(served.base, "POST", "/api/v1/runs", {"package": attack, "inputs": values}, mallory)  # fmt: skip
        assert status == 201, run
        report = wait_run(served.base, mallory, run["run_id"])
        assert report["flows"]["f"]["status"] == "ready", report["flows"]["f"]
        assert report["flows"]["f"]["outputs"]["v"] == {
            "environ secrets": [],
            "secret_key": "FileNotFoundError",
            "redis.password": "FileNotFoundError",
            "redis/valkey.conf": "FileNotFoundError",
            "victim": "FileNotFoundError",
            "redis": "-NOAUTH",
        }
        assert call(served.base, "GET", "/api/v1/users", headers=mallory)[0] == 403
        assert pickle.loads(artifact.read_bytes()) == b"precious" * (300 * 1024)
        # mallory cannot see the first user's run either
        assert call(served.base, "GET", f"/api/v1/runs/{victim['run_id']}", headers=mallory)[0] == 404  # fmt: skip
        assert "mallory-password-1" not in served.log.read_text()
        assert json.dumps(values)  # the inputs were plain JSON
