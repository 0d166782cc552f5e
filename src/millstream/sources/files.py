"""File sources: ``from_textfile`` (tail a text file) and ``filenames`` (watch a glob).

Both take a local path or an fsspec URL (``memory://``, ``file://``, ``s3://`` with s3fs;
fsspec is imported only for URLs: ``pip install 'millstream[parquet]'``).

File system calls (``read``, ``glob``) run in a worker thread (``asyncio.to_thread``), never
on the event loop, so a slow disk or network share does not stall the other nodes.
"""

from __future__ import annotations

import asyncio
import codecs
import glob
import io
import locale
import os
from typing import IO, Any

from .._utils import convert_interval
from ..connectors.filesystems import TailReader, is_local, is_url, listing, resolve
from ..core.awaitables import await_all
from ..core.state import COUNT, SEQUENCE, bad_state, expect_fields
from ..core.stream import Stream
from .base import STOPPED, ManagedSource

__all__ = ["filenames", "from_textfile"]

#: Most bytes (or characters) read from a file in one cycle.
_READ_SIZE = 1 << 20


@Stream.register_api(staticmethod)
class from_textfile(ManagedSource):
    r"""Emit the delimited parts of a text file as they are written.

    Each part is emitted **with its delimiter** (``'line\n'``), as in Streamz; a trailing
    part without delimiter stays buffered until the rest of it arrives. When the file has
    nothing new, the source sleeps ``poll_interval`` (on the node's clock) and reads again,
    so it follows a file that keeps growing.

    ``f`` is a path, an fsspec URL (``memory://logs/app.log``; on object stores each
    poll reads what was added since the last one) or an open file. A path is opened
    (binary, decoded with the locale's encoding and universal newlines, like
    ``open(f)``) when the source is built, so a
    missing file fails at once with ``FileNotFoundError``; the source closes it on
    ``stop()`` and reopens it at the same position if started again. An open file is read
    as it is (text files emit ``str``, binary files with a ``bytes`` delimiter emit
    ``bytes``) and is never closed by the source. ``from_end=True`` skips what the file
    holds when the source is built.

    ``snapshot()`` returns ``{'offset': ..., 'buffer': ...}``: the position after the last
    data taken from the file (a byte offset for a path; ``f.tell()`` for an open file) and
    the text read but not yet emitted. ``restore()`` on a fresh, stopped source resumes just
    after the last emitted part.

    Parameters
    ----------
    f : str or file
        Path, fsspec URL or open file.
    poll_interval : float or str
        Seconds to wait when there is no new data.
    delimiter : str or bytes
        Separator of the parts.
    from_end : bool
        Start at the end of the file.
    storage_options : dict, optional
        Passed to fsspec for a URL (keyword only): credentials, the endpoint of an
        S3-compatible store.

    Examples
    --------
    >>> import os, tempfile
    >>> from millstream.testing import wait_for
    >>> path = os.path.join(tempfile.mkdtemp(), 'log.txt')
    >>> with open(path, 'w') as f:
    ...     _ = f.write('alpha\nbeta\ngam')
    >>> source = Stream.from_textfile(path, poll_interval=0.01)
    >>> L = source.sink_to_list()
    >>> source.start()
    >>> wait_for(lambda: len(L) == 2, 5)
    >>> with open(path, 'a') as f:
    ...     _ = f.write('ma\n')
    >>> wait_for(lambda: len(L) == 3, 5)
    >>> source.stop()
    >>> L
    ['alpha\n', 'beta\n', 'gamma\n']
    """

    def __init__(
        self,
        f: str | os.PathLike[str] | IO[Any],
        poll_interval: float | str = 0.100,
        delimiter: str | bytes = "\n",
        from_end: bool = False,
        *,
        storage_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        if not delimiter:
            raise ValueError("from_textfile: delimiter must not be empty")
        self.poll_interval = convert_interval(poll_interval)
        self.delimiter = delimiter
        self.from_end = from_end
        self._path: str | None = None
        self._fp: Any = None
        self._fs: Any = None  # the fsspec filesystem of a URL that is not local
        if isinstance(f, (str, os.PathLike)):
            self._path = os.fspath(f)
            if is_url(self._path):
                fs, path = resolve(self._path, **(storage_options or {}))
                if is_local(fs):
                    self._path = path
                else:
                    self._fs, self._path = fs, path
            if not isinstance(delimiter, str):
                raise TypeError(
                    f"from_textfile: a path is read as text, so delimiter must be str, "
                    f"got {type(delimiter).__name__}"
                )
            self._encoding = locale.getpreferredencoding(False)
            self._fp = self._open_path()
            self._binary_user_file = False
        else:
            self._fp = f
            self._encoding = ""
            self._binary_user_file = not isinstance(f, io.TextIOBase)
            if self._binary_user_file != isinstance(delimiter, bytes):
                kind = "binary" if self._binary_user_file else "text"
                raise TypeError(
                    f"from_textfile: the file is opened in {kind} mode but the delimiter is "
                    f"{type(delimiter).__name__}; use a "
                    f"{'bytes' if self._binary_user_file else 'str'} delimiter"
                )
        self._decoder: Any = self._new_decoder()
        self.buffer = delimiter[:0]
        if from_end:
            self._fp.seek(0, os.SEEK_END)
        self._offset = self._fp.tell()
        self._consumed = self._offset
        super().__init__(**kwargs)

    @property
    def file(self) -> Any:
        """The file being read (``None`` while a path-opened file is closed by ``stop()``)."""
        return self._fp

    def _open_path(self) -> Any:
        assert self._path is not None
        if self._fs is not None:
            return TailReader(self._fs, self._path)
        return open(self._path, "rb")

    def _new_decoder(self) -> Any:
        if self._path is None:
            return None
        inner = codecs.getincrementaldecoder(self._encoding)()
        return io.IncrementalNewlineDecoder(inner, translate=True)

    def _read(self) -> Any:
        """One read from the file (runs in a worker thread)."""
        return self._fp.read(_READ_SIZE)

    def _decode(self, data: bytes) -> str:
        """Decode ``data`` and advance the resume offset to the bytes fully decoded."""
        text: str = self._decoder.decode(data)
        pending, flag = self._decoder.getstate()
        self._offset += len(data)
        self._consumed = self._offset - len(pending) - (flag & 1)
        return text

    async def run(self) -> None:
        if self._fp is None or self._fp.closed:
            if self._path is None:
                raise ValueError(f"{self}: the file it was given is closed")
            self._fp = await asyncio.to_thread(self._open_path)
            self._fp.seek(self._offset)
            self._decoder = self._new_decoder()
        self._consumed = self._offset
        self._set_ready()
        try:
            while not self.stopped:
                data = await asyncio.to_thread(self._read)
                if data:
                    full = len(data) >= _READ_SIZE
                    if self._path is not None:
                        data = self._decode(data)
                    else:
                        self._offset = self._consumed = self._fp.tell()
                    await self._emit_parts(self.buffer + data)
                    if full and not self.stopped:
                        continue
                if await self._sleep(self.poll_interval) is STOPPED:
                    break
        finally:
            if self._path is not None and self._fp is not None:
                fp, self._fp = self._fp, None
                # resume where decoding stopped: bytes held by the decoder are read again
                self._offset = self._consumed
                fp.close()

    async def _emit_parts(self, text: Any) -> None:
        parts = text.split(self.delimiter)
        self._rest = parts.pop()
        self._parts, self._next = parts, 0
        for pending in self._emit_batch(self._iter_parts()):
            await await_all(pending)
        if self._next >= len(parts):
            self._parts, self._next = [], 0

    def _iter_parts(self) -> Any:
        # ``_next`` moves before each part goes out, so ``buffer`` is exact at every await
        parts, delimiter = self._parts, self.delimiter
        while self._next < len(parts) and not self.stopped:
            part = parts[self._next]
            self._next += 1
            yield part + delimiter

    @property
    def buffer(self) -> Any:
        """The text read from the file but not emitted yet."""
        if self._next < len(self._parts):
            return self.delimiter.join([*self._parts[self._next :], self._rest])
        return self._rest

    @buffer.setter
    def buffer(self, value: Any) -> None:
        self._rest, self._parts, self._next = value, [], 0

    def snapshot(self) -> dict[str, Any]:
        """The resume point: ``{'offset': position in the file, 'buffer': unemitted text}``."""
        offset = self._offset if self._fp is None else self._consumed
        return {"offset": offset, "buffer": self.buffer}

    def extra_metrics(self) -> dict[str, Any]:
        """``position``: ``{'offset': how far the file was read}`` (as in :meth:`snapshot`,
        whose ``buffer`` holds the text read but not emitted yet)."""
        return {"position": {"offset": self._offset if self._fp is None else self._consumed}}

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from a :meth:`snapshot` (call while the source is stopped)."""
        text = type(self.delimiter)
        expect_fields(self, state, {"offset": COUNT, "buffer": text})
        if not self.stopped:
            raise RuntimeError(f"{self}: restore() needs a stopped source")
        self._offset = self._consumed = state["offset"]
        self.buffer = state["buffer"]
        self._decoder = self._new_decoder()
        if self._fp is not None and not self._fp.closed:
            self._fp.seek(self._offset)


@Stream.register_api(staticmethod)
class filenames(ManagedSource):
    """Emit the name of every new file matching a directory or glob, polling for more.

    ``path`` is a directory (watched as ``path/*``) or a glob pattern, local or an fsspec
    URL (``memory://in/*.csv``: the names emitted are URLs too; as ``glob.glob`` does,
    ``*`` matches no name that starts with a dot). Each cycle globs
    (in a worker thread), emits the names not seen before in sorted order, then sleeps
    ``poll_interval``. Changes to a file already seen are not reported.

    ``snapshot()`` is the sorted list of names seen; ``restore()`` makes a fresh source
    skip them.

    Parameters
    ----------
    path : str
        Directory or glob (local or fsspec URL).
    poll_interval : float or str
        Seconds between two globs.
    storage_options : dict, optional
        Passed to fsspec for a URL (keyword only).

    Examples
    --------
    >>> import os, tempfile
    >>> from millstream.testing import wait_for
    >>> d = tempfile.mkdtemp()
    >>> for name in ['b.csv', 'a.csv']:
    ...     open(os.path.join(d, name), 'w').close()
    >>> source = Stream.filenames(os.path.join(d, '*.csv'), poll_interval=0.01)
    >>> L = source.map(os.path.basename).sink_to_list()
    >>> source.start()
    >>> wait_for(lambda: len(L) == 2, 5)
    >>> open(os.path.join(d, 'c.csv'), 'w').close()
    >>> wait_for(lambda: len(L) == 3, 5)
    >>> source.stop()
    >>> L
    ['a.csv', 'b.csv', 'c.csv']
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        poll_interval: float | str = 0.100,
        *,
        storage_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        path = os.fspath(path)
        self._fs: Any = None
        if is_url(path):
            self._fs, self._pattern = resolve(path, **(storage_options or {}))
            if "*" not in self._pattern and self._fs.isdir(self._pattern):
                self._pattern = self._pattern.rstrip("/") + "/*"
                path = path.rstrip("/") + "/*"
        elif "*" not in path and os.path.isdir(path):
            path = os.path.join(path, "*")
        self.path = path
        self.poll_interval = convert_interval(poll_interval)
        self.seen: set[str] = set()
        super().__init__(**kwargs)

    async def run(self) -> None:
        self._set_ready()
        while not self.stopped:
            found = await asyncio.to_thread(self._glob)
            for name in sorted(set(found) - self.seen):
                self.seen.add(name)
                await self._emit_and_wait(name)
                if self.stopped:
                    break
            if await self._sleep(self.poll_interval) is STOPPED:
                break

    def _glob(self) -> list[str]:
        """The names matching now (in a worker thread)."""
        if self._fs is None:
            return glob.glob(self.path)
        fs = listing(self._fs, self._pattern.split("*", 1)[0].rsplit("/", 1)[0])
        return [
            fs.unstrip_protocol(name)
            for name in fs.glob(self._pattern)
            if not name.rsplit("/", 1)[-1].startswith(".")
        ]

    def snapshot(self) -> list[str]:
        """The names already emitted, sorted."""
        return sorted(self.seen)

    def extra_metrics(self) -> dict[str, Any]:
        """``position``: ``{'files': how many names were emitted}``."""
        return {"position": {"files": len(self.seen)}}

    def restore(self, state: list[str]) -> None:
        """Skip the names in ``state`` (a :meth:`snapshot`)."""
        if type(state) not in SEQUENCE or not all(type(name) is str for name in state):
            raise bad_state(self, state, "expected the list of names already emitted")
        self.seen = set(state)
