"""What a page learns after it drew its graph (a run's status and workflow, the editor's last
run, a workflow's versions) does not move the graph: at a tablet's width the toolbar wrapped a
line more when it came, and the canvas shrank under a user already looking at it (a layout
shift). Every animation frame from the page's first on, the canvas's box is read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.console.conftest import Console, log_in, views
from tests.serve_process import PASSWORD

SIZES = {"tablet": {"width": 1024, "height": 768}, "small laptop": {"width": 1280, "height": 720}}
SAMPLER = """(() => {
  const seen = (window.dizestBoxes = []);
  const frame = () => {
    const graph = document.querySelector("#graph");
    if (graph && graph.querySelector("g.node")) {
      const b = graph.getBoundingClientRect();
      const last = seen[seen.length - 1];
      if (!last || last[0] !== b.top || last[1] !== b.height) seen.push([b.top, b.height]);
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
})();"""

TWO_FRAMES = "() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))"


@pytest.fixture
def page(request: Any, browser: Any, console: Console) -> Iterator[Any]:
    page = log_in(browser, console.base, "admin", PASSWORD, viewport=SIZES[request.param])
    page.add_init_script(SAMPLER)
    yield page
    page.context.close()


def loaded(page: Any, view: str) -> None:
    """Everything the view fetches after its graph, shown."""
    if view == "run":
        expect(page.locator("#run-workflow")).to_have_text(re.compile("c03 fan-out"))
        expect(page.locator("#run-status")).not_to_have_text("…")
    if view == "editor":
        expect(page.locator("#run-state")).to_contain_text("last run")
    if view == "workflow":
        expect(page.locator("#wf-version option")).not_to_have_count(0)
        expect(page.locator("#wf-meta")).not_to_be_empty()


@pytest.mark.parametrize(
    ("page", "view"),
    [("tablet", "workflow"), ("tablet", "editor"), ("tablet", "run"), ("small laptop", "run")],
    indirect=["page"],
)
def test_the_canvas_keeps_its_place_as_the_page_fills_in(
    page: Any, fanout: tuple[str, str], view: str
) -> None:
    page.goto(views(fanout)[view])
    page.locator('g.node[data-id="k3"]').wait_for()
    loaded(page, view)
    page.evaluate(TWO_FRAMES)  # (what was shown is laid out and sampled)
    boxes = page.evaluate("() => window.dizestBoxes")
    assert len(boxes) == 1, f"the canvas (top, height) moved as the page filled in: {boxes}"
