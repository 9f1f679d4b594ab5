"""Schedules, webhooks and triggers through the API without a worker: who may do what, and bad
input (a cron that is invalid or fires more than once a minute, a webhook URL that is not
http(s) or points at loopback, private or metadata addresses) answered 4xx with nothing stored."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from dizest_api.automation import delivery
from dizest_api.automation.service import Automation, install
from dizest_api.automation.settings import AutomationSettings
from tests.api.conftest import Api, api, cluster_api, session_prefix  # noqa: F401
from tests.conftest import package

# reads `k` and `rows`: a schedule's inputs must be read by a flow (dizest_core.run_inputs)
READS = [("k", "variable", None), ("rows", "variable", None)]
PKG = package({"a": {"code": "v = 1", "inputs": READS, "outputs": ["v"]}}, {"f": {"app": "a"}})


@pytest.fixture
def auto(api: Api) -> Iterator[Automation]:  # noqa: F811
    yield install(api.app, AutomationSettings())  # private webhook addresses refused


def _wf(api: Api, headers: dict[str, str]) -> str:  # noqa: F811
    return str(api.call("POST", "/workflows", headers, json={"package": PKG}).json["id"])


def _stored(api: Api, auto: Automation) -> list[str]:  # noqa: F811
    keys = auto.schedules.keys
    prefix = keys.prefix
    return sorted(api.services.redis.scan_iter(match=f"{prefix}:*sched*")) + sorted(
        api.services.redis.scan_iter(match=f"{keys.redbeat_prefix}*")
    ) + sorted(api.services.redis.scan_iter(match=f"{prefix}:hook*"))  # fmt: skip


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"cron": "*/10 * * * * *"}, "invalid_schedule", "at most once a minute"),
        ({"cron": "61 * * * *"}, "invalid_schedule", "Invalid end range"),
        ({"cron": "0 0 30 2 *"}, "invalid_schedule", "never occurs"),
        ({"cron": "every day"}, "invalid_schedule", "5 fields"),
        ({"cron": "\u0661 * * * *"}, "invalid_schedule", "only ASCII"),  # Arabic-Indic 1
        ({"cron": "0 9 * * \uff11"}, "invalid_schedule", "only ASCII"),  # fullwidth 1
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "invalid_schedule", "time zone"),
        ({"cron": "0 9 * * *", "catchup": "twice"}, "invalid_schedule", "catchup"),
    ],
)
def test_a_bad_schedule_is_422_and_nothing_is_stored(
    api: Api,  # noqa: F811
    auto: Automation,
    body: dict[str, str],
    code: str,
    words: str,
) -> None:
    alice = api.user("alice")
    wf_id = _wf(api, alice)
    answer = api.call("POST", f"/workflows/{wf_id}/schedules", alice, json=body)
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["code"] == code and words in answer.json["error"]["message"]
    assert _stored(api, auto) == []


def test_bad_options_and_fields_are_refused(api: Api, auto: Automation) -> None:  # noqa: F811
    alice = api.user("alice")
    wf_id = _wf(api, alice)
    for body in ({"cron": 5}, {"when": "now"}):
        answer = api.call("POST", f"/workflows/{wf_id}/schedules", alice, json=body)
        assert answer.status_code == 400, answer.json
    for options in ({"nope": 1}, {"retries": "1"}):  # as a submit's: 422 naming the option
        body = {"cron": "0 9 * * *", "options": options}
        answer = api.call("POST", f"/workflows/{wf_id}/schedules", alice, json=body)
        assert answer.status_code == 422 and answer.json["error"]["code"] == "invalid_options"
    assert _stored(api, auto) == []


def test_schedules_belong_to_their_owner_and_follow_enable_disable(
    api: Api,  # noqa: F811
    auto: Automation,
) -> None:
    alice, bob = api.user("alice"), api.user("bob")
    wf_id = _wf(api, alice)
    assert api.call("POST", f"/workflows/{wf_id}/schedules", bob, json={"cron": "@daily"}).status_code == 404  # fmt: skip
    made = api.call("POST", f"/workflows/{wf_id}/schedules", alice,
                    json={"cron": "30 9 * * 1-5", "timezone": "Asia/Seoul", "inputs": {"k": 1}})  # fmt: skip
    assert made.status_code == 201, made.json
    sid = made.json["id"]
    assert made.json["next_run_at"].endswith(":30:00+00:00")  # 9:30 in Seoul = 0:30 UTC
    assert made.json["next_run_at"][11:13] == "00"
    assert api.call("GET", f"/schedules/{sid}", bob).status_code == 404
    listed = api.call("GET", "/schedules", alice).json["items"]
    assert [(s["id"], s["workflow_title"]) for s in listed] == [(sid, made.json["workflow_title"])]
    title = api.call("GET", f"/workflows/{wf_id}", alice).json["title"]
    assert made.json["workflow_title"] == title  # a console's list shows it, not the id
    assert api.call("GET", "/schedules", bob).json["items"] == []
    assert auto.schedules.entry(sid).kwargs["timezone"] == "Asia/Seoul"
    off = api.call("PATCH", f"/schedules/{sid}", alice, json={"enabled": False})
    assert off.status_code == 200 and off.json["enabled"] is False
    with pytest.raises(KeyError):
        auto.schedules.entry(sid)  # no redbeat entry while disabled
    on = api.call("PATCH", f"/schedules/{sid}", alice, json={"enabled": True, "cron": "@hourly"})
    assert on.status_code == 200 and auto.schedules.entry(sid).kwargs["cron"] == "@hourly"
    bad = api.call("PATCH", f"/schedules/{sid}", alice, json={"cron": "* * * * * *"})
    assert bad.status_code == 422
    assert api.call("GET", f"/schedules/{sid}", alice).json["cron"] == "@hourly"  # unchanged
    assert api.call("DELETE", f"/schedules/{sid}", alice).status_code == 204
    assert _stored(api, auto) == []


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "file:///etc/passwd",
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://[64:ff9b::a00:1]/hook",  # NAT64 of 10.0.0.1
        "http://[64:ff9b:1::7f00:1]/hook",  # local-use NAT64 of 127.0.0.1
        "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "http://[::127.0.0.1]/hook",  # IPv4-compatible
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/hook",  # Teredo, client 127.0.0.1
        "https://user:pw@example.com/hook",
        "http://example.invalid/hook",
        "http://8.8.8.8/\r\nX: y",  # every delivery failed: http.client refuses it
        "http://8.8.8.8/a b",
        "http://8.8.8.8/\x00",
        "https://example.com/caf\u00e9",  # UnicodeEncodeError in every delivery's task
        "http://[8.8.8.8]/",  # brackets hold IPv6 only: urlsplit's ValueError was a 500
        "http://[::1",
    ],
)
def test_a_refused_webhook_url_is_422_and_nothing_is_stored(
    api: Api,  # noqa: F811
    auto: Automation,
    url: str,
) -> None:
    alice = api.user("alice")
    answer = api.call("POST", "/hooks", alice, json={"url": url})
    assert answer.status_code == 422, answer.json
    assert answer.json["error"]["code"] == "invalid_url"
    assert api.call("GET", "/hooks", alice).json["items"] == []
    assert _stored(api, auto) == []


def test_a_webhook_url_whose_name_server_never_answers_is_refused_in_time(
    api: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Checking a new hook's URL resolved its host for as long as the name server took, each
    request holding an API thread: a user could take them all. It is resolved within the
    webhook timeout (0.3 s here), and a user's resolutions still waiting are bounded, past
    which theirs are refused at once; others' are not."""
    install(api.app, AutomationSettings(webhook_timeout_s=0.3))
    released = threading.Event()

    real = socket.getaddrinfo

    def stalled(host: Any, *args: Any, **kw: Any) -> Any:
        if host == "stalled.example":
            released.wait(30)
        if str(host).endswith(".example"):
            raise socket.gaierror(socket.EAI_NONAME, "no such name here")
        return real(host, *args, **kw)  # Redis's own address

    monkeypatch.setattr(socket, "getaddrinfo", stalled)
    alice, bob = api.user("alice"), api.user("bob")
    try:
        for _ in range(delivery.STALLED + 1):
            started = time.monotonic()
            answer = api.call("POST", "/hooks", alice, json={"url": "http://stalled.example/"})
            assert answer.status_code == 422 and answer.json["error"]["code"] == "invalid_url"
            assert time.monotonic() - started < 2.0
        assert "still waiting" in answer.json["error"]["message"]  # the last: none started
        theirs = api.call("POST", "/hooks", bob, json={"url": "http://other.example/"})
        assert "cannot resolve 'other.example'" in theirs.json["error"]["message"]
    finally:
        released.set()
    assert api.call("GET", "/hooks", alice).json["items"] == []


