"""Big runs in the console: a finished run of 10,000 or 100,000 flows opened in the run view.

    .venv/bin/python bench/bench_bigrun.py --flows 10000            # the fast setting
    .venv/bin/python bench/bench_bigrun.py --flows 100000 --tree /tmp/main-clone   # before

The run is made once and kept: `dizest serve` runs with a data dir of its own under `--data`
(the embedded Redis is append-only there), the first call submits `gen_dag.make_dag(flows,
seed=flows)` (its node app also prints its value: a log line a flow) and waits for the run to
end, and every later call with the same `--data` serves that same run again. `--tree` is the
checkout whose `dizest serve` (and console) is measured, so the code before a change and after
it are measured on one run: a run of 100,000 flows takes tens of minutes to make on 2 cores.

In Debian's Chromium (Playwright), on a fresh `dizest serve` (the first open is the API
process's first read of the run), the run view opened `--repeat` times:
- **list**: navigation start -> the flow list shows statuses (a row's status is `ready`);
- **long tasks** (PerformanceObserver `longtask`, over 50 ms) from navigation until the page
  was quiet (no long task) for QUIET_S with its event stream ended (a finished run's replay
  over; the page after the change opens none): the longest, their sum, when the last ended;
- **select**: a fresh load, a flow row clicked as soon as the list shows; click -> its panel
  shows its status and its outputs.
And, on another fresh `dizest serve` before that, the API's answers to the reads the view
makes, each twice (wall time of one GET as the bench's client sees it, status, size): the
states report (the whole report before it exists), one flow's part (404 before), the whole
report, the package.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api_server import Server, call, free_port, stop_serve
from bench_console import CHROMIUM, CHROMIUM_ARGS, log_in
from gen_dag import make_dag

ROOT = Path(__file__).resolve().parent.parent
QUIET_S = 3.0  # the page is settled once no long task started for this long
SETTLE_MAX_S = 240.0
NODE_CODE = "v = sum(dizest.inputs('x'))\nprint('v', v)\ndizest.output('v', v)\n"
SELECTED = "n0042"  # on the list's first page
BODY_BYTES = str(256 << 20)  # the 100,000-flow package is 41 MB of JSON


@contextlib.contextmanager
def serving(data: Path, tree: Path, password: str) -> Iterator[Server]:
    """`dizest serve` of checkout `tree` on data dir `data` (one API process, a worker)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIZEST_")}
    env.update(DIZEST_ADMIN_PASSWORD=password, DIZEST_BCRYPT_ROUNDS="4")
    env.update(DIZEST_MAX_REQUEST_BYTES=BODY_BYTES, DIZEST_MAX_UPLOAD_BYTES=BODY_BYTES)
    env.update(DIZEST_MAX_INPUT_NODES="20000000", DIZEST_MAX_INPUT_BYTES=BODY_BYTES)
    env.update(DIZEST_MAX_INPUT_KEYS="1000000")
    command = [sys.executable, "-m", "dizest_cli", "serve", "--port", str(port), "--workers", "1"]
    log = (data / "serve.log").open("ab")
    proc = subprocess.Popen(
        [*command, "--data-dir", str(data / "serve")],
        cwd=tree,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(f"http://127.0.0.1:{port}", "127.0.0.1", port, proc, data=data / "serve")
    try:
        deadline = time.monotonic() + 120
        while not _ready(server.base):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dizest serve did not start; see {data / 'serve.log'}")
            time.sleep(0.2)
        server.admin = _token(server.base, password)
        yield server
    finally:
        stop_serve(proc, 60)
        log.close()


def _ready(base: str) -> bool:
    try:
        return call(base, "GET", "/readyz")[0] == 200
    except OSError:
        return False


def _token(base: str, password: str) -> dict[str, str]:
    body = {"username": "admin", "password": password}
    status, login, headers = call(base, "POST", "/api/v1/auth/login", body)
    assert status == 200, login
    session = {"Cookie": headers["Set-Cookie"].split(";")[0], "X-CSRF-Token": login["csrf_token"]}
    wanted = {"name": "bench", "scopes": ["read", "run", "admin"]}
    status, made, _ = call(base, "POST", "/api/v1/tokens", wanted, session)
    assert status == 201, made
    return {"Authorization": f"Bearer {made['token']}"}


def big_package(flows: int) -> dict[str, Any]:
    package, _ = make_dag(flows, seed=flows)
    package["apps"]["node"]["code"] = NODE_CODE
    return package


def run_status(server: Server, run_id: str) -> str | None:
    status, page, _ = call(server.base, "GET", "/api/v1/runs?limit=200", headers=server.admin)
    assert status == 200, page
    return next((r["status"] for r in page["items"] if r["run_id"] == run_id), None)


def ensure_run(server: Server, state: dict[str, Any], flows: int, save: Path) -> str:
    """The kept run's id; made (submitted, then waited for) if there is none yet."""
    if state.get("run_id") and run_status(server, state["run_id"]) in ("ready", "error"):
        return str(state["run_id"])
    print(f"making a run of {flows:,} flows (once) ...", file=sys.stderr)
    started = time.monotonic()
    status, run, _ = call(
        server.base, "POST", "/api/v1/runs", {"package": big_package(flows)}, server.admin
    )
    assert status == 201, run
    state["run_id"] = run["run_id"]
    save.write_text(json.dumps(state))
    while (now := run_status(server, run["run_id"])) not in ("ready", "error", "cancelled"):
        time.sleep(5)
    state["made_s"] = round(time.monotonic() - started, 1)
    state["made_status"] = now
    save.write_text(json.dumps(state))
    print(f"made in {state['made_s']} s: {now}", file=sys.stderr)
    return str(run["run_id"])


LISTED = (
    "() => document.querySelector('table.flows tbody .flow-status .st-ready') && performance.now()"
)
PANEL = "() => document.querySelector('#flow-outputs ul.outputs') !== null"
# run.js's marks: the package read, the list (or graph) built
MARKS = """() => Object.fromEntries(["dwp", "graph"].map((n) =>
  [`${n}_ms`, performance.getEntriesByName(`dizest:${n}`)[0]?.startTime ?? null]))"""
# (the page's stream, if it has one, has ended: a finished run's replay is over)
LAST_TASK = """() => ({now: performance.now(), tasks: window.__longtasks.length,
  end: Math.max(0, ...window.__longtasks.map((t) => t.start + t.ms)),
  followed: !!window.dizestRun && (!window.dizestRun.stream || window.dizestRun.stream.done)})"""


def timed_get(server: Server, path: str) -> dict[str, Any]:
    """One GET's wall time, status and body size (bytes)."""
    started = time.monotonic()
    request = urllib.request.Request(server.base + path, headers=server.admin)
    try:
        with urllib.request.urlopen(request, timeout=600) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    return {"s": round(time.monotonic() - started, 3), "status": status, "bytes": len(body)}


def api_reads(server: Server, run_id: str) -> dict[str, Any]:
    """The reads the run view makes, each twice (cold, then again), in a fresh API process."""
    run = f"/api/v1/runs/{run_id}"
    paths = {"states": f"{run}?flows=states", "flow": f"{run}/flows/{SELECTED}",
             "report": run, "dwp": f"{run}/dwp"}  # fmt: skip
    return {name: [timed_get(server, path) for _ in range(2)] for name, path in paths.items()}


def open_view(page: Any, run_id: str) -> dict[str, Any]:
    """The run view opened cold: the list's time, then long tasks until the page is quiet."""
    page.goto("/runs")  # (a page of this origin: the next goto is a fresh document)
    page.goto(f"/runs/{run_id}", wait_until="commit")
    listed = page.wait_for_function(LISTED, timeout=SETTLE_MAX_S * 1000).json_value()
    deadline = time.monotonic() + SETTLE_MAX_S
    while True:
        seen = page.evaluate(LAST_TASK)
        quiet = seen["now"] - max(seen["end"], listed) >= QUIET_S * 1000
        if (seen["followed"] and quiet) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    tasks = page.evaluate("() => window.__longtasks.map((t) => t.ms)")
    marks = page.evaluate(MARKS)
    return {"list_ms": listed, "longest_ms": max(tasks, default=0.0), "tasks": len(tasks),
            "tasks_ms": sum(tasks), "quiet_at_ms": max(seen["end"], listed), **marks}  # fmt: skip


def select_view(page: Any, run_id: str) -> dict[str, Any]:
    """A fresh load; as soon as the list shows, a flow clicked: click -> its panel's outputs."""
    page.goto("/runs")
    page.goto(f"/runs/{run_id}", wait_until="commit")
    listed = page.wait_for_function(LISTED, timeout=SETTLE_MAX_S * 1000).json_value()
    started = time.monotonic()
    page.click(f'tr[data-id="{SELECTED}"]', timeout=SETTLE_MAX_S * 1000)
    page.wait_for_function(PANEL, timeout=SETTLE_MAX_S * 1000)
    return {"list_ms": listed, "select_s": round(time.monotonic() - started, 3)}


def browse(base: str, password: str, run_id: str, repeat: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = log_in(browser, base, password)
            opened = [open_view(page, run_id) for _ in range(repeat)]
            selected = [select_view(page, run_id) for _ in range(repeat)]
            return {"open": opened, "select": selected, "chromium": browser.version}
        finally:
            browser.close()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def report(args: argparse.Namespace, figures: dict[str, Any]) -> None:
    print(f"\nbench_bigrun: {args.flows:,} flows, tree {args.tree}, {figures['chromium']}")
    print(f"uptime before: {figures['uptime'][0]}\nuptime after:  {figures['uptime'][1]}")
    for name, reads in figures["api"].items():
        shown = ", ".join(f"{r['status']} {r['s']:.2f} s {r['bytes'] / 1e6:.1f} MB" for r in reads)
        print(f"API {name:7}: {shown}")
    for i, o in enumerate(figures["open"]):
        print(f"open {i + 1}: package {o['dwp_ms'] / 1000:.2f} s, listed {o['graph_ms'] / 1000:.2f} s, "
              f"statuses {o['list_ms'] / 1000:.2f} s, longest task {o['longest_ms'] / 1000:.2f} s, "
              f"{o['tasks']} long tasks = {o['tasks_ms'] / 1000:.2f} s, quiet at {o['quiet_at_ms'] / 1000:.2f} s")  # fmt: skip
    for i, sel in enumerate(figures["select"]):
        print(
            f"select {i + 1}: list {sel['list_ms'] / 1000:.2f} s, then click -> panel {sel['select_s']:.2f} s"
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--flows", type=int, default=10_000)
    ap.add_argument("--data", type=Path, default=Path("/tmp/dizest-bench-bigrun"))
    ap.add_argument("--tree", type=Path, default=ROOT, help="the checkout to serve and measure")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--make-only", action="store_true", help="make the run, measure nothing")
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)
    data = args.data / str(args.flows)
    data.mkdir(parents=True, exist_ok=True)
    save = data / "bench.json"
    state = json.loads(save.read_text()) if save.exists() else {}
    state.setdefault("password", secrets.token_urlsafe(16))
    save.write_text(json.dumps(state))
    with serving(data, args.tree.resolve(), state["password"]) as server:
        run_id = ensure_run(server, state, args.flows, save)
        if args.make_only:
            return 0
    figures: dict[str, Any] = {"uptime": [uptime()]}
    with serving(data, args.tree.resolve(), state["password"]) as server:  # a fresh API process
        figures["api"] = api_reads(server, run_id)
    with serving(data, args.tree.resolve(), state["password"]) as server:  # and another
        figures.update(browse(server.base, state["password"], run_id, args.repeat))
    figures["uptime"].append(uptime())
    report(args, figures)
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
