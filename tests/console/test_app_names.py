"""What the console writes of an app names it by its title (flownames.js appTitle), as its node
does, its id in a tooltip and `data-app`: the flow panels of the workflow view, the run view and
the editor ("flow <id> · app <title>"), the editor's problems list (an app no flow uses), and
the problems and warnings a .dwp upload is refused or stored with (the same lines a refused save
or run shows, api.js problemLines). They said "app bo6at79gelssrhfz" where the graph said
"Producer"."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from tests.conftest import wait_for
from tests.console.conftest import Console
from tests.console.test_flow_names import CF, C, P, named

LIVE_S = 60


def test_the_flow_panels_name_the_app_by_its_title(admin_page: Any, console: Console) -> None:
    wf_id = str(console.api("POST", "/workflows", {"title": "app names", "package": named()})["id"])
    run_id = str(console.api("POST", "/runs", {"workflow_id": wf_id})["run_id"])
    wait_for(lambda: console.api("GET", f"/runs/{run_id}")["status"] == "error", LIVE_S, 0.2)
    page = admin_page
    for path, panel in ((f"/workflows/{wf_id}", "#node"), (f"/runs/{run_id}", "#flow"),
                        (f"/workflows/{wf_id}/edit", "#flow")):  # fmt: skip
        page.goto(path)
        page.locator(f'g.node[data-id="{CF}"]').click()
        line = page.locator(f"{panel} p.muted").first
        expect(line).to_have_text(re.compile(f"^flow {CF} · app Consumer"))
        expect(line.locator(f'[data-app="{C}"]')).to_have_attribute("title", C)


def test_the_editor_names_an_unused_apps_problem_by_its_title(
    admin_page: Any, console: Console
) -> None:
    lonely = "q7w3e9r1t5y2u8i4"
    pkg = named()
    pkg["apps"][lonely] = {"id": lonely, "title": "Lonely", "code": "x = (", "inputs": [],
                           "outputs": []}  # fmt: skip
    wf_id = str(console.api("POST", "/workflows", {"title": "lonely app", "package": pkg})["id"])
    page = admin_page
    page.goto(f"/workflows/{wf_id}/edit")
    problem = page.locator(f'#problems li[data-code="syntax_error"][data-app="{lonely}"]')
    expect(problem).to_have_text(re.compile(r"^Lonely: syntax error in the app's code on line 1"))
    expect(problem).to_have_attribute("title", lonely)


def test_an_uploads_problems_and_warnings_name_apps_by_their_titles(
    admin_page: Any, tmp_path: Path
) -> None:
    refused = named()
    refused["apps"][P]["outputs"].append({"name": ""})  # an error: the upload is refused
    warned = named()  # P2's input "extra", which its app does not declare: a warning
    page = admin_page
    page.goto("/workflows")
    problems = page.locator("#upload-problems")
    for name, pkg in (("refused", refused), ("warned", warned)):
        (tmp_path / f"{name}.dwp").write_text(json.dumps({**pkg, "title": f"app names {name}"}))
    page.set_input_files("#wf-file", str(tmp_path / "refused.dwp"))
    expect(problems).to_contain_text("output needs a name (app Producer, field outputs[1])")
    page.set_input_files("#wf-file", str(tmp_path / "warned.dwp"))
    expect(problems).to_contain_text(
        "connection into input 'extra' that app Producer does not declare (ignored)"
        " (flow Producer (2), app Producer, field inputs.extra)"
    )
    assert P not in str(problems.text_content())
