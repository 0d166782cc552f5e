"""A real Redis server for the tests of ``from_redis_stream`` and ``to_redis_stream``.

The session starts a ``redis-server`` of its own (:mod:`tests.redis_streams.server`: a free
loopback port, a temporary directory, no persistence) and stops it by pid at the end;
when none can start the tests FAIL with the reason, never skip. ``scripts/test`` installs
the Debian package ``redis-server``.
"""

from __future__ import annotations

import subprocess
import uuid

import pytest

from .server import RedisUnavailable, private_server


@pytest.fixture(scope="session")
def redis_url():
    """The URL of the session's Redis server."""
    try:
        import redis  # noqa: F401
    except ImportError:
        pytest.fail("redis-py is not installed: pip install 'millstream[redis]'", pytrace=False)
    try:
        server_cm = private_server()
        server = server_cm.__enter__()
    except (RedisUnavailable, subprocess.SubprocessError, OSError) as error:
        pytest.fail(f"no Redis server for the tests: {error}", pytrace=False)
    try:
        yield server.url
    finally:
        server_cm.__exit__(None, None, None)


@pytest.fixture
def rclient(redis_url):
    """A synchronous redis-py client on the session's server (strings decoded)."""
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def key():
    """A fresh stream key."""
    return f"s-{uuid.uuid4().hex[:10]}"
