"""A tree walked and deleted without recursion or whole paths (`dizest_core.tree`), on a
real file system: deeper than Python's recursion limit, longer than PATH_MAX, and moved while it
is walked."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dizest_core.tree import TreeChanged, remove_alone, remove_tree, walk


def legacy_tree(top: Path, levels: int, name: str, payload: bytes = b"") -> None:
    """A chain of `levels` folders `name` below `top`, made as a drive before the limits could
    hold (each opened from its parent: the whole path may pass PATH_MAX), with `payload` as
    `big.bin` at its bottom."""
    top.mkdir(parents=True, exist_ok=True)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir(name, dir_fd=fd)
            child = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = child
        out = os.open("big.bin", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, payload)
        os.close(out)
    finally:
        os.close(fd)


@pytest.fixture
def deep_path(tmp_path: Path) -> Iterator[Path]:
    """`tmp_path`, emptied however deep a failed test left it (pytest's cleanup recurses)."""
    yield tmp_path
    remove_tree(str(tmp_path))


def test_a_tree_past_recursion_and_path_max_is_walked_and_deleted(deep_path: Path) -> None:
    tmp_path = deep_path
    legacy_tree(tmp_path / "top", 1200, "n" * 9, b"12345")  # 12,000 bytes of path
    nodes = list(walk(str(tmp_path / "top")))
    assert len(nodes) == 1201 and nodes[-1].parts[-1] == "big.bin"
    assert nodes[-1].info.st_size == 5 and len(nodes[-1].path) > 4096
    cut = list(walk(str(tmp_path / "top"), max_depth=3, mark_cut=True))
    assert [n.cut for n in cut] == [False, False, True]
    remove_tree(str(tmp_path / "top"))
    assert os.listdir(tmp_path) == []
    remove_tree(str(tmp_path / "top"))  # gone already: no error


def test_a_folder_moved_while_walked_ends_the_walk(tmp_path: Path) -> None:
    (tmp_path / "top" / "a" / "b" / "c").mkdir(parents=True)
    nodes = walk(str(tmp_path / "top"))
    assert next(nodes).path == "a"
    assert next(nodes).path == "a/b"
    assert next(nodes).path == "a/b/c"
    (tmp_path / "top" / "a" / "b").rename(tmp_path / "top" / "b")  # the walk is in a/b/c
    with pytest.raises(TreeChanged):
        list(nodes)


def test_a_removal_busy_elsewhere_is_left_to_it(tmp_path: Path) -> None:
    import fcntl

    legacy_tree(tmp_path / "doomed", 3, "d")
    fd = os.open(tmp_path / "doomed", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert remove_alone(str(tmp_path / "doomed")) is False
    finally:
        os.close(fd)
    assert remove_alone(str(tmp_path / "doomed")) is True
    assert not (tmp_path / "doomed").exists()
