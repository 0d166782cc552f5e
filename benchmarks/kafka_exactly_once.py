"""Benchmark: Kafka -> keyed running word count -> Kafka, exactly-once against at-least-once
checkpoints, and against Quix Streams 3.x, in the same run on the same broker.

``--records`` records (default 1,000,000), each a word (key = value = the word, drawn
seeded from a vocabulary of 10,000), are written once to a 4-partition topic, each word
always to the same partition (``crc32(word) % 4``). Each variant reads that topic from
the beginning with a fresh consumer group and, for every record, writes the new running
count of its word to a fresh 4-partition output topic: key = the word, value = the count
as decimal text. The variants:

* ``millstream_at_least_once``: ``Stream.from_kafka(IN, {..., 'group.id': G}, keys=True)
  .map(record -> word).accumulate(count, start={}, returns_state=True)`` (a dict of
  counts; emits ``(word, str(count))``) ``.to_kafka(OUT, {'bootstrap.servers': B},
  keys=True)``, under ``millstream.checkpoint.enable(source, tmpdir, interval='1s')``.
  Until ``to_kafka`` takes ``keys=True`` it writes the count alone (no key; the JSON says
  ``"output_keys": false`` and the check is then on the multiset of counts).
* ``millstream_exactly_once``: the same under ``enable(..., exactly_once=True)`` (one
  Kafka transaction per checkpoint). Reported as unavailable while ``enable`` has no
  ``exactly_once`` parameter.
* ``quix_exactly_once`` and ``quix_at_least_once``: Quix Streams 3.x, ``Application(B,
  consumer_group=G, auto_offset_reset='earliest', processing_guarantee=...,
  commit_interval=1.0, state_dir=tmpdir)``; ``app.dataframe(app.topic(IN,
  key_deserializer='str', value_deserializer='str')).apply(count, stateful=True)``
  (the count in the per-key state, ``state.get``/``state.set``) ``.to_topic(app.topic(OUT,
  key_serializer='str', value_serializer='str'))``, ``app.run(count=N, collect=False)``.
  Its changelog topics are deleted after each run. Reported as unavailable when
  ``quixstreams`` cannot be imported.

Each run is timed from ``start()`` / ``app.run()`` (the graph / Application and its topics
made before) until the last output record is committed: for millstream, once the
``N``-th record has been counted, ``to_kafka.flush()`` and ``checkpoints.close()`` (a
last checkpoint: with exactly-once it commits the last transaction, else it commits the
group's offsets after every output was acknowledged); for Quix, until ``app.run(count=N)``
returns (it commits its last checkpoint on the way out). The figures are taken in turn
(round robin), best of ``--repeat``; records/s = N / time.

Every run's output is then read back with ``isolation.level=read_committed`` from the
beginning to the end of each partition: it must hold exactly N records, and for each
word the counts 1, 2, ..., n (n = the word's records in the input), in that order.

Targets: millstream exactly-once / at-least-once throughput >= 0.9; millstream
exactly-once / Quix exactly-once throughput >= 2.5. A target whose variant is unavailable
is reported with ``"value": null`` and fails.

Quix Streams pins ``confluent-kafka<2.13``, so it is not in the ``bench`` extra (which the
test extra includes); install it (the ``quix`` extra) in a virtual environment that sees
the project's packages and run the script with that interpreter::

    python -m venv --system-site-packages .venv
    .venv/bin/pip install 'quixstreams>=3,<4'        # or: .venv/bin/pip install -e '.[quix]'
    PYTHONPATH=src .venv/bin/python benchmarks/kafka_exactly_once.py

All variants then use that confluent-kafka (reported in the JSON). ``--bootstrap
host:port`` uses a running broker; else one is started for the run. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import inspect
import random
import shutil
import signal
import string
import tempfile
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

from _common import best_times, emit_json, machine
from _kafka import broker, create_topic, delete_topics, load_topic, unique_name

import millstream
from millstream import Stream
from millstream.checkpoint import enable

VOCABULARY = 10_000
PARTITIONS = 4
SEED = 20240917
RUN_TIMEOUT = 900.0
READ_TIMEOUT = 120.0
VARIANTS = (
    "millstream_at_least_once",
    "millstream_exactly_once",
    "quix_at_least_once",
    "quix_exactly_once",
)

Counts = collections.Counter[str]


# -- what is available ------------------------------------------------------------------------


def millstream_exactly_once() -> bool:
    """Whether ``enable`` takes ``exactly_once=``."""
    return "exactly_once" in inspect.signature(enable).parameters


def millstream_output_keys() -> bool:
    """Whether ``to_kafka`` takes ``keys=True`` (``(key, value)`` elements)."""
    return "keys" in inspect.signature(Stream.to_kafka).parameters  # type: ignore[attr-defined]


def quix_version() -> str | None:
    try:
        import quixstreams
    except ImportError:
        return None
    return str(quixstreams.__version__)


# -- the data -----------------------------------------------------------------------------------


def make_words(n: int, seed: int = SEED) -> list[str]:
    """``n`` words drawn (seeded) from a vocabulary of ``VOCABULARY`` words of 6-12 letters."""
    rng = random.Random(seed)
    vocab: set[str] = set()
    while len(vocab) < VOCABULARY:
        vocab.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(6, 12))))
    return rng.choices(sorted(vocab), k=n)


def partition_of(word: bytes) -> int:
    return zlib.crc32(word) % PARTITIONS


def load_words(bootstrap: str, topic: str, words: list[str], timeout: float = 120.0) -> None:
    """Write each word as a record with key = value = the word, to ``partition_of(word)``."""
    values = (word.encode() for word in words)
    load_topic(bootstrap, topic, values, timeout=timeout, keyed=True, partitioner=partition_of)


# -- checking an output topic -------------------------------------------------------------------


def read_output(bootstrap: str, topic: str, n: int) -> list[tuple[bytes | None, bytes]]:
    """Every record of ``topic`` a ``read_committed`` reader sees, partition by partition.

    Reads until each partition's end was reached after at least ``n`` records came (the
    commit markers of the last transaction may land just after its commit returned), or
    for ``READ_TIMEOUT`` seconds.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique_name("millstream-bench-eos-check"),
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    per_partition: list[list[tuple[bytes | None, bytes]]] = [[] for _ in range(PARTITIONS)]
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
        at_end: set[int] = set()
        got = 0
        deadline = time.monotonic() + READ_TIMEOUT
        while time.monotonic() < deadline and not (got >= n and len(at_end) == PARTITIONS):
            for m in consumer.consume(num_messages=10_000, timeout=0.2):
                error = m.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        at_end.add(m.partition())  # type: ignore[arg-type]
                        continue
                    raise RuntimeError(f"reading {topic!r}: {error}")
                p = m.partition()
                at_end.discard(p)  # type: ignore[arg-type]
                per_partition[p].append((m.key(), m.value()))  # type: ignore[index,arg-type]
                got += 1
    finally:
        consumer.close()
    return [record for records in per_partition for record in records]


