"""The transactional sink protocol: sinks whose output commits with the checkpoint.

A sink that can write its output atomically with a record of the checkpoint (PostgreSQL:
one SQL transaction; :class:`~millstream.sinks.postgres.to_postgres`) gives exactly-once
output with checkpoints. The coordinator (:mod:`.coordinator`) finds such sinks in the
graph by their ``commit_checkpoint`` method and calls, in this order:

``checkpoint_mode(True, identity)``
    At :func:`~millstream.checkpoint.enable`, before anything else: from now on, hold the
    output until checkpoints commit it. ``identity`` (``'<location>#<node id>'``) names
    the pipeline, the same on every restart from the same checkpoints.
``committed_checkpoint() -> int | None``
    Still in ``enable()``: the id of the last checkpoint this sink committed (None: none).
    The coordinator restores THAT checkpoint file, not the newest one: if the process died
    after writing file ``k`` but before the sink committed ``k``, the sink holds ``k - 1``;
    the graph restarts from ``k - 1``, the output of ``k`` is produced again and committed
    under a new id (ids keep growing past every file). Files are pruned only after the
    sink committed, and at least two are kept.
``has_uncommitted() -> bool``
    Whether output waits for a checkpoint (a checkpoint is taken even when no source moved,
    e.g. a window closed by time).
``prepare_checkpoint(checkpoint_id)``
    While the graph is held at checkpoint ``checkpoint_id`` (on the loop, nothing in
    flight): detach the output that arrived since the last checkpoint; it belongs to
    ``checkpoint_id``.
``commit_checkpoint(checkpoint_id, positions)`` (may return an awaitable)
    Once file ``checkpoint_id`` is durable: commit the output detached for every
    checkpoint up to ``checkpoint_id`` together with the record (pipeline, id, source
    ``positions``), all or nothing. If it raises, the output stays detached and the next
    checkpoint commits it.

With several transactional sinks in one graph, a crash between their commits leaves them
at different checkpoints; the graph restarts from the oldest and the sinks ahead write
their output of the newer checkpoints again (exactly-once holds for one sink per graph).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["TransactionalSink", "is_transactional"]


@runtime_checkable
class TransactionalSink(Protocol):
    """What the coordinator calls on a transactional sink (see the module's text)."""

    def checkpoint_mode(self, on: bool, identity: str | None = None) -> None: ...

    def committed_checkpoint(self) -> int | None: ...

    def has_uncommitted(self) -> bool: ...

    def prepare_checkpoint(self, checkpoint_id: int) -> None: ...

    def commit_checkpoint(self, checkpoint_id: int, positions: Any) -> Any: ...


def is_transactional(node: Any) -> bool:
    """Whether ``node`` takes part in checkpoints as a transactional sink.

    >>> from millstream import Stream
    >>> is_transactional(Stream().sink(print))
    False
    """
    return callable(getattr(node, "commit_checkpoint", None))
