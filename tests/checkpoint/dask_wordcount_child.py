"""A DaskStream word count with checkpoints, run as a child process by the kill -9 tests.

    python dask_wordcount_child.py SCHEDULER CHECKPOINT_DIR OUT LINES_FILE

Counts the words of LINES_FILE (one line per element) on the Dask cluster at SCHEDULER
(``scatter().map(...).flatten().frequencies()``: the table stays on the workers), with a
checkpoint every 0.2 s in CHECKPOINT_DIR. Started again with the same directory, it
resumes from the last checkpoint. At the end it writes the counts as JSON to OUT
(atomically) and exits 0. The tests kill it with ``kill -9`` at random moments.
"""

from __future__ import annotations

import json
import os
import sys
import time


def upper_words(line: str) -> list[str]:
    time.sleep(0.001)  # the work of a line on a worker: the run lasts a few seconds
    return line.upper().split()


def main(scheduler: str, where: str, out: str, lines_file: str) -> None:
    from distributed import Client

    from millstream import Stream
    from millstream.checkpoint import enable
    from millstream.testing import wait_for

    with open(lines_file) as f:
        lines = f.read().splitlines()
    with Client(scheduler, timeout=60):
        source = Stream.from_iterable(lines, chunk_size=4, stream_name="in")
        counts = source.scatter().map(upper_words).flatten().frequencies(stream_name="counts")
        counts.gather().sink(lambda table: None)
        checkpoints = enable(source, where, interval=0.2)
        source.start()
        wait_for(lambda: source.stopped, 600, period=0.01)
        if source.error is not None:
            raise source.error
        checkpoints.close()
        table = counts.snapshot()["counts"]
    temp = f"{out}.tmp"
    with open(temp, "w") as f:
        json.dump(table, f)
    os.replace(temp, out)


if __name__ == "__main__":
    main(*sys.argv[1:5])
