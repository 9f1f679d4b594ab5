"""What of the Python path a sandboxed flow may read: the installation wherever it lives (a
clone and its venv under /tmp included), never a scratch place or home as such."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dizest_core.sandbox import python_paths
from tests.conftest import package


def test_scratch_dirs_on_the_path_are_never_allowed_whole(tmp_path: Path, monkeypatch):
    lib = tmp_path / "lib"
    lib.mkdir()
    data = tmp_path / "data"
    (data / "runs").mkdir(parents=True)
    monkeypatch.setattr(sys, "path", ["", "/tmp", "/root", str(lib), str(data)])
    allowed = python_paths((str(data),))
    assert "/tmp" not in allowed and "/root" not in allowed and "" not in allowed
    assert str(lib) in allowed  # inside /tmp, yet part of the path: allowed
    assert not any(p == str(data) or p.startswith(f"{data}/") for p in allowed)  # server data


def test_the_directory_the_server_started_in_is_not_the_installation(tmp_path: Path, monkeypatch):
    """`python -m dizest_cli worker` puts its working directory on sys.path: a project's
    folder (its .env, its data) must not become readable by flows for that."""
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text("SECRET=1")
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "path", [str(project), "/usr/lib/python3/dist-packages"])
    allowed = python_paths(())
    assert not any(p == str(project) or p.startswith(f"{project}/") for p in allowed)
    here = os.path.dirname(os.path.abspath(python_paths.__code__.co_filename))
    assert any(here == p or here.startswith(f"{p}/") for p in allowed)  # dizest_core itself


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's mounts need a root engine")
def test_a_flow_imports_from_a_python_path_under_tmp_but_sees_no_other_tmp_file(
    make_workflow, tmp_path: Path, monkeypatch
):
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "dz_path_probe.py").write_text("VALUE = 42\n")
    secret = tmp_path / "elsewhere.txt"
    secret.write_text("not yours")
    monkeypatch.setenv("PYTHONPATH", str(lib))  # the zygote imports from there: flows may read
    code = f"import os, dz_path_probe\nv = [dz_path_probe.VALUE, os.path.exists({str(secret)!r})]"
    pkg = package({"a": {"code": code, "outputs": ["v"]}}, {"f": {"app": "a"}})
    work = tmp_path / "work"
    work.mkdir()
    report = make_workflow(pkg, sandbox="on").run(workdir=work)
    assert report["flows"]["f"]["outputs"]["v"] == [42, False], report["flows"]["f"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's mounts need a root engine")
def test_a_flow_reads_dizests_package_but_nothing_else_of_its_checkout(
    make_workflow, tmp_path: Path, monkeypatch
):
    """The checkout dizest runs from was readable whole (a probe read its .git/config and a
    world-readable .env beside docker-compose.yml): only the package the zygote imports is,
    however PYTHONPATH names the checkout (a trailing slash, a relative path)."""
    root = Path(__file__).resolve().parents[2]
    code = (
        "import os, dizest_core\n"
        "def can(p):\n"
        "    try:\n"
        "        open(p).read(1) if os.path.isfile(p) else os.listdir(p)\n"
        "        return True\n"
        "    except OSError:\n"
        "        return False\n"
        "try:\n"
        f"    listed = sorted(os.listdir({str(root)!r}))\n"
        "except OSError:\n"
        "    listed = None\n"
        f"v = [can(p) for p in {[str(root / 'README.md'), str(root / '.git'), str(root / 'dizest_core' / '__init__.py')]!r}]\n"
        "v.append(listed)\n"
    )
    pkg = package({"a": {"code": code, "outputs": ["v"]}}, {"f": {"app": "a"}})
    monkeypatch.chdir(root)
    for spelled in ("", f"{root}/", "."):
        monkeypatch.setenv("PYTHONPATH", spelled)
        report = make_workflow(pkg, sandbox="on").run(workdir=tmp_path)
        *readable, listed = report["flows"]["f"]["outputs"]["v"]
        assert readable == [False, False, True], (spelled, report["flows"])
        # a checkout under /tmp shows the flow's own /tmp: mount points only, none of its files
        assert listed is None or not {"README.md", ".git", "tests"} & set(listed), (spelled, listed)


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's mounts need a root engine")
def test_a_flow_imports_through_a_linked_python_path(make_workflow, tmp_path: Path, monkeypatch):
    """A probe's checkout under /tmp had its .venv as a link to another: flows could not
    import plotly, matplotlib or pandas. The sandbox binds the resolved path under a covered
    /tmp; sys.path named the link, which a flow's own /tmp does not hold."""
    real = tmp_path / "release-2" / "lib"
    real.mkdir(parents=True)
    (real / "dz_linked_probe.py").write_text("VALUE = 7\n")
    (tmp_path / "current").symlink_to(tmp_path / "release-2")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "current" / "lib"))
    code = "import dz_linked_probe\nv = dz_linked_probe.VALUE"
    pkg = package({"a": {"code": code, "outputs": ["v"]}}, {"f": {"app": "a"}})
    work = tmp_path / "work"
    work.mkdir()
    report = make_workflow(pkg, sandbox="on").run(workdir=work)
    assert report["flows"]["f"].get("outputs", {}).get("v") == 7, report["flows"]["f"]


@pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's mounts need a root engine")
def test_a_flow_sees_no_cgroup_of_another_flow(make_workflow, tmp_path: Path):
    """Other slots' groups would show their host pids and CPU use; the flow's own limits still
    hold (it joined its group before the cover; a fork bomb stops at the pids limit)."""
    if not os.path.isdir("/sys/fs/cgroup/pids"):
        pytest.skip("no cgroup v1 pids hierarchy here")
    code = (
        "import os, signal\n"
        "seen = sorted(os.listdir('/sys/fs/cgroup'))\n"
        "kids = 0\n"
        "try:\n"
        "    for _ in range(100):\n"
        "        if os.fork() == 0:\n"
        "            signal.pause()\n"
        "            os._exit(0)\n"
        "        kids += 1\n"
        "except OSError:\n"
        "    pass\n"
        "v = [seen, kids]\n"
    )
    pkg = package({"a": {"code": code, "outputs": ["v"]}}, {"f": {"app": "a"}})
    report = make_workflow(pkg, sandbox="on", max_pids=20).run(workdir=tmp_path)
    seen, kids = report["flows"]["f"]["outputs"]["v"]
    assert seen == [], seen
    assert kids < 20, kids  # the slot's pids.max still bounds the flow's tree
