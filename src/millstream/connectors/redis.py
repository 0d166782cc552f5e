"""Redis Streams: the client code ``from_redis_stream`` and ``to_redis_stream`` share.

The client is redis-py's asyncio API (``pip install 'millstream[redis]'``), imported on
first use (:func:`redis_module`), never by ``import millstream``. :func:`connect` opens a
client on a URL and checks that the server answers, raising :class:`RedisConnectError`
naming ``host:port`` when it does not; :func:`check_stream_key` and
:func:`ensure_group` give the errors of a key holding another type and of a missing
consumer group (:class:`RedisStreamError`); :func:`node_of` names a server in errors.

>>> node_of('redis://localhost:6380/0'), node_of('rediss://user:pw@cache.internal')
('localhost:6380', 'cache.internal:6379')
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from ..exceptions import RedisConnectError, RedisStreamError

__all__ = [
    "INSTALL_HINT",
    "check_stream_key",
    "connect",
    "ensure_group",
    "is_connection_error",
    "node_of",
    "redis_module",
]

logger = logging.getLogger("millstream.connectors")

INSTALL_HINT = "Redis Streams need redis-py (redis>=5): pip install 'millstream[redis]'"


def redis_module() -> Any:
    """``redis.asyncio``, or a one-line ImportError naming the extra to install."""
    try:
        import redis.asyncio as redis_asyncio
    except ImportError:
        raise ImportError(INSTALL_HINT) from None
    return redis_asyncio


def node_of(url: str) -> str:
    """``host:port`` of the server a ``redis://`` URL names (a socket path for ``unix://``)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or 'localhost'}:{parts.port or 6379}"


def is_connection_error(error: BaseException) -> bool:
    """Whether ``error`` says the server could not be reached or the connection dropped."""
    import redis.exceptions

    return isinstance(error, (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError))


async def connect(who: str, url: str, decode: bool, **client_kwargs: Any) -> Any:
    """A ``redis.asyncio.Redis`` client on ``url`` whose server answered a PING; closed again
    and :class:`RedisConnectError` (naming the node and ``host:port``) when it did not."""
    redis_asyncio = redis_module()
    client_kwargs.setdefault("socket_connect_timeout", 5.0)
    client = redis_asyncio.from_url(url, decode_responses=decode, **client_kwargs)
    try:
        await client.ping()
    except Exception as e:
        await client.aclose()
        if is_connection_error(e):
            raise RedisConnectError(f"{who}: cannot connect to Redis at {node_of(url)}: {e}") from e
        raise
    return client


async def check_stream_key(who: str, client: Any, key: str) -> None:
    """:class:`RedisStreamError` when ``key`` exists and is not a stream."""
    kind = await client.type(key)
    if isinstance(kind, bytes):
        kind = kind.decode()
    if kind not in ("stream", "none"):
        raise RedisStreamError(f"{who}: the Redis key {key!r} holds a {kind}, not a stream")


async def ensure_group(
    who: str, client: Any, key: str, group: str, start_id: str, create: bool
) -> None:
    """Make sure consumer group ``group`` exists on stream ``key``: create it (and the
    stream, empty, if missing) starting after ``start_id`` when ``create``; otherwise
    :class:`RedisStreamError` if it is missing."""
    import redis.exceptions

    await check_stream_key(who, client, key)
    if create:
        try:
            await client.xgroup_create(key, group, id=start_id, mkstream=True)
        except redis.exceptions.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        else:
            logger.info(
                "%s: created consumer group %r on stream %r at %s", who, group, key, start_id
            )
        return
    try:
        groups = await client.xinfo_groups(key)
    except redis.exceptions.ResponseError as e:  # no such key
        groups = []
        if "no such key" not in str(e).lower():
            raise
    names = {_text(g.get("name")) for g in groups}
    if group not in names:
        raise RedisStreamError(
            f"{who}: stream {key!r} has no consumer group {group!r} (create_group=False); "
            f"create it with XGROUP CREATE {key} {group} $ MKSTREAM or pass create_group=True"
        )


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value
