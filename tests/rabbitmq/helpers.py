"""Plain aio-pika helpers of the RabbitMQ tests: declare, publish, count, drain."""

from __future__ import annotations

import asyncio
import uuid

from ._server import RabbitMQServer


async def _admin(url: str, work):
    import aio_pika

    connection = await aio_pika.connect(url)
    try:
        channel = await connection.channel()
        return await work(channel)
    finally:
        await connection.close()


def admin(url: str, work):
    """Run ``await work(channel)`` on a fresh connection (in a loop of its own)."""
    return asyncio.run(_admin(url, work))


def declare_queue(url: str, name: str | None = None, **arguments) -> str:
    name = name or f"q-{uuid.uuid4().hex[:10]}"

    async def work(channel):
        await channel.declare_queue(name, durable=True, arguments=arguments or None)

    admin(url, work)
    return name


def publish(url: str, queue: str, bodies) -> None:
    """Publish ``bodies`` to ``queue`` (default exchange, persistent), with confirms."""
    import aio_pika

    async def run():
        connection = await aio_pika.connect(url)
        try:
            channel = await connection.channel(publisher_confirms=True)
            exchange = channel.default_exchange
            pending = []
            for body in bodies:
                message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
                pending.append(exchange.publish(message, routing_key=queue))
                if len(pending) >= 500:
                    await asyncio.gather(*pending)
                    pending = []
            await asyncio.gather(*pending)
        finally:
            await connection.close()

    asyncio.run(run())


def counts(url: str, queue: str) -> int:
    """Messages ready in ``queue`` (a passive declare)."""

    async def work(channel):
        q = await channel.declare_queue(queue, passive=True)
        return q.declaration_result.message_count

    return admin(url, work)


def drain(url: str, queue: str, expect: int | None = None, timeout: float = 10) -> list[bytes]:
    """Take (and acknowledge) the messages of ``queue``: all there now, or ``expect``."""

    async def work(channel):
        q = await channel.declare_queue(queue, passive=True)
        bodies: list[bytes] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            message = await q.get(fail=False)
            if message is None:
                if expect is None or len(bodies) >= expect:
                    break
                await asyncio.sleep(0.05)
                continue
            bodies.append(message.body)
            await message.ack()
        return bodies

    return admin(url, work)


def unacked(server: RabbitMQServer, queue: str) -> tuple[int, int]:
    """``(ready, unacknowledged)`` of ``queue`` as ``rabbitmqctl list_queues`` shows them."""
    out = server.ctl(
        "list_queues",
        "-q",
        "--no-table-headers",
        "name",
        "messages_ready",
        "messages_unacknowledged",
    )
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] == queue:
            return int(parts[1]), int(parts[2])
    raise AssertionError(f"queue {queue!r} not in list_queues: {out!r}")
