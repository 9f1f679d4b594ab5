"""The files of runs on a worker's disk, and their deletion once the run's state has expired.

Each run owns two directories: `<workdir_root>/<run>` (its flows' working directory) and
`<artifact_dir>/<run>` (large outputs, `<run>/<flow>/<attempt>/<n>.pkl`, as
`dizest_core.job.FlowJob.artifact_folder` lays them out). Redis keeps references to artifact
files for ttl_s; the files themselves are deleted by `remove_expired` (called by the reaper)
when, and only when:

- the entry is a real directory directly under one of the two roots (never a symlink, never a
  path outside them) whose name is a run id;
- it was last modified more than ttl_s ago;
- neither the run's record nor its `keep` marker (set while a newer run reuses outputs whose
  files live there, see keys.py) exists in Redis.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import PurePath
from typing import Any

from dizest_core.job import RUN_ID
from dizest_core.tree import remove_tree
from dizest_worker.keys import Keys

log = logging.getLogger("dizest.reaper")

# an output conversion's folder in the working root (dizest_api/convert.py): deleted as its
# download starts; one a crash left is deleted here, as an expired run's (no run has its name)
CONVERSION = re.compile(r"\.convert-[0-9a-f]{16}")


def run_of_artifact(path: str) -> str | None:
    """The run whose artifact directory holds `path` (None if the path is not laid out so)."""
    parts = PurePath(path).parts
    run_id = parts[-4] if len(parts) >= 4 else ""
    return run_id if RUN_ID.fullmatch(run_id) else None


def remove_expired(
    client: Any, keys: Keys, roots: Iterable[str], ttl_s: int, now: float | None = None
) -> list[str]:
    """Delete the run directories under `roots` whose run is gone (see the module docstring);
    returns the paths deleted. Safe to run on several machines sharing a volume at once."""
    cutoff = (time.time() if now is None else now) - ttl_s
    candidates = [path for root in roots for path in _old_run_dirs(root, cutoff)]
    if not candidates:
        return []
    pipe = client.pipeline(transaction=False)
    for path in candidates:
        run_id = os.path.basename(path)
        pipe.exists(keys.run(run_id), keys.run_keep(run_id))
    removed = []
    for path, alive in zip(candidates, pipe.execute(), strict=True):
        if not alive:
            with contextlib.suppress(OSError):  # another reaper may be at it too
                remove_tree(path)  # however deep a flow made it: no recursion
            removed.append(path)
    if removed:
        log.info("deleted the files of %d expired run(s)", len(removed))
    return removed


def _old_run_dirs(root: str, cutoff: float) -> list[str]:
    real_root = os.path.realpath(root)
    try:
        entries = list(os.scandir(real_root))
    except FileNotFoundError:
        return []
    found = []
    for entry in entries:
        try:
            named = RUN_ID.fullmatch(entry.name) or CONVERSION.fullmatch(entry.name)
            if not named or not entry.is_dir(follow_symlinks=False):
                continue
            if entry.stat(follow_symlinks=False).st_mtime > cutoff:
                continue
        except FileNotFoundError:  # deleted meanwhile
            continue
        path = os.path.join(real_root, entry.name)
        if os.path.dirname(os.path.realpath(path)) == real_root:  # inside the root, no link
            found.append(path)
    return found
