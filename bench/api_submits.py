"""bench_api's submits: runs of a 3-flow no-op chain, one at a time on the idle server, then
many users' at the same moment; per run the POST's latency and submit -> its first flow
running, every run checked to end `ready` with the right value.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from api_server import PASSWORD, Server, bearer, call, cpu_by_role, cpu_line, replay
from common import rank_pct
from gen_dag import app_dict, connect, flow_dict, package_dict


def chain_package(n: int = 3) -> dict[str, Any]:
    apps = {"src": app_dict("src", "v = 1"), "inc": app_dict("inc", "v = dizest.input('x') + 1", ["x"])}  # fmt: skip
    flows = {f"c{i}": flow_dict(f"c{i}", "inc" if i else "src", i, ["x"] if i else []) for i in range(n)}  # fmt: skip
    for i in range(1, n):
        connect(flows, f"c{i - 1}", f"c{i}")
    return package_dict("chain", "", apps, flows)


def first_running(events: list[dict[str, Any]]) -> float:
    return min(
        float(e["ts"])
        for e in events
        if e["type"] == "flow.status" and e["data"].get("status") == "running"
    )


def check_run(server: Server, run_id: str, headers: dict[str, str], n: int) -> str | None:
    status, report, _ = call(server.base, "GET", f"/api/v1/runs/{run_id}", headers=headers)
    if status != 200 or report["status"] != "ready":
        return f"{run_id}: {status} {report.get('status')}"
    if report["flows"][f"c{n - 1}"]["outputs"] != {"v": n}:
        return f"{run_id}: wrong output {report['flows'][f'c{n - 1}']['outputs']}"
    return None


def submit_one(server: Server, headers: dict[str, str], package: Any) -> tuple[str, float, float]:
    t0 = time.time()
    status, run, _ = call(server.base, "POST", "/api/v1/runs", {"package": package}, headers)
    t1 = time.time()
    if status != 201:
        raise RuntimeError(f"submit: {status} {run}")
    return run["run_id"], t0, t1


def bench_idle_submits(server: Server, runs: int) -> dict[str, Any]:
    package, failures, to_running, posts = chain_package(), [], [], []
    for _ in range(runs):
        run_id, t0, t1 = submit_one(server, server.admin, package)
        events = replay(server, run_id, server.admin)
        to_running.append(first_running(events) - t0)
        posts.append(t1 - t0)
        failures.append(check_run(server, run_id, server.admin, 3))
    return {
        "runs": runs,
        "post_p50_ms": 1000 * rank_pct(posts, 50),
        "first_running_p50_ms": 1000 * rank_pct(to_running, 50),
        "first_running_max_ms": 1000 * max(to_running),
        "failures": [f for f in failures if f],
    }


def bench_submits(server: Server, users: int, per_user: int) -> dict[str, Any]:
    tokens = []
    for i in range(users):
        name = f"bench{i}"
        body = {"username": name, "password": PASSWORD}
        status, made, _ = call(server.base, "POST", "/api/v1/users", body, server.admin)
        if status != 201:
            raise RuntimeError(f"add user: {status} {made}")
        tokens.append(bearer(server.base, name))
    package = chain_package()
    barrier = threading.Barrier(users * per_user)
    done: list[tuple[dict[str, str], str, float, float]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(headers: dict[str, str]) -> None:
        barrier.wait()
        try:
            run_id, t0, t1 = submit_one(server, headers, package)
        except Exception as exc:
            with lock:
                errors.append(str(exc))
            return
        with lock:
            done.append((headers, run_id, t0, t1))

    before = cpu_by_role(server)
    started = time.time()
    threads = [
        threading.Thread(target=one, args=(tokens[i % users],)) for i in range(users * per_user)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    to_running, last_final = [], 0.0
    for headers, run_id, t0, _ in done:
        events = replay(server, run_id, headers)
        to_running.append(first_running(events) - t0)
        last_final = max(last_final, float(events[-1]["ts"]))
        failure = check_run(server, run_id, headers, 3)
        if failure:
            errors.append(failure)
    after = cpu_by_role(server)
    posts = [t1 - t0 for _, _, t0, t1 in done]
    return {
        "users": users,
        "runs": users * per_user,
        "accepted": len(done),
        "post_p50_ms": 1000 * rank_pct(posts, 50),
        "post_p95_ms": 1000 * rank_pct(posts, 95),
        "post_max_ms": 1000 * max(posts, default=float("nan")),
        "first_running_p50_ms": 1000 * rank_pct(to_running, 50),
        "first_running_p95_ms": 1000 * rank_pct(to_running, 95),
        "first_running_max_ms": 1000 * max(to_running, default=float("nan")),
        "all_done_s": last_final - started,
        "failures": errors,
        "cpu_s": {k: after[k] - before.get(k, 0.0) for k in after},
    }


def print_idle(i: dict[str, Any]) -> None:
    print(
        f"\nidle server, {i['runs']} runs one at a time: POST p50 {i['post_p50_ms']:.1f} ms, "
        f"submit -> first flow running p50 {i['first_running_p50_ms']:.1f} ms "
        f"(max {i['first_running_max_ms']:.1f})"
    )


def print_submits(s: dict[str, Any]) -> None:
    print(
        f"\n{s['runs']} runs submitted at once by {s['users']} users "
        f"({s['accepted']} accepted, 3-flow chains):\n"
        f"  POST ms: p50 {s['post_p50_ms']:.0f}  p95 {s['post_p95_ms']:.0f}  "
        f"max {s['post_max_ms']:.0f}\n"
        f"  submit -> first flow running ms: p50 {s['first_running_p50_ms']:.0f}  "
        f"p95 {s['first_running_p95_ms']:.0f}  max {s['first_running_max_ms']:.0f}\n"
        f"  all {s['runs']} done {s['all_done_s']:.2f} s after the first POST\n"
        f"  CPU s: {cpu_line(s['cpu_s'])}"
    )
