"""A worker says which sandbox layers it runs flows with, and refuses to start without one the
operator requires."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from dizest_core import envconfig
from dizest_core.sandbox import LAYERS
from tests.worker.conftest import ROOT, make_settings


def _start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dizest_cli", "worker", "-c", "1"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_worker_refuses_to_start_without_a_required_layer(redis_url, tmp_path):
    if "@" in redis_url:
        pytest.skip("the test Redis has a password: redis_auth is not missing")
    env = envconfig.to_env(make_settings(redis_url, tmp_path))
    env["DIZEST_SANDBOX_REQUIRE"] = "pidns,redis_auth"
    done = _start(env)
    assert done.returncode == os.EX_CONFIG  # which `dizest serve` does not restart
    assert "refusing to start: required flow sandbox layers are missing: redis_auth:" in done.stderr
    assert "DIZEST_REDIS_URL has no password" in done.stderr
    assert "sandbox layer redis_auth" in done.stderr  # every layer is printed first


def test_an_unknown_required_layer_is_named(redis_url, tmp_path):
    env = envconfig.to_env(make_settings(redis_url, tmp_path))
    env["DIZEST_SANDBOX_REQUIRE"] = "chroot"
    env["DIZEST_LEASE"] = "3"  # no setting: said, and the worker goes on to the layer check
    done = _start(env)
    assert done.returncode == os.EX_CONFIG and "chroot: unknown layer" in done.stderr
    said = "dizest worker: warning: DIZEST_LEASE is not a dizest setting: ignored (did you mean DIZEST_LEASE_S?)"
    assert said in done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="a root worker has every layer here")
def test_a_root_worker_prints_every_layer_active(redis_url, tmp_path):
    env = envconfig.to_env(make_settings(redis_url, tmp_path))
    env["DIZEST_SANDBOX_REQUIRE"] = "chroot"  # stops it right after the report
    lines = [ln for ln in _start(env).stderr.splitlines() if "worker: sandbox layer " in ln]
    states = dict(ln.split("sandbox layer ", 1)[1].split(None, 1) for ln in lines)
    for layer in LAYERS:
        assert states[layer] == "active", lines


@pytest.mark.skipif(os.geteuid() != 0, reason="Celery warns only a root worker")
def test_a_root_worker_is_not_warned_against_being_root(cluster):
    """Root by design (each flow drops to a uid of its own): Celery's "You're running the
    worker with superuser privileges: this is absolutely not recommended!" only misled."""
    worker = cluster("w1")
    assert "sandbox layer identity  active" in worker.log and " ready." in worker.log, worker.log
    assert "superuser" not in worker.log, worker.log
