"""Notebook display: an HTML view of a node, live-updating when ipywidgets is present."""

from __future__ import annotations

import html
from typing import Any

__all__ = ["ipython_display", "repr_html"]

_live_displays: set[Any] = set()


def repr_html(node: Any) -> str:
    """HTML for a node: its name and latest value."""
    value = node.current_value
    shown = "no value yet" if value is None and node.current_metadata is None else repr(value)
    if len(shown) > 500:
        shown = shown[:495] + " ..."
    return (
        f"<div class='millstream-node'><b>{html.escape(str(node))}</b>"
        f"<pre>{html.escape(shown)}</pre></div>"
    )


def ipython_display(node: Any, **kwargs: Any) -> None:
    """Show ``node`` in a notebook and keep the view updated as values arrive.

    With ipywidgets, an ``Output`` widget is redrawn for each new value by a sink
    attached below ``node``; the sink is removed when the widget is closed. Without
    ipywidgets the current HTML is shown once.
    """
    from IPython.display import HTML, display

    try:
        import ipywidgets as widgets
    except ImportError:
        display(HTML(repr_html(node)))
        return
    output = widgets.HTML(value=repr_html(node))

    def redraw(_: Any) -> None:
        output.value = repr_html(node)

    updater = node.sink(redraw)
    _live_displays.add(updater)

    def on_close(_: Any) -> None:
        updater.destroy()
        _live_displays.discard(updater)

    widget_close = output.close

    def close() -> None:
        on_close(None)
        widget_close()

    output.close = close  # type: ignore[method-assign]
    display(output)
