"""`GET /runs?shared=1`: the runs a caller may read through grants (the runs the owners of the
workflows shared with them made of those workflows, `open_run`'s rule), listed from a sorted set
per owner and workflow, so the list reads only those, never every run."""

from __future__ import annotations

from tests.api.test_runs import FANOUT, Live, create_workflow
from tests.api.test_runs import live as live  # the fixture


def ids(live: Live, path: str, headers: dict[str, str]) -> list[str]:
    answer = live.call("GET", path, headers)
    assert answer.status_code == 200, answer.json
    return [item["run_id"] for item in answer.json["items"]]


def test_shared_runs_are_the_owners_runs_of_workflows_granted_to_the_caller(live: Live) -> None:
    alice, bob, carol, dave = (live.user(n) for n in ("alice", "bob", "carol", "dave"))
    wf1, wf2 = create_workflow(live, alice, FANOUT), create_workflow(live, alice, FANOUT)
    wf3 = create_workflow(live, dave, FANOUT)
    grants = {"bob": "viewer", "carol": "runner"}
    assert live.call("PUT", f"/workflows/{wf1}/grants", alice, json={"grants": grants}).status_code == 200  # fmt: skip
    assert live.call("PUT", f"/workflows/{wf3}/grants", dave, json={"grants": {"bob": "viewer"}}).status_code == 200  # fmt: skip

    def run(headers: dict[str, str], body: dict[str, object]) -> str:
        answer = live.call("POST", "/runs", headers, json=body)
        assert answer.status_code == 201, answer.json
        live.wait(answer.json["run_id"], headers)
        return str(answer.json["run_id"])

    first = run(alice, {"workflow_id": wf1})
    run(alice, {"workflow_id": wf2})  # not shared with bob
    run(alice, {"package": FANOUT})  # no workflow
    carols = run(carol, {"workflow_id": wf1})  # a grantee's own: not the owner's
    daves = run(dave, {"workflow_id": wf3})
    second = run(alice, {"workflow_id": wf1})
    run(bob, {"package": FANOUT})  # bob's own: in his own list, not the shared one

    assert ids(live, "/runs?shared=1", bob) == [second, daves, first]  # newest first
    listed = live.call("GET", "/runs?shared=1&limit=1&offset=1", bob).json
    assert [i["run_id"] for i in listed["items"]] == [daves] and listed["total"] == 3
    assert listed["items"][0]["owner"] == "dave" and listed["items"][0]["version"] == 1
    for run_id in (second, daves, first):  # each one `GET /runs/<id>` lets bob read
        assert live.call("GET", f"/runs/{run_id}", bob).status_code == 200
    assert live.call("GET", f"/runs/{carols}", bob).status_code == 404
    assert ids(live, f"/runs?shared=1&workflow_id={wf3}", bob) == [daves]
    assert ids(live, "/runs?shared=1&status=ready&owner=alice", bob) == [second, first]
    assert ids(live, "/runs?shared=1&status=error", bob) == []
    assert ids(live, "/runs?shared=1", carol) == [second, first]
    assert ids(live, "/runs?shared=1", alice) == []  # her own are not shared with her
    assert ids(live, "/runs?shared=0&limit=200", carol) == [carols]  # her own list, as before

    assert live.call("PUT", f"/workflows/{wf1}/grants", alice, json={"grants": {}}).status_code == 200  # fmt: skip
    assert ids(live, "/runs?shared=1", bob) == [daves]  # a grant taken back: its runs go
    bad = live.call("GET", "/runs?shared=yes", bob)
    assert bad.status_code == 400 and "shared" in bad.json["error"]["message"]


def test_runs_name_their_workflow_by_title_while_the_caller_may_read_it(live: Live) -> None:
    """A run (listed or read) carries its workflow's current title for whoever may read that
    workflow; uma, who ran it with a grant since taken back, reads her run but not the title
    the workflow has now."""
    tara, uma = live.user("tara"), live.user("uma")
    wf = create_workflow(live, tara, FANOUT)
    assert live.call("PUT", f"/workflows/{wf}/grants", tara, json={"grants": {"uma": "runner"}}).status_code == 200  # fmt: skip
    made = live.call("POST", "/runs", uma, json={"workflow_id": wf})
    assert made.status_code == 201, made.json
    run_id = made.json["run_id"]
    live.wait(run_id, uma)
    renamed = live.call(
        "PUT", f"/workflows/{wf}", tara, json={"title": "sales report", "package": FANOUT}
    )
    assert renamed.status_code == 200, renamed.json
    assert live.call("GET", f"/runs/{run_id}", uma).json["workflow_title"] == "sales report"
    listed = live.call("GET", "/runs", uma).json["items"]
    assert [(i["run_id"], i["workflow_title"]) for i in listed] == [(run_id, "sales report")]
    assert live.call("GET", f"/runs/{run_id}?flows=states", uma).json["workflow_title"] == "sales report"  # fmt: skip
    assert live.call("PUT", f"/workflows/{wf}/grants", tara, json={"grants": {}}).status_code == 200  # fmt: skip
    report = live.call("GET", f"/runs/{run_id}", uma)
    assert report.status_code == 200 and report.json["workflow_id"] == wf  # her run, still
    assert report.json["workflow_title"] is None
    assert live.call("GET", "/runs", uma).json["items"][0]["workflow_title"] is None
    inline = live.call("POST", "/runs", uma, json={"package": FANOUT}).json["run_id"]
    live.wait(inline, uma)
    assert live.call("GET", f"/runs/{inline}", uma).json["workflow_title"] is None
