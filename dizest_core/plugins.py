"""Owns plugin discovery: the apps and renderer files that plugin directories contribute.

A plugin is a directory holding a `plugin.json`; `PluginRegistry.discover(paths)` looks at every
directory directly inside each path (and at the path itself, so one plugin can be named directly):

    <path>/<name>/plugin.json             {"name", "title", "version", "description",
                                           "renderers": ["renderers.py", ...]}   (renderers optional)
    <path>/<name>/apps/<app_id>/app.json  the DIZEST app dict without "code": {"id", "title",
                                          "version", "description", "inputs": [...], "outputs": [...]}
    <path>/<name>/apps/<app_id>/code.py   the app's code

Invariants: discovery never raises for a bad plugin; whatever is malformed (a plugin, one app,
one renderer file) is skipped and described in `problems` with the file it comes from. An app id
matches `[A-Za-z0-9_.-]+` and names its directory; the first plugin (in path order, then
directory-name order) to define an id owns it. Every app's `raw` is the full DIZEST app dict,
code included, so it can be embedded as is in an exported .dwp. Nothing here runs plugin code:
renderer files are only listed, for the child process to execute.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dizest_core import dwp
from dizest_core.errors import Problem
from dizest_core.model import App

PLUGIN_FILE = "plugin.json"
APP_FILE = "app.json"
CODE_FILE = "code.py"
APP_ID = re.compile(r"[A-Za-z0-9_.-]+")

_PLUGIN_TEXT_FIELDS = ("title", "version", "description")
_APP_TEXT_FIELDS = ("id", "title", "version", "description")


class PluginError(ValueError):
    """One plugin file is malformed; the message names the file and what is wrong."""


@dataclass(frozen=True)
class PluginInfo:
    """A discovered plugin: its metadata, its directory, its apps and its renderer files."""

    name: str
    title: str
    version: str
    description: str
    path: str
    apps: tuple[str, ...]
    renderer_files: tuple[str, ...]


class PluginRegistry:
    """The apps and renderer files of every plugin found, plus the problems met on the way."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self._plugins: list[PluginInfo] = []
        self._apps: dict[str, App] = {}
        self._owners: dict[str, PluginInfo] = {}

    @classmethod
    def discover(cls, paths: Iterable[str | os.PathLike[str]]) -> PluginRegistry:
        """Load every plugin directory in `paths` (missing paths are skipped)."""
        registry = cls()
        for path in paths:
            for plugin_dir in _plugin_dirs(Path(path)):
                registry._add_plugin(plugin_dir)
        return registry

    # -- queries -----------------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        """Every plugin loaded, in discovery order."""
        return list(self._plugins)

    def apps(self) -> dict[str, App]:
        """App id -> App, for `dwp.load(..., extra_apps=...)`."""
        return dict(self._apps)

    def app_raw(self, app_id: str) -> dict[str, Any]:
        """A copy of the full DIZEST app dict (code included), ready to embed in a .dwp."""
        return copy.deepcopy(dict(self._app(app_id).raw))

    def plugin_of(self, app_id: str) -> PluginInfo:
        """The plugin that provides `app_id`."""
        self._app(app_id)
        return self._owners[app_id]

    def renderer_files(self) -> tuple[str, ...]:
        """Absolute paths of every plugin's renderer files, in discovery order."""
        return tuple(f for plugin in self._plugins for f in plugin.renderer_files)

    def _app(self, app_id: str) -> App:
        try:
            return self._apps[app_id]
        except KeyError:
            raise KeyError(f"no plugin provides app {app_id!r}") from None

    # -- loading -----------------------------------------------------------------------

    def _add_plugin(self, plugin_dir: Path) -> None:
        meta_file = plugin_dir / PLUGIN_FILE
        try:
            meta = _read_plugin_meta(meta_file)
            renderers = self._renderer_files(plugin_dir, meta_file, meta.get("renderers"))
        except PluginError as exc:
            self.problems.append(f"{exc} (plugin skipped)")
            return
        if any(p.name == meta["name"] for p in self._plugins):
            self.problems.append(
                f"{meta_file}: plugin name {meta['name']!r} is already used (plugin skipped)"
            )
            return
        apps = self._load_apps(plugin_dir / "apps")
        info = PluginInfo(
            name=meta["name"],
            title=meta.get("title", ""),
            version=meta.get("version", ""),
            description=meta.get("description", ""),
            path=str(plugin_dir.resolve()),
            apps=tuple(apps),
            renderer_files=renderers,
        )
        self._plugins.append(info)
        self._apps.update(apps)
        self._owners.update(dict.fromkeys(apps, info))

    def _renderer_files(self, plugin_dir: Path, meta_file: Path, names: Any) -> tuple[str, ...]:
        if names is None:
            return ()
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise PluginError(f"{meta_file}: 'renderers' must be a list of file names")
        root = plugin_dir.resolve()
        files = []
        for name in names:
            target = (root / name).resolve()
            if not target.is_relative_to(root):
                self.problems.append(f"{meta_file}: renderer {name!r} lies outside the plugin")
            elif not target.is_file():
                self.problems.append(f"{meta_file}: renderer file {name!r} does not exist")
            else:
                files.append(str(target))
        return tuple(files)

    def _load_apps(self, apps_dir: Path) -> dict[str, App]:
        apps: dict[str, App] = {}
        if not apps_dir.is_dir():
            return apps
        for app_dir in sorted(p for p in apps_dir.iterdir() if p.is_dir()):
            try:
                app = _read_app(app_dir)
            except PluginError as exc:
                self.problems.append(f"{exc} (app skipped)")
                continue
            if app.id in self._apps:
                first = self._owners[app.id].path
                self.problems.append(
                    f"{app_dir / APP_FILE}: app {app.id!r} is already defined by the plugin "
                    f"at {first} (the first one wins; this one is skipped)"
                )
                continue
            apps[app.id] = app
        return apps


