"""Tests for dizest_core.drive: every method works inside the root (the fixtures: conftest.py)."""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path

import pytest

from dizest_core.drive import Drive, DriveError

# -- construction and paths ----------------------------------------------------------------


def test_root_is_realpath_and_repr(tmp_path: Path, root: Path) -> None:
    link = tmp_path / "rootlink"
    link.symlink_to(root)
    d = Drive(link)
    assert d.root == os.path.realpath(root)
    assert repr(d) == f"Drive({d.root!r})"
    assert Drive(str(root)).root == d.root


def test_abspath_inside(drive: Drive) -> None:
    assert drive.abspath() == drive.root
    assert drive.abspath("") == drive.root
    assert drive.abspath(".") == drive.root
    assert drive.abspath("a/b.txt") == os.path.join(drive.root, "a", "b.txt")
    assert drive.abspath("a/../b") == os.path.join(drive.root, "b")
    assert drive.abspath(Path("x") / "y") == os.path.join(drive.root, "x", "y")


def test_abspath_accepts_absolute_inside_root(drive: Drive) -> None:
    inside = os.path.join(drive.root, "sub", "f.txt")
    assert drive.abspath(inside) == inside
    assert drive.abspath(drive.root) == drive.root


@pytest.mark.parametrize("bad", ["..", "../x", "a/../../x", "/etc/passwd", "/", "../root2"])
def test_abspath_rejects_escapes(drive: Drive, bad: str) -> None:
    with pytest.raises(DriveError, match=r"outside the drive root"):
        drive.abspath(bad)


def test_drive_error_is_permission_error_naming_the_path(drive: Drive) -> None:
    with pytest.raises(PermissionError) as info:
        drive.abspath("../nope.txt")
    assert "../nope.txt" in str(info.value)
    assert isinstance(info.value, DriveError)


def test_sibling_with_common_prefix_is_outside(tmp_path: Path, root: Path) -> None:
    (tmp_path / "root2").mkdir()
    with pytest.raises(DriveError):
        Drive(root).abspath(str(tmp_path / "root2" / "x"))


# -- cd / use --------------------------------------------------------------------------------


def test_cd_creates_and_roots_deeper(drive: Drive, root: Path) -> None:
    sub = drive.cd("a", "b")
    assert isinstance(sub, Drive)
    assert sub.root == os.path.join(drive.root, "a", "b")
    assert (root / "a" / "b").is_dir()
    sub.write("f.txt", "hi")
    assert drive.read("a/b/f.txt") == "hi"
    with pytest.raises(DriveError):
        sub.abspath("../x")


def test_use_is_alias_of_cd(drive: Drive) -> None:
    assert drive.use("x").root == drive.cd("x").root
    assert drive.cd().root == drive.root


def test_cd_refuses_escape(drive: Drive, tmp_path: Path) -> None:
    with pytest.raises(DriveError):
        drive.cd("..", "elsewhere")
    assert not (tmp_path / "elsewhere").exists()


# -- queries -----------------------------------------------------------------------------------


def test_exists_isfile_isdir(drive: Drive, root: Path) -> None:
    (root / "d").mkdir()
    (root / "d" / "f.txt").write_text("x")
    assert drive.exists("d") and drive.exists("d/f.txt") and drive.exists()
    assert not drive.exists("missing")
    assert drive.isfile("d/f.txt") and not drive.isfile("d")
    assert drive.isdir("d") and drive.isdir() and not drive.isdir("d/f.txt")


def test_makedirs(drive: Drive, root: Path) -> None:
    drive.makedirs("a/b/c")
    drive.makedirs("a/b/c")  # idempotent
    assert (root / "a" / "b" / "c").is_dir()


def test_ls_flat_and_recursive(drive: Drive, root: Path) -> None:
    (root / "b.txt").write_text("b")
    (root / "a").mkdir()
    (root / "a" / "x.txt").write_text("x")
    (root / "a" / "sub").mkdir()
    (root / "a" / "sub" / "y.txt").write_text("y")
    assert drive.ls() == ["a/", "b.txt"]
    assert drive.ls("a") == ["sub/", "x.txt"]
    assert drive.ls(recursive=True) == ["a/", "a/sub/", "a/sub/y.txt", "a/x.txt", "b.txt"]
    assert drive.ls("a", recursive=True) == ["sub/", "sub/y.txt", "x.txt"]
    assert drive.ls("missing") == []
    assert drive.ls("b.txt") == []


def test_ls_recursive_does_not_descend_symlinked_dirs(
    drive: Drive, root: Path, outside: Path
) -> None:
    (root / "out").symlink_to(outside, target_is_directory=True)
    assert "out/secret.txt" not in drive.ls(recursive=True)


def test_count(drive: Drive, root: Path) -> None:
    assert drive.count() == 0
    (root / "a").mkdir()
    (root / "a" / "1").write_text("")
    (root / "a" / "2").write_text("")
    (root / "b").write_text("")
    assert drive.count() == 2
    assert drive.count("a") == 2
    assert drive.count("missing") == 0
    assert drive.count("b") == 0


def test_mimetype(drive: Drive) -> None:
    assert drive.mimetype("a.json") == "application/json"
    assert drive.mimetype("img/p.png") == "image/png"
    assert drive.mimetype("noext") is None


# -- delete / move / copy ------------------------------------------------------------------------


def test_delete_file_tree_and_missing(drive: Drive, root: Path) -> None:
    drive.write("f.txt", "x")
    drive.write("d/e/g.txt", "y")
    drive.delete("f.txt")
    drive.delete("d")
    drive.delete("never-existed")
    assert drive.ls() == []


