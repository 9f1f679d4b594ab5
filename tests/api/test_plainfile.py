"""`plainfile.open_beneath`: the one way the API opens a file a flow may have written near."""

from __future__ import annotations

import os
from pathlib import Path

from dizest_api.plainfile import open_beneath


def test_only_a_plain_file_reached_through_real_folders_is_opened(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root's")
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "plain.bin").write_bytes(b"mine")
    found = open_beneath(str(root), "a/plain.bin")
    assert found is not None
    with found:
        assert found.read() == b"mine"
    (root / "a" / "link.bin").symlink_to(secret)  # a planted link, as the last part
    (root / "via").symlink_to(tmp_path)  # and as a folder on the way
    os.link(secret, root / "a" / "hard.bin")  # a hard link to another file
    os.mkfifo(root / "a" / "pipe")  # would block a plain open
    (root / "a" / "dir").mkdir()
    for rel in ("a/link.bin", "via/secret.txt", "a/hard.bin", "a/pipe", "a/dir", "../secret.txt", "a/./plain.bin", "", "a/missing"):  # fmt: skip
        assert open_beneath(str(root), rel) is None, rel
