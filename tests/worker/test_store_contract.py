"""One contract for every OutputStore: the in-memory one and the Redis one behave the same."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from dizest_core.job import Artifact
from dizest_core.store import MemoryStore, OutputStore
from dizest_worker.connection import redis_client
from dizest_worker.keys import Keys
from dizest_worker.redis_store import RedisStore
from tests.worker.conftest import cleanup, make_settings


@pytest.fixture(params=["memory", "redis"])
def store(request, redis_url, tmp_path) -> Iterator[OutputStore]:
    if request.param == "memory":
        yield MemoryStore()
        return
    settings = make_settings(redis_url, tmp_path)
    yield RedisStore(redis_client(settings), Keys(settings.prefix), ttl_s=60)
    cleanup(settings)


def run() -> str:
    return uuid.uuid4().hex


def test_put_get_has_previews(store):
    r = run()
    assert not store.has(r, "f") and store.get(r, "f", "v") is None and store.previews(r, "f") == {}
    assert store.put(r, "f", {"v": b"\x80\x05K\x01."}, {"v": 1})
    assert store.has(r, "f")
    assert store.get(r, "f", "v") == b"\x80\x05K\x01."
    assert store.get(r, "f", "other") is None
    assert store.previews(r, "f") == {"v": 1}


def test_a_flow_with_no_outputs_is_still_recorded(store):
    r = run()
    assert store.put(r, "f", {}, {})
    assert store.has(r, "f") and store.previews(r, "f") == {}


def test_artifact_references_round_trip(store):
    r = run()
    ref = Artifact("/data/artifacts/x.pkl", 123456789)
    store.put(r, "f", {"big": ref}, {"big": {"$type": "builtins.bytes", "$repr": "b'..'"}})
    assert store.get(r, "f", "big") == ref


def test_puts_are_fenced_by_attempt(store):
    r = run()
    assert store.put(r, "f", {"v": b"new"}, {"v": "new"}, attempt=2)
    assert not store.put(r, "f", {"v": b"stale"}, {"v": "stale"}, attempt=1)
    assert store.get(r, "f", "v") == b"new"
    assert store.put(r, "f", {"w": b"newer"}, {"w": "newer"}, attempt=3)
    assert store.get(r, "f", "v") is None and store.get(r, "f", "w") == b"newer"


def test_copy_and_delete_run(store):
    a, b = run(), run()
    assert not store.copy(a, b, "f")
    store.put(a, "f", {"v": b"1"}, {"v": 1})
    assert store.copy(a, b, "f")
    assert store.get(b, "f", "v") == b"1" and store.previews(b, "f") == {"v": 1}
    store.delete_run(a)
    assert not store.has(a, "f") and store.has(b, "f")
