"""Renderers of the table plugin: pandas group-by objects shown as a table of their groups.

Executed in a flow's child process before the app's code. pandas is only touched when the flow
has already imported it, so loading this file costs nothing for flows that never use pandas.
"""

from __future__ import annotations

import html
import sys

from dizest_core.render import register

MAX_GROUPS = 50


def is_groupby(value: object) -> bool:
    """A pandas DataFrameGroupBy or SeriesGroupBy (only if pandas is loaded)."""
    pandas = sys.modules.get("pandas")
    if pandas is None:
        return False
    typing = pandas.api.typing
    return isinstance(value, (typing.DataFrameGroupBy, typing.SeriesGroupBy))


def render_groupby(value: object) -> dict[str, str]:
    """An HTML table with one row per group (its key and row count), instead of a bare repr."""
    sizes = value.size()  # type: ignore[attr-defined]
    frame = sizes.to_frame("rows") if hasattr(sizes, "to_frame") else sizes
    keys = [str(name) for name in frame.index.names if name is not None]
    caption = f"{len(frame)} groups" + (f" by {', '.join(keys)}" if keys else "")
    table = frame.to_html(max_rows=MAX_GROUPS)
    return {"mime": "text/html", "data": f"<p>{html.escape(caption)}</p>{table}"}


register(is_groupby, render_groupby, name="table.groupby")
