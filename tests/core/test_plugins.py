"""Tests for dizest_core.plugins: discovery of the bundled table plugin and of plugin
directories, malformed ones reported and skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dizest_core.plugins import PluginInfo, PluginRegistry
from tests.core.conftest import TABLE

TABLE_APPS = {
    "table.read_csv",
    "table.read_json",
    "table.filter",
    "table.describe",
    "table.plot",
    "table.write_csv",
}


# --------------------------------------------------------------------------- helpers


def write_plugin(root: Path, name: str, meta: Any = None, apps: dict | None = None) -> Path:
    """A plugin directory: plugin.json (a dict is dumped, a str written as is) and its apps.

    `apps` maps a directory name to (app.json content or None, code or None); None leaves the
    file out, a str is written verbatim (to make malformed JSON).
    """
    plugin = root / name
    plugin.mkdir(parents=True)
    meta = {"name": name, "title": name.title(), "version": "1.0"} if meta is None else meta
    _write(plugin / "plugin.json", meta)
    for app_dir, (app_meta, code) in (apps or {}).items():
        target = plugin / "apps" / app_dir
        target.mkdir(parents=True)
        if app_meta is not None:
            _write(target / "app.json", app_meta)
        if code is not None:
            (target / "code.py").write_text(code, encoding="utf-8")
    return plugin


def _write(path: Path, content: Any) -> None:
    text = content if isinstance(content, str) else json.dumps(content)
    path.write_text(text, encoding="utf-8")


def simple_app(app_id: str, **extra: Any) -> tuple[dict, str]:
    meta = {"id": app_id, "title": app_id, "inputs": [], "outputs": [{"name": "v"}], **extra}
    return meta, "v = 1\n"


# --------------------------------------------------------------------------- discovery


def test_discovers_the_bundled_table_plugin(table: PluginRegistry) -> None:
    assert table.problems == []
    (info,) = [p for p in table.plugins() if p.name == "table"]
    assert info.title == "Table" and info.version and info.description
    assert info.path == str(TABLE.resolve())
    assert set(info.apps) == TABLE_APPS
    assert set(table.apps()) >= TABLE_APPS
    assert table.renderer_files() == (str((TABLE / "renderers.py").resolve()),)
    assert all(table.plugin_of(app_id) == info for app_id in TABLE_APPS)


def test_app_raw_is_the_full_dizest_app_with_its_code(table: PluginRegistry) -> None:
    for app_id in TABLE_APPS:
        raw = table.app_raw(app_id)
        code = (TABLE / "apps" / app_id / "code.py").read_text(encoding="utf-8")
        assert raw["id"] == app_id and raw["code"] == code
        assert raw["cdn"] == {"js": [], "css": []}
        assert all(raw[key] == "" for key in ("api", "html", "js", "css"))
        assert raw["title"] and raw["description"]
        app = table.apps()[app_id]
        assert app.code == code and app.raw["code"] == code


def test_app_specs_follow_app_json(table: PluginRegistry) -> None:
    plot = table.apps()["table.plot"]
    assert plot.outputs == ()
    kind = plot.input("kind")
    assert kind is not None and kind.type == "variable" and kind.inputtype == "list"
    assert kind.description == "line:line,bar:bar,scatter:scatter"
    assert plot.input("df").type == "output"
    assert table.apps()["table.filter"].outputs == ("df",)


def test_app_raw_is_a_copy(table: PluginRegistry) -> None:
    table.app_raw("table.filter")["inputs"].clear()
    assert table.app_raw("table.filter")["inputs"]


def test_unknown_app_raises_key_error(table: PluginRegistry) -> None:
    with pytest.raises(KeyError, match="no plugin provides app 'nope'"):
        table.plugin_of("nope")
    with pytest.raises(KeyError):
        table.app_raw("nope")


def test_missing_paths_are_skipped_and_a_plugin_dir_can_be_named(tmp_path: Path) -> None:
    plugin = write_plugin(tmp_path / "p", "one", apps={"one.a": simple_app("one.a")})
    registry = PluginRegistry.discover([tmp_path / "missing", plugin])
    assert registry.problems == []
    assert [p.name for p in registry.plugins()] == ["one"]
    assert list(registry.apps()) == ["one.a"]
    assert registry.renderer_files() == ()


def test_a_plugin_without_apps_is_allowed(tmp_path: Path) -> None:
    write_plugin(tmp_path, "empty")
    registry = PluginRegistry.discover([tmp_path])
    assert registry.plugins() == [
        PluginInfo("empty", "Empty", "1.0", "", str((tmp_path / "empty").resolve()), (), ())
    ]
    assert registry.problems == []


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object, not list"),
        ({"title": "no name"}, "'name' must be a non-empty string"),
        ({"name": "bad", "version": 1}, "'version' must be a string"),
        ({"name": "bad", "renderers": "r.py"}, "'renderers' must be a list of file names"),
    ],
)
def test_malformed_plugin_json_is_reported_and_skipped(
    tmp_path: Path, meta: Any, message: str
) -> None:
    write_plugin(tmp_path, "bad", meta=meta, apps={"bad.a": simple_app("bad.a")})
    write_plugin(tmp_path, "good", apps={"good.a": simple_app("good.a")})
    registry = PluginRegistry.discover([tmp_path])
    assert [p.name for p in registry.plugins()] == ["good"]
    assert list(registry.apps()) == ["good.a"]
    (problem,) = registry.problems
    assert str(tmp_path / "bad" / "plugin.json") in problem
    assert message in problem and "plugin skipped" in problem


@pytest.mark.parametrize(
    ("app_dir", "app_meta", "code", "file", "message"),
    [
        ("p.a", "{oops", "v = 1\n", "app.json", "not valid JSON"),
        ("p.a", None, "v = 1\n", "app.json", "missing"),
        ("p.a", simple_app("p.a")[0], None, "code.py", "missing"),
        ("p.a", simple_app("p.b")[0], "v = 1\n", "app.json", "differs from its directory"),
        ("p a", simple_app("p a")[0], "v = 1\n", "app.json", "must match [A-Za-z0-9_.-]+"),
        ("p.a", simple_app("p.a", code="x")[0], "v = 1\n", "app.json", "must not hold 'code'"),
        ("p.a", simple_app("p.a", inputs={})[0], "v = 1\n", "app.json", "'inputs' must be a list"),
        ("p.a", simple_app("p.a", title=3)[0], "v = 1\n", "app.json", "'title' must be a string"),
        (
            "p.a",
            simple_app("p.a", inputs=[{"type": "weird", "name": "x"}])[0],
            "v = 1\n",
            "app.json",
            "input type 'weird' is not output or variable",
        ),
        (
            "p.a",
            simple_app("p.a", outputs=[{"title": "no name"}])[0],
            "v = 1\n",
            "app.json",
            "output needs a name",
        ),
    ],
)
def test_malformed_app_is_reported_and_skipped(
    tmp_path: Path, app_dir: str, app_meta: Any, code: str | None, file: str, message: str
) -> None:
    write_plugin(tmp_path, "p", apps={app_dir: (app_meta, code), "p.ok": simple_app("p.ok")})
    registry = PluginRegistry.discover([tmp_path])
    assert list(registry.apps()) == ["p.ok"]
    assert registry.plugins()[0].apps == ("p.ok",)
    (problem,) = registry.problems
    assert str(tmp_path / "p" / "apps" / app_dir / file) in problem
    assert message in problem and "app skipped" in problem


def test_app_id_defaults_to_its_directory(tmp_path: Path) -> None:
    meta, code = simple_app("p.a")
    del meta["id"]
    write_plugin(tmp_path, "p", apps={"p.a": (meta, code)})
    registry = PluginRegistry.discover([tmp_path])
    assert registry.problems == []
    assert registry.app_raw("p.a")["id"] == "p.a"


def test_missing_renderer_file_is_reported_but_the_plugin_kept(tmp_path: Path) -> None:
    meta = {"name": "r", "renderers": ["here.py", "gone.py", "../outside.py"]}
    plugin = write_plugin(tmp_path / "plugins", "r", meta=meta, apps={"r.a": simple_app("r.a")})
    (plugin / "here.py").write_text("", encoding="utf-8")
    (tmp_path / "outside.py").write_text("", encoding="utf-8")
    registry = PluginRegistry.discover([tmp_path / "plugins"])
    assert registry.renderer_files() == (str((plugin / "here.py").resolve()),)
    assert list(registry.apps()) == ["r.a"]
    assert len(registry.problems) == 2
    assert "renderer file 'gone.py' does not exist" in registry.problems[0]
    assert "renderer '../outside.py' lies outside the plugin" in registry.problems[1]
    assert all(str(plugin / "plugin.json") in p for p in registry.problems)


def test_duplicate_app_id_first_path_wins(tmp_path: Path) -> None:
    first = write_plugin(tmp_path / "one", "a", apps={"x.app": simple_app("x.app")})
    meta, _ = simple_app("x.app", title="second")
    second = write_plugin(
        tmp_path / "two", "b", apps={"x.app": (meta, "v = 2\n"), "x.other": simple_app("x.other")}
    )
    registry = PluginRegistry.discover([tmp_path / "two" / ".." / "one", tmp_path / "two"])
    assert registry.app_raw("x.app")["code"] == "v = 1\n"
    assert registry.plugin_of("x.app").name == "a"
    assert registry.plugin_of("x.other").name == "b"
    assert [p.apps for p in registry.plugins()] == [("x.app",), ("x.other",)]
    (problem,) = registry.problems
    assert str(second / "apps" / "x.app" / "app.json") in problem
    assert "already defined" in problem and str(first.resolve()) in problem


def test_duplicate_plugin_name_first_wins(tmp_path: Path) -> None:
    write_plugin(tmp_path / "one", "same", apps={"s.a": simple_app("s.a")})
    write_plugin(tmp_path / "two", "same", apps={"s.b": simple_app("s.b")})
    registry = PluginRegistry.discover([tmp_path / "one", tmp_path / "two"])
    assert list(registry.apps()) == ["s.a"]
    (problem,) = registry.problems
    assert "plugin name 'same' is already used" in problem


def test_discovery_order_is_path_then_directory_name(tmp_path: Path) -> None:
    for name in ("zeta", "alpha", "mid"):
        write_plugin(tmp_path / "a", name)
    write_plugin(tmp_path / "b", "beta")
    registry = PluginRegistry.discover([str(tmp_path / "b"), tmp_path / "a"])
    assert [p.name for p in registry.plugins()] == ["beta", "alpha", "mid", "zeta"]
