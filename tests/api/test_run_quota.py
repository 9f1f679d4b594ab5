"""The service refuses a user's new runs while that user's runs hold their Redis quota (413
`quota_runs`), shows the figure, lets other users submit, and frees the bytes of expired runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.api.conftest import Api, make_api, session_prefix  # noqa: F401
from tests.conftest import package
from tests.worker.conftest import redis_url  # noqa: F401

QUOTA, TTL_S = 3000, 2


@pytest.fixture
def api(redis_url: str, session_prefix: str, tmp_path: Path) -> Iterator[Api]:  # noqa: F811
    found = make_api(redis_url, session_prefix, tmp_path, None, run_quota_bytes=QUOTA, ttl_s=TTL_S)
    worker = found.services.settings.worker  # a live worker's heartbeat: the runs only queue
    found.services.redis.hset(f"{worker.prefix}:workers", "w-test", str(time.time() * 1000))
    yield found


def big() -> dict:
    """A package whose snapshot alone is over QUOTA."""
    return package({"a": {"code": "# " + "x" * 4000 + "\nv = 1", "outputs": ["v"]}}, {"f": {"app": "a"}})  # fmt: skip


def usage(api: Api, headers: dict[str, str]) -> dict[str, int]:
    answer = api.call("GET", "/runs/usage", headers)
    assert answer.status_code == 200, answer.json
    return dict(answer.json)


def test_runs_past_the_quota_are_refused_until_theirs_expire(api: Api) -> None:
    alice, bob = api.user("alice"), api.user("bob")
    slots = {"flows_running": 0, "flows_parked": 0, "flow_slots": 0}
    assert usage(api, alice) == {"bytes": 0, "quota_bytes": QUOTA, "ttl_s": TTL_S, **slots}
    first = api.call("POST", "/runs", alice, json={"package": big()})
    assert first.status_code == 201, first.json
    held = usage(api, alice)["bytes"]
    assert held > 4000  # the snapshot, the record, the flows and the first events

    refused = api.call("POST", "/runs", alice, json={"package": big()})
    assert refused.status_code == 413, refused.json
    error = refused.json["error"]
    assert error["code"] == "quota_runs"
    assert f"your runs hold {held} bytes, your quota is {QUOTA}" in error["message"]
    assert error["details"] == {"bytes": held, "quota_bytes": QUOTA, "ttl_s": TTL_S}
    assert api.call("GET", "/runs", alice).json["total"] == 1  # nothing stored
    assert api.call("POST", "/runs", bob, json={"package": big()}).status_code == 201

    deadline = time.monotonic() + 10 * TTL_S  # the first run expires TTL_S after it started
    while usage(api, alice)["bytes"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert usage(api, alice)["bytes"] == 0
    again = api.call("POST", "/runs", alice, json={"package": big()})
    assert again.status_code == 201, again.json


def test_a_run_made_and_never_claimed_is_freed_when_it_expires(api: Api) -> None:
    """A submit that failed between making its run and claiming it (a broker error, a crash):
    the run was counted, and its bytes go with it like any other's."""
    client = api.services.client
    client.submit(big(), account="zed")  # made for zed, never claimed (not in zed's run list)
    zed = api.user("zed")
    assert usage(api, zed)["bytes"] > 4000
    deadline = time.monotonic() + 10 * TTL_S
    while usage(api, zed)["bytes"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert usage(api, zed)["bytes"] == 0


def test_a_retried_submit_gets_its_run_even_past_the_quota(api: Api) -> None:
    alice = api.user("alice")
    key = {**alice, "Idempotency-Key": "nightly-1"}
    first = api.call("POST", "/runs", key, json={"package": big()})
    assert first.status_code == 201, first.json  # its run alone passes the quota
    again = api.call("POST", "/runs", key, json={"package": big()})
    assert again.status_code == 200 and again.json["run_id"] == first.json["run_id"]
    other = {**alice, "Idempotency-Key": "nightly-2"}
    refused = api.call("POST", "/runs", other, json={"package": big()})
    assert refused.status_code == 413 and refused.json["error"]["code"] == "quota_runs"
