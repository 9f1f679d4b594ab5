"""Stored workflows: CRUD, versions, validation, strict input, and who may see what."""

from __future__ import annotations

import json

import pytest

from tests.api.conftest import Api
from tests.conftest import package

CHAIN = package(
    {
        "src": {"code": "y = 1", "outputs": ["y"]},
        "inc": {"code": "", "inputs": ["x"], "outputs": ["y"]},
    },
    {"a": {"app": "src"}, "b": {"app": "inc", "in": {"x": [("a", "y")]}}},
)
CYCLE = package(
    {"inc": {"code": "", "inputs": ["x"], "outputs": ["y"]}},
    {
        "a": {"app": "inc", "in": {"x": [("c", "y")]}},
        "b": {"app": "inc", "in": {"x": [("a", "y")]}},
        "c": {"app": "inc", "in": {"x": [("b", "y")]}},
    },
)


def create(api: Api, headers: dict[str, str], title: str = "chain") -> str:
    answer = api.call("POST", "/workflows", headers, json={"title": title, "package": CHAIN})
    assert answer.status_code == 201, answer.json
    assert answer.headers["Location"].endswith(answer.json["id"])
    return str(answer.json["id"])


def test_crud_and_versions_stay_readable(api: Api) -> None:
    alice = api.user("alice")
    wf_id = create(api, alice)
    changed = {**CHAIN, "extra": "kept"}
    put = api.call("PUT", f"/workflows/{wf_id}", alice, json={"package": changed, "title": "v2"})
    assert put.status_code == 200 and put.json["version"] == 2 and put.json["title"] == "v2"
    latest = api.call("GET", f"/workflows/{wf_id}", alice).json
    assert latest["version"] == 2 and latest["package"]["extra"] == "kept"
    first = api.call("GET", f"/workflows/{wf_id}?version=1", alice).json
    assert first["version"] == 1 and first["latest_version"] == 2 and first["package"] == CHAIN
    assert api.call("GET", f"/workflows/{wf_id}?version=9", alice).status_code == 404
    assert api.call("GET", f"/workflows/{wf_id}?version=x", alice).status_code == 400
    dwp = api.call("GET", f"/workflows/{wf_id}/dwp?version=1", alice)
    assert dwp.headers["Content-Disposition"] == 'attachment; filename="v2.v1.dwp"'
    assert json.loads(dwp.data) == CHAIN
    assert api.call("DELETE", f"/workflows/{wf_id}", alice).status_code == 204
    assert api.call("GET", f"/workflows/{wf_id}", alice).status_code == 404


def test_a_package_is_answered_in_its_own_order(api: Api) -> None:
    """GET /workflows/<id> answered with sorted keys, and the editor saved back what it got:
    one save re-sorted the flows, which are DIZEST's order of sources and the planner's
    tie-break (an editor probe's find)."""
    alice = api.user("alice")
    order = ["d", "c", "b", "a"]
    reverse = package(
        {"src": {"code": "y = 1", "outputs": ["y"]}}, {f: {"app": "src"} for f in order}
    )
    reverse = {"title": "z first", **reverse, "zeta": 1, "alpha": 2}
    made = api.call("POST", "/workflows", alice, json={"title": "order", "package": reverse})
    answer = api.call("GET", f"/workflows/{made.json['id']}", alice)
    got = json.loads(answer.data)["package"]
    assert list(got["flow"]) == order and list(got) == list(reverse)
    assert list(got["flow"]["d"]) == list(reverse["flow"]["d"])


def test_list_is_paginated_and_filtered_by_title(api: Api) -> None:
    alice, bob = api.user("alice"), api.user("bob")
    for title in ("Alpha one", "alpha two", "beta"):
        create(api, alice, title)
    create(api, bob, "alpha of bob")
    page = api.call("GET", "/workflows?title=ALPHA&limit=1", alice).json
    assert page["total"] == 2 and [w["title"] for w in page["items"]] == ["alpha two"]
    page = api.call("GET", "/workflows?title=alpha&offset=1", alice).json
    assert [w["title"] for w in page["items"]] == ["Alpha one"]
    everything = api.call("GET", "/workflows", api.user("root", "admin")).json
    assert everything["total"] == 4


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "", None),
        ("PUT", "", {"package": CHAIN}),
        ("DELETE", "", None),
        ("GET", "/dwp", None),
        ("GET", "/grants", None),
        ("PUT", "/grants", {"grants": {}}),
    ],
)
def test_others_get_404_unless_granted(api: Api, method: str, path: str, body: object) -> None:
    wf_id = create(api, api.user("alice"))
    answer = api.call(method, f"/workflows/{wf_id}{path}", api.user("bob"), json=body)
    assert answer.status_code == 404 and answer.json["error"]["code"] == "not_found"
    assert api.call("GET", "/workflows", api.user("bob")).json["total"] == 0
    admin = api.call(method, f"/workflows/{wf_id}{path}", api.user("root", "admin"), json=body)
    assert admin.status_code in (200, 204)


