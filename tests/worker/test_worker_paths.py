"""A root worker runs flows as uids of their own: they must pass to their folders whatever the
worker's umask (systemd units set UMask=0077), and a worker whose directories they could not
pass refuses to start, naming the directory, instead of failing every flow."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from dizest_core import envconfig
from tests.conftest import package
from tests.worker.conftest import make_settings
from tests.worker.test_sandbox_layers import _start

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="flows run as other uids under root")

BIG = package(
    {
        "big": {"code": "v = b'x' * (2 << 20)", "outputs": ["v"]},
        "use": {
            "code": "open('seen', 'w').write('1')\nn = len(v)",
            "inputs": ["v"],
            "outputs": ["n"],
        },
    },
    {"a": {"app": "big"}, "b": {"app": "use", "in": {"v": [("a", "v")]}}},
)


def test_a_worker_with_a_umask_of_077_runs_flows_and_passes_large_values(cluster) -> None:
    """Every flow failed 'cannot enter the working directory': the engine made the mount points
    and folders on the way with the worker's umask (0700), which the flow's uid cannot pass."""
    old = os.umask(0o077)
    try:
        cluster("w1")
    finally:
        os.umask(old)
    report = cluster.client.wait(cluster.client.submit(BIG), timeout=60)
    assert report["status"] == "ready", report
    assert report["flows"]["b"]["outputs"]["n"] == 2 << 20


def test_a_worker_refuses_to_start_where_flows_cannot_pass(redis_url, tmp_path) -> None:
    shut = Path(tempfile.mkdtemp(dir="/var/tmp"))  # not under a cover: the real tree is passed
    try:
        settings = make_settings(redis_url, tmp_path, workdir_root=str(shut / "runs"))
        env = envconfig.to_env(settings)
        env["DIZEST_SANDBOX_REQUIRE"] = "chroot"  # stops it right after the checks
        shut.chmod(0o700)
        refused = _start(env)
        assert refused.returncode == os.EX_CONFIG
        assert f"cannot pass {shut} (mode 0700)" in refused.stderr, refused.stderr
        shut.chmod(0o711)
        passed = _start(env)
        assert "cannot pass" not in passed.stderr and "chroot: unknown layer" in passed.stderr
    finally:
        shut.chmod(0o700)
        os.rmdir(shut)
