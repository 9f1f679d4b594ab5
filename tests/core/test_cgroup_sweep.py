"""A zygote that starts removes the slot groups of zygotes that are gone (a SIGKILLed worker's
cannot remove its own), and only those: a live zygote's groups and a group something still runs
in stay."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from dizest_core.cgroups import Slots, slot_group
from dizest_core.sandbox import Policy
from dizest_core.zygote import Zygote
from tests.conftest import package


@pytest.mark.skipif(os.geteuid() != 0, reason="flow cgroups need a root engine")
def test_a_starting_zygote_removes_the_groups_of_zygotes_that_are_gone(make_workflow, tmp_path):
    slots, why = Slots.open()
    if slots is None:
        pytest.skip(why)
    gone = int(Path("/proc/sys/kernel/pid_max").read_text()) + 7  # no process has this pid
    busy = gone + 1  # gone too, but a process still runs in its group
    stale = [slot_group(gone, 0), slot_group(gone, 1), slot_group(busy, 0)]
    live = slot_group(os.getpid(), 63)  # a live process's: stays
    huge = slot_group(1 << 32, 0)  # no pid at all (os.kill would overflow): not ours, stays
    sleeper = subprocess.Popen(["sleep", "600"])
    try:
        for root in slots.hierarchies():
            for name in [*stale, live, huge]:
                (root / name).mkdir()
        (slots.pids / slot_group(busy, 0) / "cgroup.procs").write_text(str(sleeper.pid))

        pkg = package({"a": {"code": "v = 1", "outputs": ["v"]}}, {"f": {"app": "a"}})
        assert make_workflow(pkg, sandbox="on").run(workdir=tmp_path)["status"] == "ready"

        for root in slots.hierarchies():
            assert not (root / slot_group(gone, 0)).exists(), root
            assert not (root / slot_group(gone, 1)).exists(), root
            assert (root / live).is_dir(), root
            assert (root / huge).is_dir(), root
        assert (slots.pids / slot_group(busy, 0)).is_dir()  # rmdir of a busy group fails
    finally:
        sleeper.kill()
        sleeper.wait()
        for root in slots.hierarchies():
            for name in [*stale, live, huge]:
                if (root / name).is_dir():
                    (root / name).rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="flow cgroups need a root engine")
def test_a_zygote_makes_a_slot_group_again_when_it_was_swept() -> None:
    """As when a zygote in another PID namespace took this one for gone and swept its idle
    groups: the slot's next flow gets the group made again, its limits to be written again."""
    ours, theirs = socket.socketpair()
    zygote = Zygote(ours, Policy(), os.getpid())
    try:
        if zygote.slots is None:
            pytest.skip("no cgroup slots")
        first = zygote.slot(0).group
        assert first is not None and first.exists()
        zygote.limits[0] = (256 << 20, 512)  # as `fork` records what it wrote to the group
        assert zygote.slots.remove_idle(slot_group(os.getpid(), 0))  # whole: every hierarchy
        assert not any(folder.is_dir() for folder in (first.memory, first.pids))
        again = zygote.slot(0).group
        assert again is not None and again.exists()
        assert 0 not in zygote.limits  # the next fork writes them to the new group
    finally:
        zygote.close()  # removes its groups
        ours.close()
        theirs.close()
    assert not first.pids.is_dir()
