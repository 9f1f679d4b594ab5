"""A slot group's control files are read and written with plain system calls (`cgroups._read`,
`_write`), not text streams: a flow child and the zygote touch them for every flow. A read
returns all of a file, however many read(2) calls it takes (a cgroup.procs of a full group is
larger than the page one read of a kernel file returns)."""

from __future__ import annotations

from pathlib import Path

from dizest_core.cgroups import OOM_OTHER, OOM_OWN, Group, oom_cause


def test_procs_reads_the_whole_file(tmp_path: Path) -> None:
    pids = list(range(100_000, 130_000))  # 210 kB: many reads
    (tmp_path / "cgroup.procs").write_text("".join(f"{p}\n" for p in pids))
    assert Group(tmp_path, tmp_path, v2=True).procs() == pids


def test_join_limit_and_oom_count(tmp_path: Path) -> None:
    group = Group(tmp_path, tmp_path, v2=True)
    for name in ("cgroup.procs", "memory.max", "memory.swap.max", "pids.max"):
        (tmp_path / name).write_text("")  # control files exist; writes never create them
    group.join(pid=4242)
    group.limit(64 << 20, 512)
    assert (tmp_path / "cgroup.procs").read_text() == "4242"
    assert (tmp_path / "memory.max").read_text() == str(64 << 20)
    assert (tmp_path / "memory.swap.max").read_text() == "0"
    assert (tmp_path / "pids.max").read_text() == "512"
    (tmp_path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n")
    assert group.oom_counts() == (2, 1)


def test_an_oom_kill_is_the_flows_own_only_when_its_limit_was_hit(tmp_path: Path) -> None:
    """A kill counted in the flow's group without its limit hit came from the machine (or a
    parent group) running short: v1 counts those kills in the victim's group as well."""
    v1 = Group(tmp_path, tmp_path, v2=False)
    (tmp_path / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    (tmp_path / "memory.failcnt").write_text("7\n")
    assert v1.oom_counts() == (3, 7)
    assert oom_cause((2, 7), (3, 7)) == OOM_OTHER  # killed, its limit never reached
    assert oom_cause((2, 5), (3, 7)) == OOM_OWN
    assert oom_cause((3, 5), (3, 7)) == 0  # at its limit, reclaimed, not killed


def test_a_cpu_cap_is_written_and_taken_off(tmp_path: Path) -> None:
    v1 = Group(tmp_path, tmp_path, v2=False, cpu=tmp_path)
    for name in ("cpu.cfs_period_us", "cpu.cfs_quota_us", "cpu.max"):
        (tmp_path / name).write_text("")
    v1.cap_cpu(1.5)
    assert (tmp_path / "cpu.cfs_quota_us").read_text() == "150000"
    assert (tmp_path / "cpu.cfs_period_us").read_text() == "100000"
    (tmp_path / "cpu.cfs_quota_us").write_text("")  # a control file takes each write whole
    v1.cap_cpu(0)  # a flow without a cap after one with
    assert (tmp_path / "cpu.cfs_quota_us").read_text() == "-1"
    v2 = Group(tmp_path, tmp_path, v2=True, cpu=tmp_path)
    v2.cap_cpu(0.25)
    assert (tmp_path / "cpu.max").read_text() == "25000 100000"
    (tmp_path / "cpu.max").write_text("")
    v2.cap_cpu(0)
    assert (tmp_path / "cpu.max").read_text() == "max 100000"
