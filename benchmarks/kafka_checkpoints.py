"""Benchmark: a Kafka word count with checkpoints every second against the same pipeline
without checkpoints, in the same run.

``--size`` messages (default 1,000,000) of 10 words (the lines of ``kafka_wordcount.py``,
seeded) are written round robin to a 4-partition topic once, then counted by
``Stream.from_kafka_batched(topic, {..., fresh group.id}, max_batch_size=10000)`` into:

* ``batch``: ``.map(decode_batch).accumulate(count_lines, start=Counter())``, the
  counting of ``kafka_wordcount.py``;
* ``per_word``: ``.map(decode_batch).flatten().map(str.split).flatten().frequencies()``,
  the pipeline of ``millstream wordcount --kafka``, one element per word;

each once plainly (offsets committed as records finish) and once under
``millstream.checkpoint.enable(source, tmpdir, interval=1)`` (state and positions
checkpointed every second, the group's offsets committed after each checkpoint). Each
run is timed from ``start()`` until every message is counted; its counts must equal a
``Counter`` over the lines. The figures are taken in turn (round robin), best of
``--repeat``. Checkpoint facts (how many, the longest hold, duration and size) come from
``Checkpoints.history``.

Target: time without / time with checkpoints >= 0.9, for both pipelines.
``--bootstrap host:port`` uses a running broker; else one is started for the run.
"""

from __future__ import annotations

import collections
import shutil
import tempfile
import threading
import time
from typing import Any

from _common import base_parser, best_times, emit_json, machine, target
from _kafka import broker, create_topic, delete_topics, load_topic, unique_name
from kafka_wordcount import count_all, count_lines, decode_batch, make_lines

import millstream
from millstream import Stream
from millstream.checkpoint import enable

PARTITIONS = 4
MAX_BATCH = 10_000
RUN_TIMEOUT = 900.0


def run(
    bootstrap: str, topic: str, n: int, pipeline: str, checkpoints_dir: str | None, interval: float
) -> Any:
    params = {
        "bootstrap.servers": bootstrap,
        "group.id": unique_name("millstream-bench-ck"),
        "auto.offset.reset": "earliest",
    }
    stream = Stream.from_kafka_batched(topic, params, poll_interval=0.1, max_batch_size=MAX_BATCH)
    source = stream.upstream
    decoded = stream.map(decode_batch)
    if pipeline == "batch":
        counts = decoded.accumulate(count_lines, start=collections.Counter(), stream_name="n")
    else:
        counts = decoded.flatten().map(str.split).flatten().frequencies(stream_name="n")
    done = threading.Event()
    seen = [0]

    def progress(batch: list[bytes]) -> None:
        seen[0] += len(batch)
        if seen[0] >= n:
            done.set()

    stream.sink(progress)
    checkpoints = enable(source, checkpoints_dir, interval=interval) if checkpoints_dir else None
    t0 = time.perf_counter()
    source.start()
    finished = done.wait(RUN_TIMEOUT)
    elapsed = time.perf_counter() - t0
    facts: dict[str, Any] = {}
    if checkpoints is not None:
        checkpoints.close(final=False)
        infos = list(checkpoints.history)
        facts = {
            "checkpoints": len(infos),
            "held_s_max": max((i.held_s for i in infos), default=0.0),
            "duration_s_max": max((i.duration_s for i in infos), default=0.0),
            "size_bytes_max": max((i.size for i in infos), default=0),
        }
    source.stop()
    if not finished:
        raise TimeoutError(f"{seen[0]} of {n} messages")
    state = counts.snapshot()
    final = state["state"] if pipeline == "batch" else state["counts"]
    return elapsed, (collections.Counter(dict(final)), facts)


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 1_000_000)
    parser.add_argument("--bootstrap", default=None, help="a running broker (host:port)")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between checkpoints (default 1)"
    )
    args = parser.parse_args(argv)
    n = args.size
    lines = make_lines(n)
    expected = count_all(lines)
    work = tempfile.mkdtemp(prefix="millstream-bench-kck-")
    facts: dict[str, Any] = {}
    with broker(args.bootstrap) as bootstrap:
        topic = create_topic(bootstrap, unique_name("millstream-bench-ck"), PARTITIONS)
        try:
            load_topic(bootstrap, topic, lines, partitions=PARTITIONS)
            runs = {}
            for pipeline in ("batch", "per_word"):
                runs[f"{pipeline}_plain"] = lambda p=pipeline: run(bootstrap, topic, n, p, None, 0)
                runs[f"{pipeline}_checkpoints"] = lambda p=pipeline: run(
                    bootstrap, topic, n, p, tempfile.mkdtemp(dir=work), args.interval
                )

            def correct(name: str, out: Any) -> bool:
                counts, run_facts = out
                if run_facts:
                    facts[name] = run_facts
                return bool(counts == expected)

            times, ok = best_times(runs, args.repeat, correct)
        finally:
            delete_topics(bootstrap, [topic])
            shutil.rmtree(work, ignore_errors=True)
    ratios = {
        f"{p}_plain_over_checkpoints": times[f"{p}_plain"] / times[f"{p}_checkpoints"]
        for p in ("batch", "per_word")
    }
    targets = {
        f"{p}_checkpoints_vs_plain": target(
            ratios[f"{p}_plain_over_checkpoints"],
            0.9,
            f"time without / time with {args.interval:g} s checkpoints ({p})",
        )
        for p in ("batch", "per_word")
    }
    checks = {f"{name}_counts_equal_counter": good for name, good in ok.items()}
    checks.update(
        {f"{name}_took_checkpoints": f.get("checkpoints", 0) >= 1 for name, f in facts.items()}
    )
    info = machine()
    info["millstream"] = millstream.__version__
    emit_json(
        {
            "benchmark": "kafka_checkpoints",
            "workload": f"{n} messages of {10} words on {PARTITIONS} partitions, "
            "from_kafka_batched -> word count, with and without 1 s checkpoints",
            "size": n,
            "machine": info,
            "times_s": {k: round(v, 4) for k, v in times.items()},
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "checkpoints": facts,
            "checks": checks,
            "targets": targets,
        }
    )


if __name__ == "__main__":
    main()