def check_output(
    records: list[tuple[bytes | None, bytes]], expected: Counts, keyed: bool
) -> dict[str, bool]:
    """The output holds one record per input record, each word's counts 1..n in order."""
    n = sum(expected.values())
    if not keyed:  # counts without their words: the multiset of counts must be right
        got = collections.Counter(int(v) for _, v in records)
        want: Counts = collections.Counter()
        for count in expected.values():
            want.update(range(1, count + 1))
        return {"records_equal_input": len(records) == n, "counts_1_to_n": got == want}
    per_word: dict[bytes | None, list[int]] = collections.defaultdict(list)
    for key, value in records:
        per_word[key].append(int(value))
    good = len(per_word) == len(expected) and all(
        per_word.get(word.encode()) == list(range(1, count + 1)) for word, count in expected.items()
    )
    return {"records_equal_input": len(records) == n, "counts_1_to_n": good}


# -- the runs -----------------------------------------------------------------------------------


def word_of(record: dict[str, Any]) -> str:
    return record["value"].decode()  # type: ignore[no-any-return]


def run_millstream(
    bootstrap: str, in_topic: str, out_topic: str, n: int, exactly_once: bool, interval: str
) -> tuple[float, dict[str, Any]]:
    """One millstream run into ``out_topic``; returns (seconds, facts)."""
    keyed = millstream_output_keys()
    done = threading.Event()
    seen = [0]

    def count(counts: dict[str, int], word: str) -> tuple[dict[str, int], Any]:
        c = counts[word] = counts.get(word, 0) + 1
        seen[0] += 1
        if seen[0] == n:
            done.set()
        return counts, ((word, str(c)) if keyed else str(c))

    params = {
        "bootstrap.servers": bootstrap,
        "group.id": unique_name("millstream-bench-eos"),
        "auto.offset.reset": "earliest",
    }
    source = Stream.from_kafka(in_topic, params, keys=True)  # type: ignore[attr-defined]
    counts = source.map(word_of).accumulate(
        count, start={}, returns_state=True, stream_name="counts"
    )
    sink_options = {"keys": True} if keyed else {}
    sink = counts.to_kafka(out_topic, {"bootstrap.servers": bootstrap}, **sink_options)
    location = tempfile.mkdtemp(prefix="millstream-bench-eos-ck-")
    mode = {"exactly_once": True} if exactly_once else {}
    try:
        checkpoints = enable(source, location, interval=interval, **mode)
        t0 = time.perf_counter()
        source.start()
        finished = done.wait(RUN_TIMEOUT)
        if finished:
            sink.flush()
            checkpoints.close()
        elapsed = time.perf_counter() - t0
        if not finished:
            checkpoints.close(final=False)
        history = list(checkpoints.history)
        source.stop()
        with contextlib.suppress(Exception):
            sink.close()
        if not finished:
            raise TimeoutError(f"millstream: {seen[0]} of {n} records counted")
    finally:
        shutil.rmtree(location, ignore_errors=True)
    return elapsed, {"checkpoints": len(history), "output_keys": keyed}


