"""The stream graph and its push protocol.

A node is a :class:`Stream`. Building a node wires it into the graph: it appends
itself to each upstream's ``downstreams``. Data moves by ``upstream._emit(x,
metadata)``, which calls ``downstream.update(x, who=upstream, metadata=metadata)``
on each downstream in creation order, depth first, in the calling thread, and
returns the awaitables they gave back. Those awaitables are the backpressure
signal: sources and ``await stream.emit(x)`` wait on them.

Speed: when a node's downstream graph is made of stateless (or simple stateful)
nodes that declare a fusion stage, :mod:`millstream.core.fusion` compiles it into
one Python function with one statement per stage. Elements still go through the
whole graph one at a time, in the same order, so results, side effects and errors
are exactly those of the per-element path.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .._utils import identity
from .awaitables import DONE, await_all, run_awaitables
from .clock import Clock, get_default_clock
from .emit_future import EmitFuture
from .loop import get_io_loop, in_loop_thread, sync, thread_state
from .refs import release_refs, retain_refs
from .sampling import TIMING, perf_counter
from .state import bad_state

if TYPE_CHECKING:
    # The methods the layers above register on Stream, for type checkers only (never
    # imported at run time: core imports nothing above it; tests/test_architecture.py).
    from .._stream_methods import StreamMethods
    from .fusion import CompiledGraph
    from .hold import Hold
else:
    StreamMethods = object

__all__ = ["Stream", "fused_attribute", "graph_changed", "graph_version"]

logger = logging.getLogger("millstream.core")

T = TypeVar("T")
"""Type of a registered node class or function."""

_graph_version = [0]
_version_counter = itertools.count(1)


def graph_version() -> int:
    """The current topology version: it changes whenever any graph's edges change, so a
    value cached with it (a compiled graph, a list of watermark sources) is stale once
    this returns something else.

    >>> v = graph_version(); graph_changed(); graph_version() != v
    True
    """
    return _graph_version[0]


def graph_changed() -> None:
    """Invalidate every compiled (fused) graph: call after changing the topology.

    ``next()`` on a counter is atomic, so concurrent changes from two threads never
    collapse into one version.
    """
    _graph_version[0] = next(_version_counter)


class fused_attribute:
    """A node attribute that fused code copies at compile time: setting it re-fuses the graph.

    >>> class node:
    ...     func = fused_attribute()
    >>> n = node(); n.func = abs; n.func
    <built-in function abs>
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self._slot = "_" + name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self if obj is None else getattr(obj, self._slot)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj, self._slot, value)
        graph_changed()


