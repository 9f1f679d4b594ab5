"""Fixtures of the core tests: the repository's bundled plugins (plugins/), discovered once per
test module; a Drive on a fresh root, beside a directory outside it holding a secret (the drive
tests: nothing may reach it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dizest_core.drive import Drive
from dizest_core.plugins import PluginRegistry

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
TABLE = PLUGINS / "table"


@pytest.fixture(scope="module")
def table() -> PluginRegistry:
    return PluginRegistry.discover([PLUGINS])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    r.mkdir()
    return r


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    o = tmp_path / "outside"
    o.mkdir()
    (o / "secret.txt").write_text("secret")
    return o


@pytest.fixture
def drive(root: Path) -> Drive:
    return Drive(root)