def test_grant_levels(api: Api) -> None:
    alice = api.user("alice")
    wf_id = create(api, alice)
    users = {name: api.user(name) for name in ("vic", "rui", "eve")}
    grants = {"vic": "viewer", "rui": "runner", "eve": "editor"}
    put = api.call("PUT", f"/workflows/{wf_id}/grants", alice, json={"grants": grants})
    assert put.status_code == 200 and put.json["grants"] == grants
    for name, headers in users.items():
        assert api.call("GET", f"/workflows/{wf_id}", headers).status_code == 200
        assert api.call("GET", f"/workflows/{wf_id}/dwp", headers).status_code == 200
        assert api.call("GET", "/workflows", headers).json["total"] == 1
        edit = api.call("PUT", f"/workflows/{wf_id}", headers, json={"package": CHAIN})
        assert edit.status_code == (200 if name == "eve" else 403)
        share = api.call("PUT", f"/workflows/{wf_id}/grants", headers, json={"grants": {}})
        assert share.status_code == 403
        assert api.call("DELETE", f"/workflows/{wf_id}", headers).status_code == 403
    # revoking every grant hides the workflow again
    api.call("PUT", f"/workflows/{wf_id}/grants", alice, json={"grants": {}})
    assert api.call("GET", f"/workflows/{wf_id}", users["vic"]).status_code == 404
    assert api.call("GET", "/workflows", users["vic"]).json["total"] == 0


def test_bad_grants_are_refused(api: Api) -> None:
    alice = api.user("alice")
    wf_id = create(api, alice)
    api.user("bob")
    for grants in ({"nobody": "viewer"}, {"bob": "owner"}, {"alice": "viewer"}):
        answer = api.call("PUT", f"/workflows/{wf_id}/grants", alice, json={"grants": grants})
        assert answer.status_code == 400, grants


def test_cyclic_package_is_422_with_the_cycle_path(api: Api) -> None:
    answer = api.call("POST", "/workflows", api.user("alice"), json={"package": CYCLE})
    assert answer.status_code == 422
    problems = answer.json["error"]["details"]
    cycles = [p["message"] for p in problems if p["code"] == "cycle"]
    assert len(cycles) == 1 and "->" in cycles[0]
    assert {"a", "b", "c"} <= set(cycles[0].replace("cycle:", "").replace("->", " ").split())


def test_every_problem_is_listed(api: Api) -> None:
    bad = {"apps": {"x": {"title": "no code"}}, "flow": {"f": {"app_id": "missing"}}}
    answer = api.call("POST", "/workflows", api.user("alice"), json={"package": bad})
    assert answer.status_code == 422
    assert {p["code"] for p in answer.json["error"]["details"]} >= {"missing_code", "unknown_app"}


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"package": {}, "colour": 1}', "colour"),
        (b'{"package": []}', "package"),
        (b'{"title": 3, "package": {}}', "title"),
        (b'{"title": "x"}', "package"),
    ],
)
def test_malformed_bodies_are_400(api: Api, data: bytes, needle: str) -> None:
    headers = {**api.user("alice"), "Content-Type": "application/json"}
    answer = api.call("POST", "/workflows", headers, data=data)
    assert answer.status_code == 400
    error = answer.json["error"]
    assert error["code"] == "bad_request" and needle in error["message"]
    assert set(error) == {"code", "message", "details"}


def test_wrong_types_name_each_field(api: Api) -> None:
    answer = api.call("POST", "/tokens", api.user("alice"), json={"name": "x", "scopes": [1]})
    assert answer.status_code == 400
    assert answer.json["error"]["details"] == {"types": {"scopes": "expected array of string"}}


def test_oversized_body_is_413(api: Api) -> None:
    big = {"package": {**CHAIN, "blob": "x" * 70_000}}
    answer = api.call("POST", "/workflows", api.user("alice"), json=big)
    assert answer.status_code == 413
    error = answer.json["error"]
    assert error["code"] == "request_entity_too_large"
    size = int(answer.request.headers["Content-Length"])  # what it says: the size and the limit
    assert error["message"] == f"the request body is {size} bytes; this route takes at most 65536"
    assert error["details"] == {"content_length": size, "limit": 65536}


def test_removing_a_user_removes_their_workflows_and_tokens(api: Api) -> None:
    admin, bob = api.user("root", "admin"), api.user("bob")
    wf_id = create(api, bob)
    assert api.call("DELETE", "/users/bob", admin).status_code == 204
    assert api.call("GET", f"/workflows/{wf_id}", admin).status_code == 404
    assert api.call("GET", "/auth/me", bob).status_code == 401
