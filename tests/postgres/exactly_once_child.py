"""A pipeline for the crash tests: numbers -> map -> to_postgres, with checkpoints.

    python exactly_once_child.py DSN TABLE LOCATION N MODE

Writes ``{'id': i, 'word': 'w<i % 7>'}`` for i in range(N) into TABLE (MODE 'insert'),
or the running count per word into TABLE (MODE 'upsert'); checkpoints every 50 ms in
LOCATION; a run killed at any moment and started again resumes from what PostgreSQL holds.
"""

from __future__ import annotations

import sys
import time

from millstream import Stream
from millstream.checkpoint import enable
from millstream.testing import run_pipeline


def main() -> None:
    dsn, table, location, n, mode = sys.argv[1:6]

    def row(i: int) -> dict:
        time.sleep(0.0003)  # so that the input outlasts the kills
        return {"id": i, "word": f"w{i % 7}"}

    source = Stream.from_iterable(range(int(n)), chunk_size=50, stream_name="numbers")
    rows = source.map(row, stream_name="rows")
    if mode == "insert":
        rows.to_postgres(table, dsn, stream_name="out")
    else:

        def count(seen: dict, r: dict) -> tuple[dict, tuple[str, int]]:
            seen = {**seen, r["word"]: seen.get(r["word"], 0) + 1}
            return seen, (r["word"], seen[r["word"]])

        running = rows.accumulate(count, start={}, returns_state=True, stream_name="counts")
        running.to_postgres(table, dsn, mode="upsert", key="word", stream_name="out")
    checkpoints = enable(source, location, interval="50ms")
    run_pipeline(source, timeout=300)
    checkpoints.close()
    print("restored", checkpoints.restored, "last", checkpoints.last and checkpoints.last.id)


if __name__ == "__main__":
    main()
