"""Console benchmark: the web console in Chromium (Playwright) against a real `dizest serve`.

    .venv/bin/python bench/bench_console.py                 # dag1000 view; 200 events/s for 10 s
    .venv/bin/python bench/bench_console.py --rate 400 --seconds 5 --json out.json

It starts `dizest serve` itself (api_server.serving: one API process, its embedded Redis and one
worker) and Debian's Chromium (/usr/bin/chromium), logs in through the login page, and measures:

1. **dag1000 render**: the run view of a running 1,000-flow run (tests/data/dag1000.dwp) opened
   cold; time from navigation start to the whole graph drawn (the page's `dizest:graph` mark,
   then the next frame painted). Target <= 1 s.
2. **event -> screen**: a run whose one flow prints `--rate` lines per second for `--seconds`
   (one `log.append` event each), watched with its flow selected. A MutationObserver stamps
   each log line when it enters the page; latency = that time - the event's `ts` (the server's
   clock; the same machine). Target p95 <= 250 ms at 200 events/s.
3. **longest main-thread block** while following that run (PerformanceObserver `longtask`;
   Chromium reports tasks over 50 ms). Target <= 100 ms. The dag1000 opening's own longest
   task is printed too.
4. **editor** (bench_editor.py): the workflow editor opened on dag1000 (target <= 1.5 s) and a
   node dragged across it (target: no frame over 50 ms).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_server import PASSWORD, call, serving
from bench_editor import bench_editor
from bench_editor import report as report_editor
from common import rank_pct

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LONGTASKS = """
window.__longtasks = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) window.__longtasks.push({start: e.startTime, ms: e.duration});
}).observe({type: "longtask", buffered: true});
"""
STAMP_LINES = """
() => {
  window.__lines = new Map();
  const seen = (node) => {
    if (node.nodeType !== 1) return;
    const lines = node.classList.contains("line") ? [node] : node.querySelectorAll(".line");
    const now = performance.timeOrigin + performance.now();
    for (const line of lines) if (!window.__lines.has(line.textContent)) window.__lines.set(line.textContent, now);
  };
  new MutationObserver((records) => {
    for (const r of records) for (const n of r.addedNodes) seen(n);
  }).observe(document.getElementById("flow"), {childList: true, subtree: true});
}
"""
PRINTER = """\
import time
time.sleep(float(wait))
start = time.time()
for i in range(int(count)):
    print(f"L{i}", flush=True)
    pause = start + (i + 1) / float(rate) - time.time()
    if pause > 0:
        time.sleep(pause)
