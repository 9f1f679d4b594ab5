"""Writes the console tests' workflows into data/ (run it after changing one):

    .venv/bin/python tests/console/make_data.py

- plots: a number input feeds a matplotlib PNG, a plotly chart, a pandas table and a JSON result.
- broken: a flow that raises, with a flow downstream of it ("upstream failed").
- ticker: prints `tick 1..count`, one line every `delay` seconds (live logs, cancel, reconnect).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DATA = Path(__file__).parent / "data"


def app(app_id: str, code: str, inputs: list[dict[str, Any]], outputs: list[str]) -> dict[str, Any]:
    return {
        "id": app_id, "title": app_id, "version": "1.0.0", "description": "",
        "cdn": {"js": [], "css": []}, "inputs": inputs,
        "outputs": [{"name": o} for o in outputs], "code": code,
        "api": "", "html": "", "js": "", "css": "",
    }  # fmt: skip


def var(name: str, inputtype: str = "number") -> dict[str, Any]:
    return {"type": "variable", "name": name, "inputtype": inputtype, "description": ""}


def wire(name: str) -> dict[str, Any]:
    return {"type": "output", "name": name}


def flow(flow_id: str, app_id: str, x: int, y: int, data: dict[str, Any] | None = None,
         inputs: dict[str, tuple[str, str]] | None = None) -> dict[str, Any]:  # fmt: skip
    wired = {k: {"connections": [{"node": src, "input": out}]} for k, (src, out) in (inputs or {}).items()}  # fmt: skip
    return {
        "id": flow_id, "app_id": app_id, "active": True, "title": "", "description": "",
        "class": "", "name": "", "typenode": False, "pos_x": x, "pos_y": y,
        "data": data or {}, "inputs": wired, "outputs": {},
    }  # fmt: skip


def package(title: str, apps: list[dict[str, Any]], flows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"title": title, "version": "1.0.0", "apps": {a["id"]: a for a in apps},
            "flow": {f["id"]: f for f in flows}}  # fmt: skip


PLOTS = package(
    "plots",
    [
        app(
            "numbers",
            "xs = list(range(int(n)))\nprint('made', len(xs), 'numbers')\n",
            [var("n")],
            ["xs"],
        ),
        app(
            "png",
            (
                "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
                "fig, ax = plt.subplots(figsize=(3, 2))\nax.plot(xs, [x * x for x in xs])\ndisplay(fig)\n"
            ),
            [wire("xs")],
            [],
        ),
        app(
            "chart",
            (
                "import plotly.graph_objects as go\n"
                "display(go.Figure(go.Scatter(x=xs, y=[x * 2 for x in xs], name='double')))\n"
            ),
            [wire("xs")],
            [],
        ),
        app(
            "table",
            (
                "import pandas as pd\ndisplay(pd.DataFrame({'x': xs, 'square': [x * x for x in xs]}))\n"
                "dizest.result('summary', {'count': len(xs), 'total': sum(xs)})\n"
            ),
            [wire("xs")],
            [],
        ),
    ],
    [
        flow("numbers", "numbers", 60, 160, {"n": "5"}),
        flow("png", "png", 380, 40, inputs={"xs": ("numbers", "xs")}),
        flow("chart", "chart", 380, 200, inputs={"xs": ("numbers", "xs")}),
        flow("table", "table", 380, 360, inputs={"xs": ("numbers", "xs")}),
    ],
)
BROKEN = package(
    "broken",
    [
        app("source", "v = 1\n", [], ["v"]),
        app(
            "fails",
            "print('about to fail')\nraise ValueError('the answer is wrong')\n",
            [wire("v")],
            ["w"],
        ),
        app("after", "print('never')\n", [wire("w")], []),
    ],
    [
        flow("source", "source", 40, 80),
        flow("fails", "fails", 320, 80, inputs={"v": ("source", "v")}),
        flow("after", "after", 600, 80, inputs={"w": ("fails", "w")}),
    ],
)
TICKER = package(
    "ticker",
    [
        app(
            "ticker",
            (
                "import time\nfor i in range(1, int(count) + 1):\n"
                "    print(f'tick {i}')\n    time.sleep(float(delay))\n"
            ),
            [var("count"), var("delay")],
            [],
        ),
    ],
    [flow("ticker", "ticker", 100, 100, {"count": "3", "delay": "0.05"})],
)

if __name__ == "__main__":
    DATA.mkdir(exist_ok=True)
    for name, pkg in (("plots", PLOTS), ("broken", BROKEN), ("ticker", TICKER)):
        (DATA / f"{name}.dwp").write_text(json.dumps(pkg, indent=1) + "\n")
