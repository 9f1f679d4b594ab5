"""What a worker's info costs its heartbeat (`dizest_worker.worker_info`, `liveness.beat`).

Each pool process beats once a second. This script times `liveness.beat` against Redis as it
was (beat and slots) and with the worker info (one more HSET in the same transaction), in
interleaved blocks so that the machine's load weighs on both alike, as CPU time of this thread
(the round trip's wait is not CPU); then the info itself: `Reporter.info()` between machine
samples (the cached JSON) and a machine sample (load, /proc/meminfo, two statvfs, the JSON),
which happens at most every `MACHINE_S`.

    .venv/bin/python bench/beat_cost.py [--beats 4000]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable

from private_redis import private_settings

from dizest_worker import liveness, worker_info
from dizest_worker.connection import redis_client

BLOCK = 100


def cpu_us(action: Callable[[], object], count: int) -> list[float]:
    """CPU time (us) of each of `count` calls of `action`."""
    took = []
    for _ in range(count):
        start = time.thread_time()
        action()
        took.append((time.thread_time() - start) * 1e6)
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--beats", type=int, default=4000, help="beats of each kind")
    args = parser.parse_args(argv)
    with contextlib.ExitStack() as stack:
        settings, _ = private_settings(stack, "beat")
        os.makedirs(settings.artifact_dir, exist_ok=True)
        client = redis_client(settings)
        reporter = worker_info.Reporter(settings, ["dizest", "gpu"], os.getpid(), time.time())
        load = os.getloadavg()[0]
        bare: list[float] = []
        told: list[float] = []
        for _ in range(max(1, args.beats // BLOCK)):
            bare += cpu_us(lambda: liveness.beat(client, settings, 8), BLOCK)
            told += cpu_us(lambda: liveness.beat(client, settings, 8, reporter.info()), BLOCK)
        start = time.thread_time()  # too short to time one by one
        for _ in range(100_000):
            reporter.info()
        cached = (time.thread_time() - start) * 1e6 / 100_000

        def sample() -> str:
            reporter._until = 0.0
            return reporter.info()

        sampled = statistics.median(cpu_us(sample, 2000))
        bare_us, told_us = statistics.median(bare), statistics.median(told)
        per_s = told_us - bare_us + sampled / worker_info.MACHINE_S
        print(f"load {load:.2f} -> {os.getloadavg()[0]:.2f}; info {len(reporter.info())} bytes")
        print(f"beat, median CPU: {bare_us:.1f} us as it was, {told_us:.1f} us with the info")
        print(f"info(): {cached:.2f} us between samples, {sampled:.1f} us sampling the machine")
        print(f"the info costs a beating process {per_s:.1f} us of CPU a second")
    return 0


if __name__ == "__main__":
    sys.exit(main())