class Stream(StreamMethods):
    """A node of a stream graph; ``Stream()`` alone is a source you push into with ``emit``.

    Parameters
    ----------
    upstream, upstreams : Stream or list of Stream, optional
        The node(s) feeding this one.
    stream_name : str, optional
        A name shown in ``str()`` and in graphs.
    loop : optional
        The event loop of the graph (an :class:`~millstream.core.loop.EventLoop`, or any
        object with the tornado IOLoop methods).
    asynchronous : bool, optional
        True if the caller runs in an event loop and will ``await stream.emit(x)``.
    ensure_io_loop : bool
        Give the graph a loop (the background thread loop unless ``asynchronous``).
    clock : Clock, optional
        Processing-time clock for time-based nodes (default: the process default clock).

    Examples
    --------
    >>> source = Stream()
    >>> L = source.map(lambda x: x + 1).sink_to_list()
    >>> for i in range(3):
    ...     source.emit(i)
    >>> L
    [1, 2, 3]
    """

    _graphviz_shape = "ellipse"
    _graphviz_style = "rounded,filled"
    _graphviz_fillcolor = "white"
    _graphviz_orientation = 0

    str_list = ["func", "predicate", "n", "interval"]

    #: The protected methods a node class in another package may call or override: the
    #: push protocol (``_emit``, ``_emit_batch``, ``_downstream_fully_fused``), the edges
    #: (``_add_upstream`` ... ``_remove_downstream``, overridden by nodes with per-input
    #: state), refs (``_retain_refs``, ``_release_refs``), as in Streamz, and
    #: ``_fusion_stage()``, which a node defines to run in fused code
    #: (:mod:`millstream.core.fusion`). Every other underscore name of a node is private to
    #: its package (tests/test_architecture.py).
    extension_points: tuple[str, ...] = (
        "_fusion_stage",
        "_emit",
        "_emit_batch",
        "_downstream_fully_fused",
        "_add_upstream",
        "_remove_upstream",
        "_add_downstream",
        "_remove_downstream",
        "_retain_refs",
        "_release_refs",
    )

    _compiled: CompiledGraph | None = None
    _compiled_version = -1
    #: How many elements this node has emitted (``_emit`` counts one per call; fused code
    #: counts the nodes inside it per block and adds them up after each batch): the
    #: ``elements_out`` of :attr:`metrics`, and, summed over a node's upstreams, its
    #: ``elements_in``.
    elements_emitted: int = 0
    #: Sampled processing time (:mod:`millstream.core.sampling`): seconds spent in this
    #: node's ``update`` on the timed elements, how many, and the part of those seconds
    #: spent in the ``update`` of its downstreams.
    timed_seconds: float = 0.0
    timed_elements: int = 0
    timed_downstream_seconds: float = 0.0
    #: Errors this node's function raised (each counted once, by the node that annotated
    #: it), whether an ``on_error`` policy then handled it or it propagated.
    errors_raised: int = 0
    #: Set by a checkpoint coordinator on the nodes that await in the middle of an
    #: element (sources, buffers, Dask nodes): see :mod:`millstream.core.hold`
    hold: Hold | None = None

    def __init__(
        self,
        upstream: Stream | None = None,
        upstreams: Iterable[Stream] | None = None,
        stream_name: str | None = None,
        loop: Any = None,
        asynchronous: bool | None = None,
        ensure_io_loop: bool = False,
        clock: Clock | None = None,
    ):
        self.name = stream_name
        self.downstreams: list[Stream] = []
        self.current_value: Any = None
        self.current_metadata: list[dict[str, Any]] | None = None
        self._clock = clock
        if upstreams is not None:
            self.upstreams: list[Stream] = list(upstreams)
        elif upstream is not None:
            self.upstreams = [upstream]
        else:
            self.upstreams = []
        self.loop: Any = None
        self.asynchronous: bool | None = None
        self._set_asynchronous(asynchronous)
        self._set_loop(loop)
        if ensure_io_loop and self.loop is None and self.asynchronous is None:
            self._set_asynchronous(False)
        if self.loop is None and self.asynchronous is not None:
            self._set_loop(get_io_loop(self.asynchronous))
        for u in self.upstreams:
            if u is not None:
                u._add_downstream(self)

    # -- registration -----------------------------------------------------------------
    @classmethod
    def register_api(
        cls, modifier: Callable[[Any], Any] = identity, attribute_name: str | None = None
    ) -> Callable[[T], T]:
        """Attach a node class (or function) to this class as a method.

        ``@Stream.register_api()`` on ``class double(Stream)`` makes ``source.double(...)``
        mean ``double(source, ...)``; sources use ``register_api(staticmethod)``.

        Examples
        --------
        >>> @Stream.register_api()
        ... class plus_one(Stream):
        ...     '''Add one to each element.'''
        ...     def update(self, x, who=None, metadata=None):
        ...         return self._emit(x + 1, metadata=metadata)
        >>> s = Stream()
        >>> L = s.plus_one().sink_to_list()
        >>> s.emit(1)
        >>> L, Stream.plus_one.__name__
        ([2], 'plus_one')
        >>> del Stream.plus_one
        """

        def register(func: T) -> T:
            @functools.wraps(func)  # type: ignore[arg-type]
            def wrapped(*args: Any, **kwargs: Any) -> Any:
                return func(*args, **kwargs)  # type: ignore[operator]

            setattr(cls, attribute_name or func.__name__, modifier(wrapped))  # type: ignore[attr-defined]
            return func

        return register

    @classmethod
    def register_plugin_entry_point(
        cls, entry_point: Any, modifier: Callable[[Any], Any] = identity
    ) -> None:
        """Register a lazily loaded node from an entry point (see ``millstream.core.plugins``):
        its class is imported, and checked to be a ``Stream`` subclass, on first use."""
        if hasattr(cls, entry_point.name):
            raise ValueError(
                f"Can't add {entry_point.name} from {entry_point.module} to {cls.__name__}: "
                "duplicate method name."
            )

        def load() -> Any:
            from .plugins import load_plugin_class

            return load_plugin_class(entry_point, Stream)

        cls._register_on_first_use(entry_point.name, load, modifier, "stub")

    @classmethod
    def register_lazy(
        cls,
        name: str,
        target: str,
        modifier: Callable[[Any], Any] = identity,
        missing: str | None = None,
    ) -> None:
        """Attach ``target`` (``'package.module:attribute'``, a node class or a function
        taking the upstream first) as the method ``name``, importing its module on first use.

        This is how a layer above core whose dependencies are heavy (``scatter`` needs
        dask) puts its methods on ``Stream`` without ``import millstream`` importing it.
        If the module cannot be imported, the call raises ``ImportError``: with
        ``missing`` as its one-line message when given (e.g. the install command),
        else the module's own error.

        Examples
        --------
        >>> Stream.register_lazy('as_fraction', 'fractions:Fraction')
        >>> 'fractions' in Stream.as_fraction.__doc__
        True
        >>> Stream.as_fraction(3, 4)   # the module is imported now, the method replaced
        Fraction(3, 4)
        >>> del Stream.as_fraction
        """
        module_name, _, attribute = target.partition(":")

        def load() -> Any:
            import importlib

            try:
                module = importlib.import_module(module_name)
            except ImportError as e:
                if missing is None:
                    raise
                raise ImportError(f"Stream.{name}() needs {missing}") from e
            return getattr(module, attribute)

        cls._register_on_first_use(
            name, load, modifier, name, f"``{target}``, imported on first use."
        )

    @classmethod
    def _register_on_first_use(
        cls,
        name: str,
        load: Callable[[], Any],
        modifier: Callable[[Any], Any],
        stub_name: str,
        doc: str | None = None,
    ) -> None:
        """Attach a stub as the method ``name``: its first call runs ``load()`` (the node
        class or function), registers that in its place and calls it (plugins, lazy layers)."""

        def stub(*args: Any, **kwargs: Any) -> Any:
            func = load()
            if cls.__dict__.get(name) is registered:  # not replaced meanwhile
                cls.register_api(modifier=modifier, attribute_name=name)(func)
            return func(*args, **kwargs)

        stub.__name__ = stub.__qualname__ = stub_name
        stub.__doc__ = doc
        registered = modifier(stub)
        setattr(cls, name, registered)

    # -- graph ------------------------------------------------------------------------
    @property
    def upstream(self) -> Stream | None:
        """The single upstream (``None`` if none; ``ValueError`` if several)."""
        if len(self.upstreams) > 1:
            raise ValueError("Stream has multiple upstreams")
        return self.upstreams[0] if self.upstreams else None

    @property
    def clock(self) -> Clock:
        """The processing-time clock this node uses: the one given, else the process default
        at the time of the call. Time-based nodes pin the default they were built with by
        ``self.clock = self.clock``."""
        return self._clock if self._clock is not None else get_default_clock()

    @clock.setter
    def clock(self, clock: Clock | None) -> None:
        self._clock = clock

    def _add_upstream(self, upstream: Stream) -> None:
        """Add ``upstream`` to this node's upstreams (nodes with per-input state override)."""
        self.upstreams.append(upstream)
        graph_changed()

    def _remove_upstream(self, upstream: Stream) -> None:
        self.upstreams.remove(upstream)
        graph_changed()

    def _add_downstream(self, downstream: Stream) -> None:
        if self.loop is not None:
            downstream._inform_loop(self.loop)
        elif downstream.loop is not None:
            self._inform_loop(downstream.loop)
        if self.asynchronous:
            downstream._inform_asynchronous(self.asynchronous)
        elif downstream.asynchronous:
            self._inform_asynchronous(downstream.asynchronous)
        if any(d is downstream for d in self.downstreams):
            return  # one edge per pair of nodes, as in Streamz (``zip(a, a)``, a repeated connect)
        self.downstreams.append(downstream)
        graph_changed()

    def _remove_downstream(self, downstream: Stream) -> None:
        for i, d in enumerate(self.downstreams):
            if d is downstream:
                del self.downstreams[i]
                graph_changed()
                return
        raise ValueError(f"{downstream} is not a downstream of {self}")

    def connect(self, downstream: Stream) -> None:
        """Add an edge from this node to ``downstream``.

        >>> a, b = Stream(), Stream()
        >>> L = b.sink_to_list()
        >>> a.connect(b); a.emit(1); a.disconnect(b); a.emit(2)
        >>> L
        [1]
        """
        self._add_downstream(downstream)
        downstream._add_upstream(self)

    def disconnect(self, downstream: Stream) -> None:
        """Remove the edge from this node to ``downstream``."""
        self._remove_downstream(downstream)
        downstream._remove_upstream(self)

    def destroy(self, streams: Iterable[Stream] | None = None) -> None:
        """Detach this node from all (or the given) upstreams."""
        for upstream in list(self.upstreams if streams is None else streams):
            if self in upstream.downstreams:
                upstream._remove_downstream(self)
            if upstream in self.upstreams:
                self._remove_upstream(upstream)

    def _set_loop(self, loop: Any) -> None:
        if loop is not None:
            self._inform_loop(loop)
        else:
            for u in self.upstreams:
                if u is not None and u.loop is not None:
                    self._inform_loop(u.loop)
                    break

    def _inform_loop(self, loop: Any) -> None:
        """Percolate ``loop`` through every connected node."""
        pending: list[Stream] = [self]
        while pending:
            node = pending.pop()
            if node.loop is not None:
                if node.loop is not loop:
                    raise ValueError("Two different event loops active")
                continue
            node.loop = loop
            pending.extend(u for u in node.upstreams if u is not None)
            pending.extend(node.downstreams)

    def _set_asynchronous(self, asynchronous: bool | None) -> None:
        if asynchronous is not None:
            self._inform_asynchronous(asynchronous)
        else:
            for u in self.upstreams:
                if u is not None and u.asynchronous:
                    self._inform_asynchronous(u.asynchronous)
                    break

    def _inform_asynchronous(self, asynchronous: bool) -> None:
        """Percolate the ``asynchronous`` flag through every connected node."""
        pending: list[Stream] = [self]
        while pending:
            node = pending.pop()
            if node.asynchronous is not None:
                if node.asynchronous != asynchronous:
                    raise ValueError("Stream has both asynchronous and synchronous elements")
                continue
            node.asynchronous = asynchronous
            pending.extend(u for u in node.upstreams if u is not None)
            pending.extend(node.downstreams)

    # -- pushing data -------------------------------------------------------------------
    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        """Receive ``x`` from upstream ``who``; the base node passes it on unchanged."""
        return self._emit(x, metadata=metadata)

    def _emit(self, x: Any, metadata: list[dict] | None = None) -> list[Any]:
        """Push ``x`` to every downstream, depth first; return the awaitables they gave back.

        In a sampling window (:mod:`millstream.core.sampling`) the per-element path is
        taken, with each downstream's ``update`` timed."""
        self.elements_emitted += 1
        self.current_value = x
        self.current_metadata = metadata
        timed = TIMING[0]
        if metadata is None and not timed:
            compiled = self._compiled
            if self._compiled_version != _graph_version[0]:
                compiled = self._compile()
            if compiled is not None:
                return compiled.one(x)
        downstreams = self.downstreams
        if not downstreams:
            return []
        if metadata:
            retain_refs(metadata, len(downstreams))
        result: list[Any] = []
        remaining = len(downstreams)
        started = 0.0
        for downstream in tuple(downstreams):
            if timed:
                started = perf_counter()
            try:
                r = downstream.update(x, self, metadata)
            except BaseException as e:
                if metadata:
                    release_refs(metadata, remaining, error=e)
                raise
            finally:
                if timed:
                    took = perf_counter() - started
                    downstream.timed_seconds += took
                    downstream.timed_elements += 1
                    self.timed_downstream_seconds += took
            remaining -= 1
            if metadata:
                release_refs(metadata)
            if r is not None:
                if type(r) is list:
                    if r:
                        result.extend(r)
                else:
                    result.append(r)
        return result

    def _emit_batch(self, xs: Iterable[Any], until: Any = None) -> Iterable[list[Any]]:
        """Push each element of ``xs`` in turn, exactly as ``_emit`` would, without metadata.

        Yields a list of awaitables after each element that produced some; the caller
        awaits it before resuming (the backpressure a source applies between elements).
        If ``until`` is given, stop after the element during which ``until.stopped``
        became true; pass an iterator as ``xs`` to keep the elements not taken.
        """
        if self._compiled_version != _graph_version[0]:
            self._compile()
        compiled = self._compiled
        if compiled is not None:
            return compiled.batch(self, xs, until)
        return self._emit_each(xs, until)

    def _emit_each(self, xs: Iterable[Any], until: Any = None) -> Iterator[list[Any]]:
        for x in xs:
            pending = self._emit(x)
            if pending:
                yield pending
            if until is not None and until.stopped:
                return

    def _downstream_fully_fused(self) -> bool:
        """True if every node below this one runs in fused code, so none of them can hold
        an element past its ``update``: once ``_emit(x)`` and the awaitables it returned
        have finished, ``x`` is done (a source that tracks completion uses this to emit
        without metadata, on the fast path)."""
        compiled = self._compiled
        if self._compiled_version != _graph_version[0]:
            compiled = self._compile()
        return compiled is not None and compiled.complete

    def _compile(self) -> CompiledGraph | None:
        from .fusion import compile_downstreams

        version = _graph_version[0]  # read first: a change made while compiling invalidates it
        self._compiled = compile_downstreams(self)
        self._compiled_version = version
        return self._compiled

    def emit(self, x: Any, asynchronous: bool = False, metadata: list[dict] | None = None) -> Any:
        """Push ``x`` into the stream from outside the graph.

        Three regimes, as in Streamz:

        * no loop on this node: the graph runs inline and ``emit`` returns ``None``
          (awaitables returned by nodes still run, see :func:`run_awaitables`);
        * ``asynchronous`` (or called on the graph's loop): the graph runs inline and
          ``emit`` returns an awaitable that finishes once downstream has absorbed ``x``:
          an :class:`~millstream.core.emit_future.EmitFuture` when work is pending (it
          can be awaited many times, given to ``asyncio.wait_for``/``gather``/``shield``
          or tornado's ``gen.with_timeout``, and the work runs even if nobody awaits
          it), else an already finished awaitable (awaitable many times too);
        * a loop in another thread: ``x`` is processed on the loop and ``emit`` blocks
          until downstream has absorbed it, re-raising any error.
        """
        loop = self.loop
        if loop is None:
            result = self._emit(x, metadata=metadata)
            if result:
                run_awaitables(result)
            return None
        if (
            asynchronous
            or self.asynchronous
            or getattr(thread_state, "asynchronous", False)
            or in_loop_thread(loop)
        ):
            result = self._emit(x, metadata=metadata)
            if not result:
                return DONE
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:  # no loop here yet: a coroutine for the caller to run
                return await_all(result)
            return EmitFuture.for_pending(result, running)

        async def emit_on_loop() -> None:
            result = self._emit(x, metadata=metadata)
            if result:
                await await_all(result)

        sync(loop, emit_on_loop)
        return None

    def _retain_refs(self, metadata: list[dict] | None, n: int = 1) -> None:
        retain_refs(metadata, n)

    def _release_refs(self, metadata: list[dict] | None, n: int = 1) -> None:
        release_refs(metadata, n)

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> None:
        """Start every source feeding this node."""
        for upstream in self.upstreams:
            upstream.start()

    def stop(self) -> None:
        """Stop every source feeding this node."""
        for upstream in self.upstreams:
            upstream.stop()

    # -- state ------------------------------------------------------------------------
    def snapshot(self) -> Any:
        """This node's state as plain picklable data (``None`` for stateless nodes)."""
        return None

    def restore(self, state: Any) -> None:
        """Load a state made by :meth:`snapshot` (see :mod:`millstream.core.state`); a node
        without state accepts only ``None`` (:class:`~millstream.exceptions.StateError`
        otherwise)."""
        if state is not None:
            raise bad_state(self, state, "this node keeps no state (expected None)")

    # -- metrics ----------------------------------------------------------------------
    @property
    def metrics(self) -> dict[str, Any]:
        """This node's metrics now: elements in and out, errors, dead letters, sampled
        processing time, backlog, and what its class adds (a source's position and lag,
        a time node's watermark); see :mod:`millstream.core.metrics`.
        ``millstream.metrics.collect(node)`` gives the whole graph's."""
        from .metrics import node_metrics

        return node_metrics(self)

    def extra_metrics(self) -> dict[str, Any]:
        """What a node class adds to its :attr:`metrics` (override; plain values only)."""
        return {}

    # -- conveniences shared with Streamz ---------------------------------------------
    def gather(self) -> Stream:
        """No-op on a local stream, so ``.gather()`` works in local and Dask pipelines."""
        return self

    @property
    def scan(self) -> Callable[..., Stream]:
        """Alias of ``accumulate``."""
        return getattr(self, "accumulate")  # noqa: B009

    @property
    def concat(self) -> Callable[..., Stream]:
        """Alias of ``flatten``."""
        return getattr(self, "flatten")  # noqa: B009

    def visualize(self, filename: str | None = None, **kwargs: Any) -> Any:
        """Render the graph with graphviz, writing a file only when ``filename`` is given
        (see :func:`millstream.core.graph.visualize`)."""
        from .graph import visualize

        return visualize(self, filename, **kwargs)

    def _repr_html_(self) -> str:
        from .display import repr_html

        return repr_html(self)

    def display(self, metrics: bool = False) -> None:
        """Show this node in a notebook: its latest value (a DataFrame as its table),
        updated live with ipywidgets; ``metrics=True`` adds a table of ``self.metrics``.
        Displaying the node (``display(node)``, or a cell ending with it) is ``display()``.
        """
        from .display import ipython_display

        ipython_display(self, metrics=metrics)

    def _ipython_display_(self, **kwargs: Any) -> None:
        from .display import ipython_display

        ipython_display(self, **kwargs)

    def __str__(self) -> str:
        head = f"{self.name}; {type(self).__name__}" if self.name else type(self).__name__
        parts = [head]
        for attr in self.str_list:
            value = getattr(self, attr, None)
            if not value:
                continue
            if not callable(value):
                text = str(value)
            else:
                text = getattr(value, "__name__", None) or type(value).__name__
            if text:
                parts.append(f"{attr}={text}")
        if len(parts) <= 2:
            parts = [p.split("=")[-1] if i else p for i, p in enumerate(parts)]
        body = parts[0] + (": " + ", ".join(parts[1:]) if len(parts) > 1 else "")
        return f"<{body}>"

    __repr__ = __str__


def is_coroutine_function(func: Any) -> bool:
    """True for ``async def`` functions (and partials of them)."""
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func)
