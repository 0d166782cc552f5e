"""Stateful Dask nodes over several inputs: ``zip``, ``combine_latest``, ``zip_latest``.

On element futures the core node runs on the client and emits tuples of futures (as in
Streamz). When an input may carry batches, the node runs on the workers from its
snapshot (see ``_RunsNode`` in :mod:`millstream.dask._flow`), each distinct input stream
one head of the detached copy, and batches of tuples of values are emitted.
"""

from __future__ import annotations

from typing import Any

from ..core import Stream
from ..operators import combine
from ._flow import _RunsNode
from .stream import DaskStream, may_batch

__all__ = ["combine_latest", "zip", "zip_latest"]


class _MultiInput(_RunsNode):
    """Inputs are positions; on the workers each distinct input stream is one head."""

    _inputs: dict[int, int]

    def _index_inputs(self, streams: list[Stream]) -> None:
        self._inputs = {id(s): i for i, s in enumerate(combine.distinct_streams(streams))}

    def _position(self, who: Any) -> int:
        return self._inputs[id(who)]

    def _add_upstream(self, upstream: Stream) -> None:
        if self._on_workers:
            raise NotImplementedError(
                f"{self}: its state is on the cluster; connect() cannot add an input to it "
                "(build a new node instead)"
            )
        super()._add_upstream(upstream)


@DaskStream.register_api()
class zip(_MultiInput, combine.zip):
    """Emit a tuple once every input has produced a new element.

    On element futures, tuples of futures made on the client (as in Streamz). When an
    input may carry batches, the buffers are kept on the cluster and batches of tuples
    of values are emitted, in the order the inputs' units arrived (``maxsize`` then does
    not apply backpressure).

    Examples
    --------
    >>> from millstream.testing import wait_for
    >>> a, b = Stream(), Stream()
    >>> L = a.scatter().flatten().zip(b.scatter().flatten()).gather().sink_to_list()
    >>> a.emit([1, 2, 3]); b.emit(['x', 'y'])
    >>> wait_for(lambda: len(L) == 2, 10)
    >>> L
    [(1, 'x'), (2, 'y')]
    """

    _core_cls = combine.zip
    _holds_elements = True

    def __init__(self, *upstreams: Any, maxsize: int = 10, **kwargs: Any):
        streams = [u for u in upstreams if isinstance(u, Stream)]
        self._on_workers = may_batch(*streams)
        super().__init__(*upstreams, maxsize=maxsize, **kwargs)
        self._index_inputs(streams)
        layout = [
            ("s", self._inputs[id(u)]) if isinstance(u, Stream) else ("l", u) for u in upstreams
        ]
        self._setup((), {"maxsize": maxsize}, layout=layout)


@DaskStream.register_api()
class combine_latest(_MultiInput, combine.combine_latest):
    """Emit a tuple of the latest value of every input whenever an input updates.

    On element futures, tuples of futures made on the client (as in Streamz); when an
    input may carry batches the latest values are kept on the cluster and batches of
    tuples of values are emitted.

    Examples
    --------
    >>> from millstream.testing import wait_for
    >>> a, b = Stream(), Stream()
    >>> node = a.scatter().flatten().combine_latest(b.scatter().flatten())
    >>> L = node.gather().sink_to_list()
    >>> a.emit([1]); b.emit(['x']); a.emit([2, 3])
    >>> wait_for(lambda: len(L) == 3, 10)
    >>> L
    [(1, 'x'), (2, 'x'), (3, 'x')]
    """

    _core_cls = combine.combine_latest
    _holds_elements = True

    def __init__(self, *upstreams: Stream, emit_on: Any = None, **kwargs: Any):
        self._on_workers = may_batch(*upstreams)
        super().__init__(*upstreams, emit_on=emit_on, **kwargs)
        streams = list(upstreams)
        self._index_inputs(streams)
        layout = [("s", self._inputs[id(u)]) for u in streams]
        positions = None
        if emit_on is not None:
            positions = [next(i for i, u in enumerate(streams) if u is s) for s in self.emit_on]
        self._setup((), {"emit_on": positions}, layout=layout)


@DaskStream.register_api()
class zip_latest(_MultiInput, combine.zip_latest):
    """Pair every element of ``lossless`` with the latest value of each other input.

    On element futures, tuples of futures made on the client; when an input may carry
    batches the node runs on the cluster and batches of tuples of values are emitted.

    Examples
    --------
    >>> from millstream.testing import wait_for
    >>> a, b = Stream(), Stream()
    >>> node = a.scatter().flatten().zip_latest(b.scatter().flatten())
    >>> L = node.gather().sink_to_list()
    >>> a.emit([1, 2]); b.emit(['x']); a.emit([3])
    >>> wait_for(lambda: len(L) == 3, 10)
    >>> L
    [(1, 'x'), (2, 'x'), (3, 'x')]
    """

    _core_cls = combine.zip_latest
    _holds_elements = True

    def __init__(self, lossless: Stream, *upstreams: Stream, **kwargs: Any):
        self._on_workers = may_batch(lossless, *upstreams)
        super().__init__(lossless, *upstreams, **kwargs)
        streams = [lossless, *upstreams]
        self._index_inputs(streams)
        self._setup((), {}, layout=[("s", self._inputs[id(u)]) for u in streams])
