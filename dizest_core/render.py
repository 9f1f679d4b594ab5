"""Owns turning displayed Python values into typed, JSON-safe ``{"mime", "data"}`` payloads.

A workflow step shows values through ``print``/``display``/``result``; this module converts each
value into a payload whose ``data`` is always a ``str`` (images are base64 without a ``data:``
prefix). It runs inside the sandboxed child process, so heavy libraries (matplotlib, PIL,
pandas, plotly, numpy) are never imported here: a value can only be an instance of such a
library's class if that library is already in ``sys.modules``.

Order of rules: registered renderers (newest first), then the built-ins in ``_BUILTINS``,
then ``str``/``repr``. Every payload is bounded by ``max_bytes`` characters of ``data``.
"""

from __future__ import annotations

import base64
import html
import io
import json
import sys
from collections.abc import Callable
from typing import Any, NamedTuple, TypedDict


class Payload(TypedDict):
    """A rendered value: ``mime`` names the format, ``data`` holds it as text."""

    mime: str
    data: str


Predicate = Callable[[object], bool]
Renderer = Callable[[object], "Payload | None"]

TEXT = "text/plain"
HTML = "text/html"
JSON = "application/json"
PNG = "image/png"
PLOTLY = "application/vnd.plotly.v1+json"

MAX_TABLE_ROWS = 50
MAX_TABLE_COLS = 20
MAX_ARRAY_SIZE = 10_000
TAIL_CHARS = 200
MAX_BYTES_SHOWN = 10_000


class _Entry(NamedTuple):
    name: str | None
    predicate: Predicate
    renderer: Renderer


# The only module-level state: plugin renderers, oldest first.
_REGISTRY: list[_Entry] = []


# --------------------------------------------------------------------------- public API


def register(predicate: Predicate, renderer: Renderer, *, name: str | None = None) -> None:
    """Add a renderer tried before older ones and the built-ins.

    ``renderer`` may return ``None`` to fall through. Registering an existing ``name``
    replaces that entry. A predicate that raises counts as "does not match".
    """
    if not callable(predicate) or not callable(renderer):
        raise TypeError("predicate and renderer must be callable")
    if name is not None:
        unregister(name)
    _REGISTRY.append(_Entry(name, predicate, renderer))


def unregister(name: str) -> bool:
    """Remove the renderers registered under ``name``; return whether any was removed."""
    kept = [entry for entry in _REGISTRY if entry.name != name]
    removed = len(kept) != len(_REGISTRY)
    _REGISTRY[:] = kept
    return removed


def render(value: object, *, max_bytes: int = 1_000_000) -> Payload:
    """Render ``value`` into a payload whose ``data`` is at most ``max_bytes`` long.

    Never raises (except ``BaseException``s such as ``KeyboardInterrupt``): a failing
    renderer yields a ``text/plain`` payload that starts with ``<render error: ...>``.
    """
    try:
        payload = _render_unbounded(value)
    except Exception as exc:
        payload = _error_payload(value, exc)
    return _bound(payload, max_bytes)


def as_text(payload: Payload) -> str:
    """Describe a payload as plain text for terminals and logs."""
    mime, data = payload["mime"], payload["data"]
    if mime in (TEXT, JSON):
        return data
    if mime == PLOTLY:
        return "[plotly figure]"
    if mime.startswith("image/"):
        return f"[{mime}, {_decoded_size(data)} bytes]"
    return f"[{mime}, {len(data)} chars]"


def html_fragment(payload: Payload) -> str:
    """Return an HTML fragment for a payload; anything that is not HTML is escaped."""
    mime, data = payload["mime"], payload["data"]
    if mime == HTML:
        return data
    if mime.startswith("image/"):
        src = html.escape(f"data:{mime};base64,{data}", quote=True)
        return f'<img src="{src}">'
    return f"<pre>{html.escape(data)}</pre>"


# --------------------------------------------------------------------------- dispatch


def _render_unbounded(value: object) -> Payload:
    for entry in reversed(list(_REGISTRY)):
        if _matches(entry.predicate, value):
            payload = entry.renderer(value)
            if payload is not None:
                return _validated(payload)
    for builtin in _BUILTINS:
        payload = builtin(value)
        if payload is not None:
            return payload
    return _text(_plain_text(value))


def _matches(predicate: Predicate, value: object) -> bool:
    try:
        return bool(predicate(value))
    except Exception:
        return False


def _validated(payload: object) -> Payload:
    if isinstance(payload, dict):
        mime, data = payload.get("mime"), payload.get("data")
        if isinstance(mime, str) and isinstance(data, str):
            return Payload(mime=mime, data=data)
    raise TypeError(f"renderer returned {type(payload).__name__}, not a {{mime, data}} payload")


def _error_payload(value: object, exc: Exception) -> Payload:
    head = f"<render error: {type(exc).__name__}: {_safe_str(exc)}>\n"
    return _text(head + _safe_repr(value))


# --------------------------------------------------------------------------- helpers


def _text(data: str) -> Payload:
    return Payload(mime=TEXT, data=data)


def _png(raw: bytes) -> Payload:
    return Payload(mime=PNG, data=base64.b64encode(raw).decode("ascii"))


def _loaded_class(module: str, attr: str) -> type | None:
    cls = getattr(sys.modules.get(module), attr, None)
    return cls if isinstance(cls, type) else None


def _is_instance(value: object, module: str, attr: str) -> bool:
    cls = _loaded_class(module, attr)
    return cls is not None and isinstance(value, cls)


def _plain_text(value: object) -> str:
    """What ``print`` shows: ``str`` when ``__str__`` is overridden, else ``repr``."""
    if type(value).__str__ is not object.__str__:
        return str(value)
    return repr(value)


