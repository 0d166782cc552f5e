"""The pipeline of the kill -9 test (run as a child process): read a Redis stream in a
consumer group and append each entry's ``i`` field to a file, slowly (an asynchronous
sink), until killed.

Usage: ``python -m tests.redis_streams.kill_child URL KEY CONSUMER OUTPUT``
"""

from __future__ import annotations

import asyncio
import sys
import time

from millstream import Stream


def main(url: str, key: str, consumer: str, output: str) -> None:
    out = open(output, "a", buffering=1)  # line-buffered: each line reaches the OS at once

    async def write(fields: dict[str, str]) -> None:
        await asyncio.sleep(0.001)
        out.write(fields["i"] + "\n")

    source = Stream.from_redis_stream(
        url, key, "g", consumer, count=20, max_in_flight=50, claim_min_idle=0.5, claim_interval=0.2
    )
    source.buffer(20).sink(write)
    source.start()
    print("started", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main(*sys.argv[1:5])
