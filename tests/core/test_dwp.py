"""Tests for dizest_core.dwp: loading the samples and every input form, flags and data,
round-trip (to_dict, save), extra apps.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from dizest_core import dwp
from dizest_core.errors import ValidationError
from dizest_core.model import App, Package
from tests.core.dwp_raw import flow, pkg

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLES = sorted(DATA.glob("*.dwp"))


# --------------------------------------------------------------------------- samples


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_sample_loads_without_problems(path: Path) -> None:
    package = dwp.load(path)
    raw = json.loads(path.read_text(encoding="utf-8"))
    assert list(package.flows) == list(raw["flow"])
    assert set(package.apps) == set(raw["apps"])
    assert [p for p in dwp.check(path) if p.severity == "error"] == []


def test_load_accepts_path_string_text_dict_and_package() -> None:
    path = DATA / "chain10_noop.dwp"
    text = path.read_text(encoding="utf-8")
    from_path = dwp.load(path)
    for source in (str(path), text, json.loads(text), from_path):
        assert dwp.load(source).flows == from_path.flows


def test_sample_connections_are_parsed() -> None:
    package = dwp.load(DATA / "dag100.dwp")
    raw = json.loads((DATA / "dag100.dwp").read_text(encoding="utf-8"))
    for flow_id, raw_flow in raw["flow"].items():
        expected = {
            (c["node"], c["input"])
            for spec in raw_flow.get("inputs", {}).values()
            for c in spec.get("connections", [])
        }
        got = {
            (c.node, c.output)
            for conns in package.flows[flow_id].connections.values()
            for c in conns
        }
        assert got == expected


# --------------------------------------------------------------------------- flags and data


@pytest.mark.parametrize(
    ("flags", "active"),
    [
        ({"active": False}, False),
        ({"active": True}, True),
        ({"inactive": True}, False),
        ({"inactive": False}, True),
        ({}, True),
        ({"active": True, "inactive": True}, True),
        ({"active": False, "inactive": False}, False),
    ],
)
def test_activity_flags(flags: dict[str, bool], active: bool) -> None:
    raw = pkg(flow("a"))
    del raw["flow"]["a"]["active"]
    raw["flow"]["a"].update(flags)
    assert dwp.load(raw).flows["a"].active is active


@pytest.mark.parametrize("data", ["missing", None])
def test_missing_data_is_empty(data: Any) -> None:
    raw = pkg(flow("a"))
    if data == "missing":
        del raw["flow"]["a"]["data"]
    else:
        raw["flow"]["a"]["data"] = data
    assert dict(dwp.load(raw).flows["a"].data) == {}


def test_data_is_kept() -> None:
    raw = pkg(flow("a", data={"k": "3", "c": True}))
    assert dict(dwp.load(raw).flows["a"].data) == {"k": "3", "c": True}


# --------------------------------------------------------------------------- round trip


def with_unknown_fields() -> dict[str, Any]:
    raw = pkg(flow("a"), flow("b", sources=["a"]))
    raw["custom_top"] = {"nested": [1, 2, {"z": None}], "unicode": "한글"}
    raw["version"] = "9.9"
    raw["apps"]["node"]["weird"] = [True, 1.5]
    raw["apps"]["node"]["cdn"] = {"js": [], "css": []}
    raw["flow"]["a"]["pos_x"] = 123
    raw["flow"]["a"]["zz_unknown"] = {"k": ["v"]}
    raw["flow"]["b"]["outputs"] = {"v": {"connections": [{"node": "x", "output": "y"}]}}
    return raw


def test_to_dict_round_trips_c01_exactly() -> None:
    path = DATA / "c01_variables.dwp"
    original = json.loads(path.read_text(encoding="utf-8"))
    assert dwp.to_dict(dwp.load(path)) == original


def test_to_dict_keeps_unknown_fields_and_is_a_copy() -> None:
    raw = with_unknown_fields()
    snapshot = copy.deepcopy(raw)
    package = dwp.load(raw)
    out = dwp.to_dict(package)
    assert out == snapshot
    assert list(out) == list(snapshot)  # key order kept too
    out["custom_top"]["nested"].append("mutated")
    out["flow"]["a"]["pos_x"] = 0
    assert dwp.to_dict(package) == snapshot


@pytest.mark.parametrize("source", ["c01", "unknown_fields"])
def test_save_round_trips_every_field(tmp_path: Path, source: str) -> None:
    if source == "c01":
        original = json.loads((DATA / "c01_variables.dwp").read_text(encoding="utf-8"))
    else:
        original = with_unknown_fields()
    target = tmp_path / "out.dwp"
    dwp.save(dwp.load(copy.deepcopy(original)), target)
    assert json.loads(target.read_text(encoding="utf-8")) == original
    assert dwp.to_dict(dwp.load(target)) == original
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.dwp"]


def test_save_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "out.dwp"
    target.write_text("old content that is much longer than nothing " * 100)
    dwp.save(dwp.load(DATA / "chain10_noop.dwp"), target)
    assert json.loads(target.read_text(encoding="utf-8")) == json.loads(
        (DATA / "chain10_noop.dwp").read_text(encoding="utf-8")
    )


def _spy_renames(monkeypatch, fail: bool = False) -> list[tuple[Path, Path]]:
    """Record (and optionally fail) every rename, however save reaches os.replace/os.rename."""
    renames: list[tuple[Path, Path]] = []
    real = {"replace": os.replace, "rename": os.rename}

    def make(name: str):
        def spy(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            renames.append((Path(src), Path(dst)))
            if fail:
                raise OSError("rename failed")
            real[name](src, dst, *args, **kwargs)

        return spy

    monkeypatch.setattr(os, "replace", make("replace"))
    monkeypatch.setattr(os, "rename", make("rename"))
    return renames


def test_save_writes_a_sibling_then_renames_it_into_place(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "out.dwp"
    target.write_text("PREVIOUS")
    renames = _spy_renames(monkeypatch)
    dwp.save(dwp.load(DATA / "c03_fanout.dwp"), target)
    assert len(renames) == 1
    src, dst = renames[0]
    assert dst == target
    assert src.parent == target.parent and src != target  # same filesystem: atomic rename
    assert not src.exists()
    assert json.loads(target.read_text(encoding="utf-8")) == json.loads(
        (DATA / "c03_fanout.dwp").read_text(encoding="utf-8")
    )


def test_save_never_touches_the_target_before_the_rename(tmp_path: Path, monkeypatch) -> None:
    """If the final rename fails, the previous file is intact: nothing was written into it."""
    target = tmp_path / "out.dwp"
    target.write_text("PREVIOUS")
    _spy_renames(monkeypatch, fail=True)
    with pytest.raises(OSError):
        dwp.save(dwp.load(DATA / "c01_variables.dwp"), target)
    monkeypatch.undo()
    assert target.read_text() == "PREVIOUS"


# --------------------------------------------------------------------------- extra apps


def test_extra_apps_resolve_an_app_the_package_lacks() -> None:
    raw = pkg(flow("a", app_id="shared"), flow("b", sources=["a"]))
    assert {p.code for p in dwp.check(raw)} == {"unknown_app"}
    with pytest.raises(ValidationError):
        dwp.load(raw)
    shared = App("shared", "dizest.output('v', 1)\n", (), ("v",))
    package = dwp.load(raw, extra_apps={"shared": shared})
    assert isinstance(package, Package)
    assert package.app_of(package.flows["a"]) is shared
    assert dwp.check(raw, extra_apps={"shared": shared}) == []
    assert "shared" not in dwp.to_dict(package)["apps"]


def test_package_apps_win_over_extra_apps() -> None:
    raw = pkg(flow("a"))
    other = App("node", "other\n")
    package = dwp.load(raw, extra_apps={"node": other})
    assert package.apps["node"].code == "pass\n"
