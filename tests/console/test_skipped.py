"""A flow skipped because it needs the output of an inactive flow reads "skipped" in every view,
as one below a failed flow does: the engine ends both `idle` with a reason that says why ("needs
output of inactive flow X, which has none", "upstream failed: X"). Only the second was read as a
skip: the first was labelled "idle" on its node and in its panel, its raw reason (the inactive
flow's id) as the workflow view's badge, and counted as idle in a big run's counts."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect

from tests.conftest import package, wait_for
from tests.console.conftest import Console
from tests.console.test_big_run import N

LIVE_S = 60
SRC = "src-1796458547289"  # an id as the editor makes them: never what a person reads
APPS = {"src": {"code": "v = 1", "outputs": ["v"]}, "use": {"code": "pass", "inputs": ["x"]}}


def ended(console: Console, title: str, pkg: dict[str, Any]) -> tuple[str, str]:
    """A workflow of `pkg` and its run, ended."""
    wf_id = str(console.api("POST", "/workflows", {"title": title, "package": pkg})["id"])
    run_id = str(console.api("POST", "/runs", {"workflow_id": wf_id})["run_id"])
    status = lambda: console.api("GET", f"/runs/{run_id}?flows=states")["status"]  # noqa: E731
    wait_for(lambda: status() in ("ready", "error", "cancelled"), LIVE_S, 0.2)
    return wf_id, run_id


def test_a_flow_that_needs_an_inactive_flows_output_reads_skipped(
    admin_page: Any, console: Console
) -> None:
    pkg = package(
        APPS,
        {
            SRC: {"app": "src", "active": False, "title": "Source"},
            "use": {"app": "use", "in": {"x": [(SRC, "v")]}, "title": "User"},
        },
    )
    wf_id, run_id = ended(console, "skipped for an inactive flow", pkg)
    state = console.api("GET", f"/runs/{run_id}")["flows"]["use"]
    assert state["status"] == "idle", state  # the server's word, with the reason that says why
    assert state["reason"] == f"needs output of inactive flow {SRC}, which has none"
    reason = "needs output of inactive flow Source, which has none"
    page = admin_page
    page.goto(f"/runs/{run_id}")
    expect(page.locator('g.node[data-id="use"] .badge')).to_have_text("skipped")
    page.locator('g.node[data-id="use"]').click()
    expect(page.locator("#flow-status")).to_have_text("skipped")
    expect(page.locator("#flow-reason")).to_have_text(reason)

    page.goto(f"/workflows/{wf_id}")  # its last run
    expect(page.locator('g.node[data-id="use"] .badge')).to_have_text("skipped")
    page.locator('g.node[data-id="use"]').click()
    expect(page.locator("#last-status")).to_have_text(f"skipped: {reason}")

    page.goto(f"/workflows/{wf_id}/edit")  # the last run, under the nodes
    expect(page.locator('g.node[data-id="use"] .badge')).to_have_text("skipped")
    box = page.locator('foreignObject[data-id="use"] .node-result-status .text')
    expect(box).to_have_text(f"skipped: {reason}")


def test_a_big_run_counts_such_flows_as_skipped(admin_page: Any, console: Console) -> None:
    """N flows (more than the graph draws): an inactive one, and N - 1 below it."""
    flows: dict[str, dict[str, Any]] = {"f0": {"app": "src", "active": False}}
    for i in range(1, N):
        flows[f"f{i}"] = {"app": "use", "in": {"x": [("f0", "v")]}}
    _, run_id = ended(console, "big skip", package(APPS, flows))
    page = admin_page
    page.goto(f"/runs/{run_id}")
    expect(page.locator("#run-counts")).to_have_text(f"{N - 1:,} skipped · 1 idle", timeout=30_000)
