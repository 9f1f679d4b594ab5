"""`dizest serve --beat` end to end, driven through the HTTP client and the `dizest` CLI: a
trigger run ends, the webhook receiver gets it signed, and schedules are managed from the
command line (a cron firing more than once a minute is refused)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from dizest_api.client import Client
from tests.automation.conftest import Receiver, payload, receiver, signed  # noqa: F401
from tests.automation.test_beat import PKG
from tests.conftest import wait_for
from tests.serve_process import ROOT, serving


def _cli(base: str, token: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZEST_")}
    env.update(DIZEST_SERVER=base, DIZEST_TOKEN=token, XDG_CONFIG_HOME=str(home), TZ="UTC")
    return subprocess.run(
        [sys.executable, "-m", "dizest_cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_beat_delivers_hooks_and_the_cli_manages_schedules(
    tmp_path: Path,
    receiver: Receiver,  # noqa: F811
) -> None:
    with serving(tmp_path, "--beat", webhook_allow_private="true") as served:
        token = served.token["Authorization"].split()[1]
        client = Client(served.base, token)
        wf_id = client.push_workflow(PKG, "nightly")["id"]
        hook = client.add_hook(receiver.url, wf_id)
        trigger = client.add_trigger(wf_id)
        run_id = client.fire_trigger(trigger["url"], {"k": 1})["run_id"]
        assert client.wait(run_id, timeout=60)["status"] == "ready"
        call = wait_for(lambda: receiver.calls and receiver.calls[0], timeout=30)
        assert payload(call)["run_id"] == run_id
        assert call["headers"]["X-Dizest-Signature"] == signed(hook["secret"], call["body"])
        # the delivery is logged once the receiver has answered: after the call arrived there
        deliveries = wait_for(lambda: client.hook(hook["id"])["deliveries"], timeout=10)
        assert deliveries[0]["status_code"] == 200

        added = _cli(served.base, token, "schedules", "add", wf_id, "0 6 * * *", "--tz",
                     "Europe/Paris", "-i", "k=2", "--retries", "2", "--network", "none",
                     "--json", home=tmp_path)  # fmt: skip
        assert added.returncode == 0, added.stderr
        sid = json.loads(added.stdout)["id"]
        assert client.schedule(sid)["options"] == {"retries": 2, "network": "none"}
        listed = _cli(served.base, token, "schedules", "list", home=tmp_path)
        assert sid in listed.stdout and "Europe/Paris" in listed.stdout
        # 06:00 in Paris, said so on a machine in UTC (it printed "05:00:00", no zone)
        assert re.search(r"T06:00:00\+0[12]:00", listed.stdout), listed.stdout
        told = _cli(served.base, token, "schedules", "add", wf_id, "0 6 * * *", "--tz",
                    "Europe/Paris", home=tmp_path)  # fmt: skip
        assert told.returncode == 0, told.stderr
        assert re.search(r"next run \S+T06:00:00\+0[12]:00 \(Europe/Paris\)", told.stdout)
        client.remove_schedule(told.stdout.split()[0])
        assert _cli(served.base, token, "schedules", "disable", sid, home=tmp_path).returncode == 0
        assert client.schedule(sid)["enabled"] is False
        assert _cli(served.base, token, "schedules", "enable", sid, home=tmp_path).returncode == 0
        refused = _cli(
            served.base, token, "schedules", "add", wf_id, "*/5 * * * * *", home=tmp_path
        )
        assert refused.returncode == 1 and "at most once a minute" in refused.stderr
        assert _cli(served.base, token, "schedules", "rm", sid, home=tmp_path).returncode == 0
        assert client.schedules() == []
        hooks = _cli(served.base, token, "hooks", "list", "--json", home=tmp_path)
        assert [h["id"] for h in json.loads(hooks.stdout)] == [hook["id"]]
        log = served.log.read_text()
        assert hook["secret"] not in log and trigger["secret"] not in log  # secrets never logged
