"""The command line against a real `dizest serve`: runs and workflows commands with --json,
`logs -f` (also across an API restart), submit options, what other users wrote defused
(the serve: tests/cli/conftest.py).
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from tests.cli.helpers import (
    SYNTAX_ERROR,
    WAITING,
    dizest,
    ok_json,
    started,
    write_dwp,
)
from tests.conftest import DATA, wait_for
from tests.serve_process import Served


def submit_waiting(home: Path, tmp_path: Path, flag: Path) -> str:
    dwp = write_dwp(tmp_path / "waiting.dwp", WAITING)
    result = dizest(home, "submit", str(dwp), "-i", f"path={flag}")
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_logs_follow_streams_until_the_run_ends(home: Path, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    run_id = submit_waiting(home, tmp_path, flag)
    follow = started(home, "runs", "logs", "-f", run_id)
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline() == "[w] waiting\n"  # while the flow still waits
        flag.touch()
        out, err = follow.communicate(timeout=60)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, err
    assert out == "[w] got it\n" and f"run {run_id} ready" in err
    logs = dizest(home, "runs", "logs", run_id)
    assert logs.stdout == "[w] waiting\n[w] got it\n"


def test_piped_submit_wait_shows_each_event_as_it_happens(home: Path, tmp_path: Path) -> None:
    flag = tmp_path / "go"
    dwp = write_dwp(tmp_path / "waiting.dwp", WAITING)
    proc = started(home, "submit", str(dwp), "-i", f"path={flag}", "--wait")
    try:
        assert proc.stderr is not None
        seen = []
        while not seen or seen[-1] != "[w] waiting\n":
            line = proc.stderr.readline()
            assert line, f"stderr ended early: {seen}"
            seen.append(line)
        assert "[w] running\n" in seen
        flag.touch()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "[w] got it\n" in err and "w.r = 1" in out


def test_runs_commands_with_json(home: Path, tmp_path: Path) -> None:
    done = dizest(home, "submit", str(DATA / "c03_fanout.dwp"), "--wait", "--json")
    run_id = ok_json(done)["run_id"]
    listed = ok_json(dizest(home, "runs", "list", "--json", "--status", "ready"))
    assert run_id in [r["run_id"] for r in listed["items"]]
    table = dizest(home, "runs", "list").stdout.splitlines()
    assert table[0].split() == ["RUN", "STATUS", "WORKFLOW", "OWNER", "ORIGIN", "CREATED", "TOOK"]
    assert any(line.startswith(run_id) and " ready " in line for line in table)
    shown = ok_json(dizest(home, "runs", "show", run_id, "--json"))
    assert shown["status"] == "ready" and shown["flows"]["k3"]["status"] == "ready"
    outputs = ok_json(dizest(home, "runs", "outputs", run_id, "--flow", "k1", "--json"))
    assert outputs == {"k1": {"r": 6}}
    assert "k3.r = 30" in dizest(home, "runs", "outputs", run_id).stdout
    again = dizest(home, "runs", "rerun", run_id, "k2", "--wait", "--json")
    assert ok_json(again)["flows"]["k2"]["outputs"] == {"r": 13}
    rerun_id = ok_json(again)["run_id"]  # what started it, in the list and its report
    table = dizest(home, "runs", "list").stdout.splitlines()
    assert any(line.startswith(rerun_id) and f" rerun {run_id} " in line for line in table), table
    assert f"origin:   rerun {run_id}" in dizest(home, "runs", "show", rerun_id).stdout
    missing = dizest(home, "runs", "show", "nope")
    assert missing.returncode == 1 and "no run 'nope'" in missing.stderr
    # the 12 characters the console's runs page shows name the run (they were a 404)
    short = ok_json(dizest(home, "runs", "show", run_id[:12], "--json"))
    assert short["run_id"] == run_id
    assert "k3.r = 30" in dizest(home, "runs", "outputs", run_id[:12]).stdout
    absent = "f" * 12 if not run_id.startswith("f" * 12) else "0" * 12
    unknown = dizest(home, "runs", "show", absent)
    assert unknown.returncode == 1 and f"no run whose id starts with '{absent}'" in unknown.stderr

    waiting = submit_waiting(home, tmp_path, tmp_path / "never")
    answer = ok_json(dizest(home, "runs", "cancel", waiting, "--json"))
    assert answer["run_id"] == waiting

    def ended() -> object:
        status = ok_json(dizest(home, "runs", "show", waiting, "--json"))["status"]
        return status if status in ("error", "cancelled") else None

    assert wait_for(ended, timeout=60, interval=0.2)
    # said in words: the API's result is 'final' or how many running flows are being stopped
    running = submit_waiting(home, tmp_path, tmp_path / "never again")
    wait_for(lambda: ok_json(dizest(home, "runs", "show", running, "--json"))["flows"]["w"]["status"] == "running", timeout=60, interval=0.2)  # fmt: skip
    said = dizest(home, "runs", "cancel", running).stdout
    assert said.startswith(f"run {running}: cancelling: 1 running flow(s) being stopped"), said
    again = lambda: "cancelled (status" in dizest(home, "runs", "cancel", running).stdout  # noqa: E731
    assert wait_for(again, timeout=60, interval=0.2)  # once its flow is stopped: over


def test_workflows_push_list_pull(home: Path, tmp_path: Path) -> None:
    source = DATA / "c03_fanout.dwp"
    pushed = ok_json(dizest(home, "workflows", "push", str(source), "--json"))
    assert pushed["title"] == "c03_fanout" and pushed["version"] == 1
    listed = ok_json(dizest(home, "workflows", "list", "--json", "--title", "c03_fan"))
    assert pushed["id"] in [w["id"] for w in listed["items"]]
    changed = json.loads(source.read_text())
    changed["title"] = "second version"
    second = write_dwp(tmp_path / "second.dwp", changed)
    bumped = ok_json(dizest(home, "workflows", "push", str(second), "--to", pushed["id"], "--json"))  # fmt: skip
    assert bumped["version"] == 2
    first = dizest(home, "workflows", "pull", pushed["id"], "--version", "1", "-o", "-")
    assert json.loads(first.stdout) == json.loads(source.read_text())
    pulled = dizest(home, "workflows", "pull", pushed["id"], cwd=tmp_path)
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads((tmp_path / "c03_fanout.v2.dwp").read_text())["title"] == "second version"
    refused = dizest(home, "workflows", "pull", pushed["id"], cwd=tmp_path)
    assert refused.returncode == 2 and "--force" in refused.stderr


def test_submit_and_workflows_run_pass_the_run_options(home: Path, tmp_path: Path) -> None:
    """`dizest submit` took no run option, and a stored workflow could not be run from the
    command line at all (only pulled, then submitted as a package of no workflow)."""
    flags = ("--cpus", "1.5", "--network", "none", "--retries", "1", "--flow-timeout", "30")
    expected = {"cpus": 1.5, "network": "none", "retries": 1, "flow_timeout": 30.0}
    source = str(DATA / "c03_fanout.dwp")
    submitted = ok_json(dizest(home, "submit", source, *flags, "--wait", "--json"))
    assert submitted["options"] == expected and submitted["status"] == "ready"
    stored = ok_json(dizest(home, "workflows", "push", source, "--json"))["id"]
    ran = ok_json(dizest(home, "workflows", "run", stored, *flags, "--wait", "--json"))
    assert ran["options"] == expected and ran["workflow_id"] == stored
    assert ran["flows"]["k3"]["outputs"]["r"] == 30
    quiet = dizest(home, "workflows", "run", stored, "--version", "1")
    assert quiet.returncode == 0, quiet.stderr
    shown = ok_json(dizest(home, "runs", "show", quiet.stdout.strip(), "--json"))
    assert shown["workflow_id"] == stored and shown["options"] == {}
    refused = dizest(home, "workflows", "run", stored, "--flow", "nope")
    assert refused.returncode == 2 and f"{stored}: " in refused.stderr, refused.stderr
    # an input no flow reads: the server's 400 unknown_input, invalid as `dizest run` says it
    # (it exited 1, as a failed flow does)
    for command in (("submit", source), ("workflows", "run", stored)):
        typo = dizest(home, *command, "-i", "kk=3")
        assert typo.returncode == 2, (command, typo.stderr)
        assert typo.stderr.startswith(f"{command[-1]}: no flow reads input(s) kk"), typo.stderr
    missing = dizest(home, "workflows", "run", "nope")
    assert missing.returncode == 1 and "nope" in missing.stderr, missing.stderr


def test_submit_runs_code_that_does_not_compile_as_a_local_run_does(
    home: Path, tmp_path: Path
) -> None:
    """As `dizest run` (tests/cli/test_local_output.py): the flows of that app end in error with
    the SyntaxError as their reason, the others run; one rule set in both modes."""
    bad = write_dwp(tmp_path / "bad.dwp", SYNTAX_ERROR)
    result = dizest(home, "submit", str(bad), "--wait", "--json")
    assert result.returncode == 1, result.stderr
    flows = json.loads(result.stdout)["flows"]
    reasons = {f: (d["status"], d["reason"]) for f, d in flows.items()}
    assert reasons == {
        "a": ("error", "SyntaxError: invalid syntax (<flow a>, line 2)"),
        "b": ("error", "SyntaxError: invalid syntax (<flow b>, line 2)"),
        "c": ("ready", None),
    }


def api_pid(serve_pid: int) -> int | None:
    """The gunicorn master `dizest serve` started (its child running dizest_api.gunicorn_app),
    None while there is none (being restarted)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == serve_pid and b"dizest_api.gunicorn_app" in argv:
            return int(entry.name)
    return None


