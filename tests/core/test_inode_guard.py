"""The disk guard on inodes (`dizest_core.diskguard`): empty files use up a filesystem's inodes
with space to spare. Under the inode reserve the flow that made the most files (by the uid the
sandbox gave it) is stopped, and a quiet flow of the same run still writes its file."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator

import pytest

from dizest_core.diskguard import free_inodes, made_by, open_dir, owners, parse
from tests.conftest import package

MAKER = """
import os, time
made = 0
try:
    while made < 100_000:
        open(f'empty{made}', 'w').close()
        made += 1
        if made % 50 == 0:
            time.sleep(0.01)  # ~5,000 files a second: under the reserve for one look at most
except OSError:
    pass
v = made
"""
QUIET = """
import os, time
deadline = time.monotonic() + 60
while len(os.listdir('.')) < 9000 and time.monotonic() < deadline:
    time.sleep(0.02)
with open('quiet.txt', 'w') as f:
    f.write('still room')
v = 2
"""
INODES = 20_000


@pytest.fixture
def few_inodes() -> Iterator[str]:
    """A tmpfs of its own with 20,000 inodes (a mount: root only)."""
    where = tempfile.mkdtemp(prefix="dizest-inodes-")
    options = f"size=64m,nr_inodes={INODES},mode=1777"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", where], check=False)
    if done.returncode != 0:
        os.rmdir(where)
        pytest.skip("cannot mount a tmpfs here (needs root and the mount syscall)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", where], check=False)
        with contextlib.suppress(OSError):
            os.rmdir(where)


def test_under_the_inode_reserve_the_flow_that_made_most_files_is_stopped(
    make_workflow, few_inodes
) -> None:
    inodes = free_inodes(few_inodes)
    assert inodes is not None and inodes[1] == 10_000  # 1 % of 20,000 is under the floor
    pkg = package(
        {"m": {"code": MAKER, "outputs": ["v"]}, "q": {"code": QUIET, "outputs": ["v"]}},
        {"maker": {"app": "m"}, "quiet": {"app": "q"}},
    )
    wf = make_workflow(pkg, disk_reserve_mb=1, sandbox="on")  # 64 MB free: space is no issue
    report = wf.run(workdir=few_inodes, concurrency=2, timeout=120)
    maker, quiet = report["flows"]["maker"], report["flows"]["quiet"]
    assert maker["status"] == "error", maker
    assert "almost out of inodes" in maker["reason"] and "made the most files" in maker["reason"]
    assert quiet["status"] == "ready" and quiet["outputs"] == {"v": 2}, quiet
    made = len([n for n in os.listdir(few_inodes) if n.startswith("empty")])
    assert INODES - 10_000 - 100 <= made < INODES - 1000  # stopped near the reserve
    assert os.path.exists(os.path.join(few_inodes, "quiet.txt"))


def test_files_are_counted_by_owner_and_age_without_following_links(tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.skip("files of other uids need root to make")
    a, b = 1 << 30 | 5, 1 << 30 | 6
    nested = tmp_path / "x" / "y"
    nested.mkdir(parents=True)
    for i in range(7):
        (nested / f"a{i}").touch()
        os.chown(nested / f"a{i}", a, a)
    os.chown(tmp_path / "x", b, b)
    (tmp_path / "b").touch()
    os.chown(tmp_path / "b", b, b)
    os.symlink("/usr", tmp_path / "elsewhere")  # never followed: /usr is not counted
    os.lchown(tmp_path / "elsewhere", b, b)
    assert made_by([str(tmp_path)], {a: 0, b: 0}) == {a: 7, b: 3}
    assert made_by([str(tmp_path)], {a: 0, b: 0}, limit=2)[a] == 0  # looked no further than 2
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(50):
        (flat / f"f{i}").touch()
        os.chown(flat / f"f{i}", a, a)
    assert made_by([str(flat)], {a: 0}, limit=10)[a] == 10  # bounded inside one directory too
    later = time.time() + 3600  # a uid's entries older than its flow are another flow's
    assert made_by([str(tmp_path)], {a: later, b: 0}) == {a: 0, b: 3}


def test_a_directory_swapped_for_a_symlink_after_listing_is_not_walked(tmp_path) -> None:
    """The walk lists `run/sub`, then a flow replaces it with a link to a tree outside: the
    open by that path must not follow the link (nor open another directory put there)."""
    (tmp_path / "run" / "sub").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    listed = os.lstat(tmp_path / "run" / "sub")
    (tmp_path / "run" / "sub").rmdir()
    os.symlink(tmp_path / "outside", tmp_path / "run" / "sub")
    assert open_dir(str(tmp_path / "run" / "sub"), listed.st_dev, listed.st_ino) is None
    os.unlink(tmp_path / "run" / "sub")
    os.rename(tmp_path / "outside", tmp_path / "run" / "sub")  # another directory moved there
    assert open_dir(str(tmp_path / "run" / "sub"), listed.st_dev, listed.st_ino) is None
    fd = open_dir(str(tmp_path / "run"), None, None)  # a root: taken as it is
    assert fd is not None
    os.close(fd)


def test_the_zygote_answer_gives_each_known_flow_its_uid() -> None:
    answer = ["t1:10:20:1073741829", "t2:0:5:", "t3:1:1:1073741830", "gone:9:9:1073741831"]
    assert owners(answer, ["t1", "t2", "t3"]) == {"t1": 1073741829, "t3": 1073741830}
    assert parse(answer, {"t1": 5, "t2": 0}) == {"t1": (10, 15), "t2": (0, 5)}
