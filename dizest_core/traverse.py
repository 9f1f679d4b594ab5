"""Can flows reach the server's directories? A root engine runs each flow as a uid of its own,
which owns none of the directories on the way to its working directory, artifact folder or drive:
each of those must let others pass (o+x), or every flow fails to start ("cannot enter the working
directory"). A state directory made mode 0700 (systemd's StateDirectoryMode default, a umask of
077) is the usual cause; the worker checks before it takes work, and says which directory.

The engine's own directories (the artifact root, a run's and a flow's folders, the mount points
under a cover) are made passable (0711: passed, not listed) whatever the umask.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable

PASSABLE = 0o711  # what the engine makes its own directories: others pass, never list


def blocked(paths: Iterable[str], covers: Iterable[str] = ()) -> list[str]:
    """Each existing directory on the way to one of `paths` (itself included) that users other
    than its owner and group cannot pass, described with its mode; [] when flows reach all.
    Below a cover (a tmpfs in the flow's view, its own folders bound back under passable mount
    points) nothing of the real tree is passed."""
    found: dict[str, str] = {}
    hidden = [os.path.realpath(c) for c in covers]
    for path in paths:
        current = os.sep
        for part in os.path.realpath(path).split(os.sep):
            current = os.path.join(current, part)
            if any(current == c or current.startswith(c.rstrip(os.sep) + os.sep) for c in hidden):
                break
            try:
                info = os.stat(current)
            except OSError:
                break  # not made yet: the engine makes the rest passable
            if stat.S_ISDIR(info.st_mode) and not info.st_mode & stat.S_IXOTH:
                found.setdefault(current, f"{current} (mode {stat.S_IMODE(info.st_mode):04o})")
    return list(found.values())


def make_passable(path: str, mode: int = PASSABLE) -> None:
    """Make the directory `path` and its missing parents, each `mode` (passable) whatever the
    umask."""
    missing = []
    current = os.path.abspath(path)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    os.makedirs(path, exist_ok=True)
    for made in missing:
        with contextlib.suppress(OSError):  # another process made it first, as it would
            os.chmod(made, mode)
