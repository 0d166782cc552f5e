"""Sinks that write text files: ``sink_to_textfile`` (a node) and ``sink_to_file`` (Streamz's
helper that attaches a ``sink`` and returns the open file)."""

from __future__ import annotations

import os
from typing import IO, Any

from .._utils import annotate_error
from ..core.stream import Stream
from .core import Sink, sink

__all__ = ["sink_to_file", "sink_to_textfile"]


@Stream.register_api()
class sink_to_textfile(Sink):
    """Write each element (a ``str``) followed by ``end`` to a file.

    ``file`` is a path (opened with ``mode``) or an open text file. The file is
    flushed after each element, and a file the sink opened is closed by ``destroy()``.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), 'out.txt')
    >>> source = Stream()
    >>> node = source.sink_to_textfile(path)
    >>> source.emit('hello'); source.emit('world')
    >>> open(path).read()
    'hello\\nworld\\n'
    >>> node.destroy()
    """

    def __init__(
        self, upstream: Stream, file: str | IO[str], end: str = "\n", mode: str = "a", **kwargs: Any
    ):
        self._owns_file = isinstance(file, str)
        self._fp: IO[str] = open(file, mode) if isinstance(file, str) else file  # noqa: SIM115
        self._end = end
        super().__init__(upstream, **kwargs)

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        if not isinstance(x, str):
            error = TypeError(f"sink_to_textfile writes str elements, got {type(x).__name__}")
            annotate_error(error, self, None, x)
            raise error
        self._fp.write(x + self._end)
        self._fp.flush()
        return []

    def destroy(self, streams: Any = None) -> None:
        super().destroy(streams)
        if self._owns_file and not self._fp.closed:
            self._fp.close()


def sink_to_file(
    filename: str | os.PathLike[str],
    upstream: Stream,
    mode: str = "w",
    prefix: str = "",
    suffix: str = "\n",
    flush: bool = False,
) -> IO[str]:
    """Write ``prefix + x + suffix`` for each element to ``filename``; return the open file.

    The returned file is a context manager: leaving the ``with`` block closes it (write
    nothing more to the stream after that). With ``flush=True`` each element is flushed.

    Examples
    --------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), 'out.txt')
    >>> source = Stream()
    >>> with sink_to_file(path, source, prefix='> ') as f:
    ...     source.emit('a'); source.emit('b')
    >>> open(path).read()
    '> a\\n> b\\n'
    """
    file = open(filename, mode=mode)  # noqa: SIM115  (returned to the caller)

    def write(text: str) -> None:
        file.write(prefix + text + suffix)
        if flush:
            file.flush()

    sink(upstream, write)
    return file
