"""The Apache Pulsar client code that ``from_pulsar`` and ``to_pulsar`` share.

The client library (``pulsar-client``, the official Python client over the C++ one) is
imported on first use, never by ``import millstream``; when it is missing the error says
``pip install 'millstream[pulsar]'``. Its log goes to the ``millstream.connectors``
logger. Errors are sorted by cause: a service URL nobody answers at raises
:class:`~millstream.exceptions.PulsarConnectError`, a missing tenant, namespace or topic
:class:`~millstream.exceptions.UnknownTopicError`, both naming the node and the topic.

Positions (what ``from_pulsar`` keeps in checkpoints) are message ids, serialized with
``MessageId.serialize()``; :func:`message_key` orders them within one topic partition.

>>> message_key((7, 3, -1))
(7, 3, -1)
>>> describe_subscription_type("Key_Shared")
'KeyShared'
"""

from __future__ import annotations

import logging
from typing import Any

from ..exceptions import PulsarConnectError, UnknownTopicError

__all__ = [
    "SUBSCRIPTION_TYPES",
    "classify_pulsar_error",
    "describe_subscription_type",
    "import_pulsar",
    "make_client",
    "message_key",
]

logger = logging.getLogger("millstream.connectors")

#: the subscription types ``from_pulsar`` accepts, as Pulsar's documentation spells them,
#: mapped to the names of ``pulsar.ConsumerType``
SUBSCRIPTION_TYPES = {
    "Exclusive": "Exclusive",
    "Shared": "Shared",
    "Failover": "Failover",
    "Key_Shared": "KeyShared",
    "KeyShared": "KeyShared",
}


def import_pulsar() -> Any:
    """The ``pulsar`` module, or an ImportError that says how to install it."""
    try:
        import pulsar
    except ImportError:
        raise ImportError(
            "Pulsar needs the pulsar-client library: pip install 'millstream[pulsar]'"
        ) from None
    return pulsar


def describe_subscription_type(name: str) -> str:
    """The ``pulsar.ConsumerType`` name of a subscription type; ValueError if unknown."""
    try:
        return SUBSCRIPTION_TYPES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"subscription_type must be one of 'Exclusive', 'Shared', 'Failover', "
            f"'Key_Shared'; got {name!r}"
        ) from None


def make_client(service_url: str, connect_timeout: float, **client_params: Any) -> Any:
    """A ``pulsar.Client`` for ``service_url`` that logs to ``millstream.connectors`` and
    gives up on a request after ``connect_timeout`` seconds."""
    pulsar = import_pulsar()
    client_params.setdefault("logger", logger)
    client_params.setdefault("operation_timeout_seconds", max(1, round(connect_timeout)))
    client_params.setdefault("connection_timeout_ms", max(100, int(connect_timeout * 1000)))
    try:
        return pulsar.Client(service_url, **client_params)
    except Exception as e:  # a malformed URL, unknown parameters
        raise ValueError(f"cannot make a Pulsar client for {service_url!r}: {e}") from e


def classify_pulsar_error(error: BaseException, what: str, service_url: str) -> BaseException:
    """The millstream error for ``error`` raised while ``what`` (e.g. "from_pulsar: subscribing
    to topic 'x'"): a connection problem, a missing topic, or ``error`` itself."""
    pulsar = import_pulsar()
    name = type(error).__name__
    if isinstance(error, (pulsar.TopicNotFound, getattr(pulsar, "NotFound", ()))):
        return UnknownTopicError(
            f"{what}: the topic (or its tenant or namespace) does not exist at "
            f"{service_url} ({name}: {error})"
        )
    connection_errors = tuple(
        getattr(pulsar, n)
        for n in ("Timeout", "ConnectError", "ServiceUnitNotReady", "LookupError")
        if isinstance(getattr(pulsar, n, None), type)
    )
    if isinstance(error, connection_errors):
        return PulsarConnectError(
            f"{what}: no Pulsar broker answered at {service_url} ({name}: {error}); is the "
            f"service URL right and the broker up?"
        )
    return error


def message_key(message_id: Any) -> tuple[int, int, int]:
    """``(ledger, entry, batch index)``: orders the message ids of one topic partition
    (accepts a ``pulsar.MessageId`` or such a tuple)."""
    if isinstance(message_id, tuple):
        return message_id
    return (message_id.ledger_id(), message_id.entry_id(), message_id.batch_index())