def test_logs_follow_resumes_after_the_api_dies(home: Path, tmp_path: Path, served: Served) -> None:
    """The API is killed mid-stream (serve restarts it): `logs -f` reconnects with
    Last-Event-ID and prints every line once, none lost, none twice."""
    flag = tmp_path / "go"
    run_id = submit_waiting(home, tmp_path, flag)
    follow = started(home, "runs", "logs", "-f", run_id)
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline() == "[w] waiting\n"
        old = api_pid(served.pid)
        assert old is not None
        os.killpg(old, signal.SIGKILL)  # its own group: gunicorn and its workers
        wait_for(lambda: api_pid(served.pid) not in (None, old), timeout=30)
        flag.touch()
        out, err = follow.communicate(timeout=90)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, err
    assert out == "[w] got it\n"
    wait_for(lambda: dizest(home, "runs", "show", run_id).returncode == 0, timeout=30)


def test_what_another_user_wrote_is_printed_defused(home: Path, tmp_path: Path) -> None:
    """A shared workflow's title and a flow's error reason reached a grantee's terminal raw
    (`workflows list`, `runs show`, `submit --wait`): a clear-screen, a clipboard write."""
    hostile = "T\x1b]52;c;eA==\x07\x1b[2J\u202e"
    pkg = json.loads((DATA / "c03_fanout.dwp").read_text())
    first = next(iter(pkg["apps"].values()))
    first["code"] = "raise ValueError(" + json.dumps(hostile) + ")"
    path = write_dwp(tmp_path / "hostile.dwp", pkg)
    pushed = ok_json(dizest(home, "workflows", "push", str(path), "--title", hostile, "--json"))
    listed = dizest(home, "workflows", "list")
    assert listed.returncode == 0, listed.stderr
    assert "T^[]52;c;eA==^G^[[2J<U+202E>" in listed.stdout
    assert pushed["title"] == hostile
    done = dizest(home, "submit", str(path), "--wait")
    assert done.returncode == 1, done.stderr
    run_id = done.stderr.split()[1]  # "run <id>" first
    shown = dizest(home, "runs", "show", run_id)
    for out in (listed.stdout, done.stdout + done.stderr, shown.stdout):
        assert "\x1b" not in out and "\x07" not in out and "\u202e" not in out, out
    assert "^[]52;c;eA==^G" in done.stderr and "^[]52;c;eA==^G" in shown.stdout


