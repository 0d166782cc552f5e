"""Benchmark: JSON-lines Kafka records into frames, ``from_kafka_batched(engine=...)``:
cuDF (on an NVIDIA GPU) against pandas, and against Streamz 0.6.6's paths, same topic, same run.

``--size`` records (default 1,000,000), each a JSON object
``{"id": i, "x": <float>, "y": <int>, "name": "k<i % 100>"}``, are written round robin to
a topic of ``--partitions`` partitions (default 4) once. Each figure reads them all from
the beginning (a fresh consumer group) into frames of at most ``--batch`` records
(``max_batch_size``, default 10,000):

* ``millstream_cudf``: ``Stream.from_kafka_batched(topic, ..., engine='cudf')``
  (``cudf.read_json(..., lines=True)`` per batch; only where cudf imports);
* ``millstream_pandas``: the same with ``engine='pandas'`` (``pandas.read_json``);
* ``streamz_cudf``: Streamz's own ``from_kafka_batched(..., engine='cudf')`` (cuStreamz's
  ``read_gdf``; only where ``custreamz`` imports);
* ``streamz_pandas``: Streamz's ``from_kafka_batched`` (lists of bytes) followed by
  ``.map(pandas.read_json(...lines=True))``, the way to get pandas frames with Streamz.

Each run is timed from ``start()`` until the frames hold ``--size`` rows; every run is
checked: the number of rows and the sum of ``id``. ``--engines`` picks the figures
(default: every one that can run here). Each figure runs once untimed first (warm-up: the
CUDA context, first connections); then best of ``--repeat``, figures taken in turn.

``--bootstrap host:port`` uses a running broker; else a private one is started for the
run (``scripts/kafka-broker``, needs Java 17+) and stopped at exit. Prints one JSON line.
scripts/gpu-check runs it on a GPU machine.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from _common import base_parser, best_times, emit_json, machine
from _kafka import broker, create_topic, delete_topics, load_topic, unique_name

PARTITIONS = 4
ALL = ("millstream_cudf", "millstream_pandas", "streamz_cudf", "streamz_pandas")


def records(n: int) -> Any:
    for i in range(n):
        yield json.dumps(
            {"id": i, "x": (i % 977) / 7.0, "y": i % 13, "name": f"k{i % 100}"}
        ).encode()


def available(name: str) -> tuple[bool, str]:
    """Whether a figure can run here, and why not."""
    needs = {
        "millstream_cudf": "cudf",
        "millstream_pandas": "pandas",
        "streamz_cudf": "custreamz",
        "streamz_pandas": "streamz",
    }[name]
    if importlib.util.find_spec(needs) is None:
        return False, f"{needs} is not installed"
    return True, ""


class Count:
    """Sink: rows and the sum of ``id`` of the frames; sets ``done`` at ``n`` rows."""

    def __init__(self, n: int):
        self.n = n
        self.rows = 0
        self.ids = 0
        self.done = threading.Event()
        self.types: set[str] = set()

    def __call__(self, frame: Any) -> None:
        self.rows += len(frame)
        if len(frame):
            self.ids += int(frame["id"].sum())
        self.types.add(f"{type(frame).__module__.split('.')[0]}.{type(frame).__name__}")
        if self.rows >= self.n:
            self.done.set()


def consumer_params(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": unique_name("millstream-bench-cudf"),
        "auto.offset.reset": "earliest",
    }


def pandas_frame(batch: list[bytes]) -> Any:
    import pandas as pd

    return pd.read_json(io.BytesIO(b"\n".join(batch)), lines=True, dtype=False)


def run_millstream(
    bootstrap: str, topic: str, n: int, batch: int, engine: str
) -> tuple[float, Count]:
    from millstream import Stream

    count = Count(n)
    stream = Stream.from_kafka_batched(
        topic, consumer_params(bootstrap), poll_interval=0.01, max_batch_size=batch,
        engine=engine,
    )  # fmt: skip
    stream.sink(count)
    source = stream.upstream
    t0 = time.perf_counter()
    source.start()
    try:
        if not count.done.wait(600):
            raise TimeoutError(f"millstream engine={engine}: {count.rows} of {n} rows")
        elapsed = time.perf_counter() - t0
    finally:
        source.stop()
    if source.error is not None:
        raise source.error
    return elapsed, count


def run_streamz(
    bootstrap: str, topic: str, n: int, batch: int, engine: str | None
) -> tuple[float, Count]:
    from streamz import Stream

    count = Count(n)
    stream = Stream.from_kafka_batched(
        topic, consumer_params(bootstrap), poll_interval=0.01, max_batch_size=batch,
        npartitions=None, engine=engine,
    )  # fmt: skip
    (stream if engine == "cudf" else stream.map(pandas_frame)).sink(count)
    source = stream.upstream
    t0 = time.perf_counter()
    source.start()
    try:
        if not count.done.wait(600):
            raise TimeoutError(f"streamz engine={engine}: {count.rows} of {n} rows")
        elapsed = time.perf_counter() - t0
    finally:
        source.stopped = True
    return elapsed, count


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 1_000_000)
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("MILLSTREAM_KAFKA_BOOTSTRAP"),
        help="a running broker (host:port); default: start a private one",
    )
    parser.add_argument("--partitions", type=int, default=PARTITIONS,
                        help=f"partitions of the topic (default {PARTITIONS})")  # fmt: skip
    parser.add_argument("--batch", type=int, default=10_000,
                        help="max_batch_size: most records per frame (default 10000)")  # fmt: skip
    parser.add_argument("--engines", default=",".join(ALL),
                        help=f"figures to run, comma-separated (default: {','.join(ALL)}, "
                        "those that can run here)")  # fmt: skip
    args = parser.parse_args(argv)
    n = args.size
    wanted = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in wanted if e not in ALL]
    if unknown:
        parser.error(f"--engines: unknown {unknown}; choose from {list(ALL)}")
    skipped = {e: why for e in wanted for ok, why in [available(e)] if not ok}
    figures = [e for e in wanted if e not in skipped]
    expected_ids = n * (n - 1) // 2
    types: dict[str, list[str]] = {}
    with broker(args.bootstrap) as bootstrap:
        topic = create_topic(bootstrap, unique_name("millstream-bench-cudf"), args.partitions)
        try:
            t0 = time.perf_counter()
            load_topic(bootstrap, topic, records(n), args.partitions)
            load_s = time.perf_counter() - t0

            def runner(name: str) -> Callable[[], tuple[float | None, Any]]:
                engine = "cudf" if name.endswith("cudf") else "pandas"
                if name.startswith("millstream"):
                    return lambda: run_millstream(bootstrap, topic, n, args.batch, engine)
                streamz_engine = "cudf" if engine == "cudf" else None
                return lambda: run_streamz(bootstrap, topic, n, args.batch, streamz_engine)

            # one untimed run of each figure first: the CUDA context, cudf's kernels and the
            # consumers' first connections are not what is measured; a Streamz path that
            # fails here (custreamz against this cudf) is left out, saying why
            for name in list(figures):
                try:
                    runner(name)()
                except Exception as e:
                    if name.startswith("millstream"):
                        raise
                    skipped[name] = f"failed: {type(e).__name__}: {e}"[:300]
                    figures.remove(name)

            def check(name: str, count: Count) -> bool:
                types[name] = sorted(count.types)
                return count.rows == n and count.ids == expected_ids

            times, ok = best_times({f: runner(f) for f in figures}, args.repeat, check)
        finally:
            delete_topics(bootstrap, [topic])
    rates = {name: n / t for name, t in times.items()}
    ratios = {}
    for a, b in [
        ("millstream_cudf", "millstream_pandas"),
        ("millstream_cudf", "streamz_cudf"),
        ("millstream_pandas", "streamz_pandas"),
    ]:
        if a in times and b in times:
            ratios[f"{a}_over_{b}"] = round(times[b] / times[a], 3)
    emit_json(
        {
            "benchmark": "kafka_cudf",
            "workload": f"{n} JSON-lines records on {args.partitions} partitions read into "
            f"frames of at most {args.batch} rows",
            "size": n,
            "partitions": args.partitions,
            "batch": args.batch,
            "machine": machine(),
            "load_s": round(load_s, 3),
            "times_s": {k: round(v, 4) for k, v in times.items()},
            "rows_per_s": {k: round(v) for k, v in rates.items()},
            "ratios": ratios,
            "frame_types": types,
            "skipped": skipped,
            "checks": {f"{name}_rows_and_ids": passed for name, passed in ok.items()},
        }
    )


if __name__ == "__main__":
    main()
