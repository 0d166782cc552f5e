"""Benchmark: word count on a Dask cluster, ``scatter().map(count).buffer(8).gather()``.

``--size`` batches (default 1,000) of ``--batch-lines`` lines (default 1,000), lines of 10
words drawn (seeded) from the 10,000-word vocabulary of ``wordcount.py``, are counted on
a ``LocalCluster(n_workers=2, threads_per_worker=1, processes=True)`` (one cluster and
one client for every figure), each batch by one task ``count_words(batch)`` returning
the batch's ``Counter``; the partial counts are merged into one ``Counter`` as they
come back (``total.update(partial)``, the same sink for every figure):

* ``millstream``: ``Stream()`` -> ``.scatter().map(count_words).buffer(8).gather()
  .sink(merge)``, each batch pushed with ``source.emit(batch)`` from the caller;
* ``streamz``: the same pipeline and feed on Streamz 0.6.6 (whose ``DaskStream`` runs
  its graph on the client's loop);
* ``raw`` (the reference): a loop on the client, each batch scattered
  (``client.scatter([batch], hash=False)``) and ``client.submit(count_words, future)``,
  at most 8 tasks in flight (the ``buffer(8)``), results taken with
  ``as_completed(..., with_results=True)`` and merged;
* ``raw_all_at_once`` (for information, no target): ``client.map(count_words,
  client.scatter(batches, hash=False))`` and ``as_completed`` over all of them;
* ``raw_submit_inline`` (for information, no target): the ``raw`` loop with each batch
  given to ``client.submit`` as the argument itself (no scatter).

Each run is timed from the first batch handed over until the last partial count is
merged; its total must equal a ``collections.Counter`` over the lines counted locally.
The futures a run leaves held are reported (``futures_held_after_a_run``).

Targets: streamz_time / millstream_time >= 1.5; raw_time / millstream_time >= 1.

Prints one JSON line. ``python benchmarks/dask_wordcount.py --help`` for the options.
"""

from __future__ import annotations

import collections
import gc
import threading
import time
from collections.abc import Callable
from typing import Any

from _common import base_parser, emit_json, target
from _dask import cluster, dask_machine, futures_held, load_avg, run_emitting

Counts = collections.Counter[str]
IN_FLIGHT = 8
N_WORKERS = 2


def count_words(batch: list[str]) -> Counts:
    """The task: the word counts of one batch of lines (runs on a worker)."""
    counts: Counts = collections.Counter()
    update = counts.update
    for line in batch:
        update(line.split())
    return counts


def make_batches(n_batches: int, batch_lines: int) -> list[list[str]]:
    from wordcount import make_lines

    lines = make_lines(n_batches * batch_lines)
    return [lines[i : i + batch_lines] for i in range(0, len(lines), batch_lines)]


def expected_counts(batches: list[list[str]]) -> Counts:
    """The reference counts, computed here without any Dask or stream code."""
    counts: Counts = collections.Counter()
    for batch in batches:
        for line in batch:
            for word in line.split():
                counts[word] += 1
    return counts


# -- the figures ----------------------------------------------------------------------------


def run_pipeline(lib: Any, batches: list[list[str]]) -> tuple[float, Counts]:
    """``lib.Stream()`` -> scatter -> map(count_words) -> buffer(8) -> gather -> merge."""

    total: Counts = collections.Counter()
    n = len(batches)
    seen = [0]
    done = threading.Event()

    def merge(partial: Counts) -> None:
        total.update(partial)
        seen[0] += 1
        if seen[0] == n:
            done.set()

    source = lib.Stream()
    source.scatter().map(count_words).buffer(IN_FLIGHT).gather().sink(merge)
    elapsed = run_emitting(source, batches, n, lambda: seen[0], done)
    return elapsed, total


def run_raw(client: Any, batches: list[list[str]], scatter: bool = True) -> tuple[float, Counts]:
    """Scatter each batch and submit its count, at most ``IN_FLIGHT`` at once; merge."""
    from distributed import as_completed

    total: Counts = collections.Counter()
    t0 = time.perf_counter()
    batch_iter = iter(batches)
    pending = as_completed(with_results=True)

    def submit_next() -> None:
        batch = next(batch_iter, None)
        if batch is None:
            return
        if scatter:
            [data] = client.scatter([batch], hash=False)
        else:
            data = batch
        pending.add(client.submit(count_words, data, pure=False))

    for _ in range(IN_FLIGHT):
        submit_next()
    for _future, partial in pending:
        total.update(partial)
        submit_next()
    return time.perf_counter() - t0, total


def run_raw_all_at_once(client: Any, batches: list[list[str]]) -> tuple[float, Counts]:
    from distributed import as_completed

    total: Counts = collections.Counter()
    t0 = time.perf_counter()
    futures = client.map(count_words, client.scatter(batches, hash=False), pure=False)
    for _future, partial in as_completed(futures, with_results=True):
        total.update(partial)
    del futures
    return time.perf_counter() - t0, total