def test_the_operator_may_allow_private_webhook_addresses(api: Api) -> None:  # noqa: F811
    install(api.app, AutomationSettings(webhook_allow_private=True))
    alice = api.user("alice")
    answer = api.call("POST", "/hooks", alice, json={"url": "http://127.0.0.1:9/hook"})
    assert answer.status_code == 201
    assert api.call("POST", "/hooks", alice, json={"url": "ftp://127.0.0.1/"}).status_code == 422


def test_triggers_refuse_bad_input_and_unknown_secrets(api: Api, auto: Automation) -> None:  # noqa: F811
    alice, bob = api.user("alice"), api.user("bob")
    wf_id = _wf(api, alice)
    assert api.call("POST", f"/workflows/{wf_id}/triggers", alice, json={"rate_per_min": 0}).status_code == 422  # fmt: skip
    assert api.call("POST", f"/workflows/{wf_id}/triggers", bob, json={}).status_code == 404
    assert auto.triggers.for_workflow(wf_id) == []
    assert api.http.post("/api/v1/triggers/dztr_nope", json={}).status_code == 404
    made = api.call("POST", f"/workflows/{wf_id}/triggers", alice, json={}).json
    not_object = api.http.post(f"/api/v1/triggers/{made['secret']}", json=[1, 2])
    assert not_object.status_code == 400
    listed = api.call("GET", f"/workflows/{wf_id}/triggers", alice).json["items"]
    assert [t["id"] for t in listed] == [made["id"]] and "secret" not in listed[0]


