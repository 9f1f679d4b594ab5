"""Tokens and webhooks per user, schedules and triggers per workflow are bounded
(`dizest_api.data.counted`): the next create is 422 with its code, stores nothing, and a delete
(or an expired token) frees a place; another user's or workflow's count is its own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from dizest_api.automation import schedules
from dizest_api.automation.service import install
from dizest_api.automation.settings import AutomationSettings
from dizest_api.data import counted
from tests.api.conftest import Api, api, session_prefix  # noqa: F401
from tests.automation.test_api import _wf

LIMIT = 3


@pytest.fixture
def small(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(counted, "MAX_PER_SCOPE", LIMIT)
    yield


def _fill(make: Callable[[], object], code: str) -> object:
    """LIMIT creates pass; the next is 422 with `code` and the limit in its details."""
    for _ in range(LIMIT):
        answer = make()
        assert answer.status_code == 201, answer.json  # type: ignore[attr-defined]
    refused = make()
    assert refused.status_code == 422, refused.json  # type: ignore[attr-defined]
    error = refused.json["error"]  # type: ignore[attr-defined]
    assert error["code"] == code and error["details"]["max"] == LIMIT
    assert "delete one first" in error["message"]
    return refused


def test_schedules_and_triggers_per_workflow(api: Api, small: None) -> None:  # noqa: F811
    install(api.app, AutomationSettings())
    alice = api.user("alice")
    one, two = _wf(api, alice), _wf(api, alice)
    path = f"/workflows/{one}/schedules"
    _fill(lambda: api.call("POST", path, alice, json={"cron": "@daily"}), "quota_schedules")
    items = api.call("GET", f"{path}", alice).json["items"]
    assert len(items) == LIMIT  # the refused one stored nothing
    other = api.call("POST", f"/workflows/{two}/schedules", alice, json={"cron": "@daily"})
    assert other.status_code == 201  # another workflow counts its own
    assert api.call("DELETE", f"/schedules/{items[0]['id']}", alice).status_code == 204
    assert api.call("POST", path, alice, json={"cron": "@daily"}).status_code == 201
    triggers = f"/workflows/{one}/triggers"
    _fill(lambda: api.call("POST", triggers, alice, json={}), "quota_triggers")
    assert len(api.call("GET", triggers, alice).json["items"]) == LIMIT


def test_a_schedules_inputs_are_bounded(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """100 schedules a workflow may hold; each stores its inputs for its life: 64 KB each
    (1000 bytes here, under the test app's request limit)."""
    monkeypatch.setattr(schedules, "MAX_INPUT_BYTES", 1000)
    install(api.app, AutomationSettings())
    alice = api.user("alice")
    path = f"/workflows/{_wf(api, alice)}/schedules"
    big = {"cron": "@daily", "inputs": {"rows": "x" * 1000}}
    refused = api.call("POST", path, alice, json=big)
    assert refused.status_code == 422 and refused.json["error"]["code"] == "invalid_schedule"
    assert refused.json["error"]["details"]["max"] == 1000
    assert api.call("GET", path, alice).json["items"] == []
    made = api.call("POST", path, alice, json={"cron": "@daily", "inputs": {"rows": "x" * 900}})
    assert made.status_code == 201, made.json
    grown = api.call("PATCH", f"/schedules/{made.json['id']}", alice, json={"inputs": big["inputs"]})  # fmt: skip
    assert grown.status_code == 422 and grown.json["error"]["code"] == "invalid_schedule"


def test_webhooks_per_user(api: Api, small: None) -> None:  # noqa: F811
    found = install(api.app, AutomationSettings(webhook_allow_private=True))
    alice, bob = api.user("alice"), api.user("bob")
    wf_id = _wf(api, alice)
    bodies = iter([{"url": "http://127.0.0.1:9/a"}, {"url": "http://127.0.0.1:9/b", "workflow_id": wf_id}] * 3)  # fmt: skip
    _fill(lambda: api.call("POST", "/hooks", alice, json=next(bodies)), "quota_webhooks")
    assert len(api.call("GET", "/hooks", alice).json["items"]) == LIMIT
    assert api.call("POST", "/hooks", bob, json={"url": "http://127.0.0.1:9/c"}).status_code == 201
    # an id whose hook is gone (deleted on a path that left the index) counts no more
    gone = api.call("GET", "/hooks", alice).json["items"][0]["id"]
    api.services.redis.delete(found.hooks.keys.hook(gone))
    again = api.call("POST", "/hooks", alice, json={"url": "http://127.0.0.1:9/d"})
    assert again.status_code == 201, again.json


def test_tokens_per_user_and_expired_ones_free_their_place(api: Api, small: None) -> None:  # noqa: F811
    alice = api.user("alice")  # one token already
    accounts = api.services.accounts
    accounts.create_token("alice", "short", ["read"], expires_in_s=3600)
    body = {"name": "t", "scopes": ["read"]}
    assert api.call("POST", "/tokens", alice, json=body).status_code == 201
    refused = api.call("POST", "/tokens", alice, json=body)
    assert refused.status_code == 422 and refused.json["error"]["code"] == "quota_tokens"
    assert len(accounts.tokens("alice")) == LIMIT
    short = next(t for t in accounts.tokens("alice") if t.name == "short")
    api.services.redis.delete(api.services.accounts.keys.token(short.id))  # as its expiry does
    assert api.call("POST", "/tokens", alice, json=body).status_code == 201
    members = api.services.redis.smembers(api.services.accounts.keys.user_tokens("alice"))
    assert short.id not in members and len(members) == LIMIT


def test_creates_at_once_never_pass_the_limit(api: Api, small: None) -> None:  # noqa: F811
    api.user("alice")
    accounts, outcomes = api.services.accounts, []
    start = threading.Barrier(8)

    def attempt() -> None:
        start.wait(timeout=30)
        try:
            accounts.create_token("alice", "race", ["read"])
            outcomes.append("ok")
        except counted.CountQuota:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["ok"] * (LIMIT - 1) + ["refused"] * (8 - LIMIT + 1)
    assert len(accounts.tokens("alice")) == LIMIT


def test_a_grantee_cannot_keep_the_owners_places(api: Api, small: None) -> None:  # noqa: F811
    """A runner filled alice's workflow with schedules she could neither delete nor get back
    by revoking the grant. She may delete them, and a grant lowered below runner takes away
    the schedules, triggers and workflow webhooks its holder made there."""
    found = install(api.app, AutomationSettings(webhook_allow_private=True))
    alice, mallory = api.user("alice"), api.user("mallory")
    wf = _wf(api, alice)
    runner = {"grants": {"mallory": "runner"}}
    assert api.call("PUT", f"/workflows/{wf}/grants", alice, json=runner).status_code == 200
    path = f"/workflows/{wf}/schedules"
    _fill(lambda: api.call("POST", path, mallory, json={"cron": "@daily"}), "quota_schedules")
    theirs = [s["id"] for s in api.call("GET", path, alice).json["items"]]
    assert len(theirs) == LIMIT
    assert api.call("POST", path, alice, json={"cron": "@daily"}).status_code == 422
    assert api.call("GET", f"/schedules/{theirs[0]}", alice).status_code == 200
    assert api.call("DELETE", f"/schedules/{theirs[0]}", alice).status_code == 204
    assert api.call("POST", path, alice, json={"cron": "@daily"}).status_code == 201
    assert api.call("PATCH", f"/schedules/{theirs[1]}", alice, json={"enabled": False}).status_code == 404  # fmt: skip
    triggers = f"/workflows/{wf}/triggers"
    assert api.call("POST", triggers, mallory, json={}).status_code == 201
    hook = {"url": "http://127.0.0.1:9/h", "workflow_id": wf}
    assert api.call("POST", "/hooks", mallory, json=hook).status_code == 201
    viewer = {"grants": {"mallory": "viewer"}}
    assert api.call("PUT", f"/workflows/{wf}/grants", alice, json=viewer).status_code == 200
    left = [s["owner"] for s in api.call("GET", path, alice).json["items"]]
    assert left == ["alice"]
    assert found.triggers.for_workflow(wf) == []
    assert [h for h in found.hooks.owned("mallory") if h.workflow_id == wf] == []


def test_schedules_per_user_over_all_workflows(api: Api, small: None) -> None:  # noqa: F811
    """A probe made 4,000 every-minute schedules (40 workflows x 100), each place allowed by
    its workflow's limit: one user's ticks took the beat 30 s a minute to send. A user holds
    at most DIZEST_MAX_SCHEDULES_PER_USER over all workflows (LIMIT + 2 here)."""
    most = LIMIT + 2
    settings = AutomationSettings.from_env({"DIZEST_MAX_SCHEDULES_PER_USER": str(most)})
    found = install(api.app, settings)
    alice, bob = api.user("alice"), api.user("bob")
    one, two, three = _wf(api, alice), _wf(api, alice), _wf(api, alice)
    for wf_id, count in ((one, LIMIT), (two, most - LIMIT)):
        for _ in range(count):
            made = api.call("POST", f"/workflows/{wf_id}/schedules", alice, json={"cron": "@daily"})
            assert made.status_code == 201, made.json
    refused = api.call("POST", f"/workflows/{three}/schedules", alice, json={"cron": "@daily"})
    assert refused.status_code == 422, refused.json  # workflow three has room: alice has not
    error = refused.json["error"]
    assert error["code"] == "quota_schedules"
    assert error["details"] == {"schedules": most, "max": most}
    assert error["message"] == (
        f"user alice holds {most} schedules, the most allowed ({most}); delete one first"
    )
    assert api.call("GET", f"/workflows/{three}/schedules", alice).json["items"] == []
    theirs = api.call("POST", f"/workflows/{_wf(api, bob)}/schedules", bob, json={"cron": "@daily"})
    assert theirs.status_code == 201  # bob counts his own
    first = found.schedules.find("alice")[-1].id
    assert api.call("DELETE", f"/schedules/{first}", alice).status_code == 204
    again = api.call("POST", f"/workflows/{three}/schedules", alice, json={"cron": "@daily"})
    assert again.status_code == 201, again.json


def test_schedules_made_before_the_per_user_limit_count_in_it(api: Api) -> None:  # noqa: F811
    """A deployment's schedules made before this limit have no place in their owner's index:
    the first create after the upgrade gives them one, so the probe's 4,000 count."""
    found = install(api.app, AutomationSettings(max_schedules_per_user=2))
    alice = api.user("alice")
    path = f"/workflows/{_wf(api, alice)}/schedules"
    for _ in range(2):
        assert api.call("POST", path, alice, json={"cron": "@daily"}).status_code == 201
    keys = found.schedules.keys
    api.services.redis.delete(keys.owner_schedules("alice"), keys.migrated("owner-index"))
    refused = api.call("POST", path, alice, json={"cron": "@daily"})
    assert refused.status_code == 422 and refused.json["error"]["details"]["schedules"] == 2
    assert len(found.schedules.find("alice")) == 2
