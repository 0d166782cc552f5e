"""The position of a Kafka source, as a checkpoint records it, and its static member id.

A position is plain data: ``{topic: {partition: next_offset}}``, the offset after the last
record of each partition that the source emitted into the graph. Restoring it makes the
source resume from exactly those offsets; partitions it does not name resume from the
consumer group's committed offsets.

Examples
--------
>>> offsets = position_offsets('<source>', {'orders': {0: 12, 1: 7}})
>>> offsets
{('orders', 0): 12, ('orders', 1): 7}
>>> position_of(offsets)
{'orders': {0: 12, 1: 7}}
>>> position_offsets('<source>', {'orders': {0: -1}})
Traceback (most recent call last):
...
millstream.exceptions.StateError: <source> cannot restore position {'orders': {0: -1}}: the offset of topic 'orders' partition 0 must be an int >= 0, got -1
>>> position_offsets('<source>', {'clicks': {0: 3}}, topics=['orders'])
Traceback (most recent call last):
...
millstream.exceptions.StateError: <source> cannot restore position {'clicks': {0: 3}}: it names topic 'clicks', which this source does not read (it reads ['orders'])
"""  # noqa: E501

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from .._utils import short_repr
from ..exceptions import StateError

__all__ = ["position_of", "position_offsets", "static_member_id"]

TopicPartition = tuple[str, int]


def _is_offset(value: Any) -> bool:
    return type(value) is int and value >= 0


def position_offsets(
    node: Any, position: Any, topics: Iterable[str] | None = None
) -> dict[TopicPartition, int]:
    """Check ``position`` (``{topic: {partition: offset}}``) and return it as
    ``{(topic, partition): offset}``; :class:`StateError` naming ``node`` and what is wrong.

    ``topics``, when given, are the topics the source reads: a position naming another
    one is refused."""

    def refuse(why: str) -> StateError:
        return StateError(f"{node} cannot restore position {short_repr(position)}: {why}")

    if not isinstance(position, Mapping):
        raise refuse("expected a dict {topic: {partition: next offset}}")
    known = None if topics is None else list(topics)
    out: dict[TopicPartition, int] = {}
    for topic, partitions in position.items():
        if not isinstance(topic, str) or not topic:
            raise refuse(f"a topic must be a name, got {short_repr(topic)}")
        if known is not None and topic not in known:
            raise refuse(
                f"it names topic {topic!r}, which this source does not read (it reads {known})"
            )
        if not isinstance(partitions, Mapping):
            raise refuse(
                f"topic {topic!r} must map partitions to offsets, got {short_repr(partitions)}"
            )
        for partition, offset in partitions.items():
            if not _is_offset(partition):
                raise refuse(
                    f"a partition of topic {topic!r} must be an int >= 0, got "
                    f"{short_repr(partition)}"
                )
            if not _is_offset(offset):
                raise refuse(
                    f"the offset of topic {topic!r} partition {partition} must be an int >= 0, "
                    f"got {short_repr(offset)}"
                )
            out[(topic, partition)] = offset
    return out


def position_of(offsets: Mapping[TopicPartition, int]) -> dict[str, dict[int, int]]:
    """``{(topic, partition): offset}`` as a position ``{topic: {partition: offset}}``
    (a new dict, sorted by topic and partition)."""
    out: dict[str, dict[int, int]] = {}
    for (topic, partition), offset in sorted(offsets.items()):
        out.setdefault(topic, {})[partition] = offset
    return out


def static_member_id(group: str, topics: Iterable[str], identity: str | None) -> str:
    """The ``group.instance.id`` a checkpointed ``from_kafka`` uses unless told otherwise:
    ``millstream-`` and a hash of the group, the topics and ``identity`` (the checkpoint
    location and the source's node id), so that the same pipeline restarted from the same
    checkpoints is the same static member of its group, and another one is not.

    >>> static_member_id('billing', ['orders'], '/ckpt#source')
    'millstream-c9eee8a05fe3bc150074'
    """
    key = "\n".join([group, ",".join(sorted(topics)), identity or ""])
    return "millstream-" + hashlib.sha256(key.encode()).hexdigest()[:20]
