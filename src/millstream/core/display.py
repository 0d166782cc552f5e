"""Notebook display: a node's latest value as rich HTML, live-updating with ipywidgets.

The output of a display carries the value as ``text/html`` and ``text/plain`` next to the
widget view, so a saved notebook rendered statically (nbconvert, GitHub) shows the value
instead of a blank. The sinks a display attaches (and the nodes a collection puts between
its stream and the view) are *display-only* (:func:`mark_display_only`): ``visualize()``
leaves them out.

Collections above core (the streaming frames) reuse it with their own ``render``,
``title``, ``on_detach`` (to take down the nodes they put between the stream and the
view) and ``source`` (the stream the view stands for).
"""

from __future__ import annotations

import html
import weakref
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from .._utils import short_repr

__all__ = [
    "ipython_display",
    "is_display_only",
    "live_widget",
    "mark_display_only",
    "metrics_html",
    "plain_text",
    "repr_html",
    "value_html",
]

#: The sinks feeding live displays (kept here as well as by their upstream, for inspection).
_live_displays: set[Any] = set()

#: Nodes that exist only to feed a display (left out of ``visualize()``).
_display_only: weakref.WeakSet[Any] = weakref.WeakSet()

_NOTHING: Any = object()


def mark_display_only(*nodes: Any) -> None:
    """Mark ``nodes`` as feeding a display only: graph drawings leave them out.

    >>> from millstream import Stream
    >>> s = Stream()
    >>> view = s.latest()
    >>> mark_display_only(view)
    >>> is_display_only(view), is_display_only(s)
    (True, False)
    """
    _display_only.update(nodes)


def is_display_only(node: Any) -> bool:
    """Whether ``node`` was put in the graph by a display (see :func:`mark_display_only`)."""
    return node in _display_only


def value_html(value: Any) -> str:
    """A value as HTML: its own ``_repr_html_`` (a pandas table) when it has one, else its
    escaped, shortened repr.

    >>> value_html('<b>')
    '<pre>&#x27;&lt;b&gt;&#x27;</pre>'
    >>> class Table:
    ...     def _repr_html_(self):
    ...         return '<table><tr><td>1</td></tr></table>'
    >>> value_html(Table())
    '<table><tr><td>1</td></tr></table>'
    """
    to_html = getattr(value, "_repr_html_", None)
    if callable(to_html) and not isinstance(value, type):
        try:
            out = to_html()
        except Exception:  # a value whose HTML fails is shown as text
            out = None
        if isinstance(out, str):
            return out
    return f"<pre>{html.escape(short_repr(value, limit=500))}</pre>"


def _metrics_of(node: Any) -> Mapping[str, Any] | None:
    metrics = getattr(node, "metrics", None)
    return metrics if isinstance(metrics, Mapping) and metrics else None


def metrics_html(node: Any) -> str:
    """A small table of ``node.metrics`` (a mapping of names to numbers, without the
    node's ``type`` and ``name`` and the fields without a value); ``''`` when the node has
    no metrics.

    >>> class Counted:
    ...     metrics = {'elements_in': 3, 'errors': 0}
    >>> table = metrics_html(Counted())
    >>> table.startswith("<table class='millstream-metrics'>")
    True
    >>> table.split("'>")[1]
    '<tr><th>elements_in</th><td>3</td></tr><tr><th>errors</th><td>0</td></tr></table>'
    >>> metrics_html(object())
    ''
    """
    metrics = _metrics_of(node)
    if metrics is None:
        return ""
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_metric_text(v))}</td></tr>"
        for k, v in metrics.items()
        if v is not None and k not in ("type", "name")
    )
    return f"<table class='millstream-metrics'>{rows}</table>"


def _metric_text(value: Any) -> str:
    return str(value) if isinstance(value, (int, float, str)) else short_repr(value, limit=80)


def _latest(node: Any, source: Any) -> tuple[Any, bool]:
    """The value to show and whether there is none yet (``node``'s, else ``source``'s)."""
    for n in (node, source):
        if n is not None and (n.current_value is not None or n.current_metadata is not None):
            return n.current_value, False
    return None, True


