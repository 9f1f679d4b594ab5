"""Isolation: each flow is a child process in its own process group, with a scrubbed
environment, limits, and fd-level output capture; a crash ends only that flow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dizest_core.settings import child_environment
from tests.conftest import STUCK_AFTER_DONE, lock_free, package, wait_for

INDEPENDENT = {"ok": {"code": "v = 'fine'", "outputs": ["v"]}}


def run_with_bystander(make_workflow, tmp_path: Path, code: str, **run_args):
    pkg = package(
        {"bad": {"code": code, "outputs": ["v"]}, **INDEPENDENT},
        {"bad": {"app": "bad"}, "other": {"app": "ok"}},
    )
    report = make_workflow(pkg).run(workdir=tmp_path, timeout=60, **run_args)
    assert report["flows"]["other"]["status"] == "ready"
    assert report["flows"]["other"]["outputs"] == {"v": "fine"}
    return report["flows"]["bad"]


def test_segfault_ends_only_that_flow(make_workflow, tmp_path):
    flow = run_with_bystander(make_workflow, tmp_path, "import ctypes\nctypes.string_at(0)")
    assert flow["status"] == "error"
    assert flow["reason"] == "crashed: segmentation fault (SIGSEGV)"


def test_os_exit_is_reported(make_workflow, tmp_path):
    flow = run_with_bystander(make_workflow, tmp_path, "import os\nprint('bye')\nos._exit(3)")
    assert flow["status"] == "error"
    assert "exited with code 3 before finishing" in flow["reason"]
    assert flow["log"][0] == "bye"


def test_timeout_kills_the_whole_process_group(make_workflow, tmp_path):
    code = (
        "import subprocess\n"
        "p = subprocess.Popen(['sleep', '300'])\n"
        "open('grandchild.pid', 'w').write(str(p.pid))\n"
        "while True:\n    pass\n"
    )
    flow = run_with_bystander(make_workflow, tmp_path, code, flow_timeout=1.0)
    assert flow["status"] == "error"
    assert flow["reason"] == "timeout after 1 s"
    pid = int((tmp_path / "grandchild.pid").read_text())
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), timeout=5)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_memory_limit(make_workflow, tmp_path):
    code = "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 1024 * 1024))"
    flow = run_with_bystander(make_workflow, tmp_path, code, memory_limit_mb=300)
    assert flow["status"] == "error"
    assert flow["reason"] == "memory limit exceeded (300 MB)"


def test_c_level_and_subprocess_output_become_log_lines(make_workflow, tmp_path):
    code = (
        "import os, subprocess, sys\n"
        "os.write(1, b'raw fd one\\n')\n"
        "os.write(2, b'raw fd two\\n')\n"
        "subprocess.run(['echo', 'from a subprocess'], check=True)\n"
        "sys.stdout.write('no newline at the end')\n"
        "v = 1\n"
    )
    flow = run_with_bystander(make_workflow, tmp_path, code)
    assert flow["status"] == "ready"
    assert flow["log"] == [
        "raw fd one",
        "raw fd two",
        "from a subprocess",
        "no newline at the end",
    ]


def test_log_entries_keep_the_order_the_flow_produced_them_in(make_workflow, tmp_path):
    # print entries, fd-level stdout and stderr, Python-level writes and a partial line that
    # a print interrupts all arrive in the order they were written.
    code = (
        "import os, sys\n"
        "for i in range(300):\n"
        "    print(f'print {i}')\n"
        "    os.write(1 + i % 2, f'fd {i}\\n'.encode())\n"
        "    sys.stderr.write(f'stderr {i}\\n')\n"
        "display({'i': 1})\n"
        "os.write(1, b'partial')\n"
        "print('last')\n"
        "v = 1\n"
    )
    flow = run_with_bystander(make_workflow, tmp_path, code)
    expected = [line for i in range(300) for line in (f"print {i}", f"fd {i}", f"stderr {i}")]
    json_entry = {"mime": "application/json", "data": '{"i": 1}'}
    assert flow["log"] == [*expected, json_entry, "partial", "last"]


def test_processes_a_flow_started_end_with_it(make_workflow, tmp_path):
    code = (
        "import subprocess\n"
        "p = subprocess.Popen(['sleep', '300'])\n"
        "open('background.pid', 'w').write(str(p.pid))\n"
        "v = 1\n"
    )
    flow = run_with_bystander(make_workflow, tmp_path, code)
    assert flow["status"] == "ready"
    pid = int((tmp_path / "background.pid").read_text())
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), timeout=5)


def test_a_missing_working_directory_is_a_clear_error(make_workflow, tmp_path):
    pkg = package(INDEPENDENT, {"f": {"app": "ok"}})
    missing = tmp_path / "missing"
    flow = make_workflow(pkg).run(workdir=missing)["flows"]["f"]
    assert flow["status"] == "error"
    assert flow["reason"] == (
        f"FlowSetupError: cannot enter the working directory {str(missing)!r}: "
        "No such file or directory"
    )


def test_log_lines_stream_while_the_flow_runs(make_workflow, tmp_path):
    # The flow waits for a file that the test only creates after it has received the first
    # line: if lines were delivered at the end, the flow would hit its timeout.
    code = (
        "import os, time\n"
        "print('first', flush=True)\n"
        "while not os.path.exists('go'):\n    time.sleep(0.01)\n"
        "os.write(1, b'second\\n')\n"
    )
    pkg = package({"app": {"code": code}}, {"f": {"app": "app"}})
    wf = make_workflow(pkg)
    seen = []

    def on_log(event):
        seen.append(event.data["entry"])
        if event.data["entry"] == "first":
            (tmp_path / "go").touch()

    wf.on("log.append", on_log)
    report = wf.run(workdir=tmp_path, flow_timeout=20)
    assert report["flows"]["f"]["status"] == "ready"
    assert seen == ["first", "second"]


def test_environment_is_an_allow_list(make_workflow, tmp_path, monkeypatch):
    """Flows see only allow-listed variables: a secret under an innocent name stays out too."""
    secrets = {
        "DIZEST_REDIS_URL": "redis://secret",
        "MY_API_TOKEN": "t0ken",
        "DB_PASS": "pw",
        "MYSQL_PWD": "pw",
        "SENTRY_DSN": "https://k@sentry",
        "OPENAI_KEY": "sk-1",
        "SLACK_WEBHOOK_URL": "https://hooks",
        "HARMLESS_SETTING": "visible only when allowed",
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    names = [*secrets, "LANG"]
    code = f"import os\nv = {{k: os.environ.get(k) for k in {names!r}}}"
    flow = run_with_bystander(make_workflow, tmp_path, code)
    assert flow["outputs"]["v"] == {**dict.fromkeys(secrets), "LANG": "C.UTF-8"}


def test_the_operator_adds_names_to_the_allow_list(tmp_path, monkeypatch):
    monkeypatch.setenv("HARMLESS_SETTING", "visible")
    monkeypatch.setenv("TEAM_FOO", "foo")
    monkeypatch.setenv("DIZEST_SECRET_KEY", "never")
    allow = ("HARMLESS_SETTING", "TEAM_*", "DIZEST_SECRET_KEY")
    env = child_environment(extra=allow)
    assert env["HARMLESS_SETTING"] == "visible" and env["TEAM_FOO"] == "foo"
    assert "DIZEST_SECRET_KEY" not in env  # settings never reach flows, even when listed


def test_flows_never_run_in_the_engine_process(make_workflow, tmp_path):
    code = "import os\nv = [os.getpid(), os.getppid(), os.getpgid(0), os.getsid(0)]"
    pid, ppid, pgid, sid = run_with_bystander(make_workflow, tmp_path, code)["outputs"]["v"]
    assert pid != os.getpid() and ppid != os.getpid()  # forked by the zygote, not the engine
    assert pgid == pid == sid  # its own session and process group


def test_no_state_leaks_between_flows(make_workflow, tmp_path):
    pkg = package(
        {
            "a": {
                "code": "import sys\nsys.path.append('/leak')\nimport json\njson.LEAK = 1\nv = 1",
                "outputs": ["v"],
            },
            "b": {
                "code": "import sys, json\nv = ['/leak' in sys.path, hasattr(json, 'LEAK')]",
                "inputs": ["x"],
                "outputs": ["v"],
            },
        },
        {"a": {"app": "a"}, "b": {"app": "b", "in": {"x": [("a", "v")]}}},
    )
    report = make_workflow(pkg).run(workdir=tmp_path)
    assert report["flows"]["b"]["outputs"]["v"] == [False, False]


@pytest.mark.parametrize("sandbox", ["off", "on"])
def test_a_flow_that_says_done_and_will_not_exit_is_killed(make_workflow, tmp_path, sandbox):
    """The child reports its outputs, then its exit is what the flow made of `os._exit`: a
    300 s sleep. The engine kills it (the zygote sees it is not exiting); it held a lock on a
    file of its working directory, free again once it is gone (seen from any PID namespace)."""
    os.chmod(tmp_path, 0o777)  # a sandboxed flow runs as another uid
    pkg = package(
        {"stuck": {"code": STUCK_AFTER_DONE, "outputs": ["v"]}}, {"stuck": {"app": "stuck"}}
    )
    report = make_workflow(pkg, sandbox=sandbox).run(workdir=tmp_path, timeout=60)
    assert report["flows"]["stuck"]["status"] == "ready", report["flows"]["stuck"]
    wait_for(lambda: lock_free(tmp_path / "held.lock"), timeout=10)