def run_quix(
    bootstrap: str, in_topic: str, out_topic: str, n: int, guarantee: str, interval: float
) -> tuple[float, dict[str, Any]]:
    """One Quix Streams run into ``out_topic``; returns (seconds, facts)."""
    from quixstreams import Application

    group = unique_name("millstream-bench-quix")
    state_dir = tempfile.mkdtemp(prefix="millstream-bench-quix-state-")

    def count(_word: str, state: Any) -> str:
        c = state.get("count", 0) + 1
        state.set("count", c)
        return str(c)

    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        app = Application(
            broker_address=bootstrap,
            consumer_group=group,
            auto_offset_reset="earliest",
            processing_guarantee=guarantee,  # type: ignore[arg-type]
            commit_interval=interval,
            state_dir=state_dir,
            loglevel="WARNING",
        )
        source = app.topic(in_topic, key_deserializer="str", value_deserializer="str")
        output = app.topic(out_topic, key_serializer="str", value_serializer="str")
        app.dataframe(source).apply(count, stateful=True).to_topic(output)
        t0 = time.perf_counter()
        app.run(count=n, timeout=RUN_TIMEOUT, collect=False)
        elapsed = time.perf_counter() - t0
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        shutil.rmtree(state_dir, ignore_errors=True)
        delete_topics(bootstrap, quix_topics(bootstrap, group))
    return elapsed, {"output_keys": True}


def quix_topics(bootstrap: str, group: str) -> list[str]:
    """The topics Quix Streams made for ``group`` (changelogs: ``changelog__<group>--...``)."""
    from confluent_kafka.admin import AdminClient

    topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=30).topics
    return [name for name in topics if f"__{group}--" in name]


# -- main ---------------------------------------------------------------------------------------


def unavailable_target(what: str, minimum: float, reason: str) -> dict[str, Any]:
    return {
        "what": what,
        "value": None,
        "target": f">= {minimum:g}",
        "pass": False,
        "unavailable": reason,
    }