def test_json_without_wait_prints_the_run_id_as_json(home: Path) -> None:
    """`submit --json`, `workflows run --json` and `runs rerun --json` without --wait printed
    the bare run id: a script that asked for JSON got text json.loads refuses."""
    source = str(DATA / "c03_fanout.dwp")
    run_id = ok_json(dizest(home, "submit", source, "--json"))["run_id"]
    stored = ok_json(dizest(home, "workflows", "push", source, "--json"))["id"]
    ran = ok_json(dizest(home, "workflows", "run", stored, "--json"))["run_id"]
    assert ok_json(dizest(home, "runs", "show", ran, "--json"))["workflow_id"] == stored

    def ready() -> bool:
        return ok_json(dizest(home, "runs", "show", run_id, "--json"))["status"] == "ready"

    assert wait_for(ready, timeout=60, interval=0.2)
    again = ok_json(dizest(home, "runs", "rerun", run_id, "k2", "--json"))["run_id"]
    assert again != run_id
    plain = dizest(home, "submit", source)  # without --json: the id alone, as before
    assert plain.returncode == 0 and len(plain.stdout.split()) == 1, plain.stdout


def test_a_grantee_names_a_shared_run_by_the_start_of_its_id(
    home: Path, served: Served, tmp_path: Path
) -> None:
    """A viewer reads the owner's runs of a shared workflow by their whole id; the start of it
    (what the console shows) was looked for among the viewer's own runs only (a probe's find)."""
    from tests.serve_process import PASSWORD, call, password_session

    admin = password_session(served.base, "admin", PASSWORD)[0]  # (its session: admin scope)
    user = {"username": "gus", "password": "gus's password", "role": "user"}
    assert call(served.base, "POST", "/api/v1/users", user, admin)[0] in (201, 409)
    stored = ok_json(dizest(home, "workflows", "push", str(DATA / "c03_fanout.dwp"), "--json"))
    grants = {"grants": {"gus": "viewer"}}
    assert call(served.base, "PUT", f"/api/v1/workflows/{stored['id']}/grants", grants, admin)[0] == 200  # fmt: skip
    run_id = ok_json(dizest(home, "workflows", "run", stored["id"], "--wait", "--json"))["run_id"]
    gus = tmp_path / "gus"
    gus.mkdir()
    logged = dizest(gus, "login", "--server", served.base, "-u", "gus", "--password-stdin",
                    stdin=user["password"] + "\n")  # fmt: skip
    assert logged.returncode == 0, logged.stderr
    shown = ok_json(dizest(gus, "runs", "show", run_id[:12], "--json"))
    assert shown["run_id"] == run_id and shown["owner"] == "admin"
