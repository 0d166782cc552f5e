"""``to_kafka_dead_letters``: write :class:`~millstream.core.errors.DeadLetter` records to a
Kafka topic, the original record byte-identical, the error in headers.

A dead letter whose element is a Kafka record (``from_kafka(keys=True)``) is written
with the record's key, value and headers unchanged; any other element is written as its
value when it is ``bytes`` (``from_kafka`` without keys), else as its ``repr`` in UTF-8.
Headers named ``millstream.*`` are added: the error type, message, node, function and,
when known, the source topic, partition and offset.

Each letter is written synchronously (produce, then flush): the element's refs are
released (its source offset may be committed) only once the broker has acknowledged the
letter. Dead letters are rare, so this costs nothing on the normal path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._utils import short_repr
from ..core.errors import DeadLetter
from ..core.stream import Stream
from ..kafka.log import librdkafka_log
from ..kafka.settings import check_settings
from .core import Sink

__all__ = ["dead_letter_message", "to_kafka_dead_letters"]


def dead_letter_message(letter: DeadLetter) -> dict[str, Any]:
    """The ``key``, ``value`` and ``headers`` a dead letter is written to Kafka with.

    >>> from millstream.core.errors import DeadLetter
    >>> record = {'key': b'k', 'value': b'\\xff', 'headers': [('h', b'1')], 'topic': 't',
    ...           'partition': 0, 'offset': 7}
    >>> letter = DeadLetter(record, 'ValueError', 'bad', '', '<map: f>', 'f',
    ...                     ({'topic': 't', 'partition': 0, 'offset': 7},))
    >>> m = dead_letter_message(letter)
    >>> m['key'], m['value'], m['headers'][:2]
    (b'k', b'\\xff', [('h', b'1'), ('millstream.error.type', b'ValueError')])
    """
    record = letter.record
    if record is not None:
        key = record.get("key")
        value = record.get("value")
        headers = list(record.get("headers") or ())
    else:
        x = letter.element
        key = None
        value = x if isinstance(x, bytes) else repr(x).encode()
        headers = []
    headers.append(("millstream.error.type", letter.error_type.encode()))
    headers.append(("millstream.error.message", letter.error_message.encode()))
    headers.append(("millstream.node", letter.node.encode()))
    if letter.function is not None:
        headers.append(("millstream.function", letter.function.encode()))
    for position in letter.positions[:1]:
        for name in ("topic", "partition", "offset"):
            if name in position:
                headers.append((f"millstream.source.{name}", str(position[name]).encode()))
    return {"key": key, "value": value, "headers": headers}


@Stream.register_api()
class to_kafka_dead_letters(Sink):
    """Write each :class:`~millstream.core.errors.DeadLetter` to ``topic`` (see the module).

    Examples
    --------
    >>> dead = Stream()
    >>> dead.to_kafka_dead_letters('orders.dead', {'bootstrap.servers': 'localhost:9092'})
    <to_kafka_dead_letters: orders.dead>
    """

    str_list = ["topic"]

    def __init__(
        self,
        upstream: Stream,
        topic: str,
        producer_config: Mapping[str, Any],
        flush_timeout: float = 30.0,
        **kwargs: Any,
    ):
        if not isinstance(topic, str) or not topic:
            raise ValueError(
                f"to_kafka_dead_letters: topic must be a non-empty str, got {short_repr(topic)}"
            )
        config = dict(producer_config)
        config.setdefault("logger", librdkafka_log)
        check_settings(
            f"to_kafka_dead_letters(topic={topic!r})", config, "producer", "producer_config"
        )
        self.topic = topic
        self.flush_timeout = flush_timeout
        self._config = config
        self._producer: Any = None
        #: the exactly-once producer this node writes through (see :meth:`use_transaction`)
        self.transaction: Any = None
        super().__init__(upstream, **kwargs)

    @property
    def producer_config(self) -> dict[str, Any]:
        """A copy of the settings the producer is made with."""
        return dict(self._config)

    def use_transaction(self, transaction: Any) -> None:
        """Write through ``transaction`` (exactly-once mode of
        :func:`millstream.checkpoint.enable`): each letter is committed in the same Kafka
        transaction as the checkpoint's output and offsets."""
        self.transaction = transaction

    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        if not isinstance(x, DeadLetter):
            raise TypeError(f"{self}: expects DeadLetter records, got {short_repr(x)}")
        if self.transaction is not None:
            message = dead_letter_message(x)
            self.transaction.produce(
                self.topic, message["value"], message["key"], message["headers"]
            )
            return []
        if self._producer is None:
            import confluent_kafka

            self._producer = confluent_kafka.Producer(self._config)
        failures: list[Any] = []

        def delivered(error: Any, _msg: Any) -> None:
            if error is not None:
                failures.append(error)

        self._producer.produce(
            self.topic,
            on_delivery=delivered,
            **dead_letter_message(x),
        )
        left = self._producer.flush(self.flush_timeout)
        if failures or left:
            reason = failures[0] if failures else f"not acknowledged in {self.flush_timeout} s"
            raise RuntimeError(f"{self}: writing the dead letter of {x.node} failed: {reason}")
        return []
