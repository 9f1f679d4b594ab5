"""A flow's output files, once the engine has checked them, stay what was checked.

A hostile probe (2026-12-03) swapped a checked output file for a link to the artifact root
after the engine's check but before the flow was killed: the next flow's sandbox then mounted
every run's artifacts, another user's included, and the API read a file grown to 1 GiB. Now a
root engine takes the attempt's folder and each checked file from the flow's uid before it
checks them (by name, O_NOFOLLOW: nothing the flow wrote is resolved), and the sandbox derives
which runs to mount from the stored path's text alone.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dizest_core import confine
from dizest_core.job import Artifact, FlowJob
from dizest_core.outcome import check_artifacts
from tests.conftest import package

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="the lock needs a root engine")
NOBODY = 65534


def _job(tmp_path: Path) -> FlowJob:
    return FlowJob(
        run_id="a" * 32,
        flow_id="f",
        app_id="x",
        code="",
        inputs=(),
        outputs=("v",),
        workdir=str(tmp_path),
        artifact_dir=str(tmp_path / "artifacts"),
    )


def _as_nobody(action) -> int:
    """Run `action()` in a child as uid/gid NOBODY; the errno it raised (0: none)."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            action()
        except OSError as exc:
            code = exc.errno or 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _flow_folder(job: FlowJob) -> str:
    """The attempt folder as the sandbox leaves it: the flow's group may write in it."""
    folder = job.artifact_folder()
    assert folder is not None
    os.makedirs(folder)
    os.chown(folder, NOBODY, NOBODY)
    os.chmod(folder, 0o770)
    return folder


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A folder other uids can reach (pytest's tmp_path sits under a root-only 0700 parent)."""
    made = Path(tempfile.mkdtemp(prefix="dizest-lock-", dir="/tmp"))
    made.chmod(0o755)
    yield made
    shutil.rmtree(made, ignore_errors=True)


@root_only
def test_a_checked_file_and_its_folder_are_taken_from_the_flow(shared_tmp: Path) -> None:
    job = _job(shared_tmp)
    folder = _flow_folder(job)
    path = os.path.join(folder, "0.pkl")
    assert _as_nobody(lambda: Path(path).write_bytes(b"v" * 10)) == 0
    outputs: dict = {"v": Artifact(path, 10)}
    assert check_artifacts(job, outputs) == (True, None)
    assert outputs["v"] == Artifact(os.path.join(os.path.realpath(folder), "0.pkl"), 10)
    info, folder_info = os.stat(path), os.stat(folder)
    assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o440)
    assert (folder_info.st_uid, stat.S_IMODE(folder_info.st_mode)) == (0, 0o550)
    decoy = os.path.join(folder, "decoy")
    attempts = {
        "replace by a link": lambda: os.symlink("/", decoy) or os.replace(decoy, path),
        "write": lambda: open(path, "r+b").close(),
        "truncate": lambda: os.truncate(path, 1 << 30),
        "unlink": lambda: os.unlink(path),
        "new file": lambda: Path(folder, "1.pkl").write_bytes(b""),
        "chmod": lambda: os.chmod(path, 0o666),
    }
    refused = {name: _as_nobody(act) for name, act in attempts.items()}
    assert all(code != 0 for code in refused.values()), refused
    assert Path(path).read_bytes() == b"v" * 10


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda f, p: os.symlink("/etc/passwd", p), id="a link"),
        pytest.param(lambda f, p: os.mkfifo(p), id="a fifo (opened without blocking)"),
        pytest.param(
            lambda f, p: (Path(f, "x").write_bytes(b"v" * 10), os.link(Path(f, "x"), p)),
            id="a second link",
        ),
    ],
)
def test_only_a_plain_file_with_one_link_passes(tmp_path: Path, make) -> None:
    job = _job(tmp_path)
    folder = job.artifact_folder()
    assert folder is not None
    os.makedirs(folder)
    path = os.path.join(folder, "0.pkl")
    make(folder, path)
    ok, reason = check_artifacts(job, {"v": Artifact(path, 10)})
    assert (
        not ok and reason is not None and reason.startswith("protocol error: output 'v' refers to")
    )


@pytest.mark.parametrize(
    "name",
    ["../0.pkl", "./0.pkl", "sub/0.pkl", "..", ""],
)
def test_a_reference_is_judged_by_its_text_not_resolved(tmp_path: Path, name: str) -> None:
    job = _job(tmp_path)
    folder = job.artifact_folder()
    assert folder is not None
    os.makedirs(os.path.join(folder, "sub"))
    Path(folder, "sub", "0.pkl").write_bytes(b"v" * 10)
    Path(folder).parent.joinpath("0.pkl").write_bytes(b"v" * 10)
    ok, reason = check_artifacts(job, {"v": Artifact(f"{folder}/{name}", 10)})
    assert not ok and reason is not None and "outside the flow's artifact folder" in reason


def test_the_runs_a_flow_may_mount_come_from_the_stored_text(tmp_path: Path) -> None:
    root = str(tmp_path / "artifacts")
    run = "b" * 32
    assert confine._run_of(Artifact(f"{root}/{run}/f/0/0.pkl", 1), root) == run
    for path in (f"{root}/../etc/0.pkl", f"{root}/etc/0.pkl", "/etc/passwd", f"{root}x/{run}/0"):
        assert confine._run_of(Artifact(path, 1), root) is None, path
    assert confine._run_of(b"inline", root) is None


@root_only
def test_files_pass_between_sandboxed_flows_and_end_locked(make_workflow, tmp_path: Path) -> None:
    pkg = package(
        {
            "big": {"code": "v = b'x' * 3_000_000", "outputs": ["v"]},
            "size": {"code": "n = len(v)", "inputs": ["v"], "outputs": ["n"]},
        },
        {"a": {"app": "big"}, "b": {"app": "size", "in": {"v": [("a", "v")]}}},
    )
    wf = make_workflow(pkg, sandbox="on")
    report = wf.run(workdir=tmp_path, timeout=60)
    assert report["flows"]["b"]["status"] == "ready", report["flows"]["b"]
    assert report["flows"]["b"]["outputs"]["n"] == 3_000_000
    assert wf._runner is not None
    files = list(Path(wf._runner.artifact_dir).rglob("*.pkl"))
    assert files, "the value did not go through a file"
    for file in files:
        info = file.stat()
        assert (info.st_uid, stat.S_IMODE(info.st_mode)) == (0, 0o440)
        assert stat.S_IMODE(file.parent.stat().st_mode) == 0o550
