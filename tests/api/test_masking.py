"""Values a run's owner typed into password fields are shown to nobody else who may read the
run (a viewer of the workflow, an admin): a probe's viewer read the owner's database password
in the run's Inputs tab."""

from __future__ import annotations

import json
import time

from dizest_api.masking import MASK, masked
from tests.api.conftest import Api, api, cluster_api, session_prefix  # noqa: F401
from tests.conftest import package

PKG = package(
    {
        "db": {
            "code": "v = 1",
            "inputs": [("db_password", "variable", "password"), ("rows", "variable", "number")],
            "outputs": ["v"],
        },
        "other": {"code": "v = 1", "inputs": [("token", "variable", "text")], "outputs": ["v"]},
    },
    {"f1": {"app": "db"}, "f2": {"app": "other"}},
)
GIVEN = {
    "inputs": {"rows": 3, "db_password": "alice-db-Pa55"},
    "flow_inputs": {"f1": {"db_password": "f1-Pa55", "rows": 4}, "f2": {"token": "plain"}},
}


def test_grantees_and_admins_see_password_inputs_masked(cluster_api: Api) -> None:  # noqa: F811
    api = cluster_api  # noqa: F811
    # a worker's beat an hour ahead: the submit is accepted and the run stays pending
    keys = api.services.library.keys
    api.services.redis.hset(keys.workers, "masking", int(time.time() * 1000) + 3_600_000)
    alice, bob, admin = api.user("alice"), api.user("bob"), api.user("root", "admin")
    wf = api.call("POST", "/workflows", alice, json={"title": "db", "package": PKG}).json["id"]
    carol = api.user("carol")
    grants = {"grants": {"bob": "viewer", "carol": "runner"}}
    assert api.call("PUT", f"/workflows/{wf}/grants", alice, json=grants).status_code == 200
    inputs = {**GIVEN["inputs"], "f1.db_password": "f1-Pa55", "f1.rows": 4, "f2.token": "plain"}
    made = api.call("POST", "/runs", alice, json={"workflow_id": wf, "inputs": inputs})
    assert made.status_code == 201, made.json
    run = made.json["run_id"]
    own = api.call("GET", f"/runs/{run}", alice).json
    assert (own["inputs"], own["flow_inputs"]) == (GIVEN["inputs"], GIVEN["flow_inputs"])
    for who in (bob, admin):
        seen = api.call("GET", f"/runs/{run}", who).json
        assert seen["inputs"] == {"rows": 3, "db_password": MASK}
        assert seen["flow_inputs"] == {"f1": {"db_password": MASK, "rows": 4}, "f2": {"token": "plain"}}  # fmt: skip
        snapshot = api.call("GET", f"/runs/{run}/dwp", who)
        assert b"Pa55" not in snapshot.data  # the inputs are not in the package either
    # a runner's rerun copies alice's inputs into a run of carol's: they stay masked for her
    again = api.call("POST", f"/runs/{run}/flows/f1/rerun", carol)
    assert again.status_code == 201, again.json
    rerun = api.call("GET", f"/runs/{again.json['run_id']}", carol).json
    assert rerun["owner"] == "carol" and b"Pa55" not in json.dumps(rerun).encode()
    assert rerun["inputs"]["db_password"] == MASK and rerun["inputs"]["rows"] == 3
    mine = api.call("POST", f"/runs/{run}/flows/f1/rerun", alice).json["run_id"]
    assert api.call("GET", f"/runs/{mine}", alice).json["inputs"] == GIVEN["inputs"]


def test_without_the_package_every_value_is_masked() -> None:
    shown, per_flow = masked({"a": 1}, {"f": {"b": 2}}, None)
    assert shown == {"a": MASK} and per_flow == {"f": {"b": MASK}}


