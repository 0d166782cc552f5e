"""The pipeline the kill -9 test runs in a child process (and kills at a random moment).

    python kill_child.py SERVICE_URL TOPIC OUTPUT

Reads TOPIC through the subscription "kill-9" and appends each message to OUTPUT (one line,
written and flushed before the message is acknowledged), until killed or terminated.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from millstream import Stream


def main() -> None:
    url, topic, output = sys.argv[1:4]
    out = open(output, "a", buffering=1)

    def write(x: bytes) -> None:
        out.write(x.decode() + "\n")
        out.flush()
        time.sleep(0.0005)  # some work: the kill lands in the middle of the stream

    source = Stream.from_pulsar(url, topic, "kill-9", initial_position="earliest", batch_size=50)
    source.sink(write)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    source.start()
    print("started", flush=True)
    done.wait()
    source.stop()


if __name__ == "__main__":
    main()
