"""A node's title never runs under the texts beside it on the graph: the run view's status badge
("error", "skipped", a run's index) on its line, the editor's marks (⚠, ●) after it, nor past
its node; in the editor the app's title never runs under the badge on its line. They were cut to
a count of letters (22, 18): 22 wide letters or CJK ones drew ~290 px on a 200 px node, under
the badge. A cut title ends with "…" and is whole in the node's tooltip and accessible name.
The rendered boxes are measured (getBBox, in the node's own units). Each title here is two
flows', so each node's title box holds its number too ("… (2)", test_flow_names), never cut."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.conftest import package
from tests.console.conftest import Console

LIVE_MS = 60_000
TITLES = {
    "wide": "W" * 40,
    "cjk": "漢字かな交じり文の長いフローのタイトルです" * 2,
    "emoji": "👩‍👩‍👧‍👦🚀" * 12,
    "mixed": "Quarterly revenue by région — 四半期 📈 and more words",
    "short": "ok",
}
# Per node: its title's box, the badge's and the marks' (each null when absent or empty), the
# node's width, the title's text (without its number), its number, its tooltip and accessible name.
MEASURE = """() => [...document.querySelectorAll("#graph g.node")].map((g) => {
  const box = (sel) => { const el = g.querySelector(sel); if (!el || !el.textContent) return null;
    const b = el.getBBox(); return {x: b.x, right: b.x + b.width, y: b.y, bottom: b.y + b.height}; };
  const tip = g.querySelector(":scope > title");
  return {id: g.dataset.id, w: Number(g.querySelector("rect.box").getAttribute("width")),
    title: box("text.title"), badge: box("text.badge"), app: box("text.app"),
    marks: [box("text.warn"), box("text.toggle")].filter(Boolean),
    text: g.querySelector("text.title").firstChild.nodeValue,
    nth: g.querySelector("text.title tspan.nth")?.textContent, tip: tip ? tip.textContent : null,
    label: g.getAttribute("aria-label")};
})"""


def titled() -> dict[str, Any]:
    """A flow per title: `wide` fails, the ones after it are skipped, the rest run."""
    apps = {
        "ok": {"code": "v = 1", "outputs": ["v"]},
        "bad": {"code": "raise ValueError('no')", "outputs": ["v"]},
    }
    apps["after"] = {"code": "pass", "inputs": ["x"]}
    flows: dict[str, dict[str, Any]] = {}
    for i, (flow, title) in enumerate(TITLES.items()):
        app = "bad" if flow == "wide" else "ok"
        flows[flow] = {"app": app, "title": title, "pos_x": 40, "pos_y": 40 + 110 * i}
        flows[f"{flow}2"] = {"app": "after", "title": title, "pos_x": 320, "pos_y": 40 + 110 * i}
        flows[f"{flow}2"]["in"] = {"x": [(flow, "v")]}
    pkg = package(apps, flows)
    pkg["apps"]["ok"]["title"] = "An app whose title is long enough to reach its badge"
    return pkg


def fullwidth(text: str) -> str:
    """`text` in fullwidth letters (each as wide as a CJK one)."""
    return "".join(chr(ord(c) + 0xFEE0) if c != " " else "\u3000" for c in text)


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["x"] < b["right"] and b["x"] < a["right"] and a["y"] < b["bottom"] and b["y"] < a["bottom"]  # fmt: skip


def check(nodes: list[dict[str, Any]], badge_line: str) -> None:
    """No title over its node's edge, its badge or its marks; no app title over a badge; a
    long title cut with "…", whole in its tooltip and name."""
    badges = 0
    for n in nodes:
        full = TITLES[n["id"].rstrip("2")]
        title = n["title"]
        assert title["x"] >= 0 and title["right"] <= n["w"] - 4, n
        for mark in n["marks"]:
            assert not overlaps(title, mark), n
        if n["badge"]:
            badges += 1
            assert not overlaps(n[badge_line], n["badge"]), n
            assert n["badge"]["right"] <= n["w"], n
        if n["app"]:
            assert n["app"]["right"] <= n["w"] - 4, n
        assert n["label"].startswith(full), n
        assert n["nth"] == (" (2)" if n["id"].endswith("2") else " (1)"), n
        if n["text"] == full:
            assert n["tip"] is None, n
        else:
            assert n["text"].endswith("…") and full.startswith(n["text"][:-1]), n
            assert n["tip"] == full, n
    assert badges >= len(TITLES)  # the statuses were drawn: this measured something


def test_long_titles_stop_short_of_the_badge_in_the_run_view(
    admin_page: Any, console: Console
) -> None:
    made = console.api("POST", "/workflows", {"title": "titles", "package": titled()})
    run = console.api("POST", "/runs", {"workflow_id": made["id"]})
    page = admin_page
    page.goto(f"/runs/{run['run_id']}")
    expect(page.locator("#run-status")).to_have_text("error", timeout=LIVE_MS)
    expect(page.locator('g.node[data-id="wide2"] text.badge')).to_have_text("skipped")
    expect(page.locator('g.node[data-id="wide"] text.badge')).to_have_text("error")
    nodes = page.evaluate(MEASURE)
    check(nodes, "title")
    cut = {n["id"] for n in nodes if n["text"] != TITLES[n["id"].rstrip("2")]}
    assert {"wide", "cjk", "emoji", "mixed"} <= cut and "short" not in cut


def test_long_titles_stop_short_of_the_marks_and_app_titles_of_the_badge_in_the_editor(
    admin_page: Any, console: Console
) -> None:
    made = console.api("POST", "/workflows", {"title": "titles ed", "package": titled()})
    page = admin_page
    page.goto(f"/workflows/{made['id']}/edit")
    page.click("#run-all")
    expect(page.locator("#run-status")).to_have_text("error", timeout=LIVE_MS)
    expect(page.locator('g.node[data-id="cjk2"] text.badge')).to_have_text("ready")
    check(page.evaluate(MEASURE), "app")
    # a title typed in the flow panel is cut as it is typed
    page.locator('g.node[data-id="short"] text.title').click()
    typed = fullwidth("Wide letters all the way along")
    page.fill("#flow-title", typed)
    title = page.locator('g.node[data-id="short"] text.title')
    expect(title).to_have_text(re.compile(f"^{typed[:3]}.*…$"))  # its own title now: no number
    expect(page.locator('g.node[data-id="short"]')).to_have_attribute(
        "aria-label", re.compile(f"^{typed}")
    )
    box = title.evaluate("(el) => { const b = el.getBBox(); return b.x + b.width; }")
    dot = page.locator('g.node[data-id="short"] text.toggle').evaluate("(el) => el.getBBox().x")
    assert box <= dot
