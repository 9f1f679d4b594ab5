"""A workflow's own Python `executable`: used when it could run the flow child (same minor
version, dizest installed in its environment: flows then import from its site-packages),
refused at validation otherwise, naming why. The named program is never run."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dizest_core import dwp
from dizest_core.errors import ValidationError
from dizest_core.workflow import Workflow
from tests.conftest import package

MINOR = f"{sys.version_info[0]}.{sys.version_info[1]}"


def venv(root: Path, version: str = MINOR, dizest: bool = True) -> Path:
    """A virtual environment's layout (the program is a script that must never be run)."""
    (root / "bin").mkdir(parents=True)
    python = root / "bin" / "python"
    python.write_text('#!/bin/sh\ntouch "$0.was-run"\n')
    python.chmod(0o755)
    (root / "pyvenv.cfg").write_text(f"home = /nowhere\nversion = {version}.1\n")
    site = root / "lib" / f"python{version}" / "site-packages"
    site.mkdir(parents=True)
    (site / "only_in_that_env.py").write_text("VALUE = 7\n")
    if dizest:
        (site / "dizest-0.1.0.dist-info").mkdir()
    return python


def with_executable(executable: str | None) -> dict:
    pkg = package(
        {"a": {"code": "import only_in_that_env\nv = only_in_that_env.VALUE", "outputs": ["v"]}},
        {"f": {"app": "a"}},
    )
    pkg["executable"] = executable
    return pkg


@pytest.fixture
def public() -> Iterator[Path]:
    """A folder any user may pass (pytest's own are root's alone, mode 700)."""
    root = Path(tempfile.mkdtemp(prefix="dz-interp-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root)


def test_an_environment_that_can_run_the_child_is_used(tmp_path: Path) -> None:
    python = venv(tmp_path / "env")
    assert dwp.check(with_executable(str(python))) == []
    with Workflow(with_executable(str(python))) as wf:
        report = wf.run(workdir=tmp_path)
    assert report["flows"]["f"]["outputs"] == {"v": 7}
    assert not Path(f"{python}.was-run").exists()  # read from files, never executed


def test_the_engines_own_interpreter_or_none_is_fine() -> None:
    for executable in (sys.executable, None, "", "  "):
        assert [p.code for p in dwp.check(with_executable(executable))] == []


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda root: root / "missing" / "python", "no such program on this server"),
        (lambda root: venv(root / "old", version="3.8"), "it is Python 3.8 and flows run under"),
        (
            lambda root: venv(root / "bare", dizest=False),
            "dizest is not installed in its environment",
        ),
    ],
)
def test_an_interpreter_that_cannot_run_the_child_is_refused_naming_why(
    public: Path, make, reason: str
) -> None:
    python = make(public)
    with pytest.raises(ValidationError) as info:
        dwp.load(with_executable(str(python)))
    (problem,) = info.value.problems
    assert (problem.code, problem.field) == ("bad_executable", "executable")
    assert reason in problem.message and str(python) in problem.message


def test_a_file_where_users_may_not_look_is_answered_as_missing(
    tmp_path: Path, public: Path
) -> None:
    """The server looks as root: why a root-only file is no Python would tell that it exists
    (a probe named the server's secret key). Only a usable environment is told apart there."""
    private = tmp_path / "data"  # pytest's tmp_path: mode 700, as a server's data dir
    private.mkdir(mode=0o700)
    for folder in (private, public):
        (folder / "secret_key").write_text("k" * 32)
        (folder / "secret_key").chmod(0o600)
    reasons = {}
    for folder in (private, public):
        with pytest.raises(ValidationError) as info:
            dwp.load(with_executable(str(folder / "secret_key")))
        reasons[folder] = info.value.problems[0].message
    assert reasons[private].endswith(": no such program on this server")
    assert reasons[private].replace(str(private), "X") == dwp_missing_for("X/secret_key")
    assert reasons[public].endswith(": no such program on this server")  # not runnable by all
    (public / "tool").write_text("#!/bin/sh\n")
    (public / "tool").chmod(0o755)
    with pytest.raises(ValidationError) as info:
        dwp.load(with_executable(str(public / "tool")))
    assert "cannot tell its Python version" in info.value.problems[0].message


def dwp_missing_for(path: str) -> str:
    with pytest.raises(ValidationError) as info:
        dwp.load(with_executable(path))  # a path that is not there at all
    return info.value.problems[0].message
