"""``to_parquet``: write elements as rows of Parquet files on any fsspec filesystem.

Elements are dicts (one row: column -> value), pandas DataFrames, or pyarrow Tables or
RecordBatches (their rows). Rows are gathered until ``batch_rows`` are waiting, turned
into one Arrow table and written (pyarrow's ``ParquetWriter``, in one worker thread per
sink, in order) into the open file of their partition (``col=value/`` directories,
hive-style, with ``partition_cols``). A file is written under a hidden temporary name
(``.part-....parquet.inprogress``, skipped by pyarrow and dask) and gets its final
name (``part-....parquet``) when it is complete, so readers never see a partial file.

Without checkpoints (at-least-once) a file is closed and renamed at its roll-over (by
``rollover_rows``, ``rollover_bytes`` or ``rollover_interval``), at the end of the input
and at :meth:`to_parquet.flush`; the refs of the elements whose rows it holds are then
released (an upstream Kafka source commits their offsets). After a crash, the rows of
files not closed yet are produced again by the source (duplicates are possible; the
hidden temporaries of the dead process are left behind and never read).

With checkpoints (:func:`millstream.checkpoint.enable`) the sink is *transactional*
(:mod:`millstream.checkpoint.transactional`): every checkpoint closes the open files,
and once the checkpoint's file is durable its files are committed: a manifest
``_millstream/<pipeline>/commit-<id>.json`` naming them is written atomically, then each
temporary is renamed to ``part-<pipeline>-<checkpoint>-<n>.parquet``. On a restart the
newest manifest's renames are finished, every other temporary of the pipeline is deleted,
and the graph resumes from that checkpoint: every row is in exactly one visible file.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import hashlib
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from .._utils import short_repr
from ..connectors.filesystems import (
    import_pyarrow,
    is_local,
    resolve,
    write_atomically,
)
from ..core.loop import in_loop_thread
from ..core.refs import release_refs, retain_refs
from ..core.stream import Stream
from ..sources.base import on_end_of_input
from .core import Sink

__all__ = ["to_parquet"]

logger = logging.getLogger("millstream.sinks")

#: The directory name of a partition value that is null (as pyarrow and Hive write it).
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
#: Where transactional sinks keep their manifests, under the dataset's root.
BOOKKEEPING = "_millstream"
_INPROGRESS = ".inprogress"


@dataclass
class _File:
    """An open (or closed, not yet committed) output file."""

    temporary: str
    final: str | None
    writer: Any = None
    sink: Any = None
    rows: int = 0
    opened_at: float = 0.0
    metadata: list[Any] = field(default_factory=list)


@dataclass
class _Sealed:
    """The files of one checkpoint, closed; ``final`` names given at the first commit."""

    checkpoint_id: int
    files: list[_File]
    final: list[str] | None = None


@Stream.register_api()
class to_parquet(Sink):
    """Write elements as rows of Parquet files under ``url``; emit nothing.

    Parameters
    ----------
    url : str
        The dataset's directory: a local path or an fsspec URL (``memory://out``,
        ``s3://bucket/table`` with s3fs). Created if missing.
    partition_cols : sequence of str, optional
        Columns whose values name the directories (``col=value/``), hive-style; they are
        not stored in the files (pyarrow and dask read them back from the paths).
    rollover_rows, rollover_bytes : int, optional
        Close a file and start a new one once it holds this many rows / bytes.
    rollover_interval : float or str, optional
        Close a file at most about this long after it was opened (seconds or a duration
        such as ``'1min'``).
    batch_rows : int
        Rows gathered before a write (one row group per partition and write).
    schema : pyarrow.Schema, optional
        The rows' schema (default: that of the first write).
    compression : str
        Parquet compression codec.
    storage_options : dict, optional
        Passed to fsspec.
    pipeline : str, optional
        With checkpoints: the name of this sink's commits (default: from the checkpoint
        location and the node's id).

    Examples
    --------
    >>> import pyarrow.parquet as pq, tempfile
    >>> from millstream.testing import run_pipeline
    >>> out = tempfile.mkdtemp()
    >>> source = Stream.from_iterable([{'id': i, 'kind': 'ab'[i % 2]} for i in range(5)])
    >>> sink = source.to_parquet(out, partition_cols=['kind'])
    >>> run_pipeline(source)
    >>> table = pq.read_table(out).to_pandas().sort_values('id')
    >>> table['id'].tolist(), table['kind'].astype(str).tolist()
    ([0, 1, 2, 3, 4], ['a', 'b', 'a', 'b', 'a'])
    """

    def __init__(
        self,
        upstream: Stream,
        url: str | os.PathLike[str],
        partition_cols: Sequence[str] | None = None,
        rollover_rows: int | None = None,
        rollover_bytes: int | None = None,
        rollover_interval: float | str | None = None,
        batch_rows: int = 65536,
        schema: Any = None,
        compression: str = "snappy",
        storage_options: dict[str, Any] | None = None,
        pipeline: str | None = None,
        **kwargs: Any,
    ):
        from .._utils import convert_interval

        self._pa = import_pyarrow()
        self.url = os.fspath(url)
        self._label = f"to_parquet({self.url!r})"
        for name, value in (
            ("rollover_rows", rollover_rows),
            ("rollover_bytes", rollover_bytes),
            ("batch_rows", batch_rows),
        ):
            if value is not None and (type(value) is not int or value < 1):
                raise ValueError(f"{self._label}: {name} must be an int >= 1, got {value!r}")
        self.partition_cols = list(partition_cols or ())
        self.rollover_rows = rollover_rows
        self.rollover_bytes = rollover_bytes
        self.rollover_interval = (
            None if rollover_interval is None else convert_interval(rollover_interval)
        )
        self.batch_rows = batch_rows
        self.schema = schema
        self.compression = compression
        self.pipeline = pipeline
        self.fs, self.root = resolve(self.url, **(storage_options or {}))
        self.root = self.root.rstrip("/")
        try:
            self.fs.makedirs(self.root, exist_ok=True)
        except Exception as e:
            raise OSError(f"{self._label}: cannot create the directory {self.root!r}: {e}") from e
        self.transactional = False
        self._run = uuid.uuid4().hex[:12]
        self._token = self._run
        self._seq = 0
        self._pending: list[Any] = []
        self._pending_metadata: list[Any] = []
        self._pending_rows = 0
        self._pending_since = 0.0
        self._open: dict[str, _File] = {}
        self._closed: list[_File] = []  # closed, waiting for a checkpoint
        self._prepared: list[tuple[int, concurrent.futures.Future[_Sealed]]] = []
        self._sealed: list[_Sealed] = []
        self._inflight: collections.deque[concurrent.futures.Future[None]] = collections.deque()
        self._undurable = 0  # rows written to files not yet durable
        self._errors: list[BaseException] = []
        self._executor = concurrent.futures.ThreadPoolExecutor(
            1, thread_name_prefix="millstream-parquet"
        )
        self._timer: Any = None
        kwargs["ensure_io_loop"] = True
        super().__init__(upstream, **kwargs)
        on_end_of_input(self, self._at_end_of_input)
        if self.rollover_interval is not None:
            self._timer = self.loop.call_later(self._tick_period(), self._tick)

    def __str__(self) -> str:
        return f"<{self._label}>"

    # -- elements (on the loop) ----------------------------------------------------------
    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        if self._errors:
            raise self._errors.pop(0)
        rows = 1 if type(x) is dict else self._rows_of(x)
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(x)
        self._pending_rows += rows
        if metadata:
            retain_refs(metadata)
            self._pending_metadata.append(metadata)
        if self._pending_rows < self.batch_rows:
            return None
        future = self._submit(self._write_job, *self._take_pending())
        self._inflight.append(future)
        while self._inflight and self._inflight[0].done():
            self._inflight.popleft()
        if len(self._inflight) <= 1:
            return None
        oldest = self._inflight.popleft()
        if in_loop_thread(self.loop):
            return asyncio.wrap_future(oldest)
        oldest.result()  # emit() from another thread: wait in it
        return None

    def _rows_of(self, x: Any) -> int:
        pa = self._pa
        if isinstance(x, (pa.Table, pa.RecordBatch)):
            return int(x.num_rows)
        pandas = sys.modules.get("pandas")
        if pandas is not None and isinstance(x, pandas.DataFrame):
            return len(x)
        if isinstance(x, dict):
            return 1
        raise TypeError(
            f"{self._label}: each element must be a dict (column -> value), a pandas "
            f"DataFrame or a pyarrow Table/RecordBatch, got {short_repr(x)}"
        )

    def _take_pending(self) -> tuple[list[Any], list[Any]]:
        taken = (self._pending, self._pending_metadata)
        self._pending, self._pending_metadata, self._pending_rows = [], [], 0
        return taken

    def _submit(self, job: Any, *args: Any) -> concurrent.futures.Future[Any]:
        return self._executor.submit(self._guarded, job, *args)

    def _guarded(self, job: Any, *args: Any) -> Any:
        try:
            return job(*args)
        except Exception as e:
            if not self._errors:
                logger.error("%s: writing failed", self, exc_info=e)
            self._errors.append(e)
            raise

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: rows not durable yet (waiting, or in files not closed/committed)."""
        return {"backlog": self._pending_rows + self._undurable}

    # -- writing (in the sink's thread) --------------------------------------------------
    def _write_job(self, elements: list[Any], metadata: list[Any]) -> None:
        try:
            table = self._table(elements)
            parts = self._split(table)
            for directory, part in parts:
                self._write_part(directory, part, metadata, len(parts) > 1)
        except BaseException as e:
            release_refs([m for ms in metadata for m in ms], error=e)
            raise
        if len(parts) > 1 or not parts:
            release_refs([m for ms in metadata for m in ms])

    def _table(self, elements: list[Any]) -> Any:
        pa = self._pa
        tables: list[Any] = []
        records: list[dict[str, Any]] = []
        try:
            for x in elements:
                if type(x) is dict:
                    records.append(x)
                    continue
                if records:
                    tables.append(self._conform(pa.Table.from_pylist(records, self.schema)))
                    records = []
                if isinstance(x, pa.RecordBatch):
                    x = pa.Table.from_batches([x])
                elif not isinstance(x, pa.Table):
                    x = pa.Table.from_pandas(x, schema=self.schema, preserve_index=False)
                tables.append(self._conform(x))
            if records:
                tables.append(self._conform(pa.Table.from_pylist(records, self.schema)))
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise TypeError(
                f"{self._label}: the rows do not fit the schema {self.schema}: {e}"
            ) from e
        if len(tables) == 1:
            return tables[0]
        return pa.concat_tables(tables)

    def _conform(self, table: Any) -> Any:
        if self.schema is None:
            self.schema = table.schema.remove_metadata()
            missing = [c for c in self.partition_cols if c not in self.schema.names]
            if missing:
                raise ValueError(f"{self._label}: the rows have no partition column {missing}")
        if table.schema.remove_metadata() != self.schema:
            table = table.select(self.schema.names).cast(self.schema)
        return table

    def _split(self, table: Any) -> list[tuple[str, Any]]:
        """The rows of ``table`` by partition directory, without the partition columns."""
        cols = self.partition_cols
        if not cols:
            return [(self.root, table)] if table.num_rows else []
        import pyarrow.compute as pc

        keys = table.select(cols).group_by(cols, use_threads=False).aggregate([])
        parts = []
        for key in keys.to_pylist():
            mask = None
            segments = []
            for c in cols:
                value = key[c]
                test = pc.is_null(table[c]) if value is None else pc.equal(table[c], value)
                mask = test if mask is None else pc.and_(mask, test)
                text = NULL_PARTITION if value is None else quote(str(value), safe="")
                segments.append(f"{c}={text}")
            part = table.filter(mask).drop_columns(cols)
            parts.append(("/".join([self.root, *segments]), part))
        return parts

    def _write_part(self, directory: str, table: Any, metadata: list[Any], shared: bool) -> None:
        while table.num_rows:
            f = self._open.get(directory) or self._open_file(directory, table.schema)
            n = table.num_rows
            if self.rollover_rows is not None:
                n = min(n, self.rollover_rows - f.rows)
            f.writer.write_table(table.slice(0, n) if n < table.num_rows else table)
            table = table.slice(n)
            f.rows += n
            self._undurable += n
            if shared:
                for ms in metadata:
                    retain_refs(ms)
            f.metadata.extend(metadata)
            full = (self.rollover_rows is not None and f.rows >= self.rollover_rows) or (
                self.rollover_bytes is not None and f.sink.tell() >= self.rollover_bytes
            )
            if full:
                self._close(directory)
            if table.num_rows:
                shared = True  # the next file holds rows of the same elements

    def _open_file(self, directory: str, schema: Any) -> _File:
        self._seq += 1
        stem = f"part-{self._token}-{self._run}-{self._seq:06d}"
        temporary = f"{directory}/.{stem}.parquet{_INPROGRESS}"
        final = (
            None if self.transactional else f"{directory}/part-{self._run}-{self._seq:06d}.parquet"
        )
        if is_local(self.fs):
            os.makedirs(directory, exist_ok=True)
            sink = self._pa.OSFile(temporary, "wb")
        else:
            self.fs.makedirs(directory, exist_ok=True)
            sink = self.fs.open(temporary, "wb")
        writer = self._pa.parquet.ParquetWriter(sink, schema, compression=self.compression)
        f = _File(temporary, final, writer, sink, opened_at=time.monotonic())
        self._open[directory] = f
        return f

    def _close(self, directory: str) -> None:
        f = self._open.pop(directory)
        f.writer.close()
        f.sink.close()
        f.writer = f.sink = None
        if f.final is None:  # transactional: committed with a checkpoint
            self._closed.append(f)
            return
        self.fs.mv(f.temporary, f.final)
        self._undurable -= f.rows
        metadata, f.metadata = f.metadata, []
        release_refs([m for ms in metadata for m in ms])

    def _close_all_job(self, elements: list[Any], metadata: list[Any]) -> None:
        if elements:
            self._write_job(elements, metadata)
        for directory in list(self._open):
            self._close(directory)

    def _close_aged_job(self, elements: list[Any], metadata: list[Any]) -> None:
        if elements:
            self._write_job(elements, metadata)
        assert self.rollover_interval is not None
        limit = time.monotonic() - self.rollover_interval
        for directory, f in list(self._open.items()):
            if f.opened_at <= limit:
                self._close(directory)

    # -- time, end of input, flush -------------------------------------------------------
    def _tick_period(self) -> float:
        assert self.rollover_interval is not None
        return max(0.01, min(self.rollover_interval / 4, 1.0))

    def _tick(self) -> None:
        self._timer = self.loop.call_later(self._tick_period(), self._tick)
        assert self.rollover_interval is not None
        limit = time.monotonic() - self.rollover_interval
        if self._pending and self._pending_since <= limit:
            self._submit(self._close_aged_job, *self._take_pending())
        elif any(f.opened_at <= limit for f in list(self._open.values())):
            self._submit(self._close_aged_job, [], [])

    def _at_end_of_input(self) -> Any:
        if self.transactional:
            return None  # the last checkpoint commits
        return [asyncio.wrap_future(self._submit(self._close_all_job, *self._take_pending()))]

    def flush(self, timeout: float | None = 60) -> None:
        """Without checkpoints: write every waiting row, close the open files (they get
        their final names) and wait; raises the error of a failed write. With checkpoints
        it only raises such an error: the files are committed by the checkpoints."""
        if not self.transactional:
            if in_loop_thread(self.loop):
                raise RuntimeError(f"{self}: flush() from the event loop would block it")
            taken = _call_on_loop(self.loop, self._take_pending)
            try:
                self._submit(self._close_all_job, *taken).result(timeout)
            except Exception:
                pass  # recorded in _errors
        if self._errors:
            raise self._errors.pop(0)

    # -- the transactional sink protocol (millstream.checkpoint.transactional) ---------
    def checkpoint_mode(self, on: bool, identity: str | None = None) -> None:
        """From now on (``on``), commit files only at checkpoints, under the pipeline name
        (``pipeline=``, else ``identity``)."""
        self.transactional = on
        if on:
            if self.pipeline is None:
                self.pipeline = identity or self._label
            self._token = hashlib.sha1(self.pipeline.encode()).hexdigest()[:12]

    def _manifests(self) -> list[str]:
        directory = f"{self.root}/{BOOKKEEPING}/{self._token}"
        if not self.fs.exists(directory):
            return []
        return sorted(p for p in self.fs.ls(directory, detail=False) if p.endswith(".json"))

    def committed_checkpoint(self) -> int | None:
        """The id of the last checkpoint committed to the dataset; finishes its commit if
        the process died during it, and deletes the pipeline's uncommitted temporaries."""
        manifests = self._manifests()
        committed: int | None = None
        keep: set[str] = set()
        if manifests:
            record = json.loads(self.fs.cat_file(manifests[-1]))
            committed = int(record["checkpoint"])
            for temporary, final in record["files"]:
                if self.fs.exists(temporary):
                    self.fs.mv(temporary, final)
                keep.add(final)
        prefix = f".part-{self._token}-"
        for path in self.fs.find(self.root):
            name = path.rsplit("/", 1)[-1]
            if name.startswith(prefix) and name.endswith(_INPROGRESS):
                logger.info("%s: deleting %s (not committed by a checkpoint)", self, path)
                self.fs.rm(path)
        return committed

    def has_uncommitted(self) -> bool:
        """Whether rows wait for a checkpoint."""
        return bool(self._pending or self._open or self._closed or self._prepared or self._sealed)

    def prepare_checkpoint(self, checkpoint_id: int) -> None:
        """The rows that arrived since the last checkpoint belong to ``checkpoint_id``
        (called on the loop while the graph is held): their files are closed in the
        sink's thread, after the writes before them."""
        self._prepared.append(
            (checkpoint_id, self._submit(self._seal_job, checkpoint_id, *self._take_pending()))
        )

    def _seal_job(self, checkpoint_id: int, elements: list[Any], metadata: list[Any]) -> _Sealed:
        self._close_all_job(elements, metadata)
        files, self._closed = self._closed, []
        return _Sealed(checkpoint_id, files)

    async def commit_checkpoint(self, checkpoint_id: int, positions: Any) -> None:
        """Commit the files of every checkpoint up to ``checkpoint_id`` (called once the
        checkpoint's file is durable): a manifest naming them, then the renames."""
        owned = [f for k, f in self._prepared if k <= checkpoint_id]
        self._prepared = [(k, f) for k, f in self._prepared if k > checkpoint_id]
        for future in owned:
            self._sealed.append(await asyncio.wrap_future(future))
        sealed = list(self._sealed)
        await asyncio.wrap_future(self._submit(self._commit_job, checkpoint_id, sealed))
        self._sealed = [s for s in self._sealed if s not in sealed]
        for group in sealed:
            for f in group.files:
                self._undurable -= f.rows
                release_refs([m for ms in f.metadata for m in ms])
                f.metadata = []

    def _commit_job(self, checkpoint_id: int, sealed: list[_Sealed]) -> None:
        files: list[list[str]] = []
        for group in sealed:
            if group.final is None:
                group.final = [
                    f"{f.temporary.rsplit('/', 1)[0]}/part-{self._token}-"
                    f"{group.checkpoint_id:08d}-{i:05d}.parquet"
                    for i, f in enumerate(group.files)
                ]
                if is_local(self.fs):
                    for f in group.files:
                        _fsync(f.temporary)
            files.extend(
                [f.temporary, final] for f, final in zip(group.files, group.final, strict=True)
            )
        directory = f"{self.root}/{BOOKKEEPING}/{self._token}"
        self.fs.makedirs(directory, exist_ok=True)
        manifest = f"{directory}/commit-{checkpoint_id:012d}.json"
        record = {"checkpoint": checkpoint_id, "pipeline": self.pipeline, "files": files}
        write_atomically(self.fs, manifest, json.dumps(record).encode())
        for temporary, final in files:
            if self.fs.exists(temporary):
                self.fs.mv(temporary, final)
        for old in self._manifests()[:-2]:
            self.fs.rm(old)

    def destroy(self, streams: Any = None) -> None:
        super().destroy(streams)
        if self._timer is not None:
            self.loop.remove_timeout(self._timer)
            self._timer = None
        if not self.transactional:
            self._submit(self._close_all_job, *self._take_pending())
        self._executor.shutdown(wait=True)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _call_on_loop(loop: Any, func: Any) -> Any:
    """``func()`` run on ``loop`` (from another thread), its result returned."""
    from ..core.loop import sync

    async def call() -> Any:
        return func()

    return sync(loop, call)
