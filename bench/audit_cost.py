"""What the lost-message audit costs when a worker dies (`dizest_worker.lost_messages`).

Once per dead worker, one reaper reads every live run's flows and every queued flow message.
This script submits `--runs` runs of `--flows` root flows each through a `Client` (no worker
runs: every flow stays pending with its message queued, the worst case for the audit: nothing
it reads can be skipped), then times `LostMessages.missing()` (the audit's reads; it sends
nothing here, as nothing is lost) `--repeat` times: wall, CPU of this process (the reaper), and
Redis's own CPU (INFO cpu, when the server reports it).

    .venv/bin/python bench/audit_cost.py [--runs 200] [--flows 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import statistics
import sys
import time
from typing import Any

from gen_dag import app_dict, flow_dict, package_dict
from private_redis import private_settings

from dizest_worker.client import Client
from dizest_worker.messages import broker_lists
from dizest_worker.reaper import Reaper


def package(flows: int) -> dict[str, Any]:
    """`flows` root flows of one no-op app: every one is sent at submit."""
    apps = {"a": app_dict("a", "dizest.output('v', 1)\n")}
    nodes = {f"f{i}": flow_dict(f"f{i}", "a", i) for i in range(flows)}
    return package_dict("audit", "", apps, nodes)


def redis_cpu(client: Any) -> float:
    info = client.info("cpu")
    return float(info.get("used_cpu_sys", 0.0)) + float(info.get("used_cpu_user", 0.0))


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--flows", type=int, default=100, help="root flows per run")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    if min(args.runs, args.flows, args.repeat) < 1:
        ap.error("--runs, --flows and --repeat must be at least 1")
    load = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        settings, _ = private_settings(stack, "audit")
        client = Client(settings)
        reaper = Reaper(client.runs, lambda tasks, countdown: None, settings)
        started = time.perf_counter()
        for _ in range(args.runs):
            client.submit(package(args.flows))
        queued = sum(int(client.redis.llen(key)) for key in broker_lists(settings.queue))
        print(
            f"{args.runs} runs x {args.flows} pending flows submitted in "
            f"{time.perf_counter() - started:.1f} s; {queued} messages queued",
            file=sys.stderr,
        )
        walls, cpus, redis_cpus = [], [], []
        for _ in range(args.repeat):
            r0, c0, t0 = redis_cpu(client.redis), own_cpu(), time.perf_counter()
            missing = reaper.lost.missing()
            walls.append(time.perf_counter() - t0)
            cpus.append(own_cpu() - c0)
            redis_cpus.append(redis_cpu(client.redis) - r0)
            if missing:
                print(f"unexpected: {len(missing)} flows found lost", file=sys.stderr)
                return 1
        pending = args.runs * args.flows
        wall, cpu, rcpu = (statistics.median(x) for x in (walls, cpus, redis_cpus))
        print(
            f"audit of {args.runs} live runs, {pending} pending flows, {queued} queued messages: "
            f"median wall {wall:.3f} s, reaper CPU {cpu:.3f} s, Redis CPU {rcpu:.3f} s "
            f"({wall / pending * 1e6:.1f} us wall a pending flow); load avg {load:.2f} -> "
            f"{os.getloadavg()[0]:.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
