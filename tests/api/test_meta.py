"""Health, readiness, apps, and the error edge: JSON errors, never a traceback."""

from __future__ import annotations

import time

from tests.api.conftest import Api


def test_healthz_and_readyz_follow_worker_heartbeats(api: Api) -> None:
    assert api.http.get("/healthz").json == {"status": "ok"}
    not_ready = api.http.get("/readyz")
    assert not_ready.status_code == 503 and not_ready.json["error"]["code"] == "not_ready"
    workers = api.services.library.keys.workers
    api.services.redis.hset(workers, "old", int((time.time() - 3600) * 1000))
    assert api.http.get("/readyz").status_code == 503
    api.services.redis.hset(workers, "w1", int(time.time() * 1000))
    ready = api.http.get("/readyz")
    assert ready.status_code == 200 and ready.json["workers"] == ["w1"]


def test_apps_lists_plugin_apps(api: Api) -> None:
    answer = api.call("GET", "/apps", api.user("alice"))
    assert answer.status_code == 200
    ids = {app["id"] for app in answer.json["items"]}
    assert ids == set(api.services.plugins.apps())


def test_one_app_is_inspected_with_its_code(api: Api) -> None:
    alice = api.user("alice")
    answer = api.call("GET", "/apps/table.read_csv", alice)
    assert answer.status_code == 200, answer.json
    app = api.services.plugins.apps()["table.read_csv"]
    assert answer.json["code"] == app.code and answer.json["plugin"]["name"] == "table"
    assert [i["name"] for i in answer.json["inputs"]] == [i.name for i in app.inputs]
    missing = api.call("GET", "/apps/table.nope", alice)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"


def test_unexpected_errors_are_bare_500s_and_http_errors_are_json(api: Api) -> None:
    def broken() -> None:
        raise KeyError("secret detail")

    api.app.add_url_rule("/api/v1/broken", view_func=broken)
    headers = api.user("alice")
    answer = api.call("GET", "/broken", headers)
    assert answer.status_code == 500
    assert answer.json == {
        "error": {"code": "internal_error", "message": "internal server error", "details": None}
    }
    refused = api.call("PATCH", "/workflows", headers)
    assert refused.status_code == 405 and refused.json["error"]["code"] == "method_not_allowed"
    assert api.call("GET", "/nothing", headers).json["error"]["code"] == "not_found"
