"""The `dizest` command: exit codes, --json report, inputs, validation and apps listing."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DATA, package

ROOT = Path(__file__).resolve().parent.parent


def dizest(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dizest_cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=120,
    )


def write(tmp_path: Path, pkg: dict) -> str:
    path = tmp_path / "wf.dwp"
    path.write_text(json.dumps(pkg))
    return str(path)


def test_run_ok_prints_final_outputs_and_logs_on_stderr():
    result = dizest("run", str(DATA / "c03_fanout.dwp"))
    assert result.returncode == 0, result.stderr
    assert "k1.r = 6" in result.stdout and "k3.r = 30" in result.stdout
    assert "run ready: 4 ready of 4 flows" in result.stderr


def test_run_failure_exit_1_and_json_report():
    result = dizest("run", str(DATA / "c04_error.dwp"), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["status"] == "error" and report["flows"]["b"]["status"] == "error"
    assert "[b ] ValueError: boom <b>&" in result.stderr


def test_inputs_are_json_or_strings_and_per_flow(tmp_path):
    pkg = package(
        {"echo": {"code": "v = [dizest.input('k'), dizest.input('s')]", "outputs": ["v"]}},
        {"f1": {"app": "echo"}, "f2": {"app": "echo"}},
    )
    result = dizest(
        "run",
        write(tmp_path, pkg),
        "-i",
        "k=[1, 2]",
        "-i",
        "s=plain text",
        "-i",
        "f2.k=7",
        "--json",
        "--workdir",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    flows = json.loads(result.stdout)["flows"]
    assert flows["f1"]["outputs"]["v"] == [[1, 2], "plain text"]
    assert flows["f2"]["outputs"]["v"] == [7, "plain text"]


def test_flow_option_and_usage_errors(tmp_path):
    result = dizest("run", str(DATA / "c13_reverse_order.dwp"), "--flow", "b", "--json")
    assert result.returncode == 0, result.stderr
    flows = json.loads(result.stdout)["flows"]
    assert [f for f, d in flows.items() if d["status"] == "ready"] == ["b", "a"]
    assert dizest("run", str(DATA / "c13_reverse_order.dwp"), "--flow", "zz").returncode == 2
    assert dizest("run", str(DATA / "c13_reverse_order.dwp"), "-i", "novalue").returncode == 2


@pytest.mark.skipif(os.geteuid() != 0, reason="the network namespace needs a root engine")
def test_run_takes_every_run_option_as_a_flag(tmp_path):
    """`dizest run` had no --cpus nor --network: a run option the API took was out of reach."""
    listener = socket.create_server(("127.0.0.1", 0))
    code = (
        "import socket\n"
        "try:\n"
        f"    socket.create_connection(('127.0.0.1', {listener.getsockname()[1]}), 5).close()\n"
        "    v = 'connected'\n"
        "except OSError as exc:\n"
        "    v = type(exc).__name__\n"
    )
    path = write(tmp_path, package({"a": {"code": code, "outputs": ["v"]}}, {"f": {"app": "a"}}))
    common = ("run", path, "--json", "--workdir", str(tmp_path), "--cpus", "0.5", "--retries", "1")
    try:
        sealed = dizest(*common, "--network", "none", DIZEST_SANDBOX="on")
        opened = dizest(*common, "--network", "egress", DIZEST_SANDBOX="on")
    finally:
        listener.close()
    assert sealed.returncode == 0 and opened.returncode == 0, sealed.stderr + opened.stderr
    assert json.loads(opened.stdout)["flows"]["f"]["outputs"]["v"] == "connected"
    assert json.loads(sealed.stdout)["flows"]["f"]["outputs"]["v"] != "connected"
    for flag, value in (("--cpus", "0"), ("--network", "moon"), ("--memory-limit", "8")):
        wrong = dizest("run", path, flag, value)
        assert wrong.returncode == 2 and flag in wrong.stderr, (flag, wrong.stderr)


def test_a_missing_workdir_is_a_usage_error(tmp_path):
    missing = tmp_path / "missing"
    result = dizest("run", str(DATA / "c13_reverse_order.dwp"), "--workdir", str(missing))
    assert result.returncode == 2
    assert "--workdir" in result.stderr and "does not exist" in result.stderr


def test_invalid_workflow_exit_2_lists_every_problem(tmp_path):
    pkg = package(
        {"a": {"code": "v = 1", "inputs": ["q"], "outputs": ["v"]}},
        {"x": {"app": "a", "in": {"q": [("y", "v")]}}, "y": {"app": "missing"}},
    )
    pkg["flow"]["x"]["inputs"]["q"]["connections"].append({"node": "ghost", "input": "v"})
    path = write(tmp_path, pkg)
    for command in ("run", "validate"):
        result = dizest(command, path)
        assert result.returncode == 2
        out = result.stdout + result.stderr
        assert "unknown app_id 'missing'" in out and "unknown flow 'ghost'" in out
        assert "^J" not in out  # one problem a line, not one line of all (the last session's)
    assert dizest("validate", str(DATA / "dag100.dwp")).returncode == 0
    bad = tmp_path / "bad.dwp"
    bad.write_text("{nope")
    result = dizest("validate", str(bad), "--json")
    assert result.returncode == 2 and json.loads(result.stdout)["problems"][0]["code"] == "not_json"


def test_validate_reports_the_dizest_options_run_refuses(tmp_path):
    """`dizest validate` said "valid" (exit 0) of a package whose `"dizest"` options `dizest
    run` and every submit refuse; with another error beside them, they were not listed."""
    pkg = package(
        {"a": {"code": "v = 1", "outputs": ["v"]}},
        {"x": {"app": "a", "dizest": {"timeout": -1, "bogus": 1}}},
    )
    pkg["apps"]["a"]["dizest"] = {"retries": 50}
    path = write(tmp_path, pkg)
    ran = dizest("run", path)
    assert ran.returncode == 2 and "dizest.timeout" in ran.stderr
    checked = dizest("validate", path, "--json")
    assert checked.returncode == 2, checked.stdout
    found = {(p["flow"], p["app"], p["field"]) for p in json.loads(checked.stdout)["problems"]}
    assert found == {
        ("x", None, "dizest.timeout"),
        ("x", None, "dizest.bogus"),
        (None, "a", "dizest.retries"),
    }
    pkg["flow"]["y"] = {**pkg["flow"]["x"], "id": "y", "app_id": "missing"}
    both = dizest("validate", write(tmp_path, pkg))
    assert both.returncode == 2
    assert (
        "unknown app_id 'missing'" in both.stdout
        and "(flow 'y', field 'dizest.bogus')" in both.stdout
    )


def test_run_reports_every_problem_at_once_in_the_servers_words(tmp_path):
    """`dizest run` loaded the package alone first: its run options (and its `"dizest"`
    options) were told only once the package's errors were fixed, and an input no flow reads
    was dropped silently. Now one pass, the server's rules (`options.checked`, `run_inputs`)."""
    reads_k = {"code": "v = dizest.input('k', 0)", "inputs": [("k", "variable", None)]}
    pkg = package({"a": {**reads_k, "outputs": ["v"]}}, {"x": {"app": "a"}})
    whole = write(tmp_path, pkg)
    pkg["flow"]["x"]["dizest"] = {"timeout": -1}
    pkg["flow"]["y"] = {**pkg["flow"]["x"], "id": "y", "app_id": "missing"}
    (tmp_path / "broken.dwp").write_text(json.dumps(pkg))
    narrow = {"DIZEST_NETWORK_MAX": "none"}
    egress = ("--network", "egress")
    broken = dizest("run", str(tmp_path / "broken.dwp"), *egress, **narrow)
    assert broken.returncode == 2
    assert broken.stderr.splitlines() == [
        f"{tmp_path / 'broken.dwp'}: invalid workflow: 4 problem(s)",
        "  - unknown app_id 'missing' (flow 'y', app 'missing', field 'app_id')",
        "  - must be a number of seconds above 0, not -1 (flow 'x', field 'dizest.timeout')",
        "  - must be a number of seconds above 0, not -1 (flow 'y', field 'dizest.timeout')",
        "  - 'egress' is more network than this server allows ('none') (field 'options.network')",
    ]
    asked = ("-i", "kk=1", "-i", "x.zz=2", "--flow", "nope", *egress)
    refused = dizest("run", whole, *asked, **narrow)
    assert refused.returncode == 2
    assert refused.stderr.splitlines() == [
        f"{whole}: invalid run: 4 problem(s)",
        "  - 'egress' is more network than this server allows ('none') (field 'options.network')",
        "  - no flow reads this input (field 'inputs.kk')",
        "  - the flow reads no input 'zz' (it declares: k) (flow 'x', field 'inputs.x.zz')",
        "  - unknown flow(s): nope (field 'flows')",
    ]
    typo = dizest("run", whole, "-i", "kk=1")
    assert typo.returncode == 2  # the message a submit answers (400 unknown_input)
    assert typo.stderr.splitlines()[0] == (
        f"{whole}: no flow reads input(s) kk; the workflow's flows declare: k"
    )
    ran = dizest("run", whole, "-i", "x.k=3", "--workdir", str(tmp_path))
    assert ran.returncode == 0 and ran.stdout == "x.v = 3\n", ran.stderr


