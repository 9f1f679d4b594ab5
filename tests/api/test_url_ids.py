"""Ids in URLs are checked before anything reads Redis with them (dizest_api.ids): an id that
names another key (`<id>:versions`) was a 500 where the record existed and a 404 where it did
not, an oracle for other users' ids. Now both are the same 404, for anyone, API and console."""

from __future__ import annotations

import pytest

from dizest_api.automation.service import install
from dizest_api.automation.settings import AutomationSettings
from dizest_api.ids import SERVICE_ID, new_id
from tests.api.conftest import Api, api, session_prefix  # noqa: F401
from tests.conftest import package

PKG = package({"a": {"code": "v = 1", "outputs": ["v"]}}, {"f": {"app": "a"}})


def test_ids_naming_other_keys_are_404_alike_whether_the_record_exists(api: Api) -> None:  # noqa: F811
    install(api.app, AutomationSettings())
    alice, dave = api.user("alice"), api.user("dave")
    wf = api.call("POST", "/workflows", alice, json={"package": PKG}).json["id"]
    assert api.call("PUT", f"/workflows/{wf}/grants", alice, json={"grants": {"bob": "viewer"}})
    sid = api.call("POST", f"/workflows/{wf}/schedules", alice, json={"cron": "@daily"}).json["id"]
    absent = new_id()
    paths = [
        "/workflows/{}:versions",
        "/workflows/{}:grants",
        "/workflows/{}:grants/schedules",
        "/schedules/{}:history",
        "/workflows/{}/versions",  # a well-formed id that names nothing, for comparison
    ]
    for who in (alice, dave):
        for path in paths:
            for ident in (sid if "schedules/" in path else wf, absent):
                if path.endswith("/versions") and ident != absent:
                    continue
                method = "POST" if path.endswith("/schedules") else "GET"
                answer = api.call(method, path.format(ident), who, json={"cron": "@daily"})
                assert answer.status_code == 404, (path, answer.json)
                assert answer.json["error"]["code"] == "not_found"
    assert api.call("GET", f"/runs/{'0' * 32}:flows", alice).status_code == 404
    assert api.call("DELETE", f"/tokens/{absent}:x", alice).status_code == 404
    console = api.http.get(f"/workflows/{wf}:versions", headers=alice)
    assert console.status_code == 404 and console.mimetype == "text/html"


@pytest.mark.parametrize("value", ["abc", "0123456789abcdeF", "0123456789abcdef0", "*", ""])
def test_only_what_new_id_makes_is_a_service_id(value: str) -> None:
    assert SERVICE_ID.fullmatch(new_id())
    assert not SERVICE_ID.fullmatch(value)
