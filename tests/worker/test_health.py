"""`dizest worker-alive`, the worker containers' health check, against a real worker."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from dizest_core import envconfig
from dizest_worker.keys import Keys
from tests.conftest import wait_for
from tests.worker.conftest import ROOT


def alive(settings, name: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **envconfig.to_env(settings)}
    command = [sys.executable, "-m", "dizest_cli", "worker-alive", "-n", name]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_worker_alive_is_0_for_a_running_worker_and_1_for_a_gone_one(cluster):
    worker = cluster("hc1", concurrency=1)
    wait_for(lambda: alive(cluster.settings, "hc1").returncode == 0, timeout=20)
    assert "seen" in alive(cluster.settings, "hc1").stdout
    unknown = alive(cluster.settings, "never-started")
    assert unknown.returncode == 1 and "not seen" in unknown.stderr
    worker.kill()  # its reaper stops reporting: make its last report older than the window
    old_ms = int((time.time() - 31) * 1000)
    cluster.client.redis.hset(Keys(cluster.settings.prefix).workers, "hc1", old_ms)
    assert alive(cluster.settings, "hc1").returncode == 1