def test_cycle_is_reported_with_its_path(tmp_path):
    pkg = package(
        {"p": {"code": "v = 1", "inputs": ["x"], "outputs": ["v"]}},
        {
            "a": {"app": "p", "in": {"x": [("c", "v")]}},
            "b": {"app": "p", "in": {"x": [("a", "v")]}},
            "c": {"app": "p", "in": {"x": [("b", "v")]}},
        },
    )
    result = dizest("run", write(tmp_path, pkg))
    assert result.returncode == 2 and "cycle: a -> b -> c -> a" in result.stderr


def test_apps_lists_plugin_apps():
    result = dizest("apps", "--json")
    assert result.returncode == 0
    ids = {row["id"] for row in json.loads(result.stdout)}
    assert {"table.read_csv", "table.filter", "table.describe", "table.plot"} <= ids


def test_validate_warns_of_an_import_this_python_cannot_satisfy(tmp_path):
    """`dizest run` runs flows with this Python: an import it lacks is a warning (the package
    is still valid: a worker elsewhere may have it), a module it has is not."""
    code = "import json, click\ntry:\n    import optional_xyz\nexcept ImportError:\n    pass\nimport no_such_module_xyz.sub\nv = 1"  # fmt: skip
    path = write(tmp_path, package({"a": {"code": code, "outputs": ["v"]}}, {"x": {"app": "a"}}))
    checked = dizest("validate", path, "--json")
    assert checked.returncode == 0, checked.stdout
    problems = json.loads(checked.stdout)["problems"]
    assert [(p["code"], p["severity"], p["app"], p["message"]) for p in problems] == [
        (
            "missing_module",
            "warning",
            "a",
            f"line 6: imports 'no_such_module_xyz', which {sys.executable} has not installed",
        )
    ]


def test_run_says_which_inputs_it_reads_as_none(tmp_path):
    """A link deleted by mistake: validate says valid (the input may be the run's, given from
    outside), and the flow failed later on None, far from its cause. The run now says which
    inputs no output feeds and no value was given; a value given is no note."""
    pkg = json.loads((DATA / "c03_fanout.dwp").read_text())
    del pkg["flow"]["k1"]["inputs"]["v"]  # the link src.v -> k1.v
    path = write(tmp_path, pkg)
    result = dizest("run", path, "--workdir", str(tmp_path))
    note = "dizest run: connected to no output and given no value, so read as None: k1.v"
    assert note in result.stderr, result.stderr
    given = dizest("run", path, "-i", "k1.v=[1, 2]", "--workdir", str(tmp_path))
    assert given.returncode == 0 and "read as None" not in given.stderr, given.stderr
    assert "k1.r = 3" in given.stdout, given.stdout  # sum([1, 2])
    whole = dizest("run", str(DATA / "c03_fanout.dwp"), "--workdir", str(tmp_path))
    assert whole.returncode == 0 and "read as None" not in whole.stderr, whole.stderr
