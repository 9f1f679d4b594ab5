"""A flow's id names its artifact folder (<root>/<run>/<flow>/<attempt>), which the flow's
process makes and gives to the flow's group while still root, before its sandbox. An id that
could name another path, or a folder reached through a link a flow planted, must never get
there (a probe's escape: flow `x` linked `x/1/d/1` to a host directory, then flow `x/1/d` got
that directory regrouped, bound and writable)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dizest_core import confine, dwp
from dizest_core.errors import ValidationError
from dizest_core.job import FlowJob
from dizest_core.workflow import Workflow
from tests.conftest import package

RUN = "0123456789abcdef0123456789abcdef"


def test_a_flow_id_that_could_name_a_path_is_refused_with_the_others_kept() -> None:
    bad = ["x/1/d", "..", ".", "a\\b", "tab\there", "/etc"]
    flows = {key: {"app": "a"} for key in [*bad, "abcdefghijklmnop-1700000000000", "a b", "é"]}
    with pytest.raises(ValidationError) as refused:
        dwp.load(package({"a": {"code": "v = 1"}}, flows))
    named = {p.flow: p.message for p in refused.value.problems if p.code == "bad_flow_id"}
    assert sorted(named) == sorted(bad)
    assert named["x/1/d"] == "flow id has '/': no path separator or control character"
    assert named[".."] == "flow id '..' names no folder of its own"


def test_the_probes_two_flow_escape_is_refused_before_anything_runs(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir(mode=0o755)
    plant = f"import os\nos.symlink({str(target)!r}, 'planted')\nv = 1"
    pkg = package(
        {"a": {"code": plant, "outputs": ["v"]}, "b": {"code": "v = 2", "outputs": ["v"]}},
        {"x": {"app": "a"}, "x/1/d": {"app": "b", "inputs": {}}},
    )
    with pytest.raises(ValidationError):
        Workflow(pkg)
    assert os.stat(target).st_mode & 0o777 == 0o755 and os.listdir(target) == []


def job(root: Path, flow_id: str) -> FlowJob:
    work = root / "work"
    work.mkdir(exist_ok=True)
    return FlowJob(
        run_id=RUN,
        flow_id=flow_id,
        app_id="a",
        code="",
        inputs=(),
        outputs=(),
        workdir=str(work),
        artifact_dir=str(root / "artifacts"),
    )


def test_an_artifact_folder_reached_through_a_link_is_refused(tmp_path: Path) -> None:
    """Whatever let a link into the run's artifact tree, the folder is not made through it,
    and nothing is exposed: the flow does not start."""
    target = tmp_path / "host"
    target.mkdir(mode=0o755)
    run = tmp_path / "artifacts" / RUN
    run.mkdir(parents=True)
    (run / "x").symlink_to(target)
    with pytest.raises(OSError) as refused:
        confine.exposures(job(tmp_path, "x"))
    assert refused.value.errno in (errno.ENOTDIR, errno.ELOOP)
    assert "the artifact folder's 'x' is a link or a file" in str(refused.value)
    assert os.listdir(target) == [] and os.stat(target).st_mode & 0o777 == 0o755


def test_a_flow_id_that_slipped_past_validation_names_no_folder(tmp_path: Path) -> None:
    for flow_id in ("x/1/d", "..", "../../elsewhere"):
        with pytest.raises(OSError) as refused:
            confine.exposures(job(tmp_path, flow_id))
        assert refused.value.errno == errno.EINVAL
    assert sorted(os.listdir(tmp_path)) == ["work"]  # not even the artifact root was made


def test_a_plain_flow_gets_its_own_folder_exposed_writable(tmp_path: Path) -> None:
    exposed = confine.exposures(job(tmp_path, "abcdefghijklmnop-1700000000000"))
    own = os.path.realpath(tmp_path / "artifacts" / RUN / "abcdefghijklmnop-1700000000000" / "1")
    assert os.path.isdir(own)
    assert [(e.path, e.write) for e in exposed if e.path == own] == [(own, True)]


def test_a_flow_id_longer_than_a_folder_name_is_refused_in_bytes() -> None:
    """256 characters were allowed, but a folder name holds 255 bytes: such a run always failed
    (File name too long). 128 'é' are 256 bytes; 255 'x' still name a folder."""
    assert dwp.load(package({"a": {"code": "v = 1"}}, {"x" * 255: {"app": "a"}}))
    for key in ("é" * 128, "x" * 256, "😀" * 64):
        with pytest.raises(ValidationError) as refused:
            dwp.load(package({"a": {"code": "v = 1"}}, {key: {"app": "a"}}))
        messages = [p.message for p in refused.value.problems if p.code == "bad_flow_id"]
        assert messages == ["flow id of 256 bytes (UTF-8): a folder name has at most 255"], key
