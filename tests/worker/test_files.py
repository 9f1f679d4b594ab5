"""Nothing a run leaves behind lives forever: indexes, the workers hash, and the run's files
on disk (deleted by the reaper, and only those of runs that are gone)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dizest_api.data.run_index import RunIndex
from dizest_core import dwp
from dizest_core.job import Artifact
from dizest_core.plan import make_plan
from dizest_core.tree import remove_tree
from dizest_worker.connection import redis_client
from dizest_worker.reaper import FORGET_WORKER_S, Reaper
from dizest_worker.state import RedisRuns, now_ms
from tests.conftest import package
from tests.core.test_tree import legacy_tree
from tests.worker.conftest import cleanup, make_settings


@pytest.fixture
def runs(redis_url, tmp_path) -> Iterator[RedisRuns]:
    settings = make_settings(redis_url, tmp_path, ttl_s=3600)
    yield RedisRuns(redis_client(settings), settings)
    cleanup(settings)


def run_dir(root: str, run_id: str | None = None, age_s: float = 0) -> Path:
    path = Path(root) / (run_id or uuid.uuid4().hex)
    (path / "f" / "1").mkdir(parents=True)
    (path / "f" / "1" / "0.pkl").write_bytes(b"x")
    stamp = os.stat(path).st_mtime - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_the_reaper_deletes_the_files_of_expired_runs_only(runs, tmp_path):
    settings, old = runs.settings, runs.settings.ttl_s + 60
    work, art = settings.workdir_root, settings.artifact_dir
    crashed = run_dir(work, f".convert-{uuid.uuid4().hex[:16]}", age_s=old)  # a conversion's
    expired = [run_dir(work, age_s=old), run_dir(art, age_s=old), crashed]
    live_id, kept_id = uuid.uuid4().hex, uuid.uuid4().hex
    runs.client.hset(runs.keys.run(live_id), "status", "running")
    runs.client.set(runs.keys.run_keep(kept_id), "1")
    outside = run_dir(str(tmp_path / "elsewhere"), age_s=old)
    link = Path(work) / uuid.uuid4().hex
    link.symlink_to(outside)
    not_a_run = Path(work) / "notes"
    not_a_run.mkdir()
    os.utime(not_a_run, (0, 0))
    kept = [
        run_dir(work, live_id, age_s=old),  # its run still exists
        run_dir(art, kept_id, age_s=old),  # a newer run reuses its artifacts
        run_dir(work),  # recent: its record may just not be visible yet
        run_dir(work, f".convert-{uuid.uuid4().hex[:16]}"),  # a conversion going on
        link,
        not_a_run,
        outside,
    ]
    reaper = Reaper(runs, lambda tasks, countdown: None, settings)
    removed = reaper.tidy()
    assert sorted(removed) == sorted(str(p) for p in expired)
    assert not any(p.exists() for p in expired)
    assert all(p.exists() for p in kept) and (outside / "f" / "1" / "0.pkl").exists()


def test_the_reaper_deletes_an_expired_run_folder_a_flow_made_deeper_than_recursion(runs):
    """A flow may nest folders in its working directory as deep as it likes: 1,500 levels made
    `shutil.rmtree` raise RecursionError, and the run's files (attached ones, counted against
    their user's drive quota until then) stayed on the disk for good."""
    settings, old = runs.settings, runs.settings.ttl_s + 60
    path = run_dir(settings.workdir_root, age_s=old)
    legacy_tree(path / "deep", 1500, "d", b"payload")
    stamp = os.stat(path).st_mtime - old
    os.utime(path, (stamp, stamp))
    try:
        assert Reaper(runs, lambda tasks, countdown: None, settings).tidy() == [str(path)]
        assert not path.exists()
    finally:
        remove_tree(str(path))


def test_the_reaper_forgets_workers_gone_for_long(runs):
    stale = now_ms() - int(FORGET_WORKER_S * 1000) - 1
    runs.client.hset(runs.keys.workers, mapping={"gone": stale, "here": now_ms()})
    said = (runs.keys.worker_slots, runs.keys.worker_info, runs.keys.worker_packages)
    for written_with_the_beat in said:
        runs.client.hset(written_with_the_beat, mapping={"gone": "1", "here": "1"})
    Reaper(runs, lambda tasks, countdown: None, runs.settings).tidy()
    assert runs.client.hkeys(runs.keys.workers) == [b"here"]
    for written_with_the_beat in said:
        assert runs.client.hkeys(written_with_the_beat) == [b"here"], written_with_the_beat


def test_a_rerun_keeps_the_artifacts_it_reuses_on_disk(runs):
    pkg = package(
        {
            "src": {"code": "v = 1", "outputs": ["v"]},
            "use": {"code": "v = 1", "inputs": ["x"], "outputs": ["v"]},
        },
        {"a": {"app": "src"}, "b": {"app": "use", "in": {"x": [("a", "v")]}}},
    )
    loaded = dwp.load(pkg)
    record = {"targets": None, "reused": [], "options": {}, "inputs": {}, "flow_inputs": {}}
    base = uuid.uuid4().hex
    runs.create(base, pkg, make_plan(loaded), record)
    ctx = runs.context(base)
    assert ctx is not None
    runs.claim(base, "a", 1, "w")
    big = Artifact(os.path.join(runs.settings.artifact_dir, base, "a", "1", "0.pkl"), 10 << 20)
    runs.finish(ctx, "a", 1, True, None, 0.1, {"v": big}, {"v": "..."})
    plan = make_plan(loaded, targets=["b"], available=lambda f: f == "a")
    assert plan.reused == {"a"}
    rerun = uuid.uuid4().hex
    runs.create(rerun, pkg, plan, {**record, "targets": ["b"]}, base_run=base)
    assert 0 < runs.client.ttl(runs.keys.run_keep(base)) <= runs.settings.ttl_s


def test_each_users_run_index_forgets_expired_runs(runs):
    index = RunIndex(runs.client, runs.settings)
    old = now_ms() - runs.settings.ttl_s * 1000 - 1
    runs.client.zadd(index.user_runs("ann"), {"ancient": old})
    runs.client.zadd(runs.keys.user_stored_runs("ann"), {"ancient": old, "live": now_ms()})
    stored = runs.keys.user_stored("ann")
    runs.client.hset(stored, mapping={"bytes": 700, "r:ancient": 500, "r:live": 200})
    assert index.quota.usage("ann")["bytes"] == 200  # every submit path prunes before it claims
    assert runs.client.hgetall(stored) == {b"bytes": b"200", b"r:live": b"200"}
    assert runs.client.zrange(runs.keys.user_stored_runs("ann"), 0, -1) == [b"live"]
    assert index.claim("r1", "ann", None)
    assert runs.client.zrange(index.user_runs("ann"), 0, -1) == [b"r1"]
    for key in (index.user_runs("ann"), index.user_active("ann")):
        assert 0 < runs.client.ttl(key) <= runs.settings.ttl_s
