"""`dizest beat`'s Celery app gets the flow workers' kombu fix (dizest_worker.broker_fix) from
the factory it builds on, now that the API may not import the fix itself."""

from __future__ import annotations

import subprocess
import sys

# A fresh interpreter: in this one another test may have installed the fix already.
PROBE = """
from kombu.transport import redis as kombu_redis
from dizest_api.automation.celery_app import create_automation_celery
from dizest_api.automation.settings import AutomationSettings
from dizest_worker.client import WorkerSettings

assert not getattr(kombu_redis.Channel, "_dizest_close_fix", False), "installed at import"
app = create_automation_celery(WorkerSettings(), AutomationSettings())
assert getattr(kombu_redis.Channel, "_dizest_close_fix", False), "not installed"
assert app.conf.task_acks_late and app.conf.task_reject_on_worker_lost
assert app.conf.worker_prefetch_multiplier == 1
assert app.conf.task_default_queue == WorkerSettings().queue + ".automation"
print("ok")
"""


def test_the_automation_app_installs_the_broker_fix() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
