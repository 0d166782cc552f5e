"""Checking librdkafka settings when a Kafka node is made, not when it starts.

:func:`check_settings` makes a client (``confluent_kafka.Consumer`` or ``Producer``) from
a copy of the settings without the broker addresses, so that it connects nowhere, and
closes it at once (a few milliseconds): librdkafka checks every name, every value and the
combinations (``acks`` with ``enable.idempotence``, certificate files...) as it would at
``start()``. The user's callbacks are not called (stand-ins take their place), and
librdkafka's log lines of the trial client are dropped.

Without ``confluent_kafka`` nothing is checked: the node reports the missing package, in
one line, when it makes its client.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from typing import Any, Literal

from .._utils import short_repr

__all__ = ["check_settings"]

#: settings whose value is a Python callable, called by the client: never by the check
_CALLBACKS = ("error_cb", "throttle_cb", "stats_cb", "on_commit", "on_delivery")
#: ``oauth_cb`` is called when the client is made: the check leaves it out when callable
_CALLED_AT_CREATION = ("oauth_cb",)
_SERVERS = ("bootstrap.servers", "metadata.broker.list")
_QUOTED = re.compile(r'"([^"]+)"')
_BINDING = re.compile(r"^(?:expected )?([\w.]+) (?:property|requires)")


class _Discard:
    """A ``logger`` for the trial client: its log lines (``no bootstrap.servers``) are dropped."""

    def log(self, *args: Any, **kwargs: Any) -> None:
        pass


def _ignore(*args: Any) -> None:
    pass


def check_settings(
    node: str,
    config: Mapping[str, Any],
    client: Literal["consumer", "producer"],
    what: str,
) -> None:
    """Raise ``ValueError`` naming ``node``, the setting and librdkafka's message if
    librdkafka (or confluent_kafka) rejects ``config`` for a ``client``.

    ``what`` names the settings in the message (``consumer_params``, ``producer_config``).

    Examples
    --------
    >>> check_settings('to_kafka', {'bootstrap.servers': 'b:9092', 'linger.ms': 5},
    ...                'producer', 'producer_config')
    >>> check_settings('from_kafka', {'bootstrap.servers': 'b:9092', 'foo.bar': 1},
    ...                'consumer', 'consumer_params')
    Traceback (most recent call last):
    ...
    ValueError: from_kafka: librdkafka rejected consumer_params setting 'foo.bar': 1: No such configuration property: "foo.bar"
    """  # noqa: E501
    try:
        confluent_kafka = importlib.import_module("confluent_kafka")
    except ImportError:
        return
    error = _try(confluent_kafka, config, client)
    if error is None:
        return
    message = _message(error)
    key = _culprit(confluent_kafka, config, message)
    if key is None:
        raise ValueError(f"{node}: librdkafka rejected {what}: {message}") from error
    shown = f"{key!r}: {short_repr(config[key])}"
    raise ValueError(f"{node}: librdkafka rejected {what} setting {shown}: {message}") from error


def _trial(config: Mapping[str, Any], client: str) -> dict[str, Any]:
    trial = {k: v for k, v in config.items() if k not in _SERVERS}
    for key in _CALLBACKS:
        if callable(trial.get(key)):
            trial[key] = _ignore
    for key in _CALLED_AT_CREATION:
        if callable(trial.get(key)):
            del trial[key]
    trial["logger"] = _Discard()
    if client == "consumer" and not trial.get("group.id"):
        trial["group.id"] = "millstream-settings-check"  # a Consumer needs one
    return trial


def _try(confluent_kafka: Any, config: Mapping[str, Any], client: str) -> Exception | None:
    """The error making a ``client`` of ``config`` raised, or None once it was made and closed."""
    trial = _trial(config, client)
    try:
        if client == "consumer":
            confluent_kafka.Consumer(trial).close()
        else:
            # made and dropped: with nothing queued, it is destroyed at once
            confluent_kafka.Producer(trial)
    except (confluent_kafka.KafkaException, TypeError, ValueError) as e:
        return e
    return None


def _message(error: Exception) -> str:
    first = error.args[0] if error.args else error
    text = first.str() if hasattr(first, "str") else str(first)
    return str(text)


def _culprit(confluent_kafka: Any, config: Mapping[str, Any], message: str) -> str | None:
    """The setting of ``config`` that ``message`` is about, if one can be told."""
    for pattern in (_QUOTED, _BINDING):
        found = pattern.search(message)
        if found is not None and found.group(1) in config:
            return found.group(1)
    # an alias ('linger.ms' is named 'queue.buffering.max.ms'): the setting rejected alone
    for key in config:
        if key not in _SERVERS and _try(confluent_kafka, {key: config[key]}, "producer"):
            return key
    return None
