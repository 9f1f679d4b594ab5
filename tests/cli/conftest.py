"""Fixtures of the command line tests against a real `dizest serve` (embedded Redis, a worker,
gunicorn), one per test module: `served`, and `home`, a user's home logged in to it as admin.

The serve runs with the flow sandbox off, only so that a flow can wait on a file a test creates
(a sandboxed flow sees its own directories only); nothing here is about the sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.helpers import dizest
from tests.serve_process import PASSWORD, Served, serving


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with serving(tmp_path_factory.mktemp("serve"), sandbox="off") as found:
        yield found


@pytest.fixture
def home(tmp_path: Path, served: Served) -> Path:
    """A user's home, logged in to `served` as admin (profile "default")."""
    result = dizest(
        tmp_path,
        *("login", "--server", served.base, "-u", "admin", "--password-stdin"),
        stdin=PASSWORD + "\n",
    )
    assert result.returncode == 0, result.stderr
    return tmp_path
