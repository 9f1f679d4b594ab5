"""Tests for dizest_core.render: value -> {"mime", "data"} payloads, by kind of value (images,
plotly, pandas, _repr_html_, text, JSON)."""

from __future__ import annotations

import base64
import json
from collections import namedtuple
from pathlib import Path

import pytest

from dizest_core import render as R

REPO_ROOT = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_bytes(payload: R.Payload) -> bytes:
    assert payload["mime"] == "image/png"
    assert not payload["data"].startswith("data:")
    raw = base64.b64decode(payload["data"], validate=True)
    assert raw.startswith(PNG_SIGNATURE)
    return raw


@pytest.fixture
def plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    pyplot.close("all")
    yield pyplot
    pyplot.close("all")


# --------------------------------------------------------------------------- images


def test_pyplot_module_renders_current_figure_and_closes_it(plt):
    plt.figure()
    plt.plot([1, 2, 3], [3, 1, 2])
    before = plt.get_fignums()
    payload = R.render(plt)
    _png_bytes(payload)
    assert len(plt.get_fignums()) == len(before) - 1
    assert set(payload) == {"mime", "data"}


def test_figure_renders_png_and_stays_open(plt):
    fig, ax = plt.subplots()
    ax.bar(["a", "b"], [1, 2])
    _png_bytes(R.render(fig))
    assert fig.number in plt.get_fignums()


def test_pil_image_renders_png():
    from PIL import Image

    image = Image.new("RGB", (8, 6), (255, 0, 0))
    raw = _png_bytes(R.render(image))
    import io

    assert Image.open(io.BytesIO(raw)).size == (8, 6)


def test_pil_image_in_mode_png_cannot_store():
    from PIL import Image

    _png_bytes(R.render(Image.new("CMYK", (4, 4))))


def test_image_over_limit_is_replaced_by_a_notice():
    import random

    from PIL import Image

    rng = random.Random(0)
    image = Image.frombytes("RGB", (64, 64), bytes(rng.randrange(256) for _ in range(64 * 64 * 3)))
    payload = R.render(image, max_bytes=1000)
    assert payload["mime"] == "text/plain"
    assert payload["data"].startswith("[image/png of ")
    assert payload["data"].endswith("exceeds the limit of 1000 bytes]")


# --------------------------------------------------------------------------- plotly, pandas


def test_plotly_figure_renders_json_not_html():
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[1, 2, 3], y=[4, 5, 6]))
    payload = R.render(fig)
    assert payload["mime"] == "application/vnd.plotly.v1+json"
    assert "<html" not in payload["data"].lower()
    assert json.loads(payload["data"])["data"]


def test_dataframe_renders_bounded_html_table():
    import pandas as pd

    frame = pd.DataFrame({"x": range(1000), "y": [f"v{i}" for i in range(1000)]})
    payload = R.render(frame)
    assert payload["mime"] == "text/html"
    assert "<table" in payload["data"]
    assert payload["data"].count("<tr") < 60


def test_wide_dataframe_columns_are_bounded():
    import pandas as pd

    frame = pd.DataFrame([list(range(200))])
    payload = R.render(frame)
    assert payload["data"].count("<th") < 30


def test_series_renders_bounded_html_table():
    import pandas as pd

    payload = R.render(pd.Series(range(1000), name="n"))
    assert payload["mime"] == "text/html"
    assert payload["data"].count("<tr") < 60


def test_styler_renders_bounded_html_table():
    pytest.importorskip("jinja2")  # pandas' Styler needs it
    import pandas as pd

    styler = pd.DataFrame({"x": range(1000)}).style
    payload = R.render(styler)
    assert payload["mime"] == "text/html"
    assert payload["data"].count("<tr") < 60


# --------------------------------------------------------------------------- _repr_html_, text


class _HtmlThing:
    def _repr_html_(self):
        return "<b>bold</b>"


class _NoHtml:
    def _repr_html_(self):
        return None

    def __repr__(self):
        return "NoHtml()"


def test_repr_html_is_used():
    assert R.render(_HtmlThing()) == {"mime": "text/html", "data": "<b>bold</b>"}


def test_repr_html_returning_none_falls_through():
    assert R.render(_NoHtml()) == {"mime": "text/plain", "data": "NoHtml()"}


def test_class_with_repr_html_is_not_called_unbound():
    payload = R.render(_HtmlThing)
    assert payload["mime"] == "text/plain"
    assert "_HtmlThing" in payload["data"]


def test_str_is_text_unchanged():
    text = "line1\n<script>x</script>"
    assert R.render(text) == {"mime": "text/plain", "data": text}


def test_bytes_are_a_bounded_repr():
    assert R.render(b"ab\x00") == {"mime": "text/plain", "data": repr(b"ab\x00")}
    payload = R.render(b"x" * 1_000_000)
    assert payload["mime"] == "text/plain"
    assert len(payload["data"]) < 20_000
    assert "truncated" in payload["data"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            {"a": [1, 2.5, None, True], "b": {"c": "d"}},
            {"a": [1, 2.5, None, True], "b": {"c": "d"}},
        ),
        ([1, "x", False], [1, "x", False]),
        ((1, 2), [1, 2]),
        (3, 3),
        (2.5, 2.5),
        (None, None),
        (True, True),
        ({1: "int key"}, {"1": "int key"}),
    ],
)
def test_json_values_round_trip(value, expected):
    payload = R.render(value)
    assert payload["mime"] == "application/json"
    assert json.loads(payload["data"]) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), [1.0, float("nan")]])
def test_non_finite_floats_are_not_json(value):
    payload = R.render(value)
    assert payload["mime"] == "text/plain"
    assert payload["data"] == str(value)


def test_json_rejected_containers_fall_back_to_text():
    payload = R.render({(1, 2): "tuple key"})
    assert payload == {"mime": "text/plain", "data": "{(1, 2): 'tuple key'}"}
    point = namedtuple("Point", "x y")(1, 2)
    assert R.render(point) == {"mime": "text/plain", "data": "Point(x=1, y=2)"}


def test_numpy_values():
    import numpy as np

    assert R.render(np.arange(6).reshape(2, 3)) == {
        "mime": "application/json",
        "data": "[[0, 1, 2], [3, 4, 5]]",
    }
    assert R.render(np.float64(1.5)) == {"mime": "application/json", "data": "1.5"}
    big = np.zeros(20_000)
    assert R.render(big) == {"mime": "text/plain", "data": repr(big)}
    assert R.render(np.array([np.nan]))["mime"] == "text/plain"


def test_fallback_uses_str_when_overridden_else_repr():
    class WithStr:
        def __str__(self):
            return "custom str"

    plain = object()
    assert R.render(WithStr()) == {"mime": "text/plain", "data": "custom str"}
    assert R.render(plain) == {"mime": "text/plain", "data": repr(plain)}
