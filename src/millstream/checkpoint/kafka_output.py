"""Exactly-once Kafka output: the graph's Kafka writers as one transactional sink.

:func:`~millstream.checkpoint.enable` with ``exactly_once=True`` gathers every Kafka
writer of the graph (``to_kafka``, ``to_kafka_dead_letters``: nodes with
``use_transaction``) into one :class:`KafkaOutput`, which takes part in checkpoints through
the transactional sink protocol (:mod:`.transactional`) with a
:class:`~millstream.kafka.transactions.KafkaTransactions` producer:

* ``committed_checkpoint()`` fences the previous run (``init_transactions``) and reads
  the pipeline's last checkpoint record: the checkpoint a restart restores;
* ``prepare_checkpoint`` cuts the output while the graph is held;
* ``commit_checkpoint`` commits, in one Kafka transaction, the output of the checkpoint,
  the offsets of the ``from_kafka`` sources reading the same cluster (of the partitions
  they own now, with their group's metadata: KIP-447 fencing) and the checkpoint record.

Those sources commit no offsets themselves; before the group takes partitions away, a
checkpoint commits what was read of them (``commit_offsets_in_transaction``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .._utils import short_repr
from ..kafka.transactions import RECORD_TOPIC, KafkaTransactions

__all__ = ["KafkaOutput", "kafka_writers"]

logger = logging.getLogger("millstream.checkpoint")

_SERVER_KEYS = ("bootstrap.servers", "metadata.broker.list")
#: settings of one writer that are not the transactional producer's
_PER_WRITER = ("logger", "error_cb", "transactional.id")


def kafka_writers(nodes: list[Any]) -> list[Any]:
    """The nodes that can write through a Kafka transaction (``use_transaction``)."""
    return [n for n in nodes if callable(getattr(n, "use_transaction", None))]


def _servers(config: dict[str, Any]) -> str:
    return next((str(config[k]) for k in _SERVER_KEYS if config.get(k)), "")


class KafkaOutput:
    """The Kafka writers of one graph, committed once per checkpoint (see the module).

    Parameters
    ----------
    writers : list
        ``to_kafka`` / ``to_kafka_dead_letters`` nodes, all on one Kafka cluster.
    sources : dict
        ``{source: node id}`` of the ``from_kafka`` sources reading that cluster.
    checkpoint_now : callable
        Takes a checkpoint, blocking (called from a consumer thread before a rebalance).
    record_topic : str
        Where checkpoint records go.
    """

    def __init__(
        self,
        writers: list[Any],
        sources: dict[Any, str],
        checkpoint_now: Callable[[], Any],
        record_topic: str = RECORD_TOPIC,
    ):
        configs = [dict(w.producer_config) for w in writers]
        clusters = {_servers(c) for c in configs}
        if len(clusters) != 1:
            raise ValueError(
                "exactly_once=True: one Kafka transaction spans one cluster, but the graph "
                f"writes to {sorted(clusters)} ({short_repr(writers)})"
            )
        self.servers = clusters.pop()
        self.config = {k: v for k, v in configs[0].items() if k not in _PER_WRITER}
        explicit = {c.get("transactional.id") for c in configs} - {None}
        if len(explicit) > 1:
            raise ValueError(
                f"exactly_once=True: the Kafka writers set different transactional.id {explicit}"
            )
        if explicit:
            self.config["transactional.id"] = explicit.pop()
        self.writers = writers
        self.sources = sources
        self.record_topic = record_topic
        self.transaction: KafkaTransactions | None = None
        self._checkpoint_now = checkpoint_now
        self.identity: str | None = None

    def __repr__(self) -> str:
        return f"<KafkaOutput of {short_repr(self.writers)} at {self.servers}>"

    # -- the transactional sink protocol ------------------------------------------------
    def checkpoint_mode(self, on: bool, identity: str | None = None) -> None:
        if not on:
            return
        self.identity = identity or "millstream"
        transaction = KafkaTransactions(self.config, self.identity, self.record_topic)
        self.transaction = transaction
        for writer in self.writers:
            writer.use_transaction(transaction)
        for source in self.sources:
            source.commit_offsets_in_transaction(self._before_revoke, transaction.fence)

    def committed_checkpoint(self) -> int | None:
        transaction = self._transaction()
        transaction.start()
        return transaction.committed_checkpoint()

    def has_uncommitted(self) -> bool:
        return self._transaction().has_uncommitted()

    def prepare_checkpoint(self, checkpoint_id: int) -> None:
        self._transaction().prepare()

    async def commit_checkpoint(self, checkpoint_id: int, positions: dict[str, Any]) -> None:
        transaction = self._transaction()
        offsets = []
        for source, node_id in self.sources.items():
            if node_id in positions:
                found = source.transaction_offsets(positions[node_id])
                if found is not None:
                    offsets.append(found)
        await asyncio.to_thread(
            transaction.commit, checkpoint_id, offsets, {"identity": self.identity}
        )
        transaction.resume()

    def close(self) -> None:
        """Abort what no checkpoint committed and close the producer."""
        if self.transaction is not None:
            self.transaction.close()

    # -- rebalances -----------------------------------------------------------------------
    def _before_revoke(self) -> None:
        """On a consumer thread, before the group takes partitions: commit a checkpoint
        while they are still this pipeline's; if that fails, the output stops (what
        was read of them must not be committed by anyone else's offsets)."""
        try:
            self._checkpoint_now()
        except Exception as e:
            logger.error("checkpoint before a rebalance failed: %s", e)
            self._transaction().fence(f"the checkpoint before a rebalance failed: {e}")

    def _transaction(self) -> KafkaTransactions:
        if self.transaction is None:
            raise RuntimeError(f"{self}: not in checkpoint mode")
        return self.transaction
