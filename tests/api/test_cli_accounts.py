"""`dizest user` and `dizest token` commands, and the pieces of accounts the API does not show."""

from __future__ import annotations

import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from dizest_api.cli import token, user
from dizest_api.settings import ApiSettings, stored_secret_key
from tests.api.conftest import PASSWORD, Api


@pytest.fixture
def env(api: Api, tmp_path: Path) -> dict[str, str]:
    worker = api.services.settings.worker
    return {
        "DIZEST_REDIS_URL": worker.redis_url,
        "DIZEST_PREFIX": worker.prefix,
        "DIZEST_DATA_DIR": str(tmp_path / "data"),
        "DIZEST_BCRYPT_ROUNDS": "4",
    }


def test_user_and_token_commands(api: Api, env: dict[str, str]) -> None:
    run = CliRunner().invoke
    assert (
        run(user, ["add", "carol", "--role", "admin", "--password", PASSWORD], env=env).exit_code
        == 0
    )
    assert run(user, ["list"], env=env).output == "carol\tadmin\n"
    made = run(token, ["create", "carol", "--scope", "read", "--name", "ci"], env=env)
    secret = made.output.strip()
    assert api.call("GET", "/auth/me", {"Authorization": f"Bearer {secret}"}).status_code == 200
    token_id = secret.split("_")[1]
    assert run(token, ["list", "carol"], env=env).output == f"{token_id}\tci\tread\tnever\n"
    later = run(token, ["create", "carol", "--name", "day", "--expires-in", "86400"], env=env)
    day_id = later.output.strip().split("_")[1]
    listed = dict(line.split("\t", 1) for line in run(token, ["list", "carol"], env=env).stdout.splitlines())  # fmt: skip
    expiry = datetime.fromisoformat(listed[day_id].split("\t")[-1])  # a time, not an epoch
    assert (
        expiry.tzinfo is not None and 86000 < (expiry - datetime.now(UTC)).total_seconds() <= 86400
    )
    assert run(token, ["revoke", token_id], env=env).exit_code == 0
    assert api.call("GET", "/auth/me", {"Authorization": f"Bearer {secret}"}).status_code == 401
    assert run(user, ["passwd", "carol", "--password", "x" * 10], env=env).exit_code == 0
    duplicate = run(user, ["add", "carol", "--password", PASSWORD], env=env)
    assert duplicate.exit_code == 1 and "exists" in duplicate.output
    assert run(user, ["remove", "carol", "--yes"], env=env).exit_code == 0
    emptied = run(user, ["list"], env=env)
    assert emptied.stdout == "" and emptied.exit_code == 0
    assert "no users at redis://" in emptied.stderr and "DIZEST_PREFIX" in emptied.stderr


def test_ensure_admin_generates_a_password_once(api: Api) -> None:
    generated = api.services.bootstrap()
    assert generated
    assert api.services.bootstrap() is None
    answer = api.http.post("/api/v1/auth/login", json={"username": "admin", "password": generated})
    assert answer.status_code == 200 and answer.json["user"]["role"] == "admin"


def test_secret_key_is_generated_once_with_mode_600(tmp_path: Path) -> None:
    first = stored_secret_key(tmp_path / "d")
    assert stored_secret_key(tmp_path / "d") == first
    assert stat.S_IMODE(os.stat(tmp_path / "d" / "secret_key").st_mode) == 0o600
    settings = ApiSettings.from_env({"DIZEST_DATA_DIR": str(tmp_path / "d")})
    assert settings.secret_key == first
    assert first not in repr(settings)
