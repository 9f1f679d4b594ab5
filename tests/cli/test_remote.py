"""The command line against a real `dizest serve`: login, profiles and logout, the environment
over the config file, accounts found from the data dir (the serve: tests/cli/conftest.py).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tomllib
from pathlib import Path

from tests.cli.helpers import (
    ROOT,
    command,
    dizest,
    ok_json,
    user_env,
)
from tests.redis_server import free_port
from tests.serve_process import PASSWORD, Served, call


def config_file(home: Path) -> Path:
    return home / "xdg" / "dizest" / "config.toml"


def test_login_stores_a_private_token_and_later_commands_need_no_server(
    home: Path, served: Served
) -> None:
    path = config_file(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text()
    assert served.base in text and PASSWORD not in text
    assert ok_json(dizest(home, "runs", "list", "--json"))["items"] is not None
    assert ok_json(dizest(home, "profiles", "--json")) == [
        {"profile": "default", "server": served.base, "username": "admin", "default": True}
    ]
    token = next(line for line in text.splitlines() if line.startswith("token ="))
    secret = json.loads(token.partition("=")[2])
    # the same token, given with --token, makes a second profile
    again = dizest(home, "login", "--server", served.base, "--profile", "ci", "--token", secret)
    assert again.returncode == 0, again.stderr
    assert ok_json(dizest(home, "runs", "list", "--profile", "ci", "--json"))["total"] >= 0
    # logout revokes the token on the server: the other profile holding it stops working
    assert dizest(home, "logout").returncode == 0
    refused = dizest(home, "runs", "list", "--profile", "ci")
    assert refused.returncode == 1 and "log in again" in refused.stderr
    left = tomllib.loads(config_file(home).read_text())
    assert left == {"default": "ci", "profiles": {"ci": left["profiles"]["ci"]}}
    assert dizest(home, "runs", "list").returncode == 1  # ci, now the default, is revoked


def test_environment_wins_over_the_file(home: Path, served: Served) -> None:
    wrong = dizest(home, "runs", "list", DIZEST_TOKEN="dz_not_a_token")
    assert wrong.returncode == 1 and "log in again" in wrong.stderr
    other = dizest(home, "runs", "list", DIZEST_SERVER="http://127.0.0.1:9")
    assert other.returncode == 2  # the stored token is never sent to another server
    assert "not logged in to http://127.0.0.1:9" in other.stderr
    nowhere = dizest(home / "nobody", "runs", "list")
    assert nowhere.returncode == 2 and "dizest login --server" in nowhere.stderr


def test_user_and_token_find_the_serve_redis_or_refuse(served: Served, tmp_path: Path) -> None:
    record = json.loads((served.data / "redis.json").read_text())
    assert stat.S_IMODE((served.data / "redis.json").stat().st_mode) == 0o600
    secret = (served.data / "redis.password").read_text().strip()
    assert secret not in json.dumps(record) and record["url"].startswith("redis://127.0.0.1:")
    refused = dizest(tmp_path, "user", "list", cwd=tmp_path)
    assert refused.returncode == 1
    assert str(tmp_path / ".dizest" / "redis.json") in refused.stderr
    assert "DIZEST_REDIS_URL" in refused.stderr and "6379" not in refused.stderr
    elsewhere = dizest(tmp_path, "token", "list", "admin", "--data-dir", str(tmp_path / "d"))
    assert elsewhere.returncode == 1 and str(tmp_path / "d" / "redis.json") in elsewhere.stderr
    # a serve given DIZEST_REDIS_URL writes no record: said, with what to set instead
    assert "one given DIZEST_REDIS_URL writes none" in elsewhere.stderr
    assert "DIZEST_PREFIX" in elsewhere.stderr
    users = dizest(tmp_path, "user", "--data-dir", str(served.data), "list", cwd=tmp_path)
    assert users.returncode == 0, users.stderr
    assert "admin\tadmin" in users.stdout
    made = dizest(tmp_path, "token", "create", "admin", "--data-dir", str(served.data))
    assert made.returncode == 0, made.stderr
    env = {"DIZEST_SERVER": served.base, "DIZEST_TOKEN": made.stdout.strip()}
    assert ok_json(dizest(tmp_path, "runs", "list", "--json", **env))["total"] >= 0
    assert not (tmp_path / ".dizest").exists()  # nothing made where it only looked


def test_config_dir_default_is_home_dot_config(served: Served, tmp_path: Path) -> None:
    env = {k: v for k, v in user_env(tmp_path).items() if k != "XDG_CONFIG_HOME"}
    result = subprocess.run(
        command("login", "--server", served.base, "-u", "admin", "--password-stdin"),
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".config" / "dizest" / "config.toml").is_file()
    assert os.stat(tmp_path / ".config" / "dizest" / "config.toml").st_mode & 0o077 == 0


def test_logout_revokes_a_token_login_was_given(tmp_path: Path, served: Served) -> None:
    """`login --token -` knows no token id: logout revoked nothing, said "logged out", and the
    token went on working. Now it ends the token it holds (a read-only one too) and checks it
    no longer works; one it cannot reach is said NOT revoked, with a non-zero exit."""
    made = call(served.base, "POST", "/api/v1/tokens", {"name": "ro", "scopes": ["read"]}, served.token)  # fmt: skip
    assert made[0] == 201, made
    secret = made[1]["token"]
    bearer = {"Authorization": f"Bearer {secret}"}
    assert call(served.base, "GET", "/api/v1/auth/me", headers=bearer)[0] == 200
    login = dizest(tmp_path, "login", "--server", served.base, "--token", "-", stdin=secret + "\n")
    assert login.returncode == 0, login.stderr
    out = dizest(tmp_path, "logout")
    assert out.returncode == 0, (out.stdout, out.stderr)
    assert call(served.base, "GET", "/api/v1/auth/me", headers=bearer)[0] == 401
    assert "token revoked" in out.stdout, out.stdout
    assert not tomllib.loads(config_file(tmp_path).read_text()).get("profiles")

    again = call(served.base, "POST", "/api/v1/tokens", {"name": "t2"}, served.token)[1]["token"]
    login = dizest(tmp_path, "login", "--server", served.base, "--token", again)
    assert login.returncode == 0, login.stderr
    path = config_file(tmp_path)  # its server gone: nothing answers on that port now
    path.write_text(path.read_text().replace(served.base, f"http://127.0.0.1:{free_port()}"))
    out = dizest(tmp_path, "logout")
    assert out.returncode == 1 and "NOT revoked" in out.stderr, (out.stdout, out.stderr)
    assert "logged out" not in out.stdout
    held = {"Authorization": f"Bearer {again}"}
    assert call(served.base, "GET", "/api/v1/auth/me", headers=held)[0] == 200  # as it says
