"""A workflow's own Python `executable` (DIZEST runs its kernel with it): whether flows can use it.

Flows are forked from the engine's zygote, so they run in the engine's interpreter. Another
interpreter is usable when it could run the flow child itself: the same Python minor version
(so its compiled packages load here) with dizest installed in its environment. Then each flow
puts that environment's site-packages first on its `sys.path` and imports from there, as if the
kernel ran under it. Anything else is refused at validation, naming why.

Nothing here runs the named program: a path in a package is a user's word, and a server that
executed it (as root, in a worker) to ask its version would run anything. The environment is
read from files: `pyvenv.cfg` beside a venv's `bin/`, the `pythonX.Y` name, site-packages.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import sys
from collections.abc import Mapping
from typing import Any

from dizest_core.errors import Problem

_NAME = re.compile(r"python(\d+)\.(\d+)$")
MISSING = "no such program on this server"
_DIZEST = re.compile(r"^(dizest_core|dizest-[^/]*\.dist-info|__editable__\.dizest-.*\.pth)$")


def executable_of(raw: Mapping[str, Any]) -> str | None:
    """The package's `executable`, or None when it names none (absent, null, blank)."""
    value = raw.get("executable")
    return value.strip() if isinstance(value, str) and value.strip() else None


def site_paths(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """Where a flow of this package imports from first (empty: the engine's own environment)."""
    executable = executable_of(raw)
    return () if executable is None else _resolve(executable)[0]


def problems(raw: Mapping[str, Any]) -> list[Problem]:
    executable = executable_of(raw)
    if executable is None:
        return []
    refusal = _resolve(executable)[1]
    if refusal is None:
        return []
    message = f"executable {executable!r} cannot run this workflow's flows: {refusal}"
    return [Problem("bad_executable", message, field="executable")]


@functools.lru_cache(maxsize=64)
def _resolve(executable: str) -> tuple[tuple[str, ...], str | None]:
    """(site-packages to put first, None) or ((), why not)."""
    path = executable if os.path.isabs(executable) else shutil.which(executable)
    if path is None or not os.path.isfile(path):
        return (), MISSING
    found = _check(path)
    if found[1] is not None and not _public(path):
        return (), MISSING  # why it is unfit would tell what lies where users may not look
    return found


def _check(path: str) -> tuple[tuple[str, ...], str | None]:
    prefix = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    if os.path.realpath(prefix) == os.path.realpath(sys.prefix):
        return (), None  # the engine's own environment
    version = _version(path, prefix)
    ours = sys.version_info[:2]
    if version is None:
        return (), "cannot tell its Python version (no pyvenv.cfg, not named pythonX.Y)"
    if version != ours:
        return (), (
            f"it is Python {version[0]}.{version[1]} and flows run under Python "
            f"{ours[0]}.{ours[1]} (the same minor version is needed)"
        )
    sites = _sites(prefix, version)
    if not any(_DIZEST.match(entry) for site in sites for entry in _listing(site)):
        return (), f"dizest is not installed in its environment ({prefix})"
    return tuple(sites), None


def _public(path: str) -> bool:
    """A file any user may run, in folders any user may pass. The server looks as root: a
    path in a folder only root may enter (the data dir, /root) that is no usable Python is
    answered as missing, whatever it is (the reasons told which files exist there, a probe
    found)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or not info.st_mode & stat.S_IXOTH:
            return False
        for named in {os.path.abspath(path), os.path.realpath(path)}:  # the link's, its file's
            folder = os.path.dirname(named)
            while True:
                if not os.stat(folder).st_mode & stat.S_IXOTH:
                    return False
                if folder == os.path.dirname(folder):
                    break
                folder = os.path.dirname(folder)
    except OSError:
        return False
    return True


def _version(path: str, prefix: str) -> tuple[int, int] | None:
    try:
        with open(os.path.join(prefix, "pyvenv.cfg"), encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition("=")
                if key.strip() in ("version", "version_info"):
                    major, minor = value.strip().split(".")[:2]
                    return int(major), int(minor)
    except (OSError, ValueError):
        pass
    found = _NAME.search(os.path.basename(os.path.realpath(path)))
    return (int(found[1]), int(found[2])) if found else None


def _sites(prefix: str, version: tuple[int, int]) -> list[str]:
    lib = os.path.join(prefix, "lib")
    names = [f"python{version[0]}.{version[1]}/site-packages", f"python{version[0]}/dist-packages"]
    return [p for p in (os.path.join(lib, n) for n in names) if os.path.isdir(p)]


def _listing(folder: str) -> list[str]:
    try:
        return os.listdir(folder)
    except OSError:
        return []
