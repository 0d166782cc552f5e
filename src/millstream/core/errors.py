"""What a node does when the user's function raises: the ``on_error=`` policy.

The nodes that call a user function (``map``, ``starmap``, ``filter``, ``remove``,
``accumulate``, ``flatten`` for its input, ``sink``) accept ``on_error=``:

* ``'raise'`` (default): the error propagates, as in Streamz; nothing changes and the
  node stays fusible, so the hot path costs nothing extra;
* ``'skip'``: the element is dropped and counted in ``node.errors``; the first error of
  each kind (type and node) is logged at WARNING on ``millstream.core``; its refs are
  released as done, so a Kafka source commits past it;
* a :class:`~millstream.core.stream.Stream`: a :class:`DeadLetter` describing the
  element and the error is emitted into it with the element's metadata, so the
  element's refs are released as done once the dead-letter stream's downstream has
  absorbed the letter;
* ``'retry'`` or a :class:`Retry` (sinks only): call again after a backoff, then fall
  back to raising or to a dead-letter stream.

A node with a policy other than ``'raise'`` opts out of fusion (its ``_fusion_stage``
returns None): it runs on the per-element path, where metadata (Kafka positions) is kept.

Examples
--------
>>> from millstream import Stream
>>> source = Stream()
>>> dead = Stream()
>>> letters = dead.sink_to_list()
>>> out = source.map(int, on_error=dead).sink_to_list()
>>> for x in ['1', 'two', '3']:
...     source.emit(x)
>>> out, [(d.element, d.error_type, d.node) for d in letters]
([1, 3], [('two', 'ValueError', '<map: int>')])
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import traceback
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .awaitables import await_all
from .refs import Metadata, release_refs, retain_refs

if TYPE_CHECKING:
    from .stream import Stream

__all__ = ["DeadLetter", "ErrorCounts", "ErrorPolicy", "Retry", "error_policy"]

logger = logging.getLogger("millstream.core")


@dataclass(frozen=True)
class DeadLetter:
    """An element a node gave up on, and why: what a dead-letter stream receives.

    ``element`` is the element exactly as it arrived at the node (for a node right after
    ``from_kafka(keys=True)``, the record dict with its key, value and headers bytes
    unchanged; after ``from_kafka``, the value bytes). ``positions`` are the element's
    metadata without its refs: for a Kafka source, ``topic``, ``partition`` and ``offset``
    of the record(s) it came from. ``error`` is the exception itself (not compared).

    >>> letter = DeadLetter('x', 'ValueError', 'bad', '', '<map: int>', 'int')
    >>> letter.element, letter.positions
    ('x', ())
    """

    element: Any
    error_type: str
    error_message: str
    traceback: str
    node: str
    function: str | None
    positions: tuple[dict[str, Any], ...] = ()
    error: BaseException | None = field(default=None, compare=False, repr=False)

    @property
    def record(self) -> Any:
        """The element if it is a Kafka record (a dict with ``value`` and ``offset``), else None."""
        x = self.element
        return x if isinstance(x, dict) and "value" in x and "offset" in x else None


@dataclass(frozen=True)
class Retry:
    """Retry a failing sink call: ``retries`` more tries, waiting ``backoff * 2**i`` seconds
    (at most ``max_backoff``) before try ``i + 1``; then ``then``: ``'raise'``, ``'skip'``
    or a dead-letter stream.

    >>> Retry(retries=3, backoff=0.1, max_backoff=0.25).delays()
    [0.1, 0.2, 0.25]
    """

    retries: int = 3
    backoff: float = 0.1
    max_backoff: float = 5.0
    then: Any = "raise"

    def delays(self) -> list[float]:
        """The waits before each retry, in seconds."""
        return [min(self.backoff * 2**i, self.max_backoff) for i in range(self.retries)]


class ErrorCounts:
    """How many elements a node gave up on: ``total``, per exception type name in
    ``by_type``, and how many were ``skipped``, ``dead_lettered`` and ``retried`` (calls).

    >>> c = ErrorCounts(); c.total, dict(c.by_type)
    (0, {})
    """

    def __init__(self) -> None:
        self.total = 0
        self.skipped = 0
        self.dead_lettered = 0
        self.retried = 0
        self.by_type: Counter[str] = Counter()

    def __repr__(self) -> str:
        return (
            f"<ErrorCounts total={self.total} skipped={self.skipped} "
            f"dead_lettered={self.dead_lettered} retried={self.retried}>"
        )


def _func_name(func: Any) -> str | None:
    if func is None:
        return None
    return getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)


def _positions(metadata: Metadata | None) -> tuple[dict[str, Any], ...]:
    """The element's metadata without its refs (a Kafka source's topic, partition, offset)."""
    return tuple(
        {k: v for k, v in m.items() if k != "ref"} for m in metadata or () if type(m) is dict
    )


class ErrorPolicy:
    """A node's ``on_error`` policy other than ``'raise'`` (made by :func:`error_policy`)."""

    def __init__(self, action: str, dead_letters: Stream | None = None, retry: Retry | None = None):
        self.action = action  # 'skip', 'dead_letter' or 'retry'
        self.dead_letters = dead_letters
        self.retry = retry
        self.counts = ErrorCounts()
        self._logged: set[str] = set()

    def __repr__(self) -> str:
        return f"<ErrorPolicy {self.action}>"

    def handle(
        self, node: Any, error: Exception, x: Any, metadata: Metadata | None, func: Any
    ) -> list[Any]:
        """Give up on ``x`` after ``error``: skip it or dead-letter it; return the awaitables
        the dead-letter stream gave back (the caller returns them from ``update``)."""
        return self.give_up(self.action, self.dead_letters, node, error, x, metadata, func)

    def give_up(
        self,
        action: str,
        dead_letters: Stream | None,
        node: Any,
        error: Exception,
        x: Any,
        metadata: Metadata | None,
        func: Any,
    ) -> list[Any]:
        """Skip (``action == 'skip'``) or dead-letter ``x`` into ``dead_letters``."""
        counts = self.counts
        kind = type(error).__name__
        counts.total += 1
        counts.by_type[kind] += 1
        if action == "skip":
            counts.skipped += 1
            if kind not in self._logged:
                self._logged.add(kind)
                logger.warning(
                    "%s: skipping elements whose %s raises %s (first: %s); counted in "
                    "node.errors, logged once per kind",
                    node,
                    _func_name(func) or "processing",
                    kind,
                    error,
                )
            return []
        counts.dead_lettered += 1
        assert dead_letters is not None
        letter = DeadLetter(
            element=x,
            error_type=kind,
            error_message=str(error),
            traceback="".join(traceback.format_exception(error)),
            node=str(node),
            function=_func_name(func),
            positions=_positions(metadata),
            error=error,
        )
        return dead_letters._emit(letter, metadata=metadata)

    def retrying(
        self,
        node: Any,
        error: Exception,
        x: Any,
        metadata: Metadata | None,
        call: Callable[[], Any],
        func: Any,
    ) -> Awaitable[Any]:
        """An awaitable that calls ``call()`` again after each backoff until it succeeds,
        then falls back to ``retry.then``; it holds ``x``'s refs until it has finished."""
        retain_refs(metadata)
        return self._retry(node, error, x, metadata, call, func)

    async def _retry(
        self,
        node: Any,
        error: Exception,
        x: Any,
        metadata: Metadata | None,
        call: Callable[[], Any],
        func: Any,
    ) -> None:
        retry = self.retry
        assert retry is not None
        try:
            for delay in retry.delays():
                await asyncio.sleep(delay)
                self.counts.retried += 1
                try:
                    result = call()
                    if result is not None and inspect.isawaitable(result):
                        await result
                    break
                except Exception as e:
                    error = e
            else:
                then = retry.then
                if isinstance(then, str) and then == "raise":
                    raise error
                action = "skip" if isinstance(then, str) else "dead_letter"
                pending = self.give_up(
                    action, None if action == "skip" else then, node, error, x, metadata, func
                )
                if pending:
                    await await_all(pending)
        except BaseException as e:
            release_refs(metadata, error=e)
            raise
        release_refs(metadata)

    def awaiting(
        self,
        node: Any,
        pending: Awaitable[Any],
        x: Any,
        metadata: Metadata | None,
        call: Callable[[], Any],
        func: Any,
    ) -> Awaitable[None]:
        """An awaitable that awaits what an async sink returned and, if that raises, applies
        the policy; it holds ``x``'s refs until it has finished."""
        retain_refs(metadata)
        return self._await(node, pending, x, metadata, call, func)

    async def _await(
        self,
        node: Any,
        pending: Awaitable[Any],
        x: Any,
        metadata: Metadata | None,
        call: Callable[[], Any],
        func: Any,
    ) -> None:
        try:
            try:
                await pending
            except Exception as e:
                if self.action == "retry":
                    await self.retrying(node, e, x, metadata, call, func)
                else:
                    more = self.handle(node, e, x, metadata, func)
                    if more:
                        await await_all(more)
        except BaseException as e:
            release_refs(metadata, error=e)
            raise
        release_refs(metadata)


