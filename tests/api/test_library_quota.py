"""What one user's stored workflows may hold in the shared Redis: workflows owned, versions kept,
bytes of every kept version; refused saves store nothing and name the limit."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from dizest_api.data.library_quota import LibraryLimits
from dizest_api.settings import ApiSettings
from dizest_core.errors import ConfigError
from tests.api.conftest import Api, make_api
from tests.api.test_workflows import CHAIN, create
from tests.worker.conftest import make_settings


def sized(n: int) -> dict[str, Any]:
    """CHAIN with a padding field: its stored JSON grows with `n` (fields are kept as sent)."""
    return {**CHAIN, "pad": "x" * n}


def stored_size(pkg: dict[str, Any]) -> int:
    return len(json.dumps(pkg, ensure_ascii=False).encode())


def kept_bytes(api: Api, username: str) -> int:
    """The size of every version of every workflow `username` owns, read from Redis itself."""
    lib = api.services.library
    total = 0
    for wf_id in lib.redis.zrange(lib.keys.user_workflows(username), 0, -1):
        key = lib.keys.workflow_versions(wf_id)
        total += sum(lib.redis.hstrlen(key, v) for v in lib.redis.hkeys(key))
    return total


def usage(api: Api, headers: dict[str, str]) -> dict[str, int]:
    answer = api.call("GET", "/workflows/usage", headers)
    assert answer.status_code == 200, answer.json
    return dict(answer.json)


def test_a_user_owns_at_most_max_workflows(api: Api) -> None:
    api.services.library.limits = LibraryLimits(max_workflows=2)
    alice, bob = api.user("alice"), api.user("bob")
    first, _ = create(api, alice, "one"), create(api, alice, "two")
    refused = api.call("POST", "/workflows", alice, json={"title": "three", "package": CHAIN})
    assert refused.status_code == 422, refused.json
    error = refused.json["error"]
    assert error["code"] == "quota_workflows" and "delete one" in error["message"]
    assert error["details"] == {"workflows": 2, "max_workflows": 2}
    assert api.call("GET", "/workflows", alice).json["total"] == 2  # nothing stored
    create(api, bob, "bob's")  # another user's limit is their own
    assert api.call("DELETE", f"/workflows/{first}", alice).status_code == 204
    create(api, alice, "three")
    assert usage(api, alice)["workflows"] == 2


def test_a_save_keeps_the_last_versions_and_counts_them(api: Api) -> None:
    api.services.library.limits = LibraryLimits(versions_kept=3)
    alice = api.user("alice")
    wf_id = create(api, alice)
    packages = [CHAIN] + [sized(100 * i) for i in range(1, 5)]  # versions 1..5
    for pkg in packages[1:]:
        assert (
            api.call("PUT", f"/workflows/{wf_id}", alice, json={"package": pkg}).status_code == 200
        )
    for version in (1, 2):
        gone = api.call("GET", f"/workflows/{wf_id}?version={version}", alice)
        assert gone.status_code == 404
        assert "only its last 3 versions are kept" in gone.json["error"]["message"]
    for version in (3, 4, 5):
        got = api.call("GET", f"/workflows/{wf_id}?version={version}", alice).json
        assert got["package"] == packages[version - 1]
    expected = sum(stored_size(p) for p in packages[2:])
    assert usage(api, alice)["bytes"] == expected == kept_bytes(api, "alice")
    assert api.call("DELETE", f"/workflows/{wf_id}", alice).status_code == 204
    assert usage(api, alice)["bytes"] == 0


def test_a_save_past_the_byte_quota_is_refused_and_stores_nothing(api: Api) -> None:
    small, big = sized(1000), sized(5000)
    quota = 2 * stored_size(small) + stored_size(small) // 2
    api.services.library.limits = LibraryLimits(versions_kept=1, quota_bytes=quota)
    alice, bob = api.user("alice"), api.user("bob")
    one = api.call("POST", "/workflows", alice, json={"title": "a", "package": small}).json["id"]
    api.call("POST", "/workflows", alice, json={"title": "b", "package": small})
    used = usage(api, alice)["bytes"]
    assert used == 2 * stored_size(small)
    refused = api.call("POST", "/workflows", alice, json={"title": "c", "package": small})
    assert refused.status_code == 413, refused.json
    error = refused.json["error"]
    assert error["code"] == "quota_bytes"
    assert error["details"] == {"bytes": used, "quota_bytes": quota, "size": stored_size(small)}
    grown = api.call("PUT", f"/workflows/{one}", alice, json={"package": big})
    assert grown.status_code == 413 and grown.json["error"]["code"] == "quota_bytes"
    latest = api.call("GET", f"/workflows/{one}", alice).json
    assert latest["version"] == 1 and latest["package"] == small  # nothing written
    # a save that does not grow the usage passes (its old version is dropped: one is kept)
    assert api.call("PUT", f"/workflows/{one}", alice, json={"package": CHAIN}).status_code == 200
    assert usage(api, alice)["bytes"] == stored_size(small) + stored_size(CHAIN)
    # an editor's save counts for the owner, not for the editor
    api.call("PUT", f"/workflows/{one}/grants", alice, json={"grants": {"bob": "editor"}})
    by_bob = api.call("PUT", f"/workflows/{one}", bob, json={"package": big})
    assert (
        by_bob.status_code == 413 and "alice's stored workflows" in by_bob.json["error"]["message"]
    )
    assert usage(api, bob)["bytes"] == 0
    assert usage(api, alice)["bytes"] == kept_bytes(api, "alice")


def test_usage_is_counted_from_the_workflows_when_its_key_is_missing(api: Api) -> None:
    alice = api.user("alice")
    create(api, alice)
    wf_id = create(api, alice)
    api.call("PUT", f"/workflows/{wf_id}", alice, json={"package": sized(300)})
    lib = api.services.library
    lib.redis.delete(lib.keys.user_library("alice"))  # a store from before quotas
    assert (
        usage(api, alice)["bytes"]
        == kept_bytes(api, "alice")
        == 2 * stored_size(CHAIN) + stored_size(sized(300))
    )
    lib.redis.delete(lib.keys.user_library("alice"))
    create(api, alice)  # the first write counts what was there, then adds its own
    assert usage(api, alice)["bytes"] == kept_bytes(api, "alice")
    lib.redis.delete(lib.keys.user_library("alice"))
    assert api.call("DELETE", f"/workflows/{wf_id}", alice).status_code == 204
    assert lib.redis.exists(lib.keys.user_library("alice")) == 0  # not driven negative
    assert usage(api, alice)["bytes"] == kept_bytes(api, "alice") == 2 * stored_size(CHAIN)


def test_creates_at_once_never_pass_the_limit(api: Api) -> None:
    api.services.library.limits = LibraryLimits(max_workflows=3)
    alice = api.user("alice")
    lib, statuses = api.services.library, []
    start = threading.Barrier(8)

    def attempt(i: int) -> None:
        start.wait(timeout=30)
        try:
            lib.create("alice", f"w{i}", CHAIN)
            statuses.append("ok")
        except Exception as exc:  # the refusal is what is counted
            statuses.append(type(exc).__name__)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(statuses) == ["WorkflowsQuota"] * 5 + ["ok"] * 3
    assert usage(api, alice) == {
        "workflows": 3,
        "max_workflows": 3,
        "bytes": 3 * stored_size(CHAIN),
        "quota_bytes": LibraryLimits().quota_bytes,
        "versions_kept": LibraryLimits().versions_kept,
    }


def test_removing_a_user_removes_their_usage(api: Api) -> None:
    admin, alice = api.user("root", "admin"), api.user("alice")
    create(api, alice)
    lib = api.services.library
    assert lib.redis.exists(lib.keys.user_library("alice")) == 1
    assert api.call("DELETE", "/users/alice", admin).status_code == 204
    assert lib.redis.exists(lib.keys.user_library("alice")) == 0


@pytest.mark.parametrize(
    "name",
    [
        "DIZEST_MAX_WORKFLOWS_PER_USER",
        "DIZEST_WORKFLOW_VERSIONS_KEPT",
        "DIZEST_LIBRARY_QUOTA_BYTES",
    ],
)
def test_limits_below_one_are_refused_at_start(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        ApiSettings.from_env({"DIZEST_SECRET_KEY": "k" * 32, name: "0"})


def test_a_package_its_runs_would_refuse_is_not_stored(
    redis_url: str, session_prefix: str, tmp_path: Path
) -> None:
    """A save took an app's code of any length up to the request's size, its runs a string of
    `max_input_string` at most: a 6 MB app was stored (201) and every run of it refused with
    `package_string_too_long` (a probe's find). A save is held to the same limits, and a
    refused one, new or a version, stores nothing."""
    engine = replace(make_settings(redis_url, tmp_path).engine, max_input_string=1000)
    api = make_api(redis_url, session_prefix, tmp_path, object(), engine=engine)
    alice = api.user("alice")
    long = {**CHAIN, "apps": {**CHAIN["apps"], "src": {**CHAIN["apps"]["src"], "code": "#" * 1001}}}
    refused = api.call("POST", "/workflows", alice, json={"title": "long", "package": long})
    assert refused.status_code == 422, refused.json
    assert refused.json["error"]["code"] == "package_string_too_long"
    assert "1001 characters (the limit is 1000)" in refused.json["error"]["message"]
    assert api.call("GET", "/workflows", alice).json["total"] == 0
    wf_id = create(api, alice)
    again = api.call("PUT", f"/workflows/{wf_id}", alice, json={"package": long})
    assert again.json["error"]["code"] == "package_string_too_long"
    assert api.call("GET", f"/workflows/{wf_id}", alice).json["version"] == 1
