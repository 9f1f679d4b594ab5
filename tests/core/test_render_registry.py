"""Tests for dizest_core.render around the renderers: the size bound, renderer errors, the
registry, as_text and html_fragment, and that importing it stays light."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dizest_core import render as R

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def registry():
    """Snapshot and restore the plugin registry around a test."""
    saved = list(R._REGISTRY)
    yield R
    R._REGISTRY[:] = saved


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
