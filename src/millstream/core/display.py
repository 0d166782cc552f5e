"""Notebook display: an HTML view of a node, live-updating when ipywidgets is present.

Collections above core (the streaming frames) reuse it with their own ``render``
(a frame's value as an HTML table), ``title`` and ``on_detach`` (to take down the nodes
they put between the stream and the view).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from .._utils import short_repr

__all__ = ["ipython_display", "live_widget", "repr_html"]

#: The sinks feeding live displays (kept here as well as by their upstream, for inspection).
_live_displays: set[Any] = set()

_NOTHING: Any = object()


def _pre(value: Any) -> str:
    return f"<pre>{html.escape(short_repr(value, limit=500))}</pre>"


def repr_html(
    node: Any,
    value: Any = _NOTHING,
    render: Callable[[Any], str] | None = None,
    title: str | None = None,
) -> str:
    """HTML for a node: its name (or ``title``) and its latest value (or ``value`` if given),
    shown by ``render(value)`` (an HTML fragment; default: the escaped, shortened repr).

    Examples
    --------
    >>> from millstream import Stream
    >>> s = Stream(stream_name='prices')
    >>> repr_html(s)
    "<div class='millstream-node'><b>&lt;prices; Stream&gt;</b><pre>no value yet</pre></div>"
    >>> s.emit('<b>')
    >>> repr_html(s).split('<pre>')[1]
    '&#x27;&lt;b&gt;&#x27;</pre></div>'
    >>> repr_html(s, 7, render=lambda v: f'<i>{v}</i>', title='seven')
    "<div class='millstream-node'><b>seven</b><i>7</i></div>"
    """
    if value is _NOTHING:
        value = node.current_value
        empty = value is None and node.current_metadata is None
    else:
        empty = False
    shown = "<pre>no value yet</pre>" if empty else (render or _pre)(value)
    head = html.escape(str(node) if title is None else title)
    return f"<div class='millstream-node'><b>{head}</b>{shown}</div>"


def live_widget(
    node: Any,
    render: Callable[[Any], str] | None = None,
    title: str | None = None,
    on_detach: Callable[[], Any] | None = None,
) -> Any:
    """An ipywidgets ``HTML`` widget showing ``node``'s latest value, redrawn for each new
    value by a sink attached below ``node``.

    The sink is removed (and ``on_detach()`` called) when the widget is closed or when its
    last view goes away. Raises ImportError without ipywidgets.
    """
    import ipywidgets as widgets

    output = widgets.HTML(value=repr_html(node, render=render, title=title))

    def redraw(x: Any) -> None:
        # render the element the sink received: inside fused code the node's
        # ``current_value`` is only updated once the whole element has gone through
        output.value = repr_html(node, x, render=render, title=title)

    updater = node.sink(redraw)
    _live_displays.add(updater)

    def detach() -> None:
        if updater in _live_displays:
            _live_displays.discard(updater)
            updater.destroy()
            if on_detach is not None:
                on_detach()

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
    return output


def ipython_display(
    node: Any,
    render: Callable[[Any], str] | None = None,
    title: str | None = None,
    on_detach: Callable[[], Any] | None = None,
    **kwargs: Any,
) -> None:
    """Show ``node`` in a notebook and keep the view updated as values arrive.

    With ipywidgets, a :func:`live_widget` is displayed; the sink feeding it is removed
    when the widget is closed (or when its last view goes away). Without ipywidgets the
    current HTML is shown once (and ``on_detach()`` called at once).
    """
    from IPython.display import HTML, display

    try:
        output = live_widget(node, render, title, on_detach)
    except ImportError:
        display(HTML(repr_html(node, render=render, title=title)))
        if on_detach is not None:
            on_detach()
        return
    display(output)
