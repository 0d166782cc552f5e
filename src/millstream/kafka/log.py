"""librdkafka's own log lines, routed to the ``millstream.kafka`` logger."""

from __future__ import annotations

import logging
import threading
from typing import Any

__all__ = ["LibrdkafkaLog", "librdkafka_log", "logger"]

logger = logging.getLogger("millstream.kafka")
"""The logger of everything Kafka: the sources, ``to_kafka`` and librdkafka itself."""


class LibrdkafkaLog:
    """Where librdkafka's own log lines go: the ``millstream.kafka`` logger, with lost
    connections (``FAIL``, which librdkafka logs as errors and retries by itself) logged as
    warnings, and a line repeating within ``interval`` seconds logged once, with a count.

    confluent-kafka calls ``log(level, fmt, facility, client, text)`` from its poll calls.

    >>> import logging
    >>> records = []
    >>> handler = logging.Handler(); handler.emit = records.append
    >>> target = logging.getLogger('librdkafka-doctest'); target.addHandler(handler)
    >>> log = LibrdkafkaLog(target, interval=60)
    >>> for _ in range(3):
    ...     log.log(logging.ERROR, '%s [%s] %s', 'FAIL', 'rdkafka#consumer-1',
    ...             'Connect to 127.0.0.1:9 failed: Connection refused (after 0ms)')
    >>> [(r.levelname, r.getMessage()[:9]) for r in records]
    [('WARNING', 'FAIL [rdk')]
    """

    def __init__(self, target: logging.Logger, interval: float = 10.0):
        self.target = target
        self.interval = interval
        self._last: dict[tuple[Any, ...], list[float]] = {}
        self._lock = threading.Lock()

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> None:
        import re
        import time

        facility = args[0] if args else ""
        if facility == "FAIL" and level > logging.WARNING:
            level = logging.WARNING
        key = (level, msg, *(re.sub(r"\d+", "#", str(a)) for a in args))
        now = time.monotonic()
        with self._lock:
            seen = self._last.get(key)
            if seen is not None and now - seen[0] < self.interval:
                seen[1] += 1
                return
            repeats = int(seen[1]) if seen is not None else 0
            self._last[key] = [now, 0]
        if repeats:
            msg = f"{msg} (and {repeats} more like it)"
        self.target.log(level, msg, *args, **kwargs)


librdkafka_log = LibrdkafkaLog(logger)
