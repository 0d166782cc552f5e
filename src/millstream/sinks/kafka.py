"""``to_kafka``: produce each element to a Kafka topic; emit what the broker stored.

How it works (and how it differs from Streamz's ``to_kafka``):

* ``update`` calls ``producer.produce`` directly on the graph's loop (a non-blocking call
  that only queues the message in librdkafka) and, every few elements, ``producer.poll(0)``,
  which serves the delivery reports that have arrived. No per-element future is made and
  nothing waits for the broker, so throughput is not capped by a poll interval (Streamz #398).
* While messages are outstanding, a timer on the loop polls every :data:`POLL_INTERVAL`
  seconds, so the reports of the last messages arrive without further input.
* When librdkafka's queue is full (``BufferError``), ``update`` hands back an awaitable that
  finishes once the element has been queued: that is the backpressure a source waits on.
  Elements arriving meanwhile queue behind it, so the order is kept.
* Every message is delivered or failed within ``message.timeout.ms`` (default
  :data:`DEFAULT_MESSAGE_TIMEOUT_MS`, not librdkafka's five minutes), so ``flush()`` is
  bounded; a message that timed out is reported with the broker and the last error
  librdkafka met talking to it (a host that does not resolve, a refused connection).
* An element's refs (``metadata``) are held until its delivery report: an upstream Kafka
  source then commits an offset only once the produced copy is stored. A failed delivery
  releases them as failed.
* A delivery report emits ``msg.value()`` downstream, with the element's metadata, on the
  loop thread. A failed delivery is raised, once, by the next ``update`` (whose element is
  then not sent) or by ``flush()``.

``confluent_kafka`` is imported when the node is made (to check ``producer_config``), never
by ``import millstream``.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from collections.abc import Mapping
from typing import Any

from .._utils import add_note, annotate_error, short_repr
from ..core.awaitables import await_all
from ..core.loop import in_loop_thread, sync
from ..core.refs import release_refs, retain_refs
from ..core.stream import Stream
from ..exceptions import KafkaDeliveryError
from ..kafka.log import librdkafka_log
from ..kafka.settings import check_settings

__all__ = ["DEFAULT_MESSAGE_TIMEOUT_MS", "POLL_INTERVAL", "KafkaDeliveryError", "to_kafka"]

#: ``message.timeout.ms`` unless ``producer_config`` sets it (or ``delivery.timeout.ms``):
#: the longest a message waits for the broker before it fails (librdkafka's own default
#: is five minutes, so a ``flush()`` with no broker would block that long).
DEFAULT_MESSAGE_TIMEOUT_MS = 30_000


#: Seconds between the polls that serve delivery reports while messages are outstanding.
POLL_INTERVAL = 0.05
#: Seconds between attempts while librdkafka's queue is full, and between flush polls.
_RETRY_INTERVAL = 0.001
#: update() serves delivery reports (``poll(0)``) once every this many elements
_POLL_EVERY = 16

_SERVER_KEYS = ("bootstrap.servers", "metadata.broker.list", "test.mock.num.brokers")
_TIMEOUT_KEYS = ("message.timeout.ms", "delivery.timeout.ms")
_LINGER_KEYS = ("linger.ms", "queue.buffering.max.ms")
#: errors librdkafka reports (``error_cb``) that say no broker has been reached
_UNREACHABLE = ("_RESOLVE", "_TRANSPORT", "_ALL_BROKERS_DOWN", "_AUTHENTICATION", "_SSL")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    return bool(value)


def _default_message_timeout(config: dict[str, Any]) -> int:
    """:data:`DEFAULT_MESSAGE_TIMEOUT_MS`, longer than a ``linger.ms`` of that order (librdkafka
    wants the message timeout above the linger)."""
    for key in _LINGER_KEYS:
        try:
            linger = float(config.get(key) or 0)
        except (TypeError, ValueError):
            continue  # a bad value: check_settings names it
        if linger >= DEFAULT_MESSAGE_TIMEOUT_MS:
            return int(linger) + DEFAULT_MESSAGE_TIMEOUT_MS
    return DEFAULT_MESSAGE_TIMEOUT_MS


@Stream.register_api()
class to_kafka(Stream):
    """Produce each element (``bytes`` or ``str``, encoded UTF-8) to the Kafka ``topic``.

    The node emits, downstream, the value of each message the broker has stored
    (``msg.value()``, bytes) once its delivery is confirmed, with the element's metadata;
    the element's refs are held until then. Producing does not wait for the broker; when
    librdkafka's local queue is full (``queue.buffering.max.messages``) the node applies
    backpressure until there is room. A failed delivery raises :class:`KafkaDeliveryError`
    from the next element's ``update`` (that element is not sent) or from :meth:`flush`.
    A message the broker has not stored within ``message.timeout.ms`` (default 30 s,
    :data:`DEFAULT_MESSAGE_TIMEOUT_MS`) fails; its error names ``bootstrap.servers`` and
    the last error met reaching them (a host that does not resolve, a refused connection).

    ``producer_config`` is checked by librdkafka when the node is made (``ValueError``
    naming the setting); the producer (``confluent_kafka.Producer``) is made with the
    first element, and ``destroy()`` flushes and closes it.

    Parameters
    ----------
    topic : str
        The topic to write to.
    producer_config : dict
        librdkafka settings (https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md),
        at least ``bootstrap.servers``. Copied, never modified. librdkafka's log lines go
        to the ``millstream.kafka`` logger unless a ``logger`` is given;
        ``message.timeout.ms`` is 30000 unless given.
    keys : bool
        Each element is a ``(key, value)`` pair, or a record dict with ``value`` and
        optionally ``key`` and ``headers`` (what ``from_kafka(..., keys=True)`` emits, so a
        copy keeps key, value and headers byte for byte). Not in Streamz's ``to_kafka``.
    **kwargs
        ``Stream`` parameters (``stream_name``…).

    Examples
    --------
    ``test.mock.num.brokers`` starts librdkafka's in-process mock cluster, which needs no
    broker; use ``'bootstrap.servers': 'host:9092'`` for a real one.

    >>> config = {'test.mock.num.brokers': 1}
    >>> source = Stream()
    >>> kafka = source.map(str).to_kafka('numbers', config)
    >>> kafka
    <to_kafka>
    >>> stored = kafka.sink_to_list()
    >>> for i in range(3):
    ...     source.emit(i)
    >>> kafka.flush()                   # returns once every message is stored
    >>> sorted(stored)                  # in delivery order (3 partitions here): sorted
    [b'0', b'1', b'2']
    >>> config                          # not modified
    {'test.mock.num.brokers': 1}
    >>> kafka.destroy()

    With ``keys=True``, a key with each value:

    >>> keyed = Stream()
    >>> node = keyed.to_kafka('counts', config, keys=True)
    >>> keyed.emit(('apple', '3'))
    >>> keyed.emit({'key': b'pear', 'value': b'1', 'headers': [('h', b'x')]})
    >>> node.flush()
    >>> node.destroy()

    In exactly-once mode (:func:`millstream.checkpoint.enable` with ``exactly_once=True``)
    the node writes through one Kafka transaction per checkpoint (:meth:`use_transaction`).

    A bad setting is reported when the node is made:

    >>> source.to_kafka('numbers', {'bootstrap.servers': 'localhost:9092', 'linger': 5})
    Traceback (most recent call last):
    ...
    ValueError: to_kafka(topic='numbers'): librdkafka rejected producer_config setting 'linger': 5: No such configuration property: "linger"
    """  # noqa: E501

    def __init__(
        self,
        upstream: Stream,
        topic: str,
        producer_config: Mapping[str, Any],
        keys: bool = False,
        **kwargs: Any,
    ):
        if not isinstance(topic, str) or not topic:
            raise ValueError(f"to_kafka: topic must be a non-empty str, got {short_repr(topic)}")
        label = f"to_kafka(topic={topic!r})"
        if not isinstance(producer_config, Mapping):
            raise TypeError(
                f"{label}: producer_config must be a dict of librdkafka settings, "
                f"got {short_repr(producer_config)}"
            )
        config = dict(producer_config)
        for key in config:
            if not isinstance(key, str):
                raise TypeError(f"{label}: producer_config keys must be str, got {short_repr(key)}")
        if not any(config.get(k) for k in _SERVER_KEYS):
            raise ValueError(
                f"{label}: producer_config needs 'bootstrap.servers' (e.g. 'localhost:9092')"
            )
        if _truthy(config.get("delivery.report.only.error")):
            raise ValueError(
                f"{label}: producer_config sets 'delivery.report.only.error', but to_kafka needs "
                "the report of every message (to emit it and release its refs): remove it"
            )
        config.setdefault("logger", librdkafka_log)
        if not any(k in config for k in _TIMEOUT_KEYS):
            config["message.timeout.ms"] = _default_message_timeout(config)
        check_settings(label, config, "producer", "producer_config")
        self.topic = topic
        #: elements are ``(key, value)`` pairs or record dicts (``key``, ``value``, ``headers``)
        self.keys = bool(keys)
        #: the exactly-once producer this node writes through (see :meth:`use_transaction`)
        self.transaction: Any = None
        self._label = label
        self._config = config
        #: the last error librdkafka reported reaching the brokers: (monotonic time, error)
        self._client_error: tuple[float, Any] | None = None
        self._producer: Any = None
        #: the delivery callback of elements without metadata (one bound method for all)
        self._on_delivery = self._delivered
        #: errors to raise from the next update() or flush()
        self._errors: list[BaseException] = []
        #: elements waiting for room in librdkafka's queue: (x, metadata, future)
        self._backlog: collections.deque[tuple[Any, Any, asyncio.Future[None]]] = (
            collections.deque()
        )
        self._drainer: asyncio.Task[None] | None = None
        self._timer: Any = None
        #: tasks waiting for downstream awaitables of delivered values
        self._tasks: set[asyncio.Task[None]] = set()
        #: those made since the last update(), which hands them upstream as backpressure
        self._new_tasks: list[asyncio.Task[None]] = []
        #: True while update() may take the fast path; anything that needs its attention
        #: (an error, a backlog, a task, the timer stopping, no producer) sets it false
        self._fast = False
        self._produce_call: Any = None
        self._unpolled = 0
        kwargs["ensure_io_loop"] = True
        super().__init__(upstream, **kwargs)

    # -- the producer ---------------------------------------------------------------------
    @property
    def producer(self) -> Any:
        """The ``confluent_kafka.Producer`` (made on first use)."""
        producer = self._producer
        if producer is None:
            producer = self._connect()
        return producer

    @property
    def producer_config(self) -> dict[str, Any]:
        """A copy of the settings the producer is made with."""
        return dict(self._config)

    def _connect(self) -> Any:
        try:
            import confluent_kafka
        except ImportError as e:  # pragma: no cover - the kafka extra is part of the test extra
            raise ImportError(
                f"{self._label} needs confluent-kafka: pip install 'millstream[kafka]'"
            ) from e
        config = self._config
        users_error_cb = config.get("error_cb")

        def on_error(err: Any) -> None:  # from poll()/flush(), in the polling thread
            if self._client_error is None or err.name() != "_ALL_BROKERS_DOWN":
                self._client_error = (time.monotonic(), err)  # the specific cause first
            if users_error_cb is not None:
                users_error_cb(err)

        try:
            producer = confluent_kafka.Producer({**config, "error_cb": on_error})
        except confluent_kafka.KafkaException as e:
            reason = e.args[0].str() if e.args and hasattr(e.args[0], "str") else str(e)
            raise ValueError(f"{self._label}: librdkafka rejected producer_config: {reason}") from e
        self._producer = producer
        self._produce_call = producer.produce
        return producer

    def extra_metrics(self) -> dict[str, Any]:
        """``backlog``: the messages not acknowledged by Kafka yet (librdkafka's queue and
        requests in flight) and those waiting for room in that queue."""
        producer = self._producer
        return {"backlog": (len(producer) if producer is not None else 0) + len(self._backlog)}

    def _asyncio_loop(self) -> asyncio.AbstractEventLoop:
        loop = self.loop
        return getattr(loop, "asyncio_loop", loop)

    def _elsewhere(self) -> bool:
        """True when the graph's loop runs in another thread than the caller's."""
        aloop = self._asyncio_loop()
        return aloop.is_running() and not in_loop_thread(aloop)

    # -- elements in ----------------------------------------------------------------------
    def update(self, x: Any, who: Stream | None = None, metadata: list[dict] | None = None) -> Any:
        if self._fast and not metadata:
            # the common case: a producer, nothing to report, nothing queued, the timer armed
            try:
                # positional (topic, value, key, partition, on_delivery): parsing keywords
                # costs confluent_kafka about 0.25 us a call; partition -1: the partitioner
                self._produce_call(self.topic, x, None, -1, self._on_delivery)
            except BufferError:
                self._fast = False
                return self._enqueue(x, None)
            except Exception as e:
                annotate_error(e, self, None, x)
                raise
            unpolled = self._unpolled + 1
            if unpolled < _POLL_EVERY:
                self._unpolled = unpolled
                return None
            self._unpolled = 0
            self._poll()
            if self._fast:
                return None
            return self._after_poll()
        if self.transaction is not None:
            return self._send_in_transaction(x, metadata)
        if not metadata:
            return self._send(x, None)
        retain_refs(metadata)  # held until the delivery report
        try:
            return self._send(x, metadata)
        except BaseException as e:
            release_refs(metadata, error=e)
            raise

    def _send(self, x: Any, metadata: list[dict] | None) -> Any:
        """``update`` with every check (``_fast`` is false or the element has metadata)."""
        if self._errors:
            self._raise_errors("at the next element it received, which it did not send")
        if self._backlog:
            return self._enqueue(x, metadata)  # behind the elements waiting for room
        producer = self._producer
        if producer is None:
            producer = self._connect()
        callback = (
            self._on_delivery
            if metadata is None
            else functools.partial(self._delivered_held, metadata)
        )
        try:
            if self.keys:
                value, key, headers = self._message(x)
                producer.produce(self.topic, value, key, on_delivery=callback, headers=headers)
            else:
                producer.produce(self.topic, x, None, -1, callback)
        except BufferError:
            return self._enqueue(x, metadata)
        except Exception as e:
            annotate_error(e, self, None, x)
            raise
        self._unpolled = 0
        self._poll()
        return self._after_poll()

    def _message(self, x: Any) -> tuple[Any, Any, Any]:
        """``(value, key, headers)`` of an element of a ``keys=True`` node."""
        if type(x) is tuple and len(x) == 2:
            return x[1], x[0], None
        if isinstance(x, Mapping) and "value" in x:
            return x["value"], x.get("key"), x.get("headers") or None
        if isinstance(x, (tuple, list)) and len(x) == 2:
            return x[1], x[0], None
        raise TypeError(
            f"{self._label} with keys=True takes (key, value) pairs or dicts with 'value' "
            f"(and 'key', 'headers'), got {short_repr(x)}"
        )

    # -- exactly-once ---------------------------------------------------------------------
    def use_transaction(self, transaction: Any) -> None:
        """Write through ``transaction``, a
        :class:`~millstream.kafka.transactions.KafkaTransactions` given by
        :func:`millstream.checkpoint.enable` with ``exactly_once=True``, instead of this
        node's own producer: the output becomes visible when a checkpoint commits it,
        and the node emits each element's value as soon as it is in the transaction."""
        self.transaction = transaction
        self._fast = False

    def _send_in_transaction(self, x: Any, metadata: list[dict] | None) -> Any:
        if self.keys:
            value, key, headers = self._message(x)
        else:
            value, key, headers = x, None, None
        try:
            if isinstance(value, str):
                value = value.encode()
            self.transaction.produce(self.topic, value, key, headers)
        except Exception as e:
            annotate_error(e, self, None, x)
            raise
        if self.downstreams:
            return self._emit(value, metadata)
        return None

    def _poll(self) -> None:
        """``poll(0)``: serve the delivery reports that have come (on this thread)."""
        try:
            self._producer.poll(0)
        except Exception as e:
            # from a callback of producer_config (error_cb, stats_cb...): this element
            # is already sent, so the error waits for the next one, as delivery errors do
            self._fast = False
            self._errors.append(e)

    def _after_poll(self) -> Any:
        """Arm the timer, hand over the tasks made by delivery reports, set ``_fast``."""
        if self._timer is None:
            self._arm_timer()
        tasks = None
        if self._new_tasks:
            tasks, self._new_tasks = self._new_tasks, []
        self._fast = not (
            self._errors
            or self._backlog
            or self._producer is None
            or self._timer is None
            or self.keys
        )
        return tasks

    def _produce(self, x: Any, metadata: list[dict] | None) -> None:
        """Produce one element taken from the backlog (raises ``BufferError`` if still full)."""
        callback = (
            self._on_delivery
            if metadata is None
            else functools.partial(self._delivered_held, metadata)
        )
        try:
            if self.keys:
                value, key, headers = self._message(x)
                self._producer.produce(
                    self.topic, value, key, on_delivery=callback, headers=headers
                )
            else:
                self._producer.produce(self.topic, x, None, -1, callback)
        except BufferError:
            raise
        except Exception as e:
            annotate_error(e, self, None, x)
            raise

    def _enqueue(self, x: Any, metadata: list[dict] | None) -> Any:
        """Queue ``x`` until librdkafka has room; return the awaitable that waits for it."""
        if self._elsewhere():
            # called outside the loop's thread (not the usual way in): wait right here
            self._produce_blocking(x, metadata, None)
            return None
        future: asyncio.Future[None] = self._asyncio_loop().create_future()
        self._fast = False
        self._backlog.append((x, metadata, future))
        if self._drainer is None:
            self._drainer = self._asyncio_loop().create_task(self._drain())
        return future

    def _produce_blocking(
        self, x: Any, metadata: list[dict] | None, deadline: float | None
    ) -> bool:
        """Produce ``x``, polling (blocking) while the queue is full; False on timeout."""
        producer = self._producer
        while True:
            try:
                self._produce(x, metadata)
                return True
            except BufferError:
                if deadline is not None and self._asyncio_loop().time() >= deadline:
                    return False
                producer.poll(0.05)

    async def _drain(self) -> None:
        """Produce the backlog in order as room frees up (the delivery reports free it)."""
        backlog = self._backlog
        try:
            while backlog:
                x, metadata, future = backlog[0]
                try:
                    self._produce(x, metadata)
                except BufferError:
                    self._poll()
                    if backlog and backlog[0][2] is future:
                        await asyncio.sleep(_RETRY_INTERVAL)
                    continue
                except Exception as e:
                    backlog.popleft()
                    release_refs(metadata, error=e)
                    if not future.done():
                        future.set_exception(e)
                    continue
                backlog.popleft()
                if not future.done():
                    future.set_result(None)
            if self._timer is None:
                self._arm_timer()
        finally:
            self._drainer = None

    def _take_backlog_here(self, deadline: float | None) -> None:
        """Produce the backlog from a blocking flush (the drain task cannot run meanwhile)."""
        backlog = self._backlog
        while backlog:
            x, metadata, future = backlog[0]
            try:
                if not self._produce_blocking(x, metadata, deadline):
                    return
            except Exception as e:
                backlog.popleft()
                release_refs(metadata, error=e)
                if not future.done():
                    future.set_exception(e)
                continue
            backlog.popleft()
            if not future.done():
                future.set_result(None)

    # -- polling ------------------------------------------------------------------------
    def _arm_timer(self) -> None:
        self._timer = True  # claimed: one timer at a time
        aloop = self._asyncio_loop()
        if self._elsewhere():
            aloop.call_soon_threadsafe(self._schedule_tick)
        else:
            self._schedule_tick()

    def _schedule_tick(self) -> None:
        # Real time, not self.clock: this waits for the broker, not for processing time.
        self._timer = self._asyncio_loop().call_later(POLL_INTERVAL, self._tick)

    def _tick(self) -> None:
        self._timer = None
        producer = self._producer
        if producer is None:
            self._fast = False
            return
        self._poll()
        if len(producer) or self._backlog:
            self._schedule_tick()
        else:
            self._fast = False  # the next element arms the timer again

    # -- delivery reports (librdkafka calls these from poll() / flush()) ------------------
    def _delivered(self, err: Any, msg: Any) -> None:
        if err is None and not self.downstreams:
            return  # nothing to emit, no refs: the fast path
        self._report(err, msg, None)

    def _delivered_held(self, metadata: list[dict], err: Any, msg: Any) -> None:
        self._report(err, msg, metadata)

    def _report(self, err: Any, msg: Any, metadata: list[dict] | None) -> None:
        if self._elsewhere():
            # polled from another thread (``node.producer.flush()``): settle on the loop
            self._asyncio_loop().call_soon_threadsafe(self._settle, err, msg, metadata)
        else:
            self._settle(err, msg, metadata)

    def _settle(self, err: Any, msg: Any, metadata: list[dict] | None) -> None:
        """Emit a delivered value / record a failure; release the refs. Never raises."""
        if err is not None:
            error = self._delivery_error(err, msg)
            self._fast = False
            self._errors.append(error)
            release_refs(metadata, error=error)
            return
        if not self.downstreams:
            release_refs(metadata)
            return
        try:
            pending = self._emit(msg.value(), metadata)
        except Exception as e:
            self._fast = False
            self._errors.append(e)
            release_refs(metadata, error=e)
            return
        if not pending:
            release_refs(metadata)
            return
        task = asyncio.ensure_future(self._finish(pending, metadata), loop=self._asyncio_loop())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._fast = False
        self._new_tasks.append(task)

    async def _finish(self, pending: list[Any], metadata: list[dict] | None) -> None:
        """Wait for what downstream returned for a delivered value, then release its refs."""
        try:
            await await_all(pending)
        except Exception as e:
            self._fast = False
            self._errors.append(e)
            release_refs(metadata, error=e)
            return
        except BaseException as e:
            release_refs(metadata, error=e)
            raise
        release_refs(metadata)

    def _delivery_error(self, err: Any, msg: Any) -> KafkaDeliveryError:
        value = msg.value() if msg is not None else None
        reason = err.str() if hasattr(err, "str") else str(err)
        name = err.name() if hasattr(err, "name") else ""
        cause = self._timed_out_cause() if name == "_MSG_TIMED_OUT" else ""
        error = KafkaDeliveryError(
            f"{self._label}: the broker did not store the element {short_repr(value)}: "
            f"{reason} ({name}){cause}",
            kafka_error=err,
            topic=self.topic,
            value=value,
        )
        add_note(error, f"millstream: {self._label}: delivery failed (reported by librdkafka)")
        return error

    def _timed_out_cause(self) -> str:
        """For a message that timed out: the bound, the brokers and, if librdkafka reported
        one while the message waited, the error it met reaching them."""
        key = next(k for k in _TIMEOUT_KEYS if k in self._config)
        bound = self._config[key]
        servers = next((self._config[k] for k in _SERVER_KEYS if self._config.get(k)), "?")
        text = f" after {key}={bound} at bootstrap.servers={servers!r}"
        seen = self._client_error
        try:
            window = float(bound) / 1000 + 1.0
        except (TypeError, ValueError):
            window = 0.0
        if seen is not None and time.monotonic() - seen[0] <= window:
            err = seen[1]
            if err.name() in _UNREACHABLE:
                text += f"; no broker reached: {err.str()} ({err.name()})"
        return text

    def _raise_errors(self, where: str) -> None:
        errors, self._errors = self._errors, []
        first = errors[0]
        add_note(first, f"millstream: {self._label} raised this {where}")
        if len(errors) > 1:
            shown = "; ".join(str(e) for e in errors[1:4])
            more = " ..." if len(errors) > 4 else ""
            add_note(first, f"and {len(errors) - 1} more error(s) since: {shown}{more}")
        raise first

    # -- flush and close ------------------------------------------------------------------
    def flush(self, timeout: float = -1) -> None:
        """Block until every element given so far is stored (or failed) and its value emitted.

        Raises the first delivery error not raised yet (:class:`KafkaDeliveryError`), and
        ``TimeoutError`` if messages are still undelivered after ``timeout`` seconds
        (``-1``/``None``: no limit). From a coroutine on the graph's loop, use
        ``await node.flush_async()``; a plain ``flush()`` there blocks the loop.
        """
        if self.transaction is not None:
            return  # visible when the next checkpoint commits
        if self._producer is None and not self._backlog:
            if self._errors:
                self._raise_errors("at flush()")
            return
        if self._elsewhere():
            sync(self.loop, self.flush_async, timeout)
            return
        deadline = self._deadline(timeout)
        self._take_backlog_here(deadline)
        left = -1.0 if deadline is None else max(0.0, deadline - self._asyncio_loop().time())
        remaining = self._producer.flush(left)
        self._after_flush(remaining + len(self._backlog), timeout)

    async def flush_async(self, timeout: float = -1) -> None:
        """:meth:`flush` for a coroutine on the graph's loop: waits without blocking it."""
        if self.transaction is not None:
            return
        deadline = self._deadline(timeout)
        aloop = self._asyncio_loop()
        producer = self._producer
        if producer is not None:
            while True:
                self._poll()
                if not self._backlog and not len(producer):
                    break
                if deadline is not None and aloop.time() >= deadline:
                    break
                if self._backlog and self._drainer is None:
                    self._drainer = aloop.create_task(self._drain())
                await asyncio.sleep(_RETRY_INTERVAL)
        while self._tasks:
            left = None if deadline is None else max(0.0, deadline - aloop.time())
            _, not_done = await asyncio.wait(set(self._tasks), timeout=left)
            if not_done and deadline is not None and aloop.time() >= deadline:
                break
        remaining = (len(producer) if producer is not None else 0) + len(self._backlog)
        self._new_tasks.clear()  # waited for here: none to hand upstream
        self._after_flush(remaining, timeout)

    def _deadline(self, timeout: float | None) -> float | None:
        if timeout is None or timeout < 0:
            return None
        return self._asyncio_loop().time() + timeout

    def _after_flush(self, remaining: int, timeout: float | None) -> None:
        if self._errors:
            self._raise_errors("at flush()")
        if remaining > 0:
            raise TimeoutError(
                f"{self._label}: messages still undelivered after flush({timeout}) "
                f"({remaining} in librdkafka's queue)"
            )

    def destroy(self, streams: Any = None) -> None:
        """Detach from upstream; once detached from all, flush and close the producer."""
        super().destroy(streams)
        if not self.upstreams:
            self.close()

    def close(self, timeout: float = -1) -> None:
        """Flush (raising any delivery error) and close the producer; the next element
        opens a new one."""
        producer = self._producer
        if producer is None:
            return
        try:
            self.flush(timeout)
        finally:
            self._producer = None
            self._produce_call = None
            self._fast = False
            self._fail_backlog()
            close = getattr(producer, "close", None)
            if close is not None:
                if len(producer):  # a flush that timed out: what is left fails as purged
                    producer.purge()
                    producer.poll(0)
                close()

    def _fail_backlog(self) -> None:
        """Elements still waiting for room when the producer closes: failed, not sent."""
        backlog = self._backlog
        while backlog:
            x, metadata, future = backlog.popleft()
            error = KafkaDeliveryError(
                f"{self._label}: closed before the element {short_repr(x)} could be sent",
                topic=self.topic,
                value=x,
            )
            release_refs(metadata, error=error)
            if not future.done():
                future.set_exception(error)
