"""Build examples/sales_report.dwp from the table plugin's files, so the example stays in sync.

The package embeds every app it uses in full (code included), so original DIZEST can run it
without the plugin. Flows: read the sales CSV -> keep orders of more than 5 units -> describe
them, chart units per product, and compute revenue per region (an inline app, not a plugin one).

Usage (from the repository root):
    python examples/make_sales_report.py          # (re)write examples/sales_report.dwp
    python examples/make_sales_report.py --check  # exit 1 if the file is out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TARGET = HERE / "sales_report.dwp"
PLUGIN_APPS = ("table.read_csv", "table.filter", "table.describe", "table.plot")

REVENUE_CODE = """\
# Revenue (units x price) per region of the orders it receives, rounded to cents.
import pandas as pd

df = dizest.input("df")
if not isinstance(df, pd.DataFrame):
    raise TypeError(f"revenue: input 'df' must be a pandas DataFrame, got {type(df).__name__}")
missing = {"region", "units", "price"} - set(df.columns)
if missing:
    raise ValueError(f"revenue: missing columns {sorted(missing)}")

totals = (df["units"] * df["price"]).groupby(df["region"]).sum().sort_values(ascending=False)
revenue = {str(region): round(float(total), 2) for region, total in totals.items()}
print(f"revenue: {sum(revenue.values()):,.2f} in total over {len(revenue)} regions")
dizest.result("revenue", revenue)
dizest.output("revenue", revenue)
"""

REVENUE_APP: dict[str, Any] = {
    "id": "sales.revenue_by_region",
    "title": "Revenue by region",
    "version": "1.0.0",
    "description": "Sums units x price per region; outputs {region: revenue} rounded to 2 decimals.",
    "cdn": {"js": [], "css": []},
    "inputs": [{"type": "output", "name": "df"}],
    "outputs": [{"name": "revenue"}],
    "code": REVENUE_CODE,
    "api": "",
    "html": "",
    "js": "",
    "css": "",
}

# flow id -> (app id, title, data, (x, y))
FLOWS: dict[str, tuple[str, str, dict[str, Any], tuple[int, int]]] = {
    "read_sales": (
        "table.read_csv",
        "Sales",
        {"path": "examples/data/sales.csv", "sep": ","},
        (80, 200),
    ),
    "big_orders": (
        "table.filter",
        "Orders of more than 5 units",
        {"query": "units > 5"},
        (420, 200),
    ),
    "summary": ("table.describe", "Summary", {}, (760, 40)),
    "units_chart": (
        "table.plot",
        "Units per product",
        {"x": "product", "y": "units", "kind": "bar"},
        (760, 220),
    ),
    "revenue": ("sales.revenue_by_region", "Revenue by region", {}, (760, 400)),
}

# (source flow, source output, target flow, target input)
EDGES = (
    ("read_sales", "df", "big_orders", "df"),
    ("big_orders", "df", "summary", "df"),
    ("big_orders", "df", "units_chart", "df"),
    ("big_orders", "df", "revenue", "df"),
)


def build() -> dict[str, Any]:
    """The sales report package as a DIZEST 4.x dict."""
    apps = _plugin_apps()
    apps[REVENUE_APP["id"]] = json.loads(json.dumps(REVENUE_APP))
    flows = {
        flow_id: _flow(flow_id, apps[app_id], title, data, pos)
        for flow_id, (app_id, title, data, pos) in FLOWS.items()
    }
    for src, output, dst, name in EDGES:
        flows[dst]["inputs"][name]["connections"].append({"node": src, "input": output})
        flows[src]["outputs"][output]["connections"].append({"node": dst, "output": name})
    return {
        "title": "Sales report",
        "description": "Orders of more than 5 units from examples/data/sales.csv: summary "
        "statistics, units per product, and revenue per region.",
        "version": "1.0.0",
        "visibility": "private",
        "category": "example",
        "featured": "",
        "logo": "",
        "extra": {},
        "favorite": "0",
        "executable": None,
        "executable_name": "base",
        "apps": apps,
        "flow": flows,
    }


def _plugin_apps() -> dict[str, dict[str, Any]]:
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from dizest_core.plugins import PluginRegistry

    registry = PluginRegistry.discover([REPO / "plugins"])
    if registry.problems:
        raise SystemExit("plugin problems:\n" + "\n".join(registry.problems))
    return {app_id: registry.app_raw(app_id) for app_id in PLUGIN_APPS}


def _flow(
    flow_id: str, app: dict[str, Any], title: str, data: dict[str, Any], pos: tuple[int, int]
) -> dict[str, Any]:
    """A flow in the Drawflow editor's shape, with one empty port per wired input and output."""
    wired = [i["name"] for i in app["inputs"] if i.get("type", "output") == "output"]
    return {
        "id": flow_id,
        "app_id": app["id"],
        "active": True,
        "title": title,
        "description": "",
        "class": "",
        "name": "",
        "typenode": False,
        "pos_x": pos[0],
        "pos_y": pos[1],
        "width": 260,
        "height": 152,
        "data": dict(data),
        "inputs": {name: {"connections": []} for name in wired},
        "outputs": {o["name"]: {"connections": []} for o in app["outputs"]},
    }


def render(package: dict[str, Any]) -> str:
    """The file text: DIZEST's one-space indentation, UTF-8 kept as is."""
    return json.dumps(package, ensure_ascii=False, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is out of date")
    args = parser.parse_args(argv)
    text = render(build())
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        print(f"{TARGET.name} is {'up to date' if current == text else 'out of date'}")
        return 0 if current == text else 1
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