def _plugin_dirs(path: Path) -> list[Path]:
    if (path / PLUGIN_FILE).is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.is_dir() and (p / PLUGIN_FILE).is_file())


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PluginError(f"{path}: cannot be read: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise PluginError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise PluginError(f"{path}: must hold a JSON object, not {type(obj).__name__}")
    return obj


def _require_text(path: Path, obj: dict[str, Any], fields: Iterable[str]) -> None:
    for name in fields:
        if name in obj and not isinstance(obj[name], str):
            raise PluginError(f"{path}: {name!r} must be a string")


def _read_plugin_meta(path: Path) -> dict[str, Any]:
    meta = _read_json_object(path)
    name = meta.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PluginError(f"{path}: 'name' must be a non-empty string")
    _require_text(path, meta, _PLUGIN_TEXT_FIELDS)
    return meta


def _read_app(app_dir: Path) -> App:
    """The App in `app_dir`, built from app.json and code.py exactly as a .dwp app would be."""
    meta_file = app_dir / APP_FILE
    if not meta_file.is_file():
        raise PluginError(f"{meta_file}: missing")
    meta = _read_json_object(meta_file)
    app_id = _app_id(meta_file, meta, app_dir.name)
    _check_app_meta(meta_file, meta)
    raw = _app_dict(app_id, meta, _read_code(app_dir / CODE_FILE))
    problems: list[Problem] = []
    app = dwp.parse_app(app_id, raw, problems)
    if problems:
        raise PluginError(f"{meta_file}: " + "; ".join(map(str, problems)))
    return app


def _app_id(meta_file: Path, meta: dict[str, Any], dir_name: str) -> str:
    app_id = meta.get("id", dir_name)
    if app_id != dir_name:
        raise PluginError(f"{meta_file}: 'id' {app_id!r} differs from its directory {dir_name!r}")
    if not APP_ID.fullmatch(app_id):
        raise PluginError(f"{meta_file}: app id {app_id!r} must match [A-Za-z0-9_.-]+")
    return app_id


def _check_app_meta(meta_file: Path, meta: dict[str, Any]) -> None:
    _require_text(meta_file, meta, _APP_TEXT_FIELDS)
    if "code" in meta:
        raise PluginError(f"{meta_file}: must not hold 'code' (the code lives in {CODE_FILE})")
    for name in ("inputs", "outputs"):
        if not isinstance(meta.get(name, []), list):
            raise PluginError(f"{meta_file}: {name!r} must be a list")


def _read_code(code_file: Path) -> str:
    try:
        return code_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PluginError(f"{code_file}: missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PluginError(f"{code_file}: cannot be read: {exc}") from None


def _app_dict(app_id: str, meta: dict[str, Any], code: str) -> dict[str, Any]:
    """The full DIZEST app shape: defaults for every field the web editor expects."""
    raw: dict[str, Any] = {
        "id": app_id,
        "title": app_id,
        "version": "1.0.0",
        "description": "",
        "cdn": {"js": [], "css": []},
        "inputs": [],
        "outputs": [],
    }
    raw.update(copy.deepcopy(meta))
    raw.update({"id": app_id, "code": code})
    for name in ("api", "html", "js", "css"):
        raw.setdefault(name, "")
    return raw