def _safe_repr(value: object) -> str:
    try:
        return repr(value)
    except Exception as exc:
        return f"<unrepresentable {type(value).__name__}: {type(exc).__name__}>"


def _safe_str(value: object) -> str:
    try:
        return str(value)
    except Exception:
        return _safe_repr(value)


def _decoded_size(data: str) -> int:
    return len(data) * 3 // 4 - data[-2:].count("=")


def _json_payload(value: object) -> Payload | None:
    try:
        return Payload(mime=JSON, data=json.dumps(value, allow_nan=False))
    except (TypeError, ValueError, RecursionError):
        return None


# --------------------------------------------------------------------------- size bound


def _bound(payload: Payload, max_bytes: int) -> Payload:
    data = payload["data"]
    if len(data) <= max_bytes:
        return payload
    mime = payload["mime"]
    if mime.startswith("image/"):
        return _text(f"[{mime} of {len(data)} bytes exceeds the limit of {max_bytes} bytes]")
    # Cutting HTML or JSON would make it invalid, so every non-image falls back to text.
    return _text(_truncate(data, max_bytes))


def _marker(removed: int) -> str:
    return f"\n... [truncated {removed} characters] ...\n"


def _truncate(text: str, limit: int) -> str:
    """Keep the head and the last ``TAIL_CHARS`` around a marker; fit ``limit`` if possible."""
    tail_len = min(TAIL_CHARS, max(limit, 0) // 4)
    reserved = len(_marker(len(text)))
    head_len = max(limit - tail_len - reserved, 0)
    removed = len(text) - head_len - tail_len
    tail = text[len(text) - tail_len :] if tail_len else ""
    return text[:head_len] + _marker(removed) + tail


# --------------------------------------------------------------------------- built-ins


def _render_pyplot_module(value: object) -> Payload | None:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None or value is not plt:
        return None
    figure = plt.gcf()
    try:
        return _png(_figure_png(figure))
    finally:
        plt.close(figure)


def _render_figure(value: object) -> Payload | None:
    if not _is_instance(value, "matplotlib.figure", "Figure"):
        return None
    return _png(_figure_png(value))


def _figure_png(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return buffer.getvalue()


def _render_pil(value: Any) -> Payload | None:
    if not _is_instance(value, "PIL.Image", "Image"):
        return None
    buffer = io.BytesIO()
    try:
        value.save(buffer, format="PNG")
    except (OSError, ValueError, KeyError):  # modes PNG cannot store, e.g. CMYK
        buffer = io.BytesIO()
        value.convert("RGBA").save(buffer, format="PNG")
    return _png(buffer.getvalue())


def _render_plotly(value: Any) -> Payload | None:
    if not _is_instance(value, "plotly.basedatatypes", "BaseFigure"):
        return None
    return Payload(mime=PLOTLY, data=value.to_json())


def _render_pandas(value: Any) -> Payload | None:
    if _is_instance(value, "pandas", "Series"):
        value = value.to_frame()
    if _is_instance(value, "pandas", "DataFrame"):
        return Payload(mime=HTML, data=_frame_html(value))
    if _is_instance(value, "pandas.io.formats.style", "Styler"):
        return Payload(mime=HTML, data=_styler_html(value))
    return None


def _frame_html(frame: Any) -> str:
    return frame.to_html(max_rows=MAX_TABLE_ROWS, max_cols=MAX_TABLE_COLS)


def _styler_html(styler: Any) -> str:
    try:
        return styler.to_html(max_rows=MAX_TABLE_ROWS, max_columns=MAX_TABLE_COLS)
    except TypeError:  # pandas without the bounding keywords
        return styler.to_html()


def _render_repr_html(value: object) -> Payload | None:
    if isinstance(value, type):  # a class, whose _repr_html_ is an unbound function
        return None
    method = getattr(value, "_repr_html_", None)
    if not callable(method):
        return None
    result = method()
    if isinstance(result, tuple) and result:  # IPython allows (data, metadata)
        result = result[0]
    if result is None:
        return None
    return Payload(mime=HTML, data=result if isinstance(result, str) else str(result))


def _render_str(value: object) -> Payload | None:
    return _text(str(value)) if isinstance(value, str) else None


def _render_bytes(value: object) -> Payload | None:
    if not isinstance(value, (bytes, bytearray)):
        return None
    shown = bytes(value[:MAX_BYTES_SHOWN])
    text = repr(shown)
    if len(shown) < len(value):
        text += f" ... [truncated {len(value) - len(shown)} bytes]"
    return _text(text)


_JSON_SCALARS = (bool, int, float, type(None))


def _render_json(value: object) -> Payload | None:
    # Exact types for scalars: IntEnum or numpy.float64 should not pass as plain numbers.
    if type(value) in _JSON_SCALARS or _is_json_container(value):
        return _json_payload(value)
    return None


def _is_json_container(value: object) -> bool:
    if isinstance(value, tuple):
        return not hasattr(value, "_fields")  # namedtuples keep their informative repr
    return isinstance(value, (dict, list))


def _render_numpy(value: object) -> Payload | None:
    numpy = sys.modules.get("numpy")
    if numpy is None:
        return None
    if isinstance(value, numpy.ndarray):
        if value.size <= MAX_ARRAY_SIZE:
            return _json_payload(value.tolist()) or _text(repr(value))
        return _text(repr(value))
    if isinstance(value, numpy.generic):
        return _json_payload(value.item()) or _text(repr(value))
    return None


_BUILTINS: tuple[Callable[[object], Payload | None], ...] = (
    _render_pyplot_module,
    _render_figure,
    _render_pil,
    _render_plotly,
    _render_pandas,
    _render_repr_html,
    _render_str,
    _render_bytes,
    _render_json,
    _render_numpy,
)
