"""Tests for dizest_core.drive: nothing escapes the root, through any method, path or symlink."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dizest_core.drive import Drive, DriveError

# -- escapes through every method ------------------------------------------------------------------

# Absolute escapes point into tmp_path only, so a broken Drive cannot damage the real system.
ESCAPES = ["..", "../x.txt", "a/../../x.txt", "<abs-existing>", "<abs-new>"]

CALLS = {
    "abspath": lambda d, p: d.abspath(p),
    "cd": lambda d, p: d.cd(p),
    "use": lambda d, p: d.use(p),
    "exists": lambda d, p: d.exists(p),
    "isfile": lambda d, p: d.isfile(p),
    "isdir": lambda d, p: d.isdir(p),
    "makedirs": lambda d, p: d.makedirs(p),
    "ls": lambda d, p: d.ls(p),
    "ls_recursive": lambda d, p: d.ls(p, recursive=True),
    "count": lambda d, p: d.count(p),
    "delete": lambda d, p: d.delete(p),
    "move_src": lambda d, p: d.move(p, "dst"),
    "move_dst": lambda d, p: d.move("ok.txt", p),
    "copy_src": lambda d, p: d.copy(p, "dst"),
    "copy_dst": lambda d, p: d.copy("ok.txt", p),
    "mimetype": lambda d, p: d.mimetype(p),
    "read": lambda d, p: d.read(p, default="dflt"),
    "read_rb": lambda d, p: d.read(p, mode="rb"),
    "read.text": lambda d, p: d.read.text(p),
    "read.bytes": lambda d, p: d.read.bytes(p),
    "read.json": lambda d, p: d.read.json(p),
    "read.pickle": lambda d, p: d.read.pickle(p),
    "read.csv": lambda d, p: d.read.csv(p),
    "write": lambda d, p: d.write(p, "x"),
    "write.text": lambda d, p: d.write.text(p, "x"),
    "write.bytes": lambda d, p: d.write.bytes(p, b"x"),
    "write.json": lambda d, p: d.write.json(p, {}),
    "write.pickle": lambda d, p: d.write.pickle(p, 1),
    "write.csv": lambda d, p: d.write.csv(p, [["a"]]),
    "write.file": lambda d, p: d.write.file(p, io.BytesIO(b"x")),
}


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_method_refuses_escapes(
    drive: Drive, tmp_path: Path, outside: Path, name: str, path: str
) -> None:
    real = {"<abs-existing>": outside / "secret.txt", "<abs-new>": tmp_path / "new" / "x.txt"}
    drive.write("ok.txt", "ok")
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(DriveError):
        CALLS[name](drive, str(real.get(path, path)))
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (outside / "secret.txt").read_text() == "secret"
    assert drive.read("ok.txt") == "ok"


@pytest.mark.parametrize("name", sorted(CALLS))
def test_every_method_refuses_symlink_out(
    drive: Drive, root: Path, outside: Path, name: str
) -> None:
    (root / "ok.txt").write_text("ok")
    (root / "out").symlink_to(outside, target_is_directory=True)
    (root / "secret_link").symlink_to(outside / "secret.txt")
    for path in ("out", "out/secret.txt", "secret_link", "out/new/x.txt"):
        with pytest.raises(DriveError):
            CALLS[name](drive, path)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret"


def test_read_through_symlink_out_raises(drive: Drive, root: Path, outside: Path) -> None:
    (root / "leak.txt").symlink_to(outside / "secret.txt")
    with pytest.raises(DriveError, match=r"leak\.txt"):
        drive.read("leak.txt")
    with pytest.raises(DriveError):
        drive.read.text("leak.txt", default="nope")


def test_write_through_symlinked_dir_raises(drive: Drive, root: Path, outside: Path) -> None:
    (root / "outdir").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DriveError):
        drive.write("outdir/new.txt", "x")
    with pytest.raises(DriveError):
        drive.write("outdir/secret.txt", "overwritten")
    assert not (outside / "new.txt").exists()
    assert (outside / "secret.txt").read_text() == "secret"


def test_dangling_symlink_out_refused(drive: Drive, root: Path, tmp_path: Path) -> None:
    (root / "dangling").symlink_to(tmp_path / "not-yet")
    with pytest.raises(DriveError):
        drive.write("dangling", "x")
    assert not (tmp_path / "not-yet").exists()


def test_symlink_inside_root_is_followed(drive: Drive, root: Path) -> None:
    drive.write("real/f.txt", "data")
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    assert drive.read("alias/f.txt") == "data"
    drive.write("alias/g.txt", "more")
    assert (root / "real" / "g.txt").read_text() == "more"


def test_copy_keeps_inner_symlinks_as_links(drive: Drive, root: Path, outside: Path) -> None:
    drive.makedirs("d")
    (root / "d" / "leak").symlink_to(outside / "secret.txt")
    drive.copy("d", "d2")
    assert (root / "d2" / "leak").is_symlink()
    with pytest.raises(DriveError):
        drive.read("d2/leak")