def ratio_target(
    rates: dict[str, float], reasons: dict[str, str], top: str, bottom: str, minimum: float
) -> dict[str, Any]:
    what = f"records/s {top} / records/s {bottom}"
    missing = [reasons[name] for name in (top, bottom) if name in reasons]
    if missing:
        return unavailable_target(what, minimum, "; ".join(missing))
    value = rates[top] / rates[bottom]
    return {
        "what": what,
        "value": round(value, 3),
        "target": f">= {minimum:g}",
        "pass": value >= minimum,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--records",
        "--size",
        dest="records",
        type=int,
        default=1_000_000,
        help="input records (default 1000000)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per variant; the best is kept"
    )
    parser.add_argument("--bootstrap", help="a running broker (default: start a private one)")
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="seconds between checkpoints (millstream) and commits (Quix) (default 1)",
    )
    parser.add_argument("--no-quix", action="store_true", help="skip the Quix Streams variants")
    parser.add_argument("--no-memory", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n = args.records
    words = make_words(n)
    expected: Counts = collections.Counter(words)

    reasons: dict[str, str] = {}
    if not millstream_exactly_once():
        reasons["millstream_exactly_once"] = (
            "millstream.checkpoint.enable has no exactly_once parameter yet"
        )
    quix = quix_version()
    for name in ("quix_at_least_once", "quix_exactly_once"):
        if args.no_quix:
            reasons[name] = "--no-quix"
        elif quix is None:
            reasons[name] = "quixstreams is not installed (pip install 'quixstreams>=3,<4')"
    interval = f"{args.interval:g}s"

    with broker(args.bootstrap) as bootstrap:
        in_topic = create_topic(bootstrap, unique_name("millstream-bench-eos-in"), PARTITIONS)
        try:
            t0 = time.perf_counter()
            load_words(bootstrap, in_topic, words)
            load_s = time.perf_counter() - t0
            makers: dict[str, Callable[[str], tuple[float, dict[str, Any]]]] = {
                "millstream_at_least_once": lambda out: run_millstream(
                    bootstrap, in_topic, out, n, False, interval
                ),
                "millstream_exactly_once": lambda out: run_millstream(
                    bootstrap, in_topic, out, n, True, interval
                ),
                "quix_at_least_once": lambda out: run_quix(
                    bootstrap, in_topic, out, n, "at-least-once", args.interval
                ),
                "quix_exactly_once": lambda out: run_quix(
                    bootstrap, in_topic, out, n, "exactly-once", args.interval
                ),
            }
            facts: dict[str, list[dict[str, Any]]] = {name: [] for name in makers}

            def runner(name: str) -> Callable[[], tuple[float, dict[str, Any]]]:
                def one() -> tuple[float, dict[str, Any]]:
                    out = create_topic(
                        bootstrap, unique_name("millstream-bench-eos-out"), PARTITIONS
                    )
                    try:
                        elapsed, run_facts = makers[name](out)
                        run_facts["seconds"] = round(elapsed, 4)
                        records = read_output(bootstrap, out, n)
                        run_facts.update(check_output(records, expected, run_facts["output_keys"]))
                    finally:
                        delete_topics(bootstrap, [out])
                    facts[name].append(run_facts)
                    return elapsed, run_facts

                return one

            runs = {name: runner(name) for name in VARIANTS if name not in reasons}
            times, _ = best_times(runs, args.repeat, lambda _name, _out: True)
        finally:
            delete_topics(bootstrap, [in_topic])

    rates = {name: n / t for name, t in times.items()}
    checks: dict[str, bool] = {}
    for name, runs_facts in facts.items():
        for key in ("records_equal_input", "counts_1_to_n"):
            if runs_facts:
                checks[f"{name}_{key}"] = all(f[key] for f in runs_facts)
        if name.startswith("millstream") and runs_facts:
            checks[f"{name}_took_checkpoints"] = all(f["checkpoints"] >= 1 for f in runs_facts)
    targets = {
        "exactly_once_vs_at_least_once": ratio_target(
            rates, reasons, "millstream_exactly_once", "millstream_at_least_once", 0.9
        ),
        "millstream_vs_quix_exactly_once": ratio_target(
            rates, reasons, "millstream_exactly_once", "quix_exactly_once", 2.5
        ),
    }
    ratios = {
        "millstream_eos_over_alo": targets["exactly_once_vs_at_least_once"]["value"],
        "millstream_eos_over_quix_eos": targets["millstream_vs_quix_exactly_once"]["value"],
        "quix_eos_over_alo": (
            round(rates["quix_exactly_once"] / rates["quix_at_least_once"], 3)
            if "quix_exactly_once" in rates and "quix_at_least_once" in rates
            else None
        ),
        "millstream_alo_over_quix_alo": (
            round(rates["millstream_at_least_once"] / rates["quix_at_least_once"], 3)
            if "quix_at_least_once" in rates
            else None
        ),
    }
    import confluent_kafka

    info = machine()
    info["millstream"] = millstream.__version__
    info["quixstreams"] = quix
    info["confluent_kafka"] = confluent_kafka.__version__
    info["librdkafka"] = confluent_kafka.libversion()[0]
    emit_json(
        {
            "benchmark": "kafka_exactly_once",
            "workload": f"{n} records (key = value = a word, vocabulary {VOCABULARY}, seed "
            f"{SEED}) in {PARTITIONS} partitions (by crc32 of the word) -> running count per "
            f"word -> {PARTITIONS}-partition topic (key = word, value = count as text); "
            f"checkpoints / commits every {args.interval:g} s",
            "size": n,
            "method": "time.perf_counter from start() / app.run() until the last output record "
            "is committed (millstream: flush + checkpoints.close(); Quix: run(count=N) "
            f"returns), best of {args.repeat} (variants in turn); fresh group, output topic "
            "and state each run; output read back read_committed and checked",
            "machine": info,
            "variants": {
                name: {
                    "available": name not in reasons,
                    **({"reason": reasons[name]} if name in reasons else {}),
                }
                for name in VARIANTS
            },
            "output_keys": millstream_output_keys(),
            "load_s": round(load_s, 3),
            "times_s": {k: round(v, 4) for k, v in times.items()},
            "records_per_s": {k: round(v) for k, v in rates.items()},
            "ratios": ratios,
            "runs": facts,
            "distinct_words": len(expected),
            "checks": checks,
            "targets": targets,
        }
    )
    if not all(checks.values()):
        raise SystemExit("output check failed: " + ", ".join(k for k, v in checks.items() if not v))


if __name__ == "__main__":
    main()
