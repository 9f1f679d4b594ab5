"""The OpenAPI document lists exactly the routes the app has."""

from __future__ import annotations

import re

from tests.api.conftest import Api


def test_openapi_paths_equal_the_url_map(api: Api) -> None:
    answer = api.call("GET", "/openapi.json", api.user("alice"))
    assert answer.status_code == 200
    document = answer.json
    assert document["openapi"].startswith("3.")
    documented = {
        (path, method.upper()) for path, ops in document["paths"].items() for method in ops
    }
    routed = {
        (re.sub(r"<(?:[a-z_]+:)?(\w+)>", r"{\1}", rule.rule), method)
        for rule in api.app.url_map.iter_rules()
        if not rule.endpoint.startswith("console.")  # HTML pages, not the API
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert documented == routed
    login = document["paths"]["/api/v1/auth/login"]["post"]
    assert login["security"] == []
    assert login["requestBody"]["content"]["application/json"]["schema"]["required"] == [
        "password",
        "username",
    ]
