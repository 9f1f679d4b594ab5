"""A workflow's graph on a touch screen and a trackpad (a walkthrough's find): two fingers did
nothing a user could use (each finger's move panned the view by itself, by turns) and a
trackpad's pinch, which Chrome sends as wheel events with ctrlKey, zoomed a whole 1.2 step an
event, some sixty a second. Two fingers now zoom about their midpoint and pan as it moves, one
finger still pans and a tap still picks, the page itself never zooms, and a trackpad's pinch
follows the fingers.

Fingers are Chromium's own touch input (CDP Input.dispatchTouchEvent, a context with has_touch):
the page sees the pointer events a touch screen gives it."""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import wait_for
from tests.console.conftest import Console, log_in, views
from tests.serve_process import PASSWORD

TABLET = {"width": 1024, "height": 768}
VIEW = """() => { const v = document.querySelector("#graph svg.dag").viewBox.baseVal;
  return [v.x, v.y, v.width, v.height]; }"""
SCALE = "() => [visualViewport.scale, devicePixelRatio]"  # the page's own zoom


@pytest.fixture
def tablet(browser: Any, console: Console) -> Iterator[Any]:
    page = log_in(browser, console.base, "admin", PASSWORD, viewport=TABLET, has_touch=True)
    yield page
    page.context.close()


class Fingers:
    """Touch points on the page, moved together in small steps as a hand moves them."""

    def __init__(self, page: Any) -> None:
        self.cdp = page.context.new_cdp_session(page)
        self.points: list[tuple[float, float]] = []

    def send(self, kind: str) -> None:
        points = [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(self.points)]
        self.cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    def down(self, *points: tuple[float, float]) -> None:
        self.points = list(points)
        self.send("touchStart")

    def move(self, *points: tuple[float, float], steps: int = 8) -> None:
        start = self.points
        for step in range(1, steps + 1):
            t = step / steps
            self.points = [
                (a + (c - a) * t, b + (d - b) * t)
                for (a, b), (c, d) in zip(start, points, strict=True)
            ]
            self.send("touchMove")

    def up(self) -> None:
        self.points = []
        self.send("touchEnd")


def opened(page: Any, fanout: tuple[str, str], view: str) -> None:
    """The view of `fanout` with all it loads after the graph shown (in the editor, the
    workflow's last run; in the run view, the run's report): none of it moves the canvas
    (test_toolbar_shift), and the gestures below start from a page at rest."""
    page.goto(views(fanout)[view])
    page.locator('g.node[data-id="k3"]').wait_for()
    if view == "editor":
        expect(page.locator("#run-state")).to_contain_text("last run")
    if view == "run":
        expect(page.locator("#run-workflow")).to_be_visible()
        expect(page.locator("#run-status")).not_to_have_text("…")


def canvas_middle(page: Any) -> tuple[float, float, dict[str, float]]:
    box = page.locator("#graph").bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, box


def graph_point(
    view: list[float], box: dict[str, float], x: float, y: float
) -> tuple[float, float]:
    """The graph's point under the page's point (x, y), for `view` on the canvas `box`."""
    return (
        view[0] + (x - box["x"]) / box["width"] * view[2],
        view[1] + (y - box["y"]) / box["height"] * view[3],
    )


def view_when(page: Any, ok: Callable[[list[float]], bool]) -> list[float]:
    """The view once `ok(view)` holds (the page's pointer events come in their own time); after
    10 s the view as it is, for the caller's assertions to say how it differs."""
    seen: list[list[float]] = []

    def holds() -> bool:
        seen.append(page.evaluate(VIEW))
        return ok(seen[-1])

    with contextlib.suppress(AssertionError):
        wait_for(holds, 10)
    return seen[-1]


def near(value: float, expected: float, rel: float = 0.02) -> bool:
    return abs(value - expected) <= rel * abs(expected)


@pytest.mark.parametrize("view", ["workflow", "editor", "run"])
def test_two_fingers_zoom_about_their_midpoint_and_pan_as_it_moves(
    tablet: Any, fanout: tuple[str, str], view: str
) -> None:
    page = tablet
    opened(page, fanout, view)
    x, y, box = canvas_middle(page)
    before = page.evaluate(VIEW)
    under = graph_point(before, box, x - 40, y)  # the graph's point under the fingers' midpoint
    fingers = Fingers(page)
    # Spread from 100 to 200 px apart (twice as large) while their midpoint moves 60 px right:
    # the graph point that was under the midpoint is under it still.
    fingers.down((x - 90, y), (x + 10, y))
    fingers.move((x - 120, y), (x + 80, y))
    fingers.up()
    after = view_when(page, lambda v: near(v[2], before[2] / 2) and v[0] != before[0])
    assert after[2] == pytest.approx(before[2] / 2, rel=0.02), (before, after)
    assert after[3] == pytest.approx(before[3] / 2, rel=0.02), (before, after)
    now = graph_point(after, box, x - 20, y)
    assert math.dist(now, under) < 0.02 * before[2], (under, now)
    assert page.evaluate(SCALE) == [1, 1]  # the page itself did not zoom
    # Closing them zooms out again.
    fingers.down((x - 100, y), (x + 100, y))
    fingers.move((x - 50, y), (x + 50, y))
    fingers.up()
    out = view_when(page, lambda v: near(v[2], after[2] * 2))
    assert out[2] == pytest.approx(after[2] * 2, rel=0.02), (after, out)


