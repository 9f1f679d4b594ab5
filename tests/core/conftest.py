"""Fixtures of the core tests: the repository's bundled plugins (plugins/), discovered once per
test module."""

from __future__ import annotations

from pathlib import Path

import pytest

from dizest_core.plugins import PluginRegistry

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
TABLE = PLUGINS / "table"


@pytest.fixture(scope="module")
def table() -> PluginRegistry:
    return PluginRegistry.discover([PLUGINS])
