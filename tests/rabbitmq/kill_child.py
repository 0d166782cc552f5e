"""The pipeline of the kill -9 test (test_kill9.py), run as a child process.

``python kill_child.py URL QUEUE OUT DELAY``: consume ``QUEUE`` with ``from_rabbitmq`` and
append each body as a line to the file ``OUT``, ``DELAY`` seconds per message (an
asynchronous sink: the message is acknowledged only after its line is written). Prints
``ready`` once consuming, then runs until killed.
"""

from __future__ import annotations

import asyncio
import sys
import time

from millstream import Stream


def main() -> None:
    url, queue, out, delay = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    f = open(out, "ab", buffering=0)  # each line straight to the OS: kill -9 keeps it

    async def write(body: bytes) -> None:
        await asyncio.sleep(delay)
        f.write(body + b"\n")

    source = Stream.from_rabbitmq(url, queue, prefetch=50)
    source.sink(write)
    source.start()
    print("ready", flush=True)
    while not source.stopped:
        time.sleep(0.1)
    print(f"stopped: {source.error!r}", flush=True)
    sys.exit(1)


if __name__ == "__main__":
    main()
