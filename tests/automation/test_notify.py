"""Webhooks and triggers against a real worker, a real `dizest beat` and a local receiver:
signed deliveries retried after a 500, a delivery log with the status codes, trigger runs with
the owner's rights, rate limiting, rotation and revocation."""

from __future__ import annotations

from typing import Any

from tests.automation.conftest import Receiver, Stack, payload, signed
from tests.automation.test_beat import _workflow
from tests.conftest import wait_for


def _hook(stack: Stack, headers: dict[str, str], url: str, **extra: Any) -> dict[str, Any]:
    answer = stack.api.call("POST", "/hooks", headers, json={"url": url, **extra})
    assert answer.status_code == 201, answer.json
    return dict(answer.json)


def test_a_finished_run_calls_its_hooks_signed_and_retries_after_a_500(
    stack: Stack, receiver: Receiver
) -> None:
    alice, bob = stack.api.user("alice"), stack.api.user("bob")
    wf_id = _workflow(stack, alice)
    hook = _hook(stack, alice, receiver.url, workflow_id=wf_id)
    assert hook["secret"].startswith("whsec_")
    shown = stack.api.call("GET", f"/hooks/{hook['id']}", alice).json
    assert "secret" not in shown  # shown once, at creation
    _hook(stack, bob, receiver.url)  # bob's hook: never told about alice's runs
    receiver.statuses = [500]
    stack.start_beat()
    answer = stack.api.call("POST", "/runs", alice, json={"workflow_id": wf_id})
    run_id = answer.json["run_id"]
    wait_for(lambda: len(receiver.calls) >= 2, timeout=30)
    first, second = receiver.calls[:2]
    assert first["body"] == second["body"]  # the same delivery, retried
    body = payload(second)
    assert body["run_id"] == run_id and body["status"] == "ready"
    assert body["workflow_id"] == wf_id and body["owner"] == "alice"
    assert body["finished_at"] and body["created_at"] and body["started_at"]  # it was null
    headers = second["headers"]
    assert headers["X-Dizest-Signature"] == signed(hook["secret"], second["body"])
    log = wait_for(
        lambda: (
            (d := stack.api.call("GET", f"/hooks/{hook['id']}", alice).json["deliveries"])
            and len(d) >= 2
            and d
        ),
        timeout=10,
    )
    assert [(d["attempt"], d["status_code"], d["ok"]) for d in log] == [(2, 200, True), (1, 500, False)]  # fmt: skip
    assert len(receiver.calls) == 2  # no third call: delivered


def test_a_trigger_starts_a_run_as_its_owner_and_is_rate_limited(stack: Stack) -> None:
    alice = stack.api.user("alice")
    wf_id = _workflow(stack, alice)
    made = stack.api.call("POST", f"/workflows/{wf_id}/triggers", alice, json={"rate_per_min": 2})
    assert made.status_code == 201, made.json
    secret, trigger_id = made.json["secret"], made.json["id"]
    assert made.json["url"].endswith(f"/api/v1/triggers/{secret}")
    fired = stack.api.http.post(f"/api/v1/triggers/{secret}", json={"k": 3})
    assert fired.status_code == 201, fired.json
    run_id = fired.json["run_id"]
    report = stack.api.call("GET", f"/runs/{run_id}", alice).json
    assert report["owner"] == "alice" and report["inputs"] == {"k": 3}
    assert stack.api.http.post(f"/api/v1/triggers/{secret}", json={}).status_code == 201
    limited = stack.api.http.post(f"/api/v1/triggers/{secret}", json={})
    assert limited.status_code == 429 and limited.json["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) >= 1
    assert len(stack.api.call("GET", "/runs", alice).json["items"]) == 2  # the 3rd started none
    rotated = stack.api.call("POST", f"/workflows/{wf_id}/triggers/{trigger_id}/rotate", alice)
    assert rotated.status_code == 200 and rotated.json["secret"] != secret
    assert stack.api.http.post(f"/api/v1/triggers/{secret}", json={}).status_code == 404
    gone = stack.api.call("DELETE", f"/workflows/{wf_id}/triggers/{trigger_id}", alice)
    assert gone.status_code == 204
    new_secret = rotated.json["secret"]
    assert stack.api.http.post(f"/api/v1/triggers/{new_secret}", json={}).status_code == 404
    stack.api.services.client.wait(run_id, timeout=60)