@pytest.mark.parametrize("view", ["workflow", "editor"])
def test_one_finger_still_pans_and_a_tap_still_picks(
    tablet: Any, fanout: tuple[str, str], view: str
) -> None:
    page = tablet
    page.goto(views(fanout)[view])
    page.locator('g.node[data-id="k3"]').wait_for()
    # (The tap first: one right after a fast swipe stops the fling Chromium makes of it, and is
    # no tap: TouchscreenTapSuppressionController.)
    node = page.locator('g.node[data-id="k2"]')
    node.locator("text.title").tap()
    expect(node).to_have_class(re.compile(r"\bselected\b"))
    x, _, box = canvas_middle(page)
    before = page.evaluate(VIEW)
    fingers = Fingers(page)
    fingers.down((x, box["y"] + 20))  # above the row of flows: the background
    fingers.move((x + 100, box["y"] + 50))
    fingers.up()
    dx, dy = 100 * before[2] / box["width"], 30 * before[3] / box["height"]
    after = view_when(
        page, lambda v: abs(v[0] - (before[0] - dx)) < 0.5 and abs(v[1] - (before[1] - dy)) < 0.5
    )
    assert after[2:] == before[2:]  # the same scale
    assert after[0] == pytest.approx(before[0] - dx, abs=0.5), (before, after)
    assert after[1] == pytest.approx(before[1] - dy, abs=0.5), (before, after)


def test_a_pinch_begun_on_a_flow_in_the_editor_zooms_and_moves_no_flow(
    tablet: Any, fanout: tuple[str, str]
) -> None:
    page = tablet
    page.goto(views(fanout)["editor"])
    page.locator('g.node[data-id="k3"]').wait_for()
    where = "() => window.dizestEditor.doc.pkg.flow.k1.pos_x"
    stored = page.evaluate(where)
    title = page.locator('g.node[data-id="k1"] text.title').bounding_box()
    a = (title["x"] + 10, title["y"] + title["height"] / 2)  # the first finger on k1: a drag, until
    before = page.evaluate(VIEW)
    fingers = Fingers(page)
    fingers.down(a)
    fingers.move((a[0] + 30, a[1]), steps=3)
    fingers.down((a[0] + 30, a[1]), (a[0] + 130, a[1]))  # a second finger comes: a pinch
    fingers.move((a[0] - 20, a[1]), (a[0] + 180, a[1]))
    fingers.up()
    after = view_when(page, lambda v: v[2] < before[2] * 0.75)
    assert after[2] < before[2] * 0.75, (before, after)  # zoomed in
    assert page.evaluate(where) == stored  # k1 was not moved
    assert page.evaluate("() => window.dizestEditor.doc.undoStack.length") == 0
    expect(page.locator("#ed-state")).not_to_have_text("unsaved changes")
    placed = page.locator('g.node[data-id="k1"]').get_attribute("transform")
    assert (
        placed
        == f"translate({stored},{page.evaluate('() => window.dizestEditor.doc.pkg.flow.k1.pos_y')})"
    )
    assert page.locator("svg.overlay > *").count() == 0  # no copy of it left lifted


def test_a_trackpad_pinch_zooms_the_graph_as_far_as_the_fingers(
    admin_page: Any, fanout: tuple[str, str]
) -> None:
    # Chrome's wheel of a trackpad's pinch: ctrlKey, deltaY = 100·ln(1/scale); 10 is a scale of
    # exp(-0.1). A mouse wheel's notch (deltaY 100, no Ctrl) stays a 1.2 step.
    page = admin_page
    page.goto(views(fanout)["workflow"])
    page.locator('g.node[data-id="k3"]').wait_for()
    x, y, box = canvas_middle(page)
    cdp = page.context.new_cdp_session(page)

    def wheel(delta: float, modifiers: int) -> tuple[list[float], list[float]]:
        before = page.evaluate(VIEW)
        event = {"type": "mouseWheel", "x": x, "y": y, "deltaX": 0, "deltaY": delta}
        cdp.send("Input.dispatchMouseEvent", {**event, "modifiers": modifiers})
        return before, view_when(page, lambda v: v != before)

    before, after = wheel(-10, 2)  # Ctrl (the pinch's own flag): spread a little
    assert after[2] == pytest.approx(before[2] * math.exp(-0.1), rel=0.002), (before, after)
    under = graph_point(before, box, x, y)
    assert math.dist(graph_point(after, box, x, y), under) < 0.5  # about the pointer
    before, after = wheel(10, 2)
    assert after[2] == pytest.approx(before[2] * math.exp(0.1), rel=0.002)
    before, after = wheel(100, 2)  # Ctrl and a mouse wheel's notch: one step, not exp(1)
    assert after[2] == pytest.approx(before[2] * 1.2, rel=0.002)
    before, after = wheel(-100, 0)
    assert after[2] == pytest.approx(before[2] / 1.2, rel=0.002)
    assert page.evaluate(SCALE) == [1, 1]  # the page itself did not zoom
