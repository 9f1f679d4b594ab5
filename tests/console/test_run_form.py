"""The workflow view's run form against a real `dizest serve`: a run started with nothing changed
is the run `dizest run` makes of the same package (c01_variables: every kind of variable, the
values DIZEST converts and the ones it keeps as text), and a changed field is sent as the text
DIZEST's UI stores, which the flow reads as DIZEST would have read it. The editor's flow panel
draws the same fields. Inputs the server refuses are each shown, with what the flows declare."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from dizest_api.masking import MASK
from tests.conftest import package, wait_for
from tests.console.conftest import Console, log_in
from tests.serve_process import PASSWORD

LIVE_S = 60_000  # ms: a run's flow starts a child process on a shared, busy machine
C01 = Path(__file__).resolve().parents[1] / "data" / "c01_variables"


def expected_outputs() -> dict[str, Any]:
    """What the engine gives c01's flow v1 (the golden file `dizest run` is checked against:
    the outputs it names)."""
    expected = json.loads(C01.with_suffix(".expected.json").read_text())
    return dict(expected["expect"]["flows"]["v1"]["outputs"])


def open_c01(page: Any, console: Console, title: str, mode: str = "") -> Callable[[str], Any]:
    """c01 stored as `title`, opened in the workflow view (`mode` "/edit": the editor); the
    field of its flow v1's variable `name`, by name."""
    package = json.loads(C01.with_suffix(".dwp").read_text())
    wf_id = console.api("POST", "/workflows", {"title": title, "package": package})["id"]
    page.goto(f"/workflows/{wf_id}{mode}")
    return lambda name: page.locator(f'[name="v1.{name}"]')


def v1_outputs(report: dict[str, Any], want: dict[str, Any]) -> dict[str, Any]:
    """The outputs of flow v1 that `want` names (missing ones as "<missing>")."""
    got = report["flows"]["v1"]["outputs"]
    return {name: got.get(name, "<missing>") for name in want}


def run_from_the_form(page: Any, console: Console) -> dict[str, Any]:
    """Click Run; the run's report once it ended."""
    page.click("#run-start")
    expect(page).to_have_url(re.compile(r"/runs/\w+$"), timeout=LIVE_S)
    run_id = page.url.split("#")[0].rsplit("/", 1)[1]

    def ended() -> dict[str, Any] | None:
        report = console.api("GET", f"/runs/{run_id}")
        return report if report["status"] not in ("pending", "running") else None

    report = wait_for(ended, LIVE_S / 1000, 0.2)
    assert report["status"] == "ready", report
    return dict(report)


def test_a_run_from_the_form_with_nothing_changed_is_the_run_dizest_run_makes(
    admin_page: Any, console: Console
) -> None:
    page = admin_page
    field = open_c01(page, console, "c01 as it is")
    # stored values a number field cannot hold are shown as they are, not blanked
    expect(field("t_num_ws")).to_have_value(" 42 ")
    expect(field("t_num_bad")).to_have_value("abc")
    expect(field("t_num_neg")).to_have_value("-2.5e3")
    expect(field("t_num")).to_have_attribute("type", "number")
    # a list whose options are missing (its description is empty) shows its stored value
    expect(field("t_list")).to_have_value("b")
    expect(field("t_list").locator("option:checked")).to_have_text("b")
    expect(field("t_json_list")).to_have_value("[1,2]")
    expect(field("t_check_str")).to_be_checked()

    report = run_from_the_form(page, console)
    assert report["inputs"] == {} and not report.get("flow_inputs"), report  # nothing sent
    assert v1_outputs(report, expected_outputs()) == expected_outputs()


def test_a_changed_field_is_sent_as_dizest_stores_it_and_read_as_dizest_reads_it(
    admin_page: Any, console: Console
) -> None:
    page = admin_page
    field = open_c01(page, console, "c01 changed")
    field("t_num").fill("-1e3")  # a number field: its text, read as float() reads it
    field("t_num_bad").fill("12")  # the text field a stored "abc" is shown in
    field("t_text").fill("")  # cleared: the code's default, as DIZEST's UI's "" is
    field("t_check_true").uncheck()
    asked: list[Any] = []
    page.on("request", lambda r: asked.append(r) if r.url.endswith("/api/v1/runs") else None)
    report = run_from_the_form(page, console)
    sent = json.loads(asked[0].post_data)["inputs"]
    assert sent == {"v1.t_num": "-1e3", "v1.t_num_bad": "12", "v1.t_text": "", "v1.t_check_true": False}  # fmt: skip
    want = expected_outputs()
    want.update(in_t_num=-1000.0, g_t_num=-1000.0, in_t_num_bad=12.0, type_t_num_bad="float")
    want.update(in_t_text="DEFAULT", type_t_text="str", g_t_text=None)
    want.update(in_t_check_true=False, g_t_check_true=False)
    assert v1_outputs(report, want) == want


def test_the_editor_shows_the_stored_values_as_the_form_does_and_stores_an_edit_as_text(
    admin_page: Any, console: Console
) -> None:
    page = admin_page
    field = open_c01(page, console, "c01 in the editor", "/edit")
    page.locator('g.node[data-id="v1"] text.title').click()
    expect(field("t_num_ws")).to_have_value(" 42 ")
    expect(field("t_num_bad")).to_have_value("abc")
    expect(field("t_list")).to_have_value("b")
    field("t_num").fill("4.5")
    data = page.evaluate("() => window.dizestEditor.doc.pkg.flow.v1.data")
    assert (data["t_num"], data["t_num_ws"], data["t_num_bad"], data["t_list"]) == ("4.5", " 42 ", "abc", "b")  # fmt: skip


