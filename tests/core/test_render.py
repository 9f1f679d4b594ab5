"""Tests for dizest_core.render: value -> {"mime", "data"} payloads."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
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


@pytest.fixture
def registry():
    """Snapshot and restore the plugin registry around a test."""
    saved = list(R._REGISTRY)
    yield R
    R._REGISTRY[:] = saved


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


# --------------------------------------------------------------------------- size bound


def test_huge_string_is_truncated_visibly():
    text = "A" * 5_000_000 + "B" * 300 + "THE-END"
    payload = R.render(text)
    data = payload["data"]
    assert payload["mime"] == "text/plain"
    assert len(data) <= 1_000_000
    assert data.startswith("AAAA")
    assert data.endswith(text[-200:])
    assert "\n... [truncated " in data
    assert " characters] ...\n" in data
    removed = int(data.split("[truncated ")[1].split(" ")[0])
    assert len(data) - len(R._marker(removed)) + removed == len(text)


def test_small_limit_still_shows_marker():
    payload = R.render("x" * 500, max_bytes=10)
    assert "truncated" in payload["data"]


def test_html_over_limit_falls_back_to_truncated_text():
    class HugeTable:
        def _repr_html_(self):
            return "<table>" + "<tr><td>1</td></tr>" * 200_000 + "</table>"

    payload = R.render(HugeTable(), max_bytes=50_000)
    assert payload["mime"] == "text/plain"
    assert "truncated" in payload["data"]
    assert len(payload["data"]) <= 50_000


def test_json_over_limit_falls_back_to_truncated_text():
    payload = R.render(list(range(100_000)), max_bytes=10_000)
    assert payload["mime"] == "text/plain"
    assert "truncated" in payload["data"]
    assert len(payload["data"]) <= 10_000


# --------------------------------------------------------------------------- errors, registry


def test_raising_renderer_yields_error_text(registry):
    def boom(value):
        raise ValueError("kaput")

    registry.register(lambda v: isinstance(v, int), boom, name="boom")
    payload = R.render(7)
    assert payload == {"mime": "text/plain", "data": "<render error: ValueError: kaput>\n7"}


def test_raising_builtin_path_never_raises():
    class BadHtml:
        def _repr_html_(self):
            raise RuntimeError("no html")

        def __repr__(self):
            return "BadHtml()"

    class Unprintable:
        def __str__(self):
            raise KeyError("s")

        def __repr__(self):
            raise KeyError("r")

    bad = R.render(BadHtml())
    assert bad == {"mime": "text/plain", "data": "<render error: RuntimeError: no html>\nBadHtml()"}
    worse = R.render(Unprintable())
    assert worse["mime"] == "text/plain"
    assert worse["data"].startswith("<render error: KeyError: ")
    assert "unrepresentable Unprintable" in worse["data"]


def test_register_precedence_and_unregister(registry):
    is_int = lambda v: isinstance(v, int)  # noqa: E731
    registry.register(is_int, lambda v: {"mime": "text/plain", "data": "old"}, name="old")
    assert R.render(5)["data"] == "old"
    registry.register(is_int, lambda v: {"mime": "text/plain", "data": "new"}, name="new")
    assert R.render(5)["data"] == "new"
    registry.register(is_int, lambda v: None, name="pass")
    assert R.render(5)["data"] == "new"  # None falls through to the next renderer
    assert registry.unregister("new") is True
    assert R.render(5)["data"] == "old"
    assert registry.unregister("old") is True
    assert registry.unregister("old") is False
    assert R.render(5) == {"mime": "application/json", "data": "5"}


def test_register_same_name_replaces(registry):
    registry.register(lambda v: True, lambda v: {"mime": "text/plain", "data": "1"}, name="x")
    registry.register(lambda v: True, lambda v: {"mime": "text/plain", "data": "2"}, name="x")
    assert R.render(object())["data"] == "2"
    assert registry.unregister("x") is True
    assert registry.unregister("x") is False


def test_raising_predicate_is_skipped_and_bad_payload_is_an_error(registry):
    def bad_predicate(value):
        raise AttributeError("nope")

    registry.register(bad_predicate, lambda v: {"mime": "text/plain", "data": "?"}, name="p")
    assert R.render(1) == {"mime": "application/json", "data": "1"}
    registry.register(lambda v: True, lambda v: "not a payload", name="bad")
    payload = R.render(1)
    assert payload["mime"] == "text/plain"
    assert payload["data"].startswith("<render error: TypeError: ")


def test_registered_payload_is_normalised_to_mime_and_data(registry):
    registry.register(
        lambda v: v == "special",
        lambda v: {"mime": "text/x-special", "data": "S", "extra": "dropped"},
        name="special",
    )
    assert R.render("special") == {"mime": "text/x-special", "data": "S"}


# --------------------------------------------------------------------------- as_text, html


def test_as_text():
    png = {"mime": "image/png", "data": base64.b64encode(b"12345").decode()}
    assert R.as_text({"mime": "text/plain", "data": "hi"}) == "hi"
    assert R.as_text({"mime": "application/json", "data": "[1]"}) == "[1]"
    assert R.as_text({"mime": "text/html", "data": "<b>x</b>"}) == "[text/html, 8 chars]"
    assert R.as_text(png) == "[image/png, 5 bytes]"
    assert R.as_text({"mime": "application/vnd.plotly.v1+json", "data": "{}"}) == "[plotly figure]"


def test_html_fragment_escapes_everything_but_html():
    script = "<script>alert(1)</script>"
    text = R.html_fragment(R.render(script))
    assert text == "<pre>&lt;script&gt;alert(1)&lt;/script&gt;</pre>"
    json_fragment = R.html_fragment(R.render({"k": script}))
    assert "<script>" not in json_fragment
    assert json_fragment.startswith("<pre>")
    plotly = R.html_fragment({"mime": "application/vnd.plotly.v1+json", "data": script})
    assert "<script>" not in plotly
    assert R.html_fragment({"mime": "text/html", "data": "<b>x</b>"}) == "<b>x</b>"
    img = R.html_fragment({"mime": "image/png", "data": "QUJD"})
    assert img == '<img src="data:image/png;base64,QUJD">'


# --------------------------------------------------------------------------- laziness


def test_render_does_not_import_heavy_libraries():
    code = textwrap.dedent(
        """
        import json, sys
        from dizest_core.render import render
        values = [1, "x", None, [1, 2], {"a": 1.5}, b"raw", object(), float("nan")]
        print(json.dumps([render(v)["mime"] for v in values]))
        heavy = ["pandas", "matplotlib", "PIL", "plotly", "numpy"]
        loaded = [name for name in heavy if name in sys.modules]
        assert not loaded, loaded
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    json_mime, text_mime = "application/json", "text/plain"
    assert (
        json.loads(result.stdout)
        == [json_mime, text_mime, json_mime, json_mime, json_mime] + [text_mime] * 3
    )
