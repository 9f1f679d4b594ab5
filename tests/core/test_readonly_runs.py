"""A flow reads the runs its inputs come from and changes nothing there, wherever the server
keeps its data.

A hostile probe (2026-12-05) reran a flow shared with it (a runner's grant) on a server whose
data dir was under /tmp: its flow made, wrote, truncated and renamed files in the owner's run.
The artifact folders bound back into the sandbox were writable mounts, and Landlock's rule for
the flow's own /tmp reaches every mount beneath it; with the data elsewhere, Landlock refused
the writes but not extended attributes. Now a path exposed read-only is a read-only mount.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import package

# Every change the flow tries in the base run's folders: each answer's name ("done" when it
# changed something). `target.json` in its working directory names them (written by the test
# between the runs; absent in the first run).
TRY = """
import errno, json, os
tried = {}
if os.path.exists("target.json"):
    run = json.load(open("target.json"))["run"]
    spill = os.path.join(run, "a", "1")
    name = next(n for n in os.listdir(spill) if n.endswith(".pkl"))
    attempts = {
        "plant in a flow's folder": lambda: open(os.path.join(run, "b", "1", "planted"), "w"),
        "plant in an output's folder": lambda: open(os.path.join(spill, "planted"), "w"),
        "make a folder in the run": lambda: os.mkdir(os.path.join(run, "planted")),
        "set an attribute": lambda: os.setxattr(
            os.path.join(spill, name), "user.planted", b"1"
        ),
        "rename an output": lambda: os.rename(
            os.path.join(spill, name), os.path.join(spill, name + ".x")
        ),
    }
    for label, attempt in attempts.items():
        try:
            attempt()
            tried[label] = "done"
        except OSError as exc:
            tried[label] = errno.errorcode.get(exc.errno, str(exc.errno))
n = len(v)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="flows drop privileges only from a root engine")
def test_a_rerun_changes_nothing_in_the_run_its_inputs_come_from(make_workflow, tmp_path: Path):
    pkg = package(
        {
            "big": {"code": "v = b'x' * 3_000_000", "outputs": ["v"]},  # kept as a file
            "try": {"code": TRY, "inputs": ["v"], "outputs": ["tried", "n"]},
        },
        {"a": {"app": "big"}, "b": {"app": "try", "in": {"v": [("a", "v")]}}},
    )
    wf = make_workflow(pkg, sandbox="on")  # a local engine's artifacts: under /tmp
    work = tmp_path / "work"
    work.mkdir()
    first = wf.run(workdir=work, timeout=60)
    assert first["status"] == "ready", first
    base = Path(wf.runner.artifact_dir, first["run_id"])
    before = sorted(str(p.relative_to(base)) for p in base.rglob("*"))
    (work / "target.json").write_text(json.dumps({"run": str(base)}))
    again = wf.rerun("b", workdir=work, timeout=60)
    assert again["run_id"] != first["run_id"]
    flow = again["flows"]["b"]
    assert flow["status"] == "ready", flow
    assert flow["outputs"]["n"] == 3_000_000  # the input read from the base run's file
    tried = flow["outputs"]["tried"]
    assert len(tried) == 5 and not [k for k, v in tried.items() if v == "done"], tried
    assert sorted(str(p.relative_to(base)) for p in base.rglob("*")) == before
    spilled = next((base / "a" / "1").glob("*.pkl"))
    assert os.listxattr(spilled) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts need root")
def test_a_read_only_bind_keeps_the_flags_of_the_mount_it_shows(tmp_path: Path) -> None:
    """A read-only remount sets a mount's flags anew (but for the atime ones, which Linux keeps
    when none is given): one that dropped the noexec of what it binds lifted it for flows.
    Checked in a child, in a mount namespace of its own."""
    from dizest_core import confine, linux

    cover, shown = tmp_path / "cover", tmp_path / "cover" / "shown"
    shown.mkdir(parents=True)
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child's exit code is the verdict)
        code = 1
        try:
            linux.unshare(linux.CLONE_NEWNS)
            linux.mount("none", "/", None, linux.MS_REC | linux.MS_PRIVATE, None)
            noatime = os.ST_NOATIME  # MS_NOATIME: the same bit
            flags = linux.MS_NOEXEC | noatime | linux.MS_NOSUID | linux.MS_NODEV
            linux.mount("tmpfs", str(shown), "tmpfs", flags, "size=1m")
            exposed = [confine._Expose(str(shown), False)]
            confine._cover([str(cover)], exposed, {}, seal=True)
            found = os.statvfs(shown).f_flag
            wanted = os.ST_RDONLY | os.ST_NOEXEC | os.ST_NOATIME
            code = 0 if found & wanted == wanted else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0  # 2: a flag lost (noexec without `kept`)
