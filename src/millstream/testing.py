"""The public test kit: helpers for testing millstream pipelines (and millstream itself).

Everything here is importable by users writing tests for their own pipelines:

* :func:`wait_for` / :func:`await_for`: poll a condition with a timeout (blocking / async);
* :class:`TestingSource`: a source that emits a scripted list of items, with in-band
  markers to pause (on the node's clock), crash once, or end a run, and a
  snapshot/restore of its position so a restarted pipeline can resume;
* :func:`run_pipeline`: start a source and block until it has stopped, re-raising its error;
* :class:`metadata`: a node emitting the metadata of each element instead of its value;
* :func:`captured_logger`: capture what a logger writes;
* :class:`ManualClock` and :func:`use_clock` (re-exported): deterministic time.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from .core.clock import ManualClock, use_clock
from .core.state import COUNT, bad_state
from .core.stream import Stream
from .exceptions import TestingAbort
from .sources.base import Source

__all__ = [
    "ManualClock",
    "TestingAbort",
    "TestingSource",
    "await_for",
    "captured_logger",
    "metadata",
    "run_pipeline",
    "use_clock",
    "wait_for",
]


def wait_for(
    predicate: Callable[[], Any],
    timeout: float,
    fail_func: Callable[[], Any] | None = None,
    period: float = 0.001,
) -> None:
    """Block until ``predicate()`` is true; raise ``TimeoutError`` after ``timeout`` seconds.

    ``fail_func`` (if given) is called just before the ``TimeoutError``, to print
    diagnostics.

    Examples
    --------
    >>> import threading
    >>> done = []
    >>> threading.Timer(0.01, done.append, [1]).start()
    >>> wait_for(lambda: done, 5)
    >>> done
    [1]
    >>> wait_for(lambda: False, 0.01)
    Traceback (most recent call last):
    ...
    TimeoutError: condition not reached within 0.01 s
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            if fail_func is not None:
                fail_func()
            raise TimeoutError(f"condition not reached within {timeout} s")
        time.sleep(period)


async def await_for(
    predicate: Callable[[], Any],
    timeout: float,
    fail_func: Callable[[], Any] | None = None,
    period: float = 0.001,
) -> None:
    """Wait (without blocking the event loop) until ``predicate()`` is true.

    Raises ``TimeoutError`` after ``timeout`` seconds of real time, calling
    ``fail_func`` first if given.

    Examples
    --------
    >>> import asyncio
    >>> async def main():
    ...     box = []
    ...     asyncio.get_running_loop().call_later(0.01, box.append, 'ready')
    ...     await await_for(lambda: box, 5)
    ...     return box
    >>> asyncio.run(main())
    ['ready']
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            if fail_func is not None:
                fail_func()
            raise TimeoutError(f"condition not reached within {timeout} s")
        await asyncio.sleep(period)


class _Marker:
    __slots__ = ()

    def _key(self) -> tuple[Any, ...]:
        return ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self), self._key()))


class _Pause(_Marker):
    """Wait ``seconds`` on the source's clock before going on."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float):
        self.seconds = float(seconds)

    def _key(self) -> tuple[Any, ...]:
        return (self.seconds,)

    def __repr__(self) -> str:
        return f"TestingSource.PAUSE({self.seconds!r})"


class _Abort(_Marker):
    """Raise :class:`TestingAbort` in the source, once."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TestingSource.ABORT()"


class _Eof(_Marker):
    """End this run of the source; ``start()`` again continues after the marker."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TestingSource.EOF()"


