"""``to_postgres``: write each element as a row of a PostgreSQL table (psycopg 3).

Elements are dicts (column -> value) or tuples (values in the order of ``columns``).
``mode='insert'`` writes with ``COPY``; ``mode='upsert'`` with
``INSERT ... ON CONFLICT (key) DO UPDATE``.

Without checkpoints the sink is at-least-once: rows are buffered and written in one
transaction per batch, when ``batch_size`` rows are waiting or ``flush_interval`` seconds
after the first one arrived; each row's refs are released once its batch is committed, so
an upstream Kafka source commits offsets only for rows that are stored.

With checkpoints (:func:`millstream.checkpoint.enable`) the sink is *transactional* and
exactly-once (:mod:`millstream.checkpoint.transactional` is the protocol): rows are kept
until a checkpoint, then written, together with a row of the table
:data:`CHECKPOINT_TABLE` (pipeline, checkpoint id, source positions as JSON), in ONE SQL
transaction after the checkpoint's file is durable. On a restart ``enable()`` restores the
checkpoint that PostgreSQL holds, so the rows after it are produced and written again
exactly once. The steps around the SQL commit are fail-points (:data:`FAILPOINTS`).

``psycopg`` is imported when the node is made, never by ``import millstream``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from collections.abc import Sequence
from typing import Any

from .._utils import short_repr
from ..core.failpoints import failpoint
from ..core.fusion import Stage
from ..core.loop import in_loop_thread, sync
from ..core.refs import release_refs, retain_refs
from ..core.stream import Stream, graph_changed
from .core import Sink

__all__ = ["CHECKPOINT_TABLE", "FAILPOINTS", "to_postgres"]

logger = logging.getLogger("millstream.sinks")

#: The table where transactional sinks record the checkpoint their rows belong to.
CHECKPOINT_TABLE = "millstream_checkpoints"
#: The fail-points around the SQL commit of a checkpoint, in order.
FAILPOINTS = ("postgres_before_commit", "postgres_after_commit")

_CREATE_CHECKPOINT_TABLE = f"""
CREATE TABLE IF NOT EXISTS {CHECKPOINT_TABLE} (
    pipeline text PRIMARY KEY,
    checkpoint_id bigint NOT NULL,
    positions jsonb NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT now()
)"""
_RECORD_CHECKPOINT = f"""
INSERT INTO {CHECKPOINT_TABLE} (pipeline, checkpoint_id, positions) VALUES (%s, %s, %s)
ON CONFLICT (pipeline) DO UPDATE SET checkpoint_id = EXCLUDED.checkpoint_id,
    positions = EXCLUDED.positions, committed_at = now()"""


def import_psycopg() -> Any:
    """The ``psycopg`` module, or an ImportError that says how to install it."""
    try:
        import psycopg
    except ImportError:
        raise ImportError(
            "to_postgres needs psycopg 3: pip install 'psycopg[binary]' "
            "(or pip install 'millstream[postgres]')"
        ) from None
    return psycopg


def jsonable(value: Any) -> Any:
    """``value`` as JSON data: mapping keys become strings, tuples lists, others their repr.

    >>> jsonable({('t', 0): 5, 'n': (1, 2.5, None)})
    {"('t', 0)": 5, 'n': [1, 2.5, None]}
    """
    if isinstance(value, dict):
        return {k if isinstance(k, str) else repr(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def copy_row_writer(copy: Any) -> tuple[Any, Any]:
    """``(format_row, send)`` for a psycopg ``Copy``: ``format_row(row)`` adds a row to the
    COPY's buffer and returns the data to ``send`` once the buffer is full (else nothing).
    That is what ``copy.write_row`` does, one Python call fewer per row (8% of the client's
    time); ``(None, None)`` when this psycopg has no ``copy.formatter.write_row``.

    >>> copy_row_writer(object())
    (None, None)
    """
    format_row = getattr(getattr(copy, "formatter", None), "write_row", None)
    if not callable(format_row):
        return None, None
    return format_row, copy.write


#: A batch: the rows, and the metadata of their elements (their refs are held).
_Batch = tuple[list[Any], list[Any]]
#: A checkpoint's share of the transactional buffer: its id, the end of its rows in the
#: buffer (the rows before it belong to it or to an earlier checkpoint), its metadata.
_Prepared = tuple[int, int, list[Any]]


@Stream.register_api()
class to_postgres(Sink):
    """Write each element as a row of the PostgreSQL ``table``; emit nothing.

    Parameters
    ----------
    table : str
        The table (``name`` or ``schema.name``); it must exist.
    dsn : str
        A libpq connection string (``'host=... dbname=...'`` or ``'postgresql://...'``).
    columns : sequence of str, optional
        The columns written. Default: the keys of the first dict element, or every column
        of the table (in its order) for tuples.
    mode : {'insert', 'upsert'}
        ``insert`` writes with ``COPY``; ``upsert`` with ``INSERT ... ON CONFLICT (key) DO
        UPDATE`` (the other columns take the new values).
    key : str or sequence of str
        The conflict columns of ``upsert`` (a primary key or unique index of the table).
    batch_size : int
        Without checkpoints: write once this many rows are waiting.
    flush_interval : float
        Without checkpoints: write at most this many seconds after a row arrived.
    pipeline : str, optional
        With checkpoints: the name under which :data:`CHECKPOINT_TABLE` records this
        sink's checkpoints (default ``'<checkpoint location>#<node id>'``).

    Examples
    --------
    Needs a server (``dsn``), so it is not run here::

        source = Stream.from_iterable([{'id': 1, 'word': 'a'}, {'id': 2, 'word': 'b'}])
        out = source.to_postgres('words', 'host=localhost dbname=test')
        run_pipeline(source); out.flush()
    """

    def __init__(
        self,
        upstream: Stream,
        table: str,
        dsn: str,
        columns: Sequence[str] | None = None,
        mode: str = "insert",
        key: str | Sequence[str] | None = None,
        batch_size: int = 1000,
        flush_interval: float = 1.0,
        pipeline: str | None = None,
        **kwargs: Any,
    ):
        self._psycopg = import_psycopg()
        label = f"to_postgres(table={table!r})"
        if not isinstance(table, str) or not table:
            raise ValueError(f"to_postgres: table must be a non-empty str, got {short_repr(table)}")
        if mode not in ("insert", "upsert"):
            raise ValueError(f"{label}: mode must be 'insert' or 'upsert', got {mode!r}")
        keys = [key] if isinstance(key, str) else list(key or ())
        if mode == "upsert" and not keys:
            raise ValueError(f"{label}: mode='upsert' needs key= (the conflict columns)")
        if type(batch_size) is not int or batch_size < 1:
            raise ValueError(f"{label}: batch_size must be an int >= 1, got {batch_size!r}")
        self.table = table
        self.dsn = dsn
        self.columns: list[str] | None = list(columns) if columns is not None else None
        self.mode = mode
        self.key = keys
        self.batch_size = batch_size
        self.flush_interval = float(flush_interval)
        self.pipeline = pipeline
        self._label = label
        #: rows not yet handed to a write, and the metadata of their elements. When
        #: transactional, ``_rows`` is one list for good (fused code appends to it) holding
        #: every row not yet committed, and ``_prepared`` says which checkpoint owns which
        #: rows; ``_plain``: every row there is a tuple (dicts and lists are converted when
        #: the columns are known)
        self._rows: list[Any] = []
        self._metadata: list[Any] = []
        self._prepared: list[_Prepared] = []
        self._plain = True
        self.transactional = False
        self._conn: Any = None
        self._conn_lock = threading.Lock()
        self._rows_lock = threading.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._writing = 0  # rows of the write in progress (at-least-once mode)
        self._timer: Any = None
        self._errors: list[BaseException] = []
        kwargs["ensure_io_loop"] = True
        super().__init__(upstream, **kwargs)

    def __str__(self) -> str:
        return f"<{self._label}>"

    # -- elements -----------------------------------------------------------------------
    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        if self._errors:
            raise self._errors.pop(0)
        if not isinstance(x, (dict, tuple, list)):
            raise TypeError(
                f"{self._label}: each element must be a dict (column -> value) or a tuple of "
                f"values, got {short_repr(x)}"
            )
        with self._rows_lock:
            if not self.transactional or type(x) is tuple:
                self._rows.append(x)
            else:
                self._keep_other(x)
            if metadata:
                retain_refs(metadata)
                self._metadata.append(metadata)
            waiting = len(self._rows)
        if self.transactional:
            return None
        if waiting >= self.batch_size:
            if in_loop_thread(self.loop):
                return self._start_writer()
            self._write_now()  # emit() from another thread: write in it
        elif self._timer is None:
            self._timer = self.loop.call_later(self.flush_interval, self._on_timer)
        return None

    _fusion_update = update

    def _fusion_stage(self) -> Stage | None:
        """Fused only when transactional: then a row is only appended until the checkpoint
        (without checkpoints rows are held past ``update`` until their batch commits, so
        their refs are needed). A tuple is appended by ``list.append`` itself, with no
        Python call; anything else goes through :meth:`_keep_other`."""
        if not self.transactional:
            return None
        return Stage(
            "sink",
            self._rows.append,
            exact_type=tuple,
            otherwise=self._keep_other,
            returns_none=True,
        )

    def _keep_other(self, x: Any) -> None:
        """Keep a row that is not a tuple (transactional): a dict or a list becomes the
        tuple of its values in the order of the columns once these are known; anything
        else raises TypeError. Its width and keys are checked here; a tuple's when it is
        written."""
        if isinstance(x, dict):
            if self.columns is None and not self._rows and not self._prepared:
                self.columns = list(x)  # the first row names the columns
        elif not isinstance(x, (tuple, list)):
            raise TypeError(
                f"{self._label}: each element must be a dict (column -> value) or a tuple of "
                f"values, got {short_repr(x)}"
            )
        columns = self.columns
        if columns is None:  # the table's columns, read at the first write
            self._plain = False
            self._rows.append(x)
        else:
            self._rows.append(tuple(self._values(x, columns)))

    def _write_now(self) -> None:
        batch = self._detach()
        try:
            self._write_transaction(batch[0], len(batch[0]), False, None)
        except Exception as e:
            release_refs([m for ms in batch[1] for m in ms], error=e)
            raise
        release_refs([m for ms in batch[1] for m in ms])

    def _on_timer(self) -> None:
        self._timer = None
        if self._rows and not self.transactional:
            self._start_writer()

    def _start_writer(self) -> Any:
        """Start writing the waiting rows; the task is backpressure for a full batch."""
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_all())
        return self._writer

    async def _write_all(self) -> None:
        while self._rows:
            batch = self._detach()
            try:
                rows = batch[0]
                self._writing = len(rows)
                await asyncio.to_thread(self._write_transaction, rows, len(rows), False, None)
            except Exception as e:
                self._writing = 0
                release_refs([m for ms in batch[1] for m in ms], error=e)
                if not self._errors:
                    logger.error("%s: writing %d rows failed", self, len(batch[0]), exc_info=e)
                self._errors.append(e)
                return
            self._writing = 0
            release_refs([m for ms in batch[1] for m in ms])

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the rows not committed yet (waiting, or in the write in progress)."""
        return {"backlog": len(self._rows) + self._writing}

    def _detach(self) -> _Batch:
        with self._rows_lock:
            batch = (self._rows, self._metadata)
            self._rows, self._metadata = [], []
        return batch

    def flush(self, timeout: float | None = 60) -> None:
        """Write every waiting row now and wait until it is committed (at-least-once mode);
        raises the error of a failed write."""
        if not self.transactional:
            sync(self.loop, self._flush_async, callback_timeout=timeout)
        if self._errors:
            raise self._errors.pop(0)

    async def _flush_async(self) -> None:
        while self._rows or (self._writer is not None and not self._writer.done()):
            if self._writer is not None and not self._writer.done():
                await self._writer
            elif self._rows:
                await self._start_writer()

    # -- SQL ----------------------------------------------------------------------------
    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = self._psycopg.connect(self.dsn)
        return self._conn

    def _columns_for(self, conn: Any, first: Any) -> list[str]:
        """The columns to write: the keys of the first dict row, else the table's."""
        if isinstance(first, dict):
            return list(first)
        cursor = conn.execute(self._sql("SELECT * FROM {} LIMIT 0").format(self._table_id()))
        return [c.name for c in cursor.description]

    def _sql(self, text: str) -> Any:
        return self._psycopg.sql.SQL(text)

    def _table_id(self) -> Any:
        return self._psycopg.sql.Identifier(*self.table.split("."))

    def _values(self, row: Any, columns: list[str]) -> Sequence[Any]:
        if isinstance(row, dict):
            try:
                return [row[c] for c in columns]
            except KeyError as e:
                raise ValueError(
                    f"{self._label}: the row {short_repr(row)} has no column {e}"
                ) from None
        if len(row) != len(columns):
            raise ValueError(
                f"{self._label}: the row {short_repr(row)} has {len(row)} values for the "
                f"{len(columns)} columns {columns}"
            )
        return row

    def _write_rows(self, conn: Any, rows: list[Any], start: int, stop: int, plain: bool) -> None:
        """Write ``rows[start:stop]`` in the transaction open on ``conn`` (``rows`` may grow
        meanwhile); ``plain``: each of them is a tuple."""
        if start >= stop:
            return
        if self.columns is None:
            self.columns = self._columns_for(conn, rows[start])
        columns = self.columns
        sql = self._psycopg.sql
        names = sql.SQL(", ").join(map(sql.Identifier, columns))
        cursor = conn.cursor()
        if self.mode == "insert":
            query = sql.SQL("COPY {} ({}) FROM STDIN").format(self._table_id(), names)
            try:
                with cursor.copy(query) as copy:
                    write_row = copy.write_row
                    format_row, send = copy_row_writer(copy)
                    if plain and format_row is not None:  # the server checks the widths
                        for row in itertools.islice(rows, start, stop):
                            data = format_row(row)
                            if data:
                                send(data)
                    elif plain:
                        for row in itertools.islice(rows, start, stop):
                            write_row(row)
                    else:
                        width, values = len(columns), self._values
                        for row in itertools.islice(rows, start, stop):
                            if type(row) is tuple and len(row) == width:
                                write_row(row)
                            else:
                                write_row(values(row, columns))
            except self._psycopg.errors.BadCopyFileFormat:
                for row in itertools.islice(rows, start, stop):
                    self._values(row, columns)  # a ValueError that names a row of bad width
                raise
            return
        updates = [c for c in columns if c not in self.key]
        action = (
            sql.SQL("DO UPDATE SET ")
            + sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in updates
            )
            if updates
            else sql.SQL("DO NOTHING")
        )
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT ({}) {}").format(
            self._table_id(),
            names,
            sql.SQL(", ").join(sql.Placeholder() * len(columns)),
            sql.SQL(", ").join(map(sql.Identifier, self.key)),
            action,
        )
        # rows with the same key in one batch: the last one wins (one statement per row)
        params = [self._values(row, columns) for row in itertools.islice(rows, start, stop)]
        cursor.executemany(query, params)

    def _write_transaction(
        self,
        rows: list[Any],
        stop: int,
        plain: bool,
        checkpoint: tuple[int, Any] | None = None,
        owned: Sequence[_Prepared] = (),
    ) -> None:
        """Write ``rows[:stop]`` in one transaction; with ``checkpoint`` (id, positions),
        with its record, leaving out the rows of the checkpoints in ``owned`` that the
        table already holds (a commit whose reply was lost)."""
        with self._conn_lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    start = 0
                    if checkpoint is not None:
                        start = self._committed_before(conn, owned)
                    self._write_rows(conn, rows, start, stop, plain)
                    if checkpoint is not None:
                        checkpoint_id, positions = checkpoint
                        conn.execute(
                            _RECORD_CHECKPOINT,
                            (self.pipeline, checkpoint_id, json.dumps(jsonable(positions))),
                        )
                        failpoint("postgres_before_commit")
            except Exception:
                if conn.closed or conn.broken:
                    self._conn = None
                raise
            if checkpoint is not None:
                failpoint("postgres_after_commit")

    def _committed_before(self, conn: Any, owned: Sequence[_Prepared]) -> int:
        """Where the rows not yet in the table begin: after those of the checkpoints in
        ``owned`` up to the one the table records (locked until the transaction ends)."""
        row = conn.execute(
            f"SELECT checkpoint_id FROM {CHECKPOINT_TABLE} WHERE pipeline = %s FOR UPDATE",
            (self.pipeline,),
        ).fetchone()
        if row is None:
            return 0
        held = int(row[0])
        done = [end for checkpoint_id, end, _ in owned if checkpoint_id <= held]
        if not done:
            return 0
        logger.warning(
            "%s: checkpoint %d is committed already (its reply was lost): its rows are not "
            "written again",
            self,
            held,
        )
        return done[-1]

    # -- the transactional sink protocol (millstream.checkpoint.transactional) ---------
    def checkpoint_mode(self, on: bool, identity: str | None = None) -> None:
        """From now on (``on``), write rows only at checkpoints, recorded under the
        pipeline name (``pipeline=``, else ``identity``)."""
        self.transactional = on
        graph_changed()  # fused only when transactional
        if on and self.pipeline is None:
            self.pipeline = identity or self._label

    def committed_checkpoint(self) -> int | None:
        """The id of the last checkpoint committed in PostgreSQL for this pipeline."""
        with self._conn_lock:
            conn = self._connection()
            with conn.transaction():
                conn.execute(_CREATE_CHECKPOINT_TABLE)
            row = conn.execute(
                f"SELECT checkpoint_id FROM {CHECKPOINT_TABLE} WHERE pipeline = %s",
                (self.pipeline,),
            ).fetchone()
            conn.rollback()
        return None if row is None else int(row[0])

    def has_uncommitted(self) -> bool:
        """Whether rows wait for a checkpoint."""
        return bool(self._rows or self._prepared)

    def prepare_checkpoint(self, checkpoint_id: int) -> None:
        """The rows that arrived since the last checkpoint belong to ``checkpoint_id``
        (called while the graph is held): note where they end."""
        with self._rows_lock:
            metadata, self._metadata = self._metadata, []
            self._prepared.append((checkpoint_id, len(self._rows), metadata))

    async def commit_checkpoint(self, checkpoint_id: int, positions: Any) -> None:
        """Write the rows of every checkpoint up to ``checkpoint_id`` and its record in one
        transaction (called once the checkpoint's file is durable); rows arriving
        meanwhile are appended after them and wait for the next checkpoint."""
        owned = [p for p in self._prepared if p[0] <= checkpoint_id]
        end = owned[-1][1] if owned else 0
        await asyncio.to_thread(
            self._write_transaction,
            self._rows,
            end,
            self._plain,
            (checkpoint_id, positions),
            owned,
        )
        with self._rows_lock:
            del self._rows[:end]
            self._prepared = [(k, e - end, m) for k, e, m in self._prepared if k > checkpoint_id]
            if not self._rows:
                self._plain = True
        for _id, _end, metadata in owned:
            release_refs([m for ms in metadata for m in ms])

    def destroy(self, streams: Any = None) -> None:
        super().destroy(streams)
        if self._timer is not None:
            self.loop.remove_timeout(self._timer)
            self._timer = None
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
