"""Readers that follow a directory: ``from_parquet``, ``from_csv``, ``from_jsonl``.

Each polls a directory or glob (local or an fsspec URL: ``memory://``, ``file://``,
``s3://`` with s3fs) for files it has not read yet, and emits each new file's rows in
chunks of ``batch_rows`` rows, as pandas DataFrames (``output='pandas'``) or pyarrow
RecordBatches/Tables (``output='arrow'``). Files are read whole once they appear, so
write them elsewhere and move them in, or under a name starting with ``.`` or ``_``
(never read: ``to_parquet``'s files in progress) and rename them when complete.

The position (``snapshot()``) is which files are done, the file being read and how many
chunks of it were emitted; a restarted source (``restore()``, or checkpoints) skips the
files done and resumes the current file after its last emitted chunk.

File system calls run in worker threads, never on the event loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Generator, Iterator
from typing import Any

from .._utils import convert_interval
from ..connectors.filesystems import HIDDEN_PREFIXES, import_pyarrow, listing, resolve
from ..core.state import COUNT, SEQUENCE, bad_state, expect_fields
from ..core.stream import Stream
from .base import STOPPED, ManagedSource

__all__ = ["FileReader", "from_csv", "from_jsonl", "from_parquet"]

_END = object()


def _import_pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(
            "reading CSV and JSON lines needs pandas: pip install 'millstream[dataframe]'"
        ) from None
    return pandas


class FileReader(ManagedSource):
    """The base of the directory-following readers: subclasses implement
    :meth:`chunks` (the chunks of one open file)."""

    #: what a directory is watched as (``dir/<this>``); ``None``: every file under it
    suffixes: tuple[str, ...] = ()

    def __init__(
        self,
        path: str | os.PathLike[str],
        poll_interval: float | str = 0.5,
        batch_rows: int = 65536,
        output: str = "pandas",
        storage_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        name = type(self).__name__
        if output not in ("pandas", "arrow"):
            raise ValueError(f"{name}: output must be 'pandas' or 'arrow', got {output!r}")
        if type(batch_rows) is not int or batch_rows < 1:
            raise ValueError(f"{name}: batch_rows must be an int >= 1, got {batch_rows!r}")
        self.path = os.fspath(path)
        self.poll_interval = convert_interval(poll_interval)
        self.batch_rows = batch_rows
        self.output = output
        self.fs, self._pattern = resolve(self.path, **(storage_options or {}))
        self._directory: str | None = None
        if "*" not in self._pattern and self.fs.isdir(self._pattern):
            self._directory = self._pattern.rstrip("/")
        #: files read to the end; the file being read and how many of its chunks went out
        self.done: set[str] = set()
        self.current: str | None = None
        self.chunks_done = 0
        super().__init__(**kwargs)

    def __str__(self) -> str:
        return f"<{type(self).__name__}({self.path!r})>"

    # -- finding files -------------------------------------------------------------------
    def _visible(self, name: str, root: str) -> bool:
        relative = name[len(root) :].lstrip("/") if name.startswith(root) else name
        parts = (
            relative.split("/") if self._directory is not None else [relative.rsplit("/", 1)[-1]]
        )
        if any(p.startswith(HIDDEN_PREFIXES) for p in parts):
            return False
        return not self.suffixes or name.endswith(self.suffixes)

    def _new_files(self) -> list[str]:
        """The files not read yet, sorted (in a worker thread)."""
        if self._directory is not None:
            found = listing(self.fs, self._directory).find(self._directory)
            root = self._directory
        else:
            fs = listing(self.fs, self._pattern.split("*", 1)[0].rsplit("/", 1)[0])
            found = [p for p in fs.glob(self._pattern) if not fs.isdir(p)]
            root = ""
        return sorted(p for p in found if p not in self.done and self._visible(p, root))

    # -- reading ------------------------------------------------------------------------
    def chunks(self, f: Any) -> Iterator[Any]:
        """The chunks of the open (binary) file ``f``, in ``output``'s type."""
        raise NotImplementedError

    def _open_chunks(self, name: str, skip: int) -> Generator[Any, None, None]:
        f = self.fs.open(name, "rb")
        try:
            for i, chunk in enumerate(self.chunks(f)):
                if i >= skip:
                    yield chunk
        finally:
            f.close()

    async def run(self) -> None:
        self._set_ready()
        while not self.stopped:
            if self.current is not None and await self._read(self.current) is STOPPED:
                break
            names = await asyncio.to_thread(self._new_files)
            for name in names:
                self.current, self.chunks_done = name, 0
                if await self._read(name) is STOPPED:
                    break
            if self.stopped or await self._sleep(self.poll_interval) is STOPPED:
                break

    async def _read(self, name: str) -> Any:
        chunks = self._open_chunks(name, self.chunks_done)
        try:
            while True:
                chunk = await asyncio.to_thread(next, chunks, _END)
                if chunk is _END:
                    break
                await self._wait_if_held()
                self.chunks_done += 1  # no await before the emit: the position is exact
                await self._emit_and_wait(chunk)
                if self.stopped:
                    return STOPPED
        finally:
            await asyncio.to_thread(chunks.close)
        self.done.add(name)
        self.current, self.chunks_done = None, 0
        return None

    # -- position -----------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """``{'files': names read to the end, 'current': the file being read or None,
        'chunks': how many of its chunks were emitted}``."""
        return {"files": sorted(self.done), "current": self.current, "chunks": self.chunks_done}

    def extra_metrics(self) -> dict[str, Any]:
        """``position``: ``{'files': files read to the end, 'chunks': chunks emitted of the
        file being read}``."""
        return {"position": {"files": len(self.done), "chunks": self.chunks_done}}

    def restore(self, state: dict[str, Any]) -> None:
        """Resume from a :meth:`snapshot` (call while the source is stopped)."""
        expect_fields(self, state, {"files": SEQUENCE, "chunks": COUNT})
        current = state.get("current")
        if current is not None and type(current) is not str:
            raise bad_state(self, state, "'current' must be a file name or None")
        if not all(type(n) is str for n in state["files"]):
            raise bad_state(self, state, "'files' must be a list of names")
        if not self.stopped:
            raise RuntimeError(f"{self}: restore() needs a stopped source")
        self.done = set(state["files"])
        self.current, self.chunks_done = current, state["chunks"]


@Stream.register_api(staticmethod)
class from_parquet(FileReader):
    """Emit the rows of each new Parquet file in a directory, in chunks, as they appear.

    A directory is searched recursively for ``*.parquet`` (names or directories starting
    with ``.`` or ``_`` are skipped: a ``to_parquet`` dataset reads as its committed
    files); a glob is taken as it is. Hive partition values in the paths are not added
    as columns. Chunks are pandas DataFrames (``output='pandas'``) or pyarrow
    RecordBatches (``output='arrow'``) of at most ``batch_rows`` rows.

    Parameters
    ----------
    path : str
        Directory or glob: local or an fsspec URL.
    poll_interval : float or str
        Time between two looks for new files.
    batch_rows : int
        Rows per emitted chunk.
    output : {'pandas', 'arrow'}
        The chunks' type.
    storage_options : dict, optional
        Passed to fsspec.

    Examples
    --------
    >>> import pyarrow as pa, pyarrow.parquet as pq, fsspec
    >>> from millstream.testing import wait_for
    >>> fs = fsspec.filesystem('memory')
    >>> pq.write_table(pa.table({'x': [1, 2, 3]}), '/follow/a.parquet', filesystem=fs)
    >>> source = Stream.from_parquet('memory://follow', poll_interval=0.01, batch_rows=2)
    >>> L = source.map(lambda df: df['x'].tolist()).sink_to_list()
    >>> source.start()
    >>> wait_for(lambda: len(L) == 2, 5)
    >>> pq.write_table(pa.table({'x': [4]}), '/follow/b.parquet', filesystem=fs)
    >>> wait_for(lambda: len(L) == 3, 5)
    >>> source.stop()
    >>> L
    [[1, 2], [3], [4]]
    """

    suffixes = (".parquet",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        poll_interval: float | str = 0.5,
        batch_rows: int = 65536,
        output: str = "pandas",
        storage_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        self._pa = import_pyarrow()
        super().__init__(path, poll_interval, batch_rows, output, storage_options, **kwargs)

    def chunks(self, f: Any) -> Iterator[Any]:
        reader = self._pa.parquet.ParquetFile(f)
        for batch in reader.iter_batches(batch_size=self.batch_rows):
            yield batch.to_pandas() if self.output == "pandas" else batch


class _PandasReader(FileReader):
    def __init__(self, path: str | os.PathLike[str], **kwargs: Any):
        self._pd = _import_pandas()
        if kwargs.get("output") == "arrow":
            self._pa = import_pyarrow()
        super().__init__(path, **kwargs)

    def frames(self, f: Any) -> Any:
        raise NotImplementedError

    def chunks(self, f: Any) -> Iterator[Any]:
        with self.frames(f) as frames:
            for frame in frames:
                if self.output == "pandas":
                    yield frame
                else:
                    yield self._pa.Table.from_pandas(frame, preserve_index=False)


@Stream.register_api(staticmethod)
class from_csv(_PandasReader):
    """Emit the rows of each new CSV file in a directory, in chunks, as they appear.

    As :class:`from_parquet` (a directory: its ``*.csv`` files, recursively), read with
    ``pandas.read_csv(..., chunksize=batch_rows, **read_options)``.

    Examples
    --------
    >>> import fsspec
    >>> from millstream.testing import wait_for
    >>> fs = fsspec.filesystem('memory')
    >>> fs.pipe('/csvin/a.csv', b'x,y\\n1,a\\n2,b\\n')
    >>> source = Stream.from_csv('memory://csvin', poll_interval=0.01)
    >>> L = source.map(lambda df: df.to_dict('records')).sink_to_list()
    >>> source.start()
    >>> wait_for(lambda: len(L) == 1, 5)
    >>> source.stop()
    >>> L
    [[{'x': 1, 'y': 'a'}, {'x': 2, 'y': 'b'}]]
    """

    suffixes = (".csv",)

    def __init__(
        self,
        path: str | os.PathLike[str],
        read_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ):
        self.read_options = dict(read_options or {})
        super().__init__(path, **kwargs)

    def frames(self, f: Any) -> Any:
        return self._pd.read_csv(f, chunksize=self.batch_rows, **self.read_options)


@Stream.register_api(staticmethod)
class from_jsonl(_PandasReader):
    """Emit the rows of each new JSON-lines file (one JSON object a line) in a directory,
    in chunks, as they appear.

    As :class:`from_parquet` (a directory: its ``*.jsonl`` and ``*.json`` files,
    recursively), read with ``pandas.read_json(..., lines=True, chunksize=batch_rows)``.

    Examples
    --------
    >>> import fsspec
    >>> from millstream.testing import wait_for
    >>> fs = fsspec.filesystem('memory')
    >>> fs.pipe('/jsonin/a.jsonl', b'{"x": 1}\\n{"x": 2}\\n')
    >>> source = Stream.from_jsonl('memory://jsonin', poll_interval=0.01)
    >>> L = source.map(lambda df: df['x'].tolist()).sink_to_list()
    >>> source.start()
    >>> wait_for(lambda: len(L) == 1, 5)
    >>> source.stop()
    >>> L
    [[1, 2]]
    """

    suffixes = (".jsonl", ".json")

    def frames(self, f: Any) -> Any:
        return self._pd.read_json(f, lines=True, chunksize=self.batch_rows)
