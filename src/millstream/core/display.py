"""Notebook display: an HTML view of a node, live-updating when ipywidgets is present."""

from __future__ import annotations

import html
from typing import Any

from .._utils import short_repr

__all__ = ["ipython_display", "repr_html"]

#: The sinks feeding live displays (kept here as well as by their upstream, for inspection).
_live_displays: set[Any] = set()

_NOTHING: Any = object()


def repr_html(node: Any, value: Any = _NOTHING) -> str:
    """HTML for a node: its name and its latest value (or ``value`` if given).

    Examples
    --------
    >>> from millstream import Stream
    >>> s = Stream(stream_name='prices')
    >>> repr_html(s)
    "<div class='millstream-node'><b>&lt;prices; Stream&gt;</b><pre>no value yet</pre></div>"
    >>> s.emit('<b>')
    >>> repr_html(s).split('<pre>')[1]
    '&#x27;&lt;b&gt;&#x27;</pre></div>'
    """
    if value is _NOTHING:
        value = node.current_value
        empty = value is None and node.current_metadata is None
    else:
        empty = False
    shown = "no value yet" if empty else short_repr(value, limit=500)
    return (
        f"<div class='millstream-node'><b>{html.escape(str(node))}</b>"
        f"<pre>{html.escape(shown)}</pre></div>"
    )


def ipython_display(node: Any, **kwargs: Any) -> None:
    """Show ``node`` in a notebook and keep the view updated as values arrive.

    With ipywidgets, an ``HTML`` widget is redrawn for each new value by a sink
    attached below ``node``; the sink is removed when the widget is closed (or when
    its last view goes away). Without ipywidgets the current HTML is shown once.
    """
    from IPython.display import HTML, display

    try:
        import ipywidgets as widgets
    except ImportError:
        display(HTML(repr_html(node)))
        return
    output = widgets.HTML(value=repr_html(node))

    def redraw(x: Any) -> None:
        # render the element the sink received: inside fused code the node's
        # ``current_value`` is only updated once the whole element has gone through
        output.value = repr_html(node, x)

    updater = node.sink(redraw)
    _live_displays.add(updater)

    def detach() -> None:
        if updater in _live_displays:
            _live_displays.discard(updater)
            updater.destroy()

    widget_close = output.close

    def close() -> None:
        detach()
        widget_close()

    output.close = close

    def on_views(change: dict[str, Any]) -> None:
        if change.get("new") == 0 and change.get("old"):
            detach()

    if getattr(output, "_view_count", _NOTHING) is None:
        output._view_count = 0  # ask the front end to count the views of this widget
    output.observe(on_views, names="_view_count")
    display(output)
