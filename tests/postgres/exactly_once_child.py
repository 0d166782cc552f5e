"""A pipeline for the crash tests: numbers -> map -> to_postgres, with checkpoints.

    python exactly_once_child.py DSN TABLE LOCATION N MODE [KEYS [PACE_S]]

MODE ``insert`` writes ``{'id': i, 'word': 'w<i % 7>'}`` for i in range(N) into TABLE;
``upsert`` the running count per word into TABLE ``(word PK, n)``; ``counts`` the row
``(k, count, sum, src_offset)`` of key ``k = i % KEYS`` after each number ``i`` (its
count of numbers, their sum, the last one) into TABLE ``(k PK, count, sum, src_offset)``.
Each number takes PACE_S seconds (default 0.0003) so that the input outlasts the faults;
checkpoints every 50 ms in LOCATION; a run killed at any moment and started again
resumes from what PostgreSQL holds. Use :func:`command` to build the command line.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from millstream import Stream
from millstream.checkpoint import enable
from millstream.testing import run_pipeline

PACE_S = 0.0003


def command(
    dsn: str, table: str, location: Path, mode: str, n: int, keys: int = 7, pace: float = PACE_S
) -> list[str]:
    """The command line of this child."""
    script = str(Path(__file__).resolve())
    return [sys.executable, script, dsn, table, str(location), str(n), mode, str(keys), str(pace)]


def counts_oracle(n: int, keys: int) -> list[tuple[int, int, int, int]]:
    """The ``counts`` table after numbers 0..n-1, in key order (n >= keys)."""
    return [
        (k, len(range(k, n, keys)), sum(range(k, n, keys)), range(k, n, keys)[-1])
        for k in range(keys)
    ]


def main() -> None:
    dsn, table, location, n, mode = sys.argv[1:6]
    keys = int(sys.argv[6]) if len(sys.argv) > 6 else 7
    pace = float(sys.argv[7]) if len(sys.argv) > 7 else PACE_S

    def paced(i: int) -> int:
        if pace:
            time.sleep(pace)  # so that the input outlasts the kills
        return i

    source = Stream.from_iterable(range(int(n)), chunk_size=50, stream_name="numbers")
    numbers = source.map(paced, stream_name="paced")
    if mode == "insert":
        rows = numbers.map(lambda i: {"id": i, "word": f"w{i % 7}"}, stream_name="rows")
        rows.to_postgres(table, dsn, stream_name="out")
    elif mode == "upsert":

        def count(seen: dict, i: int) -> tuple[dict, tuple[str, int]]:
            word = f"w{i % 7}"
            seen = {**seen, word: seen.get(word, 0) + 1}
            return seen, (word, seen[word])

        running = numbers.accumulate(count, start={}, returns_state=True, stream_name="counts")
        running.to_postgres(table, dsn, mode="upsert", key="word", stream_name="out")
    else:

        def add(state: tuple[dict, dict], i: int) -> tuple[tuple[dict, dict], tuple]:
            seen, sums = state  # changed in place: a checkpoint copies the state
            k = i % keys
            seen[k] = seen.get(k, 0) + 1
            sums[k] = sums.get(k, 0) + i
            return state, (k, seen[k], sums[k], i)

        running = numbers.accumulate(add, start=({}, {}), returns_state=True, stream_name="keyed")
        running.to_postgres(table, dsn, mode="upsert", key="k", stream_name="out")
    checkpoints = enable(source, location, interval="50ms")
    print("restored", checkpoints.restored, flush=True)
    run_pipeline(source, timeout=900)
    checkpoints.close()
    print("last", checkpoints.last and checkpoints.last.id)


if __name__ == "__main__":
    main()
