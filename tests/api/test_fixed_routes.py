"""A fixed-name route owns its path for every method (dizest_api.fixed_routes): `PUT
/workflows/usage` and `GET|PUT|DELETE /workflows/validate` went to the `/workflows/<wf_id>`
views and answered 404 "no workflow 'usage'" (and OPTIONS offered their methods). Every route of
the URL map is sent each method its path does not take: each answer is a 405 with the path's own
methods in `Allow` and a JSON error, never another route's view."""

from __future__ import annotations

from typing import Any

from flask import Flask

from dizest_api.automation.service import install
from dizest_api.automation.settings import AutomationSettings
from tests.api.conftest import Api, api, session_prefix  # noqa: F401

SAMPLE = {"run_id": "0" * 32}  # any other URL variable: a well-formed service id


def _paths(app: Flask) -> dict[str, set[str]]:
    """Each route's sample path (well-formed ids) -> the methods of the routes of that rule."""
    served: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        served.setdefault(rule.rule, set()).update(rule.methods or ())
    adapter, paths = app.url_map.bind("localhost"), {}
    for rule in app.url_map.iter_rules():
        if rule.websocket:  # a plain request there is a 400 that says so (test_ws_client)
            continue
        values = {name: SAMPLE.get(name, "0123456789abcdef") for name in rule.arguments}
        path = adapter.build(rule.endpoint, values, method=min(rule.methods or ()))
        paths[path] = served[rule.rule]
    return paths


def test_every_path_answers_405_with_its_own_methods_for_the_others(api: Api) -> None:  # noqa: F811
    install(api.app, AutomationSettings())
    admin = api.user("root", "admin")
    every = {m for rule in api.app.url_map.iter_rules() for m in rule.methods or ()}
    wrong: list[tuple[str, str, int, Any]] = []
    asked = 0
    for path, methods in _paths(api.app).items():
        for method in sorted(every - methods):
            answer = api.http.open(path, method=method, headers=admin, json={})
            asked += 1
            allow = set(answer.headers.get("Allow", "").split(", "))
            body = answer.get_json(silent=True) or {}
            if (answer.status_code, allow) != (405, methods) or (
                method != "HEAD" and "error" not in body
            ):
                wrong.append((method, path, answer.status_code, answer.headers.get("Allow")))
        options = api.http.open(path, method="OPTIONS", headers=admin)
        allow = set(options.headers.get("Allow", "").split(", "))
        if options.status_code == 403:  # an app UI's page, unframed
            continue
        # no body, so no HTML under /api (Flask's own: 200 and an empty text/html)
        answer = (options.status_code, allow, options.content_type, options.data)
        if answer != (204, methods, None, b""):
            wrong.append(("OPTIONS", path, *answer))
    assert asked > 100
    assert not wrong, wrong


def test_the_workflow_routes_that_clashed(api: Api) -> None:  # noqa: F811
    alice = api.user("alice")
    for method, path, allow in [
        ("PUT", "/workflows/usage", "GET, HEAD, OPTIONS"),
        ("DELETE", "/workflows/usage", "GET, HEAD, OPTIONS"),
        ("GET", "/workflows/validate", "OPTIONS, POST"),
        ("PUT", "/workflows/validate", "OPTIONS, POST"),
        ("DELETE", "/workflows/validate", "OPTIONS, POST"),
    ]:
        answer = api.call(method, path, alice, json={"package": {}})
        assert answer.status_code == 405, (method, path, answer.json)
        assert answer.headers["Allow"] == allow
        assert answer.json["error"]["code"] == "method_not_allowed"
    assert api.call("HEAD", "/workflows/validate", alice).status_code == 405
    assert api.call("PUT", "/workflows/usage").status_code == 401  # the caller first, as any 405
    # a workflow's own routes still work, and a malformed id is still no workflow
    assert api.call("GET", "/workflows/usage", alice).status_code == 200
    assert api.call("PUT", "/workflows/nosuch", alice, json={"package": {}}).status_code == 404
