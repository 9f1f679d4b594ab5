"""Fixtures for API tests: a Flask test app on a real Redis with a key prefix of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from dizest_api.app import create_app
from dizest_api.services import Services
from dizest_api.settings import ApiSettings
from tests.worker.conftest import make_settings, redis_url  # noqa: F401

PASSWORD = "correct horse battery"


@dataclass
class Api:
    """The app, its test client, and helpers to make users and their credentials."""

    app: Flask
    http: FlaskClient
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def services(self) -> Services:
        found: Services = self.app.extensions["dizest"]
        return found

    def user(self, name: str, role: str = "user", scopes: tuple[str, ...] = ()) -> dict[str, str]:
        """Create `name` (once) and return bearer headers for a new token with `scopes`."""
        accounts = self.services.accounts
        if name not in {u.username for u in accounts.users()}:
            accounts.add_user(name, PASSWORD, role)
        wanted = scopes or (("read", "run", "admin") if role == "admin" else ("read", "run"))
        secret = accounts.create_token(name, "test", wanted).secret
        return {"Authorization": f"Bearer {secret}"}

    def login(self, name: str) -> str:
        """Log `name` in on the test client (cookie) and return the CSRF token."""
        answer = self.http.post("/api/v1/auth/login", json={"username": name, "password": PASSWORD})
        assert answer.status_code == 200, answer.json
        return str(answer.json["csrf_token"])

    def call(self, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.http.open(f"/api/v1{path}", method=method, headers=headers or {}, **kw)


@pytest.fixture(scope="session")
def session_prefix(redis_url: str) -> Iterator[str]:  # noqa: F811
    """A prefix shared by this session's tests, whose keys are deleted once at the end (one SCAN
    of a shared test Redis per session, not per test)."""
    tag = f"dza{uuid.uuid4().hex[:8]}"
    yield tag
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{tag}*", count=50_000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])


@pytest.fixture
def api(redis_url: str, session_prefix: str, tmp_path: Path) -> Iterator[Api]:  # noqa: F811
    yield make_api(redis_url, session_prefix, tmp_path, object())


@pytest.fixture
def cluster_api(redis_url: str, session_prefix: str, tmp_path: Path) -> Iterator[Api]:  # noqa: F811
    """As `api`, with a real cluster client (dizest_worker.client.Client) but no worker."""
    yield make_api(redis_url, session_prefix, tmp_path, None)


def make_api(
    redis_url: str,  # noqa: F811
    session_prefix: str,
    tmp_path: Path,
    client: Any,
    api_settings: dict[str, Any] | None = None,
    **worker: Any,
) -> Api:
    """An app on its own prefix; `client` None: the real cluster client is built. `worker`:
    settings of its WorkerSettings to change; `api_settings`: of its ApiSettings."""
    prefix = f"{session_prefix}{uuid.uuid4().hex[:8]}"
    found = make_settings(redis_url, tmp_path, prefix=prefix, **worker)
    settings = ApiSettings(
        secret_key="k" * 32,
        data_dir=str(tmp_path / "data"),
        bcrypt_rounds=4,
        max_request_bytes=64 * 1024,
        worker=found,
        **(api_settings or {}),
    )
    app = create_app(settings, client=client)
    app.config["TESTING"] = True
    return Api(app, app.test_client())