def test_a_trigger_body_that_is_not_an_object_starts_nothing(cluster_api: Api) -> None:  # noqa: F811
    """`null` was taken for no inputs and started a run; only no body at all means that (here
    it gets as far as the missing worker: 503)."""
    install(cluster_api.app, AutomationSettings())
    alice = cluster_api.user("alice")
    wf_id = _wf(cluster_api, alice)
    made = cluster_api.call("POST", f"/workflows/{wf_id}/triggers", alice, json={}).json
    url = f"/api/v1/triggers/{made['secret']}"
    for body in (b"null", b" null ", b"5", b'"k"'):
        refused = cluster_api.http.post(url, data=body, content_type="application/json")
        assert refused.status_code == 400, (body, refused.json)
        assert "JSON object" in refused.json["error"]["message"]
    for body in (b"", b"{}"):
        answer = cluster_api.http.post(url, data=body, content_type="application/json")
        assert answer.status_code == 503 and answer.json["error"]["code"] == "no_worker", body


def test_deleting_a_workflow_deletes_its_schedules_triggers_and_hooks_only(
    api: Api,  # noqa: F811
) -> None:
    found = install(api.app, AutomationSettings(webhook_allow_private=True))
    alice = api.user("alice")
    gone, kept = _wf(api, alice), _wf(api, alice)
    made: dict[str, dict[str, str]] = {}
    for wf_id in (gone, kept):
        sched = api.call("POST", f"/workflows/{wf_id}/schedules", alice, json={"cron": "@daily"})
        trig = api.call("POST", f"/workflows/{wf_id}/triggers", alice, json={})
        hook = api.call("POST", "/hooks", alice,
                        json={"url": "http://127.0.0.1:9/hook", "workflow_id": wf_id})  # fmt: skip
        assert {sched.status_code, trig.status_code, hook.status_code} == {201}
        made[wf_id] = {"sched": sched.json["id"], "trig": trig.json["secret"],
                       "hook": hook.json["id"]}  # fmt: skip
    everyone = api.call("POST", "/hooks", alice, json={"url": "http://127.0.0.1:9/all"}).json
    assert api.call("DELETE", f"/workflows/{gone}", alice).status_code == 204
    dead, live = made[gone], made[kept]
    assert api.call("GET", f"/schedules/{dead['sched']}", alice).status_code == 404
    with pytest.raises(KeyError):
        found.schedules.entry(dead["sched"])  # nothing left for the beat to fire
    assert api.http.post(f"/api/v1/triggers/{dead['trig']}", json={}).status_code == 404
    assert api.call("GET", f"/hooks/{dead['hook']}", alice).status_code == 404
    # the other workflow's, and the hook for all of alice's runs, are untouched
    assert found.schedules.entry(live["sched"]).kwargs["cron"] == "@daily"
    assert [t["id"] for t in api.call("GET", f"/workflows/{kept}/triggers", alice).json["items"]]
    hooks = {h["id"] for h in api.call("GET", "/hooks", alice).json["items"]}
    assert hooks == {live["hook"], everyone["id"]}
    assert [s["id"] for s in api.call("GET", "/schedules", alice).json["items"]] == [live["sched"]]