@pytest.mark.parametrize("path", ["", ".", "a/..", None])
def test_delete_refuses_root(drive: Drive, root: Path, path: str | None) -> None:
    drive.write("keep.txt", "x")
    with pytest.raises(DriveError, match="root"):
        drive.delete(drive.root if path is None else path)
    assert (root / "keep.txt").exists()


def test_delete_symlink_removes_link_not_target(drive: Drive, root: Path) -> None:
    drive.write("real/f.txt", "x")
    (root / "link").symlink_to(root / "real", target_is_directory=True)
    drive.delete("link")
    assert not (root / "link").exists()
    assert (root / "real" / "f.txt").read_text() == "x"


def test_move(drive: Drive, root: Path) -> None:
    drive.write("a.txt", "a")
    drive.move("a.txt", "deep/b.txt")
    assert not drive.exists("a.txt") and drive.read("deep/b.txt") == "a"
    drive.move("deep", "moved")
    assert drive.ls(recursive=True) == ["moved/", "moved/b.txt"]
    drive.move("moved/b.txt", "")
    assert drive.read("b.txt") == "a"


def test_copy_file_and_tree(drive: Drive) -> None:
    drive.write("a.txt", "a")
    drive.write("d/x.txt", "x")
    drive.write("d/s/y.txt", "y")
    drive.copy("a.txt", "c/a2.txt")
    drive.copy("d", "d2")
    assert drive.read("a.txt") == "a" and drive.read("c/a2.txt") == "a"
    assert drive.ls("d2", recursive=True) == ["s/", "s/y.txt", "x.txt"]
    drive.copy("d", "d2")  # merging into an existing tree is fine
    with pytest.raises(ValueError, match="into itself"):
        drive.copy("d", "d/inner")


# -- read / write ---------------------------------------------------------------------------------


def test_write_dispatch_and_read(drive: Drive, root: Path) -> None:
    drive.write("t/a.txt", "héllo")
    drive.write("b.bin", b"\x00\x01")
    drive.write("c.json", {"k": [1, 2]})
    drive.write("d.json", [1, "two"])
    assert (root / "t" / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert drive.read("t/a.txt") == "héllo"
    assert drive.read("b.bin", mode="rb") == b"\x00\x01"
    assert drive.read.json("c.json") == {"k": [1, 2]}
    assert drive.read.json("d.json") == [1, "two"]
    with pytest.raises(TypeError):
        drive.write("e", 42)


def test_read_defaults_for_missing(drive: Drive) -> None:
    drive.makedirs("adir")
    assert drive.read("missing") is None
    assert drive.read("missing", default="d") == "d"
    assert drive.read("adir", default="d") == "d"
    assert drive.read("missing", 5, "rb") == 5
    assert drive.read.text("missing", default="t") == "t"
    assert drive.read.bytes("missing", default=b"b") == b"b"
    assert drive.read.json("missing", default={}) == {}
    assert drive.read.pickle("missing", default=[]) == []
    assert drive.read.csv("missing", default="c") == "c"
    assert drive.read.json("missing") is None


def test_text_and_bytes(drive: Drive) -> None:
    drive.write.text("a.txt", "line\n")
    drive.write.bytes("b.bin", bytearray(b"xyz"))
    assert drive.read.text("a.txt") == "line\n"
    assert drive.read.bytes("b.bin") == b"xyz"
    assert drive.read.bytes("a.txt") == b"line\n"


def test_json_round_trip_and_indent(drive: Drive, root: Path) -> None:
    obj = {"a": 1, "b": [True, None, "ü"]}
    drive.write.json("j.json", obj)
    assert drive.read.json("j.json") == obj
    assert "\n  " in (root / "j.json").read_text(encoding="utf-8")
    drive.write.json("k.json", obj, indent=None)
    assert "\n" not in (root / "k.json").read_text(encoding="utf-8")


def test_pickle_round_trip(drive: Drive) -> None:
    obj = {"set": {1, 2}, "tuple": (1, "x"), "bytes": b"\xff"}
    drive.write.pickle("p/o.pkl", obj)
    assert drive.read.pickle("p/o.pkl") == obj


def test_csv_rows_without_pandas(drive: Drive, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # makes `import pandas` fail
    rows = [["a", "b"], ["1", "x,y"], ["2", 'q"uote']]
    drive.write.csv("t.csv", rows)
    assert drive.read.csv("t.csv") == rows


def test_csv_dataframe_round_trip(drive: Drive, root: Path) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    drive.write.csv("d/df.csv", df)
    assert (root / "d" / "df.csv").read_text().splitlines()[0] == "a,b"  # no index column
    back = drive.read.csv("d/df.csv")
    assert back.equals(df)
    assert list(drive.read.csv("d/df.csv", usecols=["b"]).columns) == ["b"]


def test_csv_rows_read_back_with_pandas(drive: Drive) -> None:
    pytest.importorskip("pandas")
    drive.write.csv("r.csv", [["h1", "h2"], [1, 2]])
    assert drive.read.csv("r.csv").to_dict("list") == {"h1": [1], "h2": [2]}


def test_write_file_from_fileobj(drive: Drive, root: Path) -> None:
    drive.write.file("up/f.bin", io.BytesIO(b"payload"))
    assert (root / "up" / "f.bin").read_bytes() == b"payload"


def test_write_overwrites(drive: Drive) -> None:
    drive.write("a.txt", "long text")
    drive.write("a.txt", "short")
    assert drive.read("a.txt") == "short"


def test_write_to_root_refused(drive: Drive) -> None:
    with pytest.raises(DriveError):
        drive.write("", "x")