def error_policy(node_name: str, on_error: Any, sink: bool = False) -> ErrorPolicy | None:
    """Check an ``on_error=`` argument; None for ``'raise'`` (nothing changes).

    >>> error_policy('map', 'raise') is None, error_policy('map', 'skip')
    (True, <ErrorPolicy skip>)
    >>> error_policy('map', 'retry')
    Traceback (most recent call last):
    ...
    ValueError: map: on_error='retry' is for sinks; ...
    """
    from .stream import Stream

    if isinstance(on_error, str):
        if on_error == "raise":
            return None
        if on_error == "skip":
            return ErrorPolicy("skip")
        if on_error == "retry":
            on_error = Retry()
    if isinstance(on_error, Stream):
        return ErrorPolicy("dead_letter", dead_letters=on_error)
    if isinstance(on_error, Retry):
        if not sink:
            raise ValueError(
                f"{node_name}: on_error='retry' is for sinks; use 'raise', 'skip' or a "
                "dead-letter Stream"
            )
        then = on_error.then
        if not (isinstance(then, Stream) or (isinstance(then, str) and then in ("raise", "skip"))):
            raise ValueError(
                f"{node_name}: Retry(then=...) must be 'raise', 'skip' or a dead-letter Stream, "
                f"got {then!r}"
            )
        if on_error.retries < 0 or on_error.backoff < 0:
            raise ValueError(f"{node_name}: Retry needs retries >= 0 and backoff >= 0")
        return ErrorPolicy("retry", retry=on_error)
    allowed = "'raise', 'skip', 'retry', Retry(...)" if sink else "'raise', 'skip'"
    raise ValueError(
        f"{node_name}: on_error must be {allowed} or a dead-letter Stream, got {on_error!r}"
    )