# -- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    import streamz
    import streamz.dask  # registers Streamz's scatter

    import millstream
    import millstream.dask

    parser = base_parser(__doc__.split("\n\n")[0], 1_000)
    parser.add_argument(
        "--batch-lines", type=int, default=1_000, help="lines per batch (default 1000)"
    )
    parser.add_argument(
        "--no-extra",
        action="store_true",
        help="skip the two informational raw figures (raw_all_at_once, raw_submit_inline)",
    )
    args = parser.parse_args(argv)
    size, batch_lines = args.size, args.batch_lines
    load_before = load_avg()
    batches = make_batches(size, batch_lines)
    expected = expected_counts(batches)
    checks: dict[str, bool] = {}

    with cluster(N_WORKERS) as (_local, client):
        runs: dict[str, Callable[[], tuple[float, Counts]]] = {
            "millstream": lambda: run_pipeline(millstream, batches),
            "streamz": lambda: run_pipeline(streamz, batches),
            "raw": lambda: run_raw(client, batches),
        }
        if not args.no_extra:
            runs["raw_all_at_once"] = lambda: run_raw_all_at_once(client, batches)
            runs["raw_submit_inline"] = lambda: run_raw(client, batches, scatter=False)
        # warm-up: every figure once on a few batches (loop threads, function shipping)
        warm = batches[: min(size, 20)]
        warm_expected = expected_counts(warm)
        for name, run in (
            ("millstream", lambda: run_pipeline(millstream, warm)),
            ("streamz", lambda: run_pipeline(streamz, warm)),
            ("raw", lambda: run_raw(client, warm)),
        ):
            checks[f"{name}_warm_up_counts_equal_counter"] = run()[1] == warm_expected

        times: dict[str, list[float]] = {name: [] for name in runs}
        held: dict[str, int] = dict.fromkeys(runs, 0)
        for _ in range(max(1, args.repeat)):
            for name, run in runs.items():  # round robin: the figures taken in turn
                gc.collect()
                baseline = len(client.futures)
                elapsed, total = run()
                times[name].append(elapsed)
                good = total == expected and dict(total) == dict(expected)
                key = f"{name}_counts_equal_counter"
                checks[key] = checks.get(key, True) and good
                del total
                held[name] = max(held[name], futures_held(client, baseline, 0.5))
        workers = len(client.scheduler_info()["workers"])

    best = {name: min(ts) for name, ts in times.items()}
    ratios = {
        "streamz_over_millstream": best["streamz"] / best["millstream"],
        "raw_over_millstream": best["raw"] / best["millstream"],
    }
    for name in ("raw_all_at_once", "raw_submit_inline"):
        if name in best:
            ratios[f"{name}_over_millstream"] = best[name] / best["millstream"]
    targets = {
        "millstream_vs_streamz": target(
            ratios["streamz_over_millstream"], 1.5, "streamz_time / millstream_time"
        ),
        "millstream_vs_raw": target(
            ratios["raw_over_millstream"],
            1.0,
            "raw_time (scatter+submit, 8 in flight) / millstream_time",
        ),
    }
    info = dask_machine(load_before)
    emit_json(
        {
            "benchmark": "dask_wordcount",
            "workload": f"{size} batches x {batch_lines} lines x 10 words (wordcount.py's "
            "vocabulary and seed) -> per-batch Counter on the workers -> merged on the client",
            "size": size,
            "batch_lines": batch_lines,
            "cluster": f"LocalCluster(n_workers={N_WORKERS}, threads_per_worker=1, "
            f"processes=True), {workers} workers, one client for every figure",
            "pipeline": f"Stream().scatter().map(count_words).buffer({IN_FLIGHT}).gather()"
            ".sink(merge), source.emit(batch) per batch",
            "method": f"time.perf_counter from the first batch handed over to the last partial "
            f"count merged, best of {args.repeat} (figures taken in turn) after a warm-up of "
            "every figure on 20 batches",
            "machine": info,
            "times_s": {k: round(v, 4) for k, v in best.items()},
            "all_times_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
            "per_batch_ms": {k: round(1000 * v / size, 3) for k, v in best.items()},
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "futures_held_after_a_run": held,
            "futures_held_note": "futures the client still held after a run, once released "
            "ones had gone (max over the runs): a pipeline whose graph stays alive keeps its "
            "last element's futures (the buffer's loop task keeps the graph alive)",
            "distinct_words": len(expected),
            "checks": checks,
            "targets": targets,
        }
    )
    if not all(checks.values()):
        raise SystemExit("check failed: " + ", ".join(k for k, v in checks.items() if not v))


if __name__ == "__main__":
    main()