def repr_html(
    node: Any,
    value: Any = _NOTHING,
    render: Callable[[Any], str] | None = None,
    title: str | None = None,
    metrics: bool = False,
    source: Any = None,
) -> str:
    """HTML for a node: its name (or ``title``) and its latest value (or ``value`` if given),
    shown by ``render(value)`` (an HTML fragment; default :func:`value_html`: a DataFrame
    as its table, anything else as its escaped, shortened repr).

    ``metrics=True`` adds a table of the node's metrics (of ``source``'s when given: the
    node the display stands for, whose latest value is also shown until ``node`` has one).

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
        value, empty = _latest(node, source)
    else:
        empty = False
    shown = "<pre>no value yet</pre>" if empty else (render or value_html)(value)
    if metrics:
        shown += metrics_html(node if source is None else source)
    head = html.escape(str(node) if title is None else title)
    return f"<div class='millstream-node'><b>{head}</b>{shown}</div>"


def plain_text(
    node: Any, title: str | None = None, metrics: bool = False, source: Any = None
) -> str:
    """The ``text/plain`` of a display: the node's name and latest value (and metrics).

    >>> from millstream import Stream
    >>> s = Stream(stream_name='prices')
    >>> s.emit(3)
    >>> plain_text(s)
    '<prices; Stream>: 3'
    """
    value, empty = _latest(node, source)
    text = f"{node if title is None else title}: "
    text += "no value yet" if empty else short_repr(value, limit=200)
    found = _metrics_of(node if source is None else source) if metrics else None
    if found:
        text += "\n" + ", ".join(f"{k}={_metric_text(v)}" for k, v in found.items())
    return text


@lru_cache(maxsize=1)
def _node_view_class() -> type:
    import ipywidgets as widgets

    class NodeView(widgets.HTML):
        """An HTML widget whose output also carries its HTML as ``text/html`` (and a
        ``text/plain``), shown where widgets are not rendered (static renders)."""

        describe: Callable[[], str] | None = None

        def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
            data = dict(super()._repr_mimebundle_(**kwargs) or {})
            data["text/html"] = self.value
            if self.describe is not None:
                data["text/plain"] = self.describe()
            return data

    return NodeView


def live_widget(
    node: Any,
    render: Callable[[Any], str] | None = None,
    title: str | None = None,
    on_detach: Callable[[], Any] | None = None,
    metrics: bool = False,
    source: Any = None,
) -> Any:
    """An ipywidgets ``HTML`` widget showing ``node``'s latest value (and its metrics with
    ``metrics=True``), redrawn for each new value by a sink attached below ``node``.

    Displayed, its output also holds the current HTML as ``text/html`` for static renders.
    The sink is removed (and ``on_detach()`` called) when the widget is closed or when its
    last view goes away. Raises ImportError without ipywidgets.
    """
    import ipywidgets  # noqa: F401  (ImportError without it, even once the class is made)

    output = _node_view_class()(
        value=repr_html(node, render=render, title=title, metrics=metrics, source=source)
    )
    output.describe = lambda: plain_text(node, title, metrics, source)

    def redraw(x: Any) -> None:
        # render the element the sink received: inside fused code the node's
        # ``current_value`` is only updated once the whole element has gone through
        output.value = repr_html(node, x, render, title, metrics, source)

    updater = node.sink(redraw)
    _live_displays.add(updater)
    mark_display_only(updater)

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


class _StaticView:
    """What is displayed without ipywidgets: the node's HTML and plain text, once."""

    def __init__(self, data: str, text: str):
        self.data = data
        self.text = text

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        return {"text/html": self.data, "text/plain": self.text}


def ipython_display(
    node: Any,
    render: Callable[[Any], str] | None = None,
    title: str | None = None,
    on_detach: Callable[[], Any] | None = None,
    metrics: bool = False,
    source: Any = None,
    **kwargs: Any,
) -> None:
    """Show ``node`` in a notebook and keep the view updated as values arrive.

    With ipywidgets, a :func:`live_widget` is displayed; the sink feeding it is removed
    when the widget is closed (or when its last view goes away). Without ipywidgets the
    current HTML is shown once (and ``on_detach()`` called at once). Either way the output
    holds the current value as ``text/html`` and ``text/plain``.
    """
    from IPython.display import display

    try:
        output = live_widget(node, render, title, on_detach, metrics, source)
    except ImportError:
        html_text = repr_html(node, render=render, title=title, metrics=metrics, source=source)
        display(_StaticView(html_text, plain_text(node, title, metrics, source)))
        if on_detach is not None:
            on_detach()
        return
    display(output)