STORED = package(
    {
        "db": {
            "code": "ok = key == 'the-Pa55'",
            "inputs": [("key", "variable", "password")],
            "outputs": ["ok"],
        }
    },
    {"f": {"app": "db", "data": {"key": "the-Pa55"}}},
)


def test_a_password_the_workflow_stores_is_masked_for_who_may_not_write_it_and_still_used(
    browser: Any, console: Console
) -> None:
    """A value typed into a flow's password field in the editor and saved is stored in the
    package: every grantee read it there, in the .dwp and in each run's snapshot (a probe's
    viewer read the owner's database password so), where a password its owner gave a run is
    masked for them. A viewer or a runner now gets it masked; the runner's run from the form,
    the field left as it is, still uses it; the owner, editors and admins see it as stored."""
    for name in ("pia", "rob", "val", "eddie"):
        console.user(name)
    wf = console.api("POST", "/workflows", {"title": "db", "package": STORED}, "pia")["id"]
    grants = {"grants": {"rob": "runner", "val": "viewer", "eddie": "editor"}}
    console.api("PUT", f"/workflows/{wf}/grants", grants, "pia")
    run = console.api("POST", "/runs", {"workflow_id": wf}, "pia")["run_id"]
    for name, want in (("val", MASK), ("rob", MASK), ("eddie", "the-Pa55"), ("pia", "the-Pa55"), ("admin", "the-Pa55")):  # fmt: skip
        got = [
            console.api("GET", f"/workflows/{wf}", name=name)["package"],
            console.api("GET", f"/workflows/{wf}/dwp", name=name),
            console.api("GET", f"/runs/{run}/dwp", name=name),
        ]
        assert [p["flow"]["f"]["data"]["key"] for p in got] == [want] * 3, name
    page = log_in(browser, console.base, "rob")
    try:
        page.goto(f"/workflows/{wf}")
        expect(page.locator('[name="f.key"]')).to_have_value(MASK)
        report = run_from_the_form(page, console)
        mine = report["run_id"]
        assert report["inputs"] == {} and report["flows"]["f"]["outputs"] == {"ok": True}, report
        assert (
            console.api("GET", f"/runs/{mine}/dwp", name="rob")["flow"]["f"]["data"]["key"] == MASK
        )
    finally:
        page.context.close()


def test_inputs_the_server_refuses_are_each_shown_in_the_form(
    admin_page: Any, console: Console
) -> None:
    """A run refused for inputs no flow reads (400 `unknown_input`, its problems in an object,
    `details.problems`, beside `unknown` and `inputs`) showed only its headline: each input
    refused has its line now, naming its flow as the form does. (The form sends only its own
    fields, which the flows read: the refused ones are added here as a stale or hand-made form
    would send them.)"""
    pkg = package({"take": {"code": "pass", "inputs": [("k", "variable", "text")]}},
                  {"f": {"app": "take", "title": "Taker"}})  # fmt: skip
    wf_id = console.api("POST", "/workflows", {"title": "refused inputs", "package": pkg})["id"]
    page = admin_page
    page.goto(f"/workflows/{wf_id}")
    expect(page.locator('[name="f.k"]')).to_be_visible()
    page.evaluate(
        """() => {
        for (const name of ["nobody", "f.ghost"]) {
          const field = Object.assign(document.createElement("input"), { name, value: "x" });
          Object.assign(field.dataset, { inputtype: "text", initial: "" });
          document.querySelector("#runform").prepend(field);
        }
      }"""
    )
    page.click("#run-start")
    problems = page.locator("#run-problems")
    expect(problems).to_be_visible()
    expect(problems).to_have_text(
        "no flow reads input(s) nobody, f.ghost; the workflow's flows declare: k\n"
        "no flow reads this input (field inputs.nobody)\n"
        "the flow reads no input 'ghost' (it declares: k) (flow Taker, field inputs.f.ghost)"
    )
    assert console.api("GET", f"/runs?workflow_id={wf_id}")["total"] == 0


def test_the_forms_refusal_is_shown_whole_where_the_run_button_was(
    browser: Any, console: Console
) -> None:
    """On a screen the long form did not fit (a laptop's), a refusal (no worker, inputs
    refused) was drawn above the Run button pressed at the form's foot, half below the fold:
    the page now brings the whole of it into view."""
    fields = {
        f"v{i}": {"code": "pass", "inputs": [(f"k{i}", "variable", "text")]} for i in range(8)
    }
    pkg = package(fields, {f"f{i}": {"app": f"v{i}"} for i in range(8)})
    wf_id = console.api("POST", "/workflows", {"title": "a long form", "package": pkg})["id"]
    page = log_in(browser, console.base, "admin", PASSWORD, viewport={"width": 1280, "height": 560})
    page.goto(f"/workflows/{wf_id}")
    expect(page.locator('[name="f7.k7"]')).to_be_visible()
    page.evaluate(
        """() => {
        for (const name of ["nobody", "f0.ghost", "f1.ghost", "f2.ghost"]) {
          const field = Object.assign(document.createElement("input"), { name, value: "x", type: "hidden" });
          Object.assign(field.dataset, { inputtype: "text", initial: "" });
          document.querySelector("#runform").prepend(field);
        }
      }"""
    )
    page.locator("#run-start").scroll_into_view_if_needed()
    page.click("#run-start")
    problems = page.locator("#run-problems")
    expect(problems).to_contain_text("no flow reads this input (field inputs.nobody)")
    expect(problems).to_be_in_viewport(ratio=0.99)  # whole, but for a fraction of a pixel
    page.context.close()
