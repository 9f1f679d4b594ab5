"""Tests for dizest_core.plugins, the bundled table plugin and examples/sales_report.dwp."""

from __future__ import annotations

import base64
import importlib.util
import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from dizest_core import dwp, render, runtime, wire
from dizest_core.job import FlowJob
from dizest_core.plugins import PluginInfo, PluginRegistry

REPO = Path(__file__).resolve().parents[2]
PLUGINS = REPO / "plugins"
TABLE = PLUGINS / "table"
EXAMPLE = REPO / "examples" / "sales_report.dwp"
TABLE_APPS = {
    "table.read_csv",
    "table.read_json",
    "table.filter",
    "table.describe",
    "table.plot",
    "table.write_csv",
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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


@pytest.fixture(scope="module")
def table() -> PluginRegistry:
    return PluginRegistry.discover([PLUGINS])


def run_app(
    registry: PluginRegistry,
    app_id: str,
    workdir: Path,
    data: dict | None = None,
    **inputs: Any,
) -> tuple[bool, list[tuple], dict[str, Any]]:
    """Run a plugin app in this process; return (ok, messages, unpickled outputs)."""
    app = registry.apps()[app_id]
    job = FlowJob(
        run_id="r1",
        flow_id="f1",
        app_id=app_id,
        code=app.code,
        inputs=app.inputs,
        outputs=app.outputs,
        workdir=str(workdir),
        data=data or {},
        sources={name: [pickle.dumps(value, protocol=5)] for name, value in inputs.items()},
    )
    messages: list[tuple] = []
    ok = runtime.run(job, messages.append)
    outputs = {m[1]: pickle.loads(m[2]) for m in messages if m[0] == wire.OUTPUT}
    return ok, messages, outputs


def error_of(messages: list[tuple]) -> dict[str, str]:
    (error,) = [m[1] for m in messages if m[0] == wire.ERROR]
    return error


def logs(messages: list[tuple]) -> list[Any]:
    return [m[1] for m in messages if m[0] == wire.LOG]


@pytest.fixture
def sales() -> Any:
    pd = pytest.importorskip("pandas")
    return pd.read_csv(REPO / "examples" / "data" / "sales.csv")


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


# --------------------------------------------------------------------------- the example


def test_sales_report_is_a_valid_package() -> None:
    errors = [p for p in dwp.check(EXAMPLE) if p.severity == "error"]
    assert errors == []
    package = dwp.load(EXAMPLE)
    assert list(package.flows) == ["read_sales", "big_orders", "summary", "units_chart", "revenue"]
    assert package.flows["big_orders"].data == {"query": "units > 5"}
    assert package.flows["units_chart"].sources() == ["big_orders"]


def test_sales_report_embeds_the_plugin_apps_verbatim(table: PluginRegistry) -> None:
    raw = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    plugin_apps = [app_id for app_id in raw["apps"] if app_id.startswith("table.")]
    assert len(plugin_apps) == 4
    for app_id in plugin_apps:
        code = (TABLE / "apps" / app_id / "code.py").read_text(encoding="utf-8")
        assert raw["apps"][app_id]["code"] == code
        assert raw["apps"][app_id] == table.app_raw(app_id)


def test_sales_report_is_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location(
        "make_sales_report", EXAMPLE.with_name("make_sales_report.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.render(module.build()) == EXAMPLE.read_text(encoding="utf-8")


def test_sales_report_editor_edges_mirror_the_engine_edges() -> None:
    flows = json.loads(EXAMPLE.read_text(encoding="utf-8"))["flow"]
    into = {
        (c["node"], c["input"], fid, name)
        for fid, f in flows.items()
        for name, spec in f["inputs"].items()
        for c in spec["connections"]
    }
    out = {
        (fid, name, c["node"], c["output"])
        for fid, f in flows.items()
        for name, spec in f["outputs"].items()
        for c in spec["connections"]
    }
    assert into == out and len(into) == 4


# --------------------------------------------------------------------------- the apps, run


def test_read_csv(table: PluginRegistry, tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "t.csv").write_text("a;b\n1;x\n2;y\n3;z\n", encoding="utf-8")
    ok, messages, outputs = run_app(
        table, "table.read_csv", tmp_path, data={"path": "data/t.csv", "sep": ";"}
    )
    assert ok, messages
    df = outputs["df"]
    assert list(df.columns) == ["a", "b"] and df["a"].tolist() == [1, 2, 3]
    entries = logs(messages)
    assert entries[0] == "table.read_csv: 3 rows x 2 columns from data/t.csv"
    assert entries[1]["mime"] == "text/html"


def test_read_csv_missing_file_is_a_clear_error(table: PluginRegistry, tmp_path: Path) -> None:
    ok, messages, outputs = run_app(table, "table.read_csv", tmp_path, data={"path": "no.csv"})
    assert not ok and outputs == {}
    error = error_of(messages)
    assert error["type"] == "FileNotFoundError"
    assert error["message"].startswith("table.read_csv: no file at 'no.csv'")


@pytest.mark.parametrize(
    "content",
    [
        [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
        {"a": [1, 2], "b": ["x", "y"]},
        {"a": {"0": 1, "1": 2}, "b": {"0": "x", "1": "y"}},
    ],
)
def test_read_json_records_or_columns(table: PluginRegistry, tmp_path: Path, content: Any) -> None:
    (tmp_path / "t.json").write_text(json.dumps(content), encoding="utf-8")
    ok, messages, outputs = run_app(table, "table.read_json", tmp_path, data={"path": "t.json"})
    assert ok, messages
    assert outputs["df"]["a"].tolist() == [1, 2]
    assert outputs["df"]["b"].tolist() == ["x", "y"]


def test_read_json_rejects_scalars(table: PluginRegistry, tmp_path: Path) -> None:
    (tmp_path / "t.json").write_text('{"a": 1}', encoding="utf-8")
    ok, messages, _ = run_app(table, "table.read_json", tmp_path, data={"path": "t.json"})
    assert not ok
    assert "must hold a list of records" in error_of(messages)["message"]


def test_filter(table: PluginRegistry, tmp_path: Path, sales: Any) -> None:
    ok, messages, outputs = run_app(
        table, "table.filter", tmp_path, data={"query": "units > 5"}, df=sales
    )
    assert ok, messages
    kept = outputs["df"]
    assert len(kept) == 23 and (kept["units"] > 5).all()
    assert logs(messages) == ["table.filter: kept 23 of 30 rows where units > 5"]


def test_filter_without_query_keeps_every_row(
    table: PluginRegistry, tmp_path: Path, sales: Any
) -> None:
    ok, _, outputs = run_app(table, "table.filter", tmp_path, df=sales)
    assert ok and len(outputs["df"]) == 30


def test_filter_invalid_query(table: PluginRegistry, tmp_path: Path, sales: Any) -> None:
    ok, messages, _ = run_app(table, "table.filter", tmp_path, data={"query": "x >"}, df=sales)
    assert not ok
    error = error_of(messages)
    assert error["type"] == "ValueError"
    assert error["message"].startswith("table.filter: query 'x >' is invalid: ")
    assert "region, product, units, price" in error["message"]


def test_filter_without_a_dataframe(table: PluginRegistry, tmp_path: Path) -> None:
    ok, messages, _ = run_app(table, "table.filter", tmp_path, data={"query": "a > 1"})
    assert not ok
    assert "input 'df' must be a pandas DataFrame, got NoneType" in error_of(messages)["message"]


def test_describe(table: PluginRegistry, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [10, 10, 10, 10]})
    ok, messages, outputs = run_app(table, "table.describe", tmp_path, df=df)
    assert ok, messages
    summary = outputs["summary"]
    assert summary["a"]["count"] == 4.0 and summary["a"]["mean"] == 2.5
    assert summary["a"]["min"] == 1.0 and summary["a"]["max"] == 4.0
    assert summary["b"]["std"] == 0.0
    json.dumps(summary, allow_nan=False)
    (result,) = [m for m in messages if m[0] == wire.RESULT]
    assert result[1] == "summary" and result[2]["mime"] == "text/html"


def test_describe_replaces_nan_with_none(table: PluginRegistry, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    ok, _, outputs = run_app(table, "table.describe", tmp_path, df=pd.DataFrame({"a": [5.0]}))
    assert ok
    assert outputs["summary"]["a"]["std"] is None
    assert json.loads(json.dumps(outputs["summary"], allow_nan=False))["a"]["mean"] == 5.0


@pytest.mark.parametrize("kind", ["bar", "line", "scatter"])
def test_plot(table: PluginRegistry, tmp_path: Path, sales: Any, kind: str) -> None:
    pytest.importorskip("matplotlib")
    data = {"x": "product", "y": "units", "kind": kind}
    ok, messages, outputs = run_app(table, "table.plot", tmp_path, data=data, df=sales)
    assert ok, messages
    assert outputs == {}
    (result,) = [m for m in messages if m[0] == wire.RESULT]
    assert result[1] == "plot" and result[2]["mime"] == "image/png"
    assert base64.b64decode(result[2]["data"]).startswith(PNG_SIGNATURE)


def test_plot_unknown_column(table: PluginRegistry, tmp_path: Path, sales: Any) -> None:
    data = {"x": "product", "y": "revenue", "kind": "bar"}
    ok, messages, _ = run_app(table, "table.plot", tmp_path, data=data, df=sales)
    assert not ok
    assert "table.plot: y column 'revenue' not found" in error_of(messages)["message"]


def test_plot_unknown_kind(table: PluginRegistry, tmp_path: Path, sales: Any) -> None:
    data = {"x": "product", "y": "units", "kind": "pie"}
    ok, messages, _ = run_app(table, "table.plot", tmp_path, data=data, df=sales)
    assert not ok
    assert "kind 'pie' is not one of line, bar, scatter" in error_of(messages)["message"]


def test_write_csv(table: PluginRegistry, tmp_path: Path, sales: Any) -> None:
    small = sales.head(3)
    ok, messages, outputs = run_app(
        table, "table.write_csv", tmp_path, data={"path": "out/small.csv"}, df=small
    )
    assert ok, messages
    assert outputs == {"path": "out/small.csv"}
    lines = (tmp_path / "out" / "small.csv").read_text(encoding="utf-8").splitlines()
    assert lines == [
        "region,product,units,price",
        "North,Laptop,4,899.0",
        "North,Monitor,12,189.99",
        "North,Keyboard,25,49.5",
    ]


def test_write_csv_cannot_escape_the_workdir(
    table: PluginRegistry, tmp_path: Path, sales: Any
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    ok, messages, _ = run_app(table, "table.write_csv", work, data={"path": "../x.csv"}, df=sales)
    assert not ok and not (tmp_path / "x.csv").exists()
    assert error_of(messages)["type"] == "DriveError"


def test_groupby_renderer(sales: Any) -> None:
    source = (TABLE / "renderers.py").read_text(encoding="utf-8")
    try:
        exec(compile(source, str(TABLE / "renderers.py"), "exec"), {"__name__": "plugin"})
        payload = render.render(sales.groupby("region"))
    finally:
        render.unregister("table.groupby")
    assert payload["mime"] == "text/html"
    assert payload["data"].startswith("<p>4 groups by region</p><table")
    assert "<th>North</th>" in payload["data"]