"""


def printer_package(rate: float, seconds: float, wait: float) -> dict[str, Any]:
    variables = [
        {"type": "variable", "name": n, "inputtype": "number", "description": ""}
        for n in ("count", "rate", "wait")
    ]
    app = {"id": "printer", "title": "printer", "inputs": variables, "outputs": [], "code": PRINTER}
    data = {"count": str(int(rate * seconds)), "rate": str(rate), "wait": str(wait)}
    flow = {"id": "p", "app_id": "printer", "active": True, "pos_x": 100, "pos_y": 100,
            "data": data, "inputs": {}, "outputs": {}}  # fmt: skip
    return {"title": "printer", "apps": {"printer": app}, "flow": {"p": flow}}


def log_in(browser: Any, base: str, password: str = PASSWORD) -> Any:
    """A page whose session is the admin's (`password`: the bench's, or one kept with its data)."""
    context = browser.new_context(base_url=base, viewport={"width": 1440, "height": 900})
    context.add_init_script(LONGTASKS)
    page = context.new_page()
    page.goto("/login")
    page.fill("#username", "admin")
    page.fill("#password", password)
    page.click("#login-submit")
    page.wait_for_selector("#me-name")
    return page


def bench_dag1000(page: Any, base: str, admin: dict[str, str]) -> dict[str, Any]:
    package = json.loads((ROOT / "tests" / "data" / "dag1000.dwp").read_text())
    status, run, _ = call(base, "POST", "/api/v1/runs", {"package": package}, admin)
    assert status == 201, run
    times = []
    for _ in range(3):  # the first one also loads and compiles the modules
        page.goto(f"/runs/{run['run_id']}", wait_until="commit")
        page.locator("g.node").nth(999).wait_for(state="attached", timeout=30_000)
        times.append(
            page.evaluate("""() => new Promise((resolve) => requestAnimationFrame(() =>
            setTimeout(() => resolve({
              graph: performance.getEntriesByName("dizest:graph")[0].startTime,
              dwp: performance.getEntriesByName("dizest:dwp")[0].startTime,
              dom: performance.getEntriesByType("navigation")[0].domContentLoadedEventEnd,
              painted: performance.now(),
              longest: Math.max(0, ...window.__longtasks.map((t) => t.ms)),
            }))))""")
        )
    call(base, "POST", f"/api/v1/runs/{run['run_id']}/cancel", {}, admin)
    return {"cold": times[0], "warm": times[1:]}


def bench_events(
    page: Any, base: str, admin: dict[str, str], rate: float, seconds: float
) -> dict[str, Any]:
    from playwright.sync_api import expect

    package = printer_package(rate, seconds, wait=3.0)
    status, run, _ = call(base, "POST", "/api/v1/runs", {"package": package}, admin)
    assert status == 201, run
    page.goto(f"/runs/{run['run_id']}")
    page.wait_for_selector('g.node[data-id="p"]')
    page.click('g.node[data-id="p"]')
    page.evaluate(STAMP_LINES)
    page.evaluate("() => { window.__longtasks = []; }")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=(seconds + 60) * 1000)
    shown = dict(page.evaluate("() => [...window.__lines.entries()]"))
    blocks = page.evaluate("() => window.__longtasks.map((t) => t.ms)")
    events = replay_events(base, run["run_id"], admin)
    lags = [
        shown[e["data"]["entry"]] - e["ts"] * 1000
        for e in events
        if e["type"] == "log.append" and e["data"]["entry"] in shown
    ]
    expected = int(rate * seconds)
    return {
        "events": expected,
        "shown": len(lags),
        "p50_ms": rank_pct(lags, 50),
        "p95_ms": rank_pct(lags, 95),
        "max_ms": max(lags) if lags else None,
        "longest_block_ms": max(blocks, default=0.0),
        "long_tasks": len(blocks),
    }


def replay_events(base: str, run_id: str, admin: dict[str, str]) -> list[dict[str, Any]]:
    from dizest_api.client import Client

    return list(Client(base, admin["Authorization"].split()[1]).events(run_id))


def screenshots(page: Any, base: str, admin: dict[str, str], out: Path) -> None:
    """The workflow view, a live run, the runs list and the Files page, as PNGs into `out`
    (docs/img)."""
    from playwright.sync_api import expect

    data = ROOT / "tests" / "console" / "data"
    out.mkdir(parents=True, exist_ok=True)
    plots = json.loads((data / "plots.dwp").read_text())
    _, wf, _ = call(base, "POST", "/api/v1/workflows", {"title": "plots", "package": plots}, admin)
    page.goto(f"/workflows/{wf['id']}")
    page.click('g.node[data-id="png"]')
    page.click('button[data-tab="run-form"]')
    page.screenshot(path=str(out / "console-workflow.png"))
    page.click("#run-start")
    expect(page.locator("#run-status")).to_have_text("ready", timeout=60_000)
    page.click('g.node[data-id="png"]')
    expect(page.locator("#flow-log img")).to_be_visible()
    page.screenshot(path=str(out / "console-run.png"))
    dag = json.loads((ROOT / "tests" / "data" / "dag100.dwp").read_text())
    _, run, _ = call(base, "POST", "/api/v1/runs", {"package": dag}, admin)
    page.goto(f"/runs/{run['run_id']}")
    expect(page.locator("g.node.st-ready").nth(15)).to_be_attached(timeout=60_000)
    page.screenshot(path=str(out / "console-run-live.png"))
    page.goto("/runs")
    expect(page.locator("#run-rows tr").first).to_be_visible()
    page.screenshot(path=str(out / "console-runs.png"))
    call(base, "POST", f"/api/v1/runs/{run['run_id']}/cancel", {}, admin)
    files_screenshot(page, base, admin, out)


def files_screenshot(page: Any, base: str, admin: dict[str, str], out: Path) -> None:
    """The Files page on a drive of a few folders and files (uploaded through the page)."""
    from playwright.sync_api import expect

    for folder in ("archive 2025", "data", "outputs"):
        call(base, "POST", f"/api/v1/files/{urllib.parse.quote(folder)}", None, admin)
    sizes = {"sales.csv": 2400, "README.md": 900, "model weights.bin": 3_500_000,
             "report #3 (final).pdf": 180_000, "étude 50%.xlsx": 41_000}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="dizest-files-") as tmp:
        for name, size in sizes.items():
            (Path(tmp) / name).write_bytes(os.urandom(size))
        page.goto("/files")
        page.set_input_files("#files-input", [str(Path(tmp) / name) for name in sizes])
        expect(page.locator("#files-rows tr")).to_have_count(3 + len(sizes))
    expect(page.locator("#toast")).not_to_have_class("show", timeout=10_000)
    page.screenshot(path=str(out / "console-files.png"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--rate", type=float, default=200, help="events per second of the log run")
    ap.add_argument("--seconds", type=float, default=10, help="how long the log run prints")
    ap.add_argument(
        "--only", default="dag,events,editor", help="dag, events, editor (comma-separated)"
    )
    ap.add_argument("--json", dest="json_out")
    ap.add_argument("--screenshots", type=Path, help="also save console screenshots here")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    load = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="dizest-bench-console-")))
        server = stack.enter_context(serving(tmp, 64, 128))
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        page = log_in(browser, server.base)
        print("dag1000 run view ...", file=sys.stderr)
        dag = bench_dag1000(page, server.base, server.admin)
        if args.screenshots:
            screenshots(page, server.base, server.admin, args.screenshots)
        editor = None
        if "editor" in args.only:
            print("dag1000 editor ...", file=sys.stderr)
            editor = bench_editor(page, server.base, server.admin)
        events = None
        if "events" in args.only:
            print(f"{args.rate:g} events/s for {args.seconds:g} s ...", file=sys.stderr)
            started = time.monotonic()
            events = bench_events(page, server.base, server.admin, args.rate, args.seconds)
            events["wall_s"] = time.monotonic() - started
    cold = dag["cold"]
    print(
        f"\ndizest console benchmark - Chromium {browser.version}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, load avg {load:.2f} -> "
        f"{os.getloadavg()[0]:.2f}"
    )
    ok_render = cold["painted"] <= 1000
    warm = ", ".join(f"{w['painted']:.0f}" for w in dag["warm"])
    print(
        f"dag1000 run view: page {cold['dom']:.0f} ms, package {cold['dwp']:.0f} ms, graph drawn {cold['graph']:.0f} ms, painted {cold['painted']:.0f} ms "
        f"after navigation (cold; warm: {warm} ms)"
        f"; longest task while opening {cold['longest']:.0f} ms   [target <= 1000 ms: "
        f"{'PASS' if ok_render else 'MISS'}]"
    )
    ok_editor = report_editor(editor) if editor is not None else True
    if events is None:
        return 0 if ok_render and ok_editor else 1
    ok_lag = events["p95_ms"] <= 250 and events["shown"] == events["events"]
    ok_block = events["longest_block_ms"] <= 100
    print(
        f"event -> screen at {args.rate:g}/s: {events['shown']}/{events['events']} lines shown, "
        f"p50 {events['p50_ms']:.0f} ms, p95 {events['p95_ms']:.0f} ms, max "
        f"{events['max_ms']:.0f} ms   [target p95 <= 250 ms: {'PASS' if ok_lag else 'MISS'}]"
    )
    print(
        f"longest main-thread block while following: {events['longest_block_ms']:.0f} ms "
        f"({events['long_tasks']} tasks over 50 ms)   [target <= 100 ms: "
        f"{'PASS' if ok_block else 'MISS'}]"
    )
    if args.json_out:
        figures = {"dag1000": dag, "events": events, "editor": editor}
        Path(args.json_out).write_text(json.dumps(figures, indent=1))
    return 0 if ok_render and ok_lag and ok_block and ok_editor else 1


if __name__ == "__main__":
    sys.exit(main())
