"""Hostile inputs to today's entry points that once got through: each is refused with a 4xx
JSON error and stores nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api
from tests.conftest import package

PACKAGE = package({"src": {"code": "y = 1", "outputs": ["y"]}}, {"a": {"app": "src"}})


@pytest.mark.parametrize(
    "options",
    [{"retries": -1}, {"retries": 10**9}, {"flow_timeout": -1}, {"memory_limit_mb": -5}],
)
def test_schedule_refuses_options_a_submit_would_refuse(api: Api, options: dict[str, Any]) -> None:
    """A schedule used to store options only type-checked (retries -1 was kept), so every one of
    its ticks failed at submit; now it is checked as a submit checks them, create and update."""
    alice = api.user("alice")
    wf = api.call("POST", "/workflows", alice, json={"title": "t", "package": PACKAGE}).json["id"]
    url = f"/workflows/{wf}/schedules"
    made = api.call("POST", url, alice, json={"cron": "* * * * *", "options": options})
    assert made.status_code == 422, made.json
    assert made.json["error"]["code"] == "invalid_options"
    assert api.call("GET", url, alice).json["items"] == []

    good = api.call("POST", url, alice, json={"cron": "* * * * *", "options": {"retries": 1}})
    assert good.status_code == 201, good.json
    sid = good.json["id"]
    changed = api.call("PATCH", f"/schedules/{sid}", alice, json={"options": options})
    assert changed.status_code == 422, changed.json
    assert changed.json["error"]["code"] == "invalid_options"
    assert api.call("GET", f"/schedules/{sid}", alice).json["options"] == {"retries": 1}


def test_a_workflow_title_is_bounded_and_nothing_is_stored(api) -> None:
    alice = api.user("alice")
    body = {"title": "t" * 201, "package": {"apps": {}, "flow": {}}}
    answer = api.call("POST", "/workflows", alice, json=body)
    assert answer.status_code == 422 and answer.json["error"]["code"] == "title_too_long"
    assert api.call("GET", "/workflows", alice).json["total"] == 0
    made = api.call("POST", "/workflows", alice, json={**body, "title": "ok"})
    assert made.status_code == 201, made.json
    renamed = api.call(
        "PUT", f"/workflows/{made.json['id']}", alice, json={**body, "title": "x" * 500}
    )
    assert renamed.status_code == 422
    assert api.call("GET", f"/workflows/{made.json['id']}", alice).json["title"] == "ok"
