"""A real RabbitMQ broker for the tests of ``from_rabbitmq`` and ``to_rabbitmq``.

The session starts a broker of its own (:mod:`tests.rabbitmq._server`: Debian's
``rabbitmq-server`` as a child process on free loopback ports, with its data in a
temporary directory; never the system service) and stops it at the end. When no broker
can be had the tests FAIL with the reason: they never skip. ``scripts/test`` installs the
Debian package ``rabbitmq-server``.
"""

from __future__ import annotations

import subprocess

import pytest

from ._server import RabbitMQServer, RabbitMQUnavailable, private_server


@pytest.fixture(scope="session")
def rabbitmq() -> RabbitMQServer:
    """The session's broker (``.url``, ``.ctl(...)``)."""
    try:
        import aio_pika  # noqa: F401
    except ImportError:
        pytest.fail("aio-pika is not installed: pip install 'millstream[rabbitmq]'", pytrace=False)
    try:
        manager = private_server()
        server = manager.__enter__()
    except (RabbitMQUnavailable, subprocess.TimeoutExpired, OSError) as error:
        pytest.fail(f"no RabbitMQ broker for the tests: {error}", pytrace=False)
    try:
        yield server
    finally:
        manager.__exit__(None, None, None)
