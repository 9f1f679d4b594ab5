"""Tests for the bundled table plugin's apps, run, and examples/sales_report.dwp, which uses
them.
"""

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
from dizest_core.plugins import PluginRegistry
from tests.core.conftest import REPO, TABLE

EXAMPLE = REPO / "examples" / "sales_report.dwp"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


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