def test_only_a_triggers_owner_may_rotate_it(api: Api, auto: Automation) -> None:  # noqa: F811
    """The new URL starts runs as the trigger's owner (their limits, drive and webhooks, the
    inputs the caller chooses): the workflow's owner or an admin may see and revoke a
    grantee's trigger, not take a working URL of it (a probe ran as the grantee so)."""
    alice, bob, root = api.user("alice"), api.user("bob"), api.user("root", "admin")
    wf_id = _wf(api, alice)
    grant = {"grants": {"bob": "runner"}}
    assert api.call("PUT", f"/workflows/{wf_id}/grants", alice, json=grant).status_code == 200
    made = api.call("POST", f"/workflows/{wf_id}/triggers", bob, json={}).json
    rotate = f"/workflows/{wf_id}/triggers/{made['id']}/rotate"
    for other in (alice, root):
        refused = api.call("POST", rotate, other)
        assert refused.status_code == 403
        assert "only the trigger's owner" in refused.json["error"]["message"]
    assert auto.triggers.by_secret(made["secret"]).owner == "bob"  # the old secret still works
    rotated = api.call("POST", rotate, bob)
    assert rotated.status_code == 200 and rotated.json["secret"] != made["secret"]
    assert api.call("DELETE", f"/workflows/{wf_id}/triggers/{made['id']}", alice).status_code == 204


@pytest.mark.parametrize("kind", ["schedules", "triggers", "hooks"])
def test_what_a_grantee_makes_while_their_grant_is_revoked_does_not_survive_it(
    api: Api,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    """The exact interleaving: bob's request passed the grant check; alice's revoke (grants
    written, then what bob made deleted) completes before bob's thing is stored. It must not
    stay (a probe's schedule survived 1 time in 20, still holding one of the workflow's
    places, and came back to life with a new grant)."""
    from dizest_api.automation.service import drop_made_by

    found = install(api.app, AutomationSettings(webhook_allow_private=True))
    alice, bob = api.user("alice"), api.user("bob")
    wf_id = _wf(api, alice)
    grant = {"grants": {"bob": "runner"}}
    assert api.call("PUT", f"/workflows/{wf_id}/grants", alice, json=grant).status_code == 200
    store = getattr(found, kind)
    real_create = store.create

    def revoked_first(*args: Any, **kwargs: Any) -> Any:
        api.services.library.set_grants(wf_id, {})  # as PUT /grants does, in its order
        drop_made_by(found, wf_id, {"bob"})
        return real_create(*args, **kwargs)

    monkeypatch.setattr(store, "create", revoked_first)
    path, body = {
        "schedules": (f"/workflows/{wf_id}/schedules", {"cron": "@daily"}),
        "triggers": (f"/workflows/{wf_id}/triggers", {}),
        "hooks": ("/hooks", {"url": "http://127.0.0.1:9/h", "workflow_id": wf_id}),
    }[kind]
    assert api.call("POST", path, bob, json=body).status_code == 404  # no longer his to see
    monkeypatch.undo()
    assert found.schedules.find("bob", wf_id) == []
    assert found.triggers.for_workflow(wf_id) == []
    assert found.hooks.owned("bob") == []
