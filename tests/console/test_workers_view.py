"""The admin page's Workers table, in Chromium against a real `dizest serve` (its own worker) and
a second real `dizest worker` on its Redis serving another queue: both listed with their
queues, slots, load, memory and disk; a flow held running counts on its worker without a
reload; a killed worker leaves the table within the liveness window; non-admins get no table."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from dizest_api.embedded_redis import locate
from dizest_core.settings import Settings
from dizest_worker.liveness import WINDOW_S
from dizest_worker.settings import WorkerSettings
from tests.conftest import package
from tests.console.conftest import GO_API, UNTIL_GO, Console, go, log_in
from tests.worker.conftest import WorkerProcess

REFRESH_S = 3  # workers.js REFRESH_MS
LOAD = re.compile(r"^\d+\.\d\d \d+\.\d\d \d+\.\d\d$")
LIVE_MS = 60_000


def second_worker(console: Console) -> WorkerProcess:
    """`gpu-1`, one slot, queue `gpu`, on the serve's Redis and data directories."""
    data = console.served.data
    url = locate(data)
    assert url, "the serve records its embedded Redis"
    settings = WorkerSettings(
        redis_url=url,
        artifact_dir=str(data / "artifacts"),
        workdir_root=str(data / "runs"),
        drive_root=str(data / "drives"),
        worker_name="gpu-1",
        engine=Settings(),
    )
    return WorkerProcess(settings, "gpu-1", concurrency=1, queues="gpu")


def test_admins_see_a_workers_table_that_follows_the_cluster(
    admin_page: Any, console: Console
) -> None:
    gpu_worker = second_worker(console)
    try:
        page = admin_page
        page.goto("/admin")
        rows = page.locator("#worker-rows tr")
        gpu = page.locator('#worker-rows tr[data-worker="gpu-1"]')
        served = page.locator('#worker-rows tr:not([data-worker="gpu-1"])')
        expect(gpu).to_be_visible(timeout=LIVE_MS)
        expect(rows).to_have_count(2)
        expect(gpu.locator("td").nth(2)).to_have_text("gpu")
        expect(gpu.locator(".slots")).to_have_text("0/1")
        expect(served.locator("td").nth(2)).to_have_text("dizest")
        expect(served.locator(".slots")).to_have_text("0/2")
        for row in (gpu, served):
            expect(row.locator(".load")).to_have_text(LOAD)
            expect(row.locator("td").nth(5)).to_contain_text("free of")
            expect(row.locator("td").nth(6)).to_contain_text("free of")
            expect(row.locator(".beat")).to_contain_text("ago")
        expect(page.locator('dd[data-metric="Workers"]')).to_have_count(0)  # the table instead

        pkg = package({"c": {"code": f"{UNTIL_GO}v = 1\n"}}, {"c": {"app": "c"}})
        pkg["apps"]["c"]["api"] = GO_API
        made = console.api("POST", "/workflows", {"title": "held", "package": pkg})
        run_id = console.api("POST", "/runs", {"workflow_id": made["id"]})["run_id"]
        expect(served.locator(".slots")).to_have_text("1/2", timeout=LIVE_MS)  # no reload
        expect(served.locator(".slots")).to_have_attribute("title", f"{run_id} c (attempt 1)")
        go(console, run_id, "c")
        expect(served.locator(".slots")).to_have_text("0/2", timeout=LIVE_MS)

        gpu_worker.kill()  # SIGKILL: its beat ages out, and its row goes with it
        expect(gpu).to_have_count(0, timeout=(WINDOW_S + 2 * REFRESH_S + 5) * 1000)
        expect(rows).to_have_count(1)
    finally:
        gpu_worker.stop()


def test_a_user_who_is_not_an_admin_gets_no_service_cards_and_asks_for_no_workers(
    browser: Any, console: Console
) -> None:
    console.user("gail")
    page = log_in(browser, console.base, "gail")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto("/admin")
    expect(page.locator("#token-rows")).to_have_count(1)
    expect(page.locator("#health, #workers, #user-rows")).to_have_count(0)  # their tokens page
    page.wait_for_load_state("networkidle")
    assert not [url for url in asked if "/api/v1/workers" in url]  # no 403 every 3 s
    page.context.close()
