"""The core sinks: ``sink``, ``sink_to_list``, ``sink_to_textfile``.

A sink is held by its upstream like every node (the graph owns its nodes), so it
stays alive without the global registry Streamz needs; ``_global_sinks`` is kept,
for code that inspects it, and emptied by ``destroy()``.
"""

from __future__ import annotations

import functools
import inspect
import types
from collections.abc import Callable
from typing import Any

from .._utils import annotate_error, check_callable
from ..core.awaitables import release_refs_after
from ..core.errors import ErrorCounts, ErrorPolicy, error_policy
from ..core.fusion import Stage
from ..core.refs import retain_refs
from ..core.stream import Stream, fused_attribute

__all__ = ["Sink", "_global_sinks", "sink", "sink_to_list"]

_global_sinks: set[Stream] = set()

_STREAM_PARAMS = frozenset(inspect.signature(Stream.__init__).parameters) - {"self", "upstream"}


class Sink(Stream):
    """Base class of sinks: nodes that consume elements and emit nothing."""

    _graphviz_shape = "trapezium"

    def __init__(self, upstream: Stream, **kwargs: Any):
        super().__init__(upstream, **kwargs)
        _global_sinks.add(self)

    def destroy(self, streams: Any = None) -> None:
        super().destroy(streams)
        _global_sinks.discard(self)


def _returns_none(func: Any) -> bool:
    """True for functions known to return None (``list.append``), so fused code skips a check."""
    return (
        type(func) is types.BuiltinMethodType
        and type(getattr(func, "__self__", None)) is list
        and func.__name__ == "append"
    )


@Stream.register_api()
class sink(Sink):
    """Call ``func(x, *args, **kwargs)`` on each element; emit nothing.

    Keyword arguments naming ``Stream`` parameters (``stream_name``…) configure the node;
    the others go to ``func``. If ``func`` returns an awaitable it is handed back as
    backpressure, and the element's refs are held until it has finished. The writes of
    an ``async def`` function not finished yet are the ``backlog`` of its metrics.

    Examples
    --------
    >>> source = Stream()
    >>> source.sink(print, end='!\\n')
    <sink: print>
    >>> source.emit(1)
    1!
    """

    func = fused_attribute()

    def __init__(self, upstream: Stream, func: Callable[..., Any], *args: Any, **kwargs: Any):
        check_callable("sink", "func", func)
        self._func = func
        self.error_policy = error_policy("sink", kwargs.pop("on_error", "raise"), sink=True)
        #: the elements this sink gave up on, and its retries (see :mod:`millstream.core.errors`)
        self.errors = self.error_policy.counts if self.error_policy else ErrorCounts()
        stream_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _STREAM_PARAMS}
        self.args = args
        self.kwargs = kwargs
        self._writes = 0  # awaitables func returned that have not finished
        super().__init__(upstream, **stream_kwargs)

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the asynchronous writes not finished (None for a plain function)."""
        if self._writes or inspect.iscoroutinefunction(self._func):
            return {"backlog": self._writes}
        return {}

    async def _written(self, pending: Any) -> Any:
        try:
            return await pending
        finally:
            self._writes -= 1

    def _counting(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` (an ``async def`` function) counting its calls not finished."""
        written = self._written

        @functools.wraps(func)
        def write(*args: Any, **kwargs: Any) -> Any:
            pending = func(*args, **kwargs)
            self._writes += 1
            return written(pending)

        return write

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        try:
            result = self._func(x, *self.args, **self.kwargs)
        except Exception as e:
            annotate_error(e, self, self._func, x)
            policy = self.error_policy
            if policy is not None:
                return self._apply_policy(policy, e, x, metadata)
            raise
        if result is not None and inspect.isawaitable(result):
            self._writes += 1
            result = self._written(result)
            if self.error_policy is not None:
                return self.error_policy.awaiting(
                    self, result, x, metadata, self._call_with(x), self._func
                )
            if metadata:
                retain_refs(metadata)
                return release_refs_after(result, metadata, self, x=x)
            return result
        return []

    def _call_with(self, x: Any) -> Callable[[], Any]:
        return lambda: self._func(x, *self.args, **self.kwargs)

    def _apply_policy(
        self, policy: ErrorPolicy, error: Exception, x: Any, metadata: list[dict] | None
    ) -> Any:
        if policy.action == "retry":
            return policy.retrying(self, error, x, metadata, self._call_with(x), self._func)
        return policy.handle(self, error, x, metadata, self._func)

    _fusion_update = update

    def _fusion_stage(self) -> Stage | None:
        if self.error_policy is not None:
            return None  # the policy runs on the per-element path
        func = self._func
        if inspect.iscoroutinefunction(func):
            return Stage("sink", self._counting(func), self.args, self.kwargs, user_func=func)
        return Stage("sink", func, self.args, self.kwargs, returns_none=_returns_none(func))


def sink_to_list(upstream: Stream) -> list[Any]:
    """Append every element to a new list and return the list.

    Examples
    --------
    >>> source = Stream()
    >>> L = source.sink_to_list()
    >>> source.emit('a'); source.emit('b')
    >>> L
    ['a', 'b']
    """
    collected: list[Any] = []
    sink(upstream, collected.append)
    return collected


Stream.register_api()(sink_to_list)
