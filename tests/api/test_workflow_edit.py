"""What the workflow editor needs from the API: a save based on a version that is no longer the
latest is refused (409) and stores nothing; a save of the latest version's package stores
nothing either; code that does not compile is stored, with its warning; a package is checked
without being stored."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from tests.api.conftest import Api, make_api
from tests.api.test_workflows import CHAIN, CYCLE, create
from tests.worker.conftest import make_settings


def test_two_editors_saving_the_same_version_the_second_gets_409(api: Api) -> None:
    alice = api.user("alice")
    wf_id = create(api, alice)
    first = {**CHAIN, "editor": "first"}
    second = {**CHAIN, "editor": "second"}
    # Both loaded version 1; the first save wins, the second one is refused and stores nothing.
    put = api.call("PUT", f"/workflows/{wf_id}", alice, json={"package": first, "base_version": 1})
    assert put.status_code == 200 and put.json["version"] == 2
    late = api.call(
        "PUT", f"/workflows/{wf_id}", alice, json={"package": second, "base_version": 1}
    )
    assert late.status_code == 409, late.json
    assert late.json["error"]["code"] == "version_conflict"
    assert late.json["error"]["details"] == {"base_version": 1, "latest_version": 2}
    latest = api.call("GET", f"/workflows/{wf_id}", alice).json
    assert latest["version"] == 2 and latest["package"]["editor"] == "first"
    again = api.call(
        "PUT", f"/workflows/{wf_id}", alice, json={"package": second, "base_version": 2}
    )
    assert again.status_code == 200 and again.json["version"] == 3
    # Without base_version a save is unconditional, as before.
    plain = api.call("PUT", f"/workflows/{wf_id}", alice, json={"package": CHAIN})
    assert plain.status_code == 200 and plain.json["version"] == 4


def test_base_version_must_be_an_integer(api: Api) -> None:
    alice = api.user("alice")
    wf_id = create(api, alice)
    bad = api.call(
        "PUT", f"/workflows/{wf_id}", alice, json={"package": CHAIN, "base_version": "1"}
    )
    assert bad.status_code == 400 and "base_version" in bad.json["error"]["message"]
    assert api.call("GET", f"/workflows/{wf_id}", alice).json["version"] == 1


def test_validate_lists_errors_and_warnings_without_storing(api: Api) -> None:
    alice = api.user("alice")
    answer = api.call("POST", "/workflows/validate", alice, json={"package": CYCLE})
    assert answer.status_code == 200
    assert answer.json["valid"] is False
    cycle = [p for p in answer.json["problems"] if p["code"] == "cycle"]
    assert len(cycle) == 1 and cycle[0]["flow"] in {"a", "b", "c"}
    broken = {
        "apps": {"s": {"title": "s", "code": "x = (\n", "inputs": [], "outputs": []}},
        "flow": {"f": {"app_id": "s"}, "g": {"app_id": "gone"}},
    }
    problems = api.call("POST", "/workflows/validate", alice, json={"package": broken}).json
    by_code = {p["code"]: p for p in problems["problems"]}
    assert by_code["unknown_app"]["flow"] == "g"
    assert by_code["syntax_error"]["app"] == "s" and "line 1" in by_code["syntax_error"]["message"]
    ok = api.call("POST", "/workflows/validate", alice, json={"package": CHAIN}).json
    assert ok == {"valid": True, "problems": []}
    assert api.call("GET", "/workflows", alice).json["total"] == 0
    assert api.call("POST", "/workflows/validate", alice, json={"package": 3}).status_code == 400


def test_options_every_submit_would_refuse_are_invalid_to_validate_and_store(api: Api) -> None:
    """A probe found `"dizest": "x"` or a negative timeout valid and stored, then refused by
    each submit (422 invalid_options): validate names them, a store refuses them."""
    alice = api.user("alice")
    for where, bad, field in (
        ("flow", "x", "dizest"),
        ("flow", {"timeout": -1}, "dizest.timeout"),
        ("app", {"queue": "q" * 10_000}, "dizest.queue"),
    ):
        pkg = json.loads(json.dumps(CHAIN))
        target = next(iter(pkg["flow" if where == "flow" else "apps"].values()))
        target["dizest"] = bad
        answer = api.call("POST", "/workflows/validate", alice, json={"package": pkg}).json
        assert answer["valid"] is False, (bad, answer)
        assert [(p["code"], p["field"]) for p in answer["problems"]] == [("invalid_option", field)]
        stored = api.call("POST", "/workflows", alice, json={"package": pkg})
        assert stored.status_code == 422 and stored.json["error"]["code"] == "invalid_options"
    assert api.call("GET", "/workflows", alice).json["total"] == 0


def test_a_workflow_asking_more_memory_than_the_server_allows_is_refused_with_its_reason(
    redis_url: str, session_prefix: str, tmp_path: Path
) -> None:
    """DIZEST_MEMORY_LIMIT_MB_MAX: validate says which flow and why, a store and a run of it
    are refused (422), and within the ceiling the same package is taken."""
    engine = replace(make_settings(redis_url, tmp_path).engine, memory_limit_mb_max=512)
    api = make_api(redis_url, session_prefix, tmp_path, object(), engine=engine)
    alice = api.user("alice")
    pkg = json.loads(json.dumps(CHAIN))
    flow_id, flow = next(iter(pkg["flow"].items()))
    flow["dizest"] = {"memory_limit_mb": 4096}
    answer = api.call("POST", "/workflows/validate", alice, json={"package": pkg}).json
    (problem,) = answer["problems"]
    assert (problem["flow"], problem["field"]) == (flow_id, "dizest.memory_limit_mb")
    assert problem["message"] == "4096 MB is more memory than this server allows (512 MB)"
    stored = api.call("POST", "/workflows", alice, json={"package": pkg})
    assert stored.status_code == 422 and stored.json["error"]["code"] == "invalid_options"
    flow["dizest"] = {"memory_limit_mb": 512}
    assert api.call("POST", "/workflows", alice, json={"package": pkg}).status_code == 201


def test_a_package_holding_nan_or_infinity_is_invalid_and_never_stored(api: Api) -> None:
    """Python's JSON parser takes NaN and Infinity: a probe stored such a package (201), then
    served it as text no JSON parser reads (the console's) and every run of it was refused."""
    alice = api.user("alice")
    text = json.dumps({"package": CHAIN})
    flow_id = next(iter(CHAIN["flow"]))
    for number in ("NaN", "Infinity", "-Infinity", "1e999"):
        body = text.replace(f'"id": "{flow_id}"', f'"id": "{flow_id}", "pos_x": {number}', 1)
        assert number in body
        sent = {"data": body, "content_type": "application/json"}
        checked = api.call("POST", "/workflows/validate", alice, **sent).json
        assert checked["valid"] is False, (number, checked)
        assert [p["code"] for p in checked["problems"]] == ["not_json"]
        stored = api.call("POST", "/workflows", alice, **sent)
        assert stored.status_code == 422, (number, stored.json)
        assert stored.json["error"]["code"] == "invalid_workflow"
    assert api.call("GET", "/workflows", alice).json["total"] == 0


def test_a_save_of_the_latest_versions_package_stores_no_version(api: Api) -> None:
    """A walkthrough's Save with nothing changed made v2..v8, every grantee's Version menu
    listing them: the same package answers the latest version and stores nothing."""
    alice = api.user("alice")
    wf_id = create(api, alice)
    usage = api.call("GET", "/workflows/usage", alice).json["bytes"]
    same = api.call("PUT", f"/workflows/{wf_id}", alice, json={"package": CHAIN, "base_version": 1})
    assert same.status_code == 200, same.json
    assert (same.json["version"], same.json["stored"], same.json["warnings"]) == (1, False, [])
    shown = api.call("GET", f"/workflows/{wf_id}?version=2", alice)
    assert shown.status_code == 404  # no version 2 was stored
    assert api.call("GET", "/workflows/usage", alice).json["bytes"] == usage
    # A new title alone renames it, still without a version; no base_version: the same.
    renamed = api.call("PUT", f"/workflows/{wf_id}", alice, json={"package": CHAIN, "title": "b"})
    assert (renamed.json["version"], renamed.json["stored"], renamed.json["title"]) == (
        1,
        False,
        "b",
    )
    # A change is a version; a stale base_version is a conflict even for the same package.
    changed = {**CHAIN, "description": "x"}
    put = api.call(
        "PUT", f"/workflows/{wf_id}", alice, json={"package": changed, "base_version": 1}
    )
    assert (put.json["version"], put.json["stored"]) == (2, True)
    stale = api.call(
        "PUT", f"/workflows/{wf_id}", alice, json={"package": changed, "base_version": 1}
    )
    assert stale.status_code == 409 and stale.json["error"]["code"] == "version_conflict"
    assert api.call("GET", f"/workflows/{wf_id}", alice).json["version"] == 2


HALF_DONE = {
    "apps": {
        "bad": {"title": "bad", "code": "x = = 1", "inputs": [], "outputs": [{"name": "x"}]},
        "ok": {"title": "ok", "code": "z = 3", "inputs": [], "outputs": [{"name": "z"}]},
    },
    "flow": {"f": {"app_id": "bad", "active": True}, "g": {"app_id": "ok", "active": True}},
}


def test_code_that_does_not_compile_is_stored_with_a_warning(api: Api) -> None:
    """The editor would not save while any app had a syntax error (a user lost work that did
    not compile yet); DIZEST stores it and fails that flow when it runs: so does dizest (the
    runs: tests/worker/test_syntax_error_runs.py, tests/cli, tests/console/test_editor_save)."""
    alice = api.user("alice")
    made = api.call("POST", "/workflows", alice, json={"title": "wip", "package": HALF_DONE})
    assert made.status_code == 201, made.json
    (warned,) = made.json["warnings"]
    assert (warned["code"], warned["app"], warned["flow"]) == ("syntax_error", "bad", "f")
    assert warned["severity"] == "warning" and "line 1" in warned["message"]
    wf_id = made.json["id"]
    fixed = json.loads(json.dumps(HALF_DONE))
    fixed["apps"]["ok"]["code"] = "z = = 4"
    put = api.call("PUT", f"/workflows/{wf_id}", alice, json={"package": fixed, "base_version": 1})
    assert put.status_code == 200 and put.json["version"] == 2
    assert sorted(w["app"] for w in put.json["warnings"]) == ["bad", "ok"]
    checked = api.call("POST", "/workflows/validate", alice, json={"package": fixed}).json
    assert checked["valid"] is True
    # Any other error still refuses the package, naming only the errors.
    fixed["flow"]["h"] = {"app_id": "gone"}
    refused = api.call("PUT", f"/workflows/{wf_id}", alice, json={"package": fixed})
    assert refused.status_code == 422
    assert [p["code"] for p in refused.json["error"]["details"]] == ["unknown_app"]


def test_problems_name_flows_as_a_person_knows_them(api: Api) -> None:
    """The console's editor makes DIZEST's ids (`<app id>-<ms>` flows, 16-character apps): a
    problem's message names a flow by its title (else its app's) with its id after it; its fields
    keep the ids, for programs."""
    alice = api.user("alice")
    app, flow = "bo6at79gelssrhfz", "bo6at79gelssrhfz-1796458547289"
    named = {**NAMED, "flow": {**NAMED["flow"], flow: {"app_id": app, "title": ""}}}
    answer = api.call("POST", "/workflows/validate", alice, json={"package": named}).json
    (syntax,) = [p for p in answer["problems"] if p["code"] == "syntax_error"]
    assert syntax["flow"] == "f1" and syntax["app"] == app
    assert syntax["message"].endswith(f"used by flow(s) 'first' (f1), 'Producer' ({flow})")
    (loose,) = [p for p in answer["problems"] if p["code"] == "unknown_output"]
    assert loose["message"].startswith(f"flow 'Producer' ({flow}) does not declare output 'v'")


def test_a_conflict_names_the_workflow_by_its_title(api: Api) -> None:
    alice = api.user("alice")
    wf_id = create(api, alice)
    title = api.call("GET", f"/workflows/{wf_id}", alice).json["title"]
    changed = {**CHAIN, "description": "a change"}  # (the same package stores no version)
    api.call("PUT", f"/workflows/{wf_id}", alice, json={"package": changed, "base_version": 1})
    late = api.call(
        "PUT", f"/workflows/{wf_id}", alice, json={"package": changed, "base_version": 1}
    )
    assert late.status_code == 409
    assert late.json["error"]["message"].startswith(f"workflow {title!r} is at version 2, not 1")
    assert wf_id not in late.json["error"]["message"]


# A syntax error in an app two flows use (one titled, one not), and a connection from the
# untitled one to an output its app does not declare.
NAMED = {
    "apps": {
        "bo6at79gelssrhfz": {"title": "Producer", "code": "x = (\n", "inputs": [], "outputs": []},
        "c": {"title": "C", "code": "", "inputs": [{"type": "output", "name": "i"}]},
    },
    "flow": {
        "f1": {"app_id": "bo6at79gelssrhfz", "title": "first"},
        "f2": {
            "app_id": "c",
            "inputs": {
                "i": {"connections": [{"node": "bo6at79gelssrhfz-1796458547289", "input": "v"}]}
            },
        },
    },
}
