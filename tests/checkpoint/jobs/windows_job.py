"""A job for the crash tests: event-time tumbling sums per key with checkpoints.

``python windows_job.py CHECKPOINT_DIR OUT_FILE [N]``: N events (default 1,000,000; key
``i % 20``, event time ``i / 100`` seconds plus a seeded jitter of up to 0.5 s, value
``i % 7``) -> ``with_timestamps`` (1 s out of orderness) -> 10 s tumbling sums per key ->
one JSON line per result appended to OUT_FILE (flushed). Checkpoints every 50 ms to
CHECKPOINT_DIR; a run restarted after a crash resumes from the newest one. Without
CHECKPOINT_DIR ('-') it runs uninterrupted, as the reference.
"""

from __future__ import annotations

import json
import random
import sys
import time

from millstream import Stream
from millstream.checkpoint import enable
from millstream.time import Tumbling


def events(n: int) -> list[tuple[int, float, int]]:
    rng = random.Random(11)
    return [(i % 20, i / 100 + rng.uniform(0, 0.5), i % 7) for i in range(n)]


def main() -> None:
    location, out_path = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    source = Stream.from_iterable(events(n), stream_name="events", chunk_size=256)
    timed = source.with_timestamps(lambda e: e[1], max_out_of_orderness=1.0)
    sums = timed.window(Tumbling(10), "sum", key=0, value=2, stream_name="sums")
    out = open(out_path, "a")

    def write(result):
        out.write(json.dumps([result.key, result.window.start, result.value, result.kind]) + "\n")
        out.flush()

    sums.sink(write)
    checkpoints = enable(source, location, interval="50ms") if location != "-" else None
    source.start()
    while not source.stopped:
        time.sleep(0.01)
    if source.error is not None:
        raise source.error
    if checkpoints is not None:
        checkpoints.close()
    out.close()


if __name__ == "__main__":
    main()