class TestingSource(Source):
    """A source that emits a scripted list of items, for tests.

    Items are emitted in order, each one awaited downstream (backpressure) before
    the next. Three in-band markers script the run:

    * ``TestingSource.PAUSE(seconds)`` waits on ``self.clock`` (a :class:`ManualClock`
      makes the pause last until the test advances time);
    * ``TestingSource.ABORT()`` raises :class:`TestingAbort` inside the source, which
      stops it with :attr:`error` set (a crash injection); ``start()`` again continues
      after the marker, so each ``ABORT`` fires once;
    * ``TestingSource.EOF()`` ends this run cleanly; ``start()`` again continues after it.

    :meth:`snapshot` is the index of the next item to process (an item counts as
    processed once downstream has absorbed it), and :meth:`restore` sets it, so a
    pipeline rebuilt from a snapshot resumes where the old one stopped.
    Also available as ``Stream.from_testing(items, **kwargs)``.

    Parameters
    ----------
    items : iterable
        The items and markers (taken into a list at construction).
    **kwargs
        Passed to :class:`~millstream.sources.Source` (``start``, ``asynchronous``,
        ``clock``, ``stream_name``...).

    Examples
    --------
    >>> source = TestingSource([1, 2, TestingSource.ABORT(), 3, TestingSource.EOF(), 4])
    >>> L = source.map(lambda x: x * 10).sink_to_list()
    >>> run_pipeline(source)
    Traceback (most recent call last):
    ...
    millstream.exceptions.TestingAbort: injected failure at item 2 of <TestingSource>
    >>> L, source.snapshot()
    ([10, 20], 3)
    >>> run_pipeline(source)
    >>> L, source.snapshot()
    ([10, 20, 30], 5)
    >>> run_pipeline(source)
    >>> L
    [10, 20, 30, 40]
    """

    __test__ = False

    PAUSE = _Pause
    ABORT = _Abort
    EOF = _Eof

    def __init__(self, items: Iterable[Any], **kwargs: Any):
        self.items = list(items)
        self.index = 0
        super().__init__(**kwargs)

    @property
    def done(self) -> bool:
        """True once every item has been processed."""
        return self.index >= len(self.items)

    async def run(self) -> None:
        items = self.items
        try:
            while not self.stopped and self.index < len(items):
                item = items[self.index]
                kind = type(item)
                if kind is _Pause:
                    await self.clock.sleep(item.seconds)
                    self.index += 1
                elif kind is _Abort:
                    at = self.index
                    self.index += 1
                    raise TestingAbort(f"injected failure at item {at} of {self}")
                elif kind is _Eof:
                    self.index += 1
                    break
                else:
                    await self._wait_if_held()
                    pending = self._emit(item)
                    self.index += 1  # before the await: a checkpoint there counts it emitted
                    if pending:
                        await self._absorb(pending)
                    await asyncio.sleep(0)  # let stop() and other tasks in
        finally:
            self.stopped = True

    def snapshot(self) -> int:
        """The index of the next item to process."""
        return self.index

    def restore(self, state: int) -> None:
        """Continue from item ``state`` on the next ``start()``."""
        if not COUNT(state):
            raise bad_state(self, state, "expected the index of the next item (an int >= 0)")
        self.index = state

    def __str__(self) -> str:
        return f"<{self.name}; TestingSource>" if self.name else "<TestingSource>"

    __repr__ = __str__


Stream.register_api(staticmethod, attribute_name="from_testing")(TestingSource)


def run_pipeline(source: Source, timeout: float = 10) -> None:
    """Start ``source`` and block until it has stopped; re-raise its error if it failed.

    Call it from the test's thread (not from the event loop). Raises ``TimeoutError``
    if the source is still running after ``timeout`` seconds.

    Examples
    --------
    >>> source = TestingSource(['a', 'b'])
    >>> L = source.sink_to_list()
    >>> run_pipeline(source)
    >>> L, source.stopped
    (['a', 'b'], True)
    """
    previous = source.work_task if source.stopped else None
    source.start()

    def finished() -> bool:
        task = source.work_task
        return source.stopped and task is not None and task is not previous and task.done()

    wait_for(finished, timeout)
    if source.error is not None:
        raise source.error


class metadata(Stream):
    """A node that emits each element's metadata list instead of its value.

    Elements without metadata emit nothing; the emitted list carries no metadata
    itself, so it holds no ref (as Streamz's test helper of the same name).

    Examples
    --------
    >>> source = Stream()
    >>> L = metadata(source).sink_to_list()
    >>> source.emit(1, metadata=[{'v': 1}]); source.emit(2)
    >>> L
    [[{'v': 1}]]
    """

    __test__ = False

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        if metadata:
            return self._emit(metadata)
        return None


@contextlib.contextmanager
def captured_logger(
    name: str | logging.Logger, level: int = logging.INFO, propagate: bool | None = None
) -> Iterator[io.StringIO]:
    """Capture what logger ``name`` writes at ``level`` and above into a ``StringIO``.

    The logger's level (and, if ``propagate`` is given, its ``propagate`` flag) is
    restored on exit.

    Examples
    --------
    >>> with captured_logger('millstream.example') as out:
    ...     logging.getLogger('millstream.example').warning('careful')
    >>> out.getvalue()
    'careful\\n'
    """
    logger = name if isinstance(name, logging.Logger) else logging.getLogger(name)
    old_level, old_propagate = logger.level, logger.propagate
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setLevel(level)
    logger.addHandler(handler)
    logger.setLevel(level)
    if propagate is not None:
        logger.propagate = propagate
    try:
        yield buffer
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        logger.propagate = old_propagate