def test_a_name_is_masked_where_its_flows_app_calls_it_a_password() -> None:
    shown, per_flow = masked(GIVEN["inputs"], {"f2": {"db_password": "x"}, "gone": {"rows": 1}}, PKG)  # fmt: skip
    assert shown == {"rows": 3, "db_password": MASK}
    # f2's app has no such password field; a flow not in the package falls back to any app's
    assert per_flow == {"f2": {"db_password": "x"}, "gone": {"rows": 1}}


def test_a_schedules_password_inputs_are_masked_for_all_but_its_owner(api: Api) -> None:  # noqa: F811
    """A grantee's schedule on the owner's workflow: the workflow's owner and admins see it
    (to revoke it), not the password its owner gave it (a probe read one so)."""
    from dizest_api.automation.service import install
    from dizest_api.automation.settings import AutomationSettings

    install(api.app, AutomationSettings())
    alice, bob, admin = api.user("alice"), api.user("bob"), api.user("root", "admin")
    wf = api.call("POST", "/workflows", alice, json={"title": "db", "package": PKG}).json["id"]
    grants = {"grants": {"bob": "runner"}}
    assert api.call("PUT", f"/workflows/{wf}/grants", alice, json=grants).status_code == 200
    given = {
        "db_password": "BOBS-DB-PASSWORD",
        "rows": 2,
        "f1.db_password": "f1-pw",
        "f2.token": "t",
    }
    body = {"cron": "@daily", "inputs": given}
    made = api.call("POST", f"/workflows/{wf}/schedules", bob, json=body)
    assert made.status_code == 201 and made.json["inputs"] == given  # its owner's own
    sid = made.json["id"]
    hidden = {"db_password": MASK, "rows": 2, "f1.db_password": MASK, "f2.token": "t"}
    assert api.call("GET", f"/schedules/{sid}", alice).json["inputs"] == hidden
    assert api.call("GET", f"/workflows/{wf}/schedules", alice).json["items"][0]["inputs"] == hidden
    assert api.call("GET", "/schedules", admin).json["items"][0]["inputs"] == hidden
    assert api.call("GET", f"/schedules/{sid}", bob).json["inputs"] == given


def test_a_stored_password_stays_masked_in_a_runners_run_once_its_workflow_is_deleted(
    cluster_api: Api,  # noqa: F811
) -> None:
    """A runner's own run of a workflow that stores a password: its snapshot holds the stored
    value, masked for the runner while the workflow is there; once its owner deleted it, the
    snapshot fell back to 'as its owner gave it' and the runner read it whole. Now whole only
    to admins, and an inline run's own package to its owner still."""
    api = cluster_api  # noqa: F811
    keys = api.services.library.keys
    api.services.redis.hset(keys.workers, "masking", int(time.time() * 1000) + 3_600_000)
    alice, bob, admin = api.user("alice"), api.user("bob"), api.user("root", "admin")
    stored = json.loads(json.dumps(PKG))
    stored["flow"]["f1"]["data"] = {"db_password": "STORED-Pa55"}
    wf = api.call("POST", "/workflows", alice, json={"title": "db", "package": stored}).json["id"]
    grants = {"grants": {"bob": "runner"}}
    assert api.call("PUT", f"/workflows/{wf}/grants", alice, json=grants).status_code == 200
    made = api.call("POST", "/runs", bob, json={"workflow_id": wf})
    assert made.status_code == 201, made.json
    run = made.json["run_id"]
    inline = api.call("POST", "/runs", bob, json={"package": stored}).json["run_id"]

    def seen(run_id: str, who: dict[str, str]) -> str:
        return api.call("GET", f"/runs/{run_id}/dwp", who).json["flow"]["f1"]["data"]["db_password"]

    assert seen(run, bob) == MASK
    assert api.call("DELETE", f"/workflows/{wf}", alice).status_code == 204
    assert (seen(run, bob), seen(run, admin)) == (MASK, "STORED-Pa55")
    assert (seen(inline, bob), seen(inline, admin)) == ("STORED-Pa55", "STORED-Pa55")
