"""The pipeline of the Parquet kill -9 tests, run as a child process:
``from_iterable(numbers) -> map(row) -> to_parquet(out)``, with checkpoints every 0.2 s
(``checkpoints``) or without (``plain``). The input is paced so that a run lasts a few
seconds. Prints ``done`` at the end.

Usage: ``python kill_child.py OUT CHECKPOINTS MODE N``
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

#: items between two pauses of the input, and the pause (seconds)
PACE_EVERY, PACE_S = 200, 0.02


def command(out: Path, checkpoints: Path, mode: str, n: int) -> list[str]:
    """The command line of this child."""
    return [sys.executable, str(Path(__file__).resolve()), str(out), str(checkpoints), mode, str(n)]


def numbers(n: int) -> Iterator[int]:
    for i in range(n):
        if i % PACE_EVERY == 0:
            time.sleep(PACE_S)
        yield i


def main() -> None:
    from millstream import Stream
    from millstream.checkpoint import enable
    from millstream.testing import run_pipeline

    out, location, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    source = Stream.from_iterable(numbers(n), stream_name="numbers")
    source.map(lambda i: {"i": i, "k": i % 3}, stream_name="rows").to_parquet(
        out, partition_cols=["k"], batch_rows=100, rollover_rows=700, stream_name="out"
    )
    checkpoints = None
    if mode == "checkpoints":
        checkpoints = enable(source, location, interval="200ms")
    run_pipeline(source, timeout=300)
    if checkpoints is not None:
        checkpoints.close()
    print("done", flush=True)


if __name__ == "__main__":
    main()
