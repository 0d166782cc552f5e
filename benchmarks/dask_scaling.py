"""Benchmark: does a millstream Dask pipeline scale from 1 worker to 2?

``--size`` elements (default 250), the ints ``0..size-1``, go through
``Stream().scatter().map(burn).buffer(8).gather().sink(collect)``, fed with
``source.emit(i)`` from the caller, on ``LocalCluster(n_workers=N, threads_per_worker=1,
processes=True)`` for N = 1 and N = 2. ``burn(i)`` is ``--work-iterations`` steps
(default 300,000, about 20 ms here; the measured local time is in the JSON) of a
pure-Python linear congruential generator seeded with ``i``: deterministic CPU work that
holds the GIL, with a result that depends on the element.

For information (no target), ``raw``: the same tasks from a plain client loop
(``client.submit(burn, i)``, at most 8 in flight, ``as_completed``), on the same clusters:
what the cluster itself gives on this machine.

Each run gets a fresh cluster (its start is not timed) and a warm-up of 8 elements, and
is timed from the first element handed over to the last result collected; the runs are
taken in turn (1 worker, 2 workers, 1 worker, ...), best of ``--repeat``. The results
must be ``(i, burn(i))`` for every ``i``, in order; ``burn(i)`` is checked against a
closed form (the generator's affine map raised to the power ``iterations`` by
squaring), not by running the loop again.

Target: time on 1 worker / time on 2 workers >= 1.7 (millstream).

Prints one JSON line. ``python benchmarks/dask_scaling.py --help`` for the options.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from typing import Any

from _common import base_parser, emit_json, target
from _dask import cluster, dask_machine, load_avg, run_emitting

#: the generator: x -> (A * x + C) mod 2**31
A = 1103515245
C = 12345
MASK = 0x7FFFFFFF
IN_FLIGHT = 8
WARM_UP = 8


def burn(i: int, iterations: int) -> tuple[int, int]:
    """The task: ``iterations`` steps of the generator from seed ``i`` (runs on a worker)."""
    x = i
    for _ in range(iterations):
        x = (x * A + C) & MASK
    return i, x


def burn_closed_form(i: int, iterations: int) -> int:
    """``burn(i, iterations)[1]`` without the loop: the affine map composed by squaring."""
    # (a, c) stands for x -> a*x + c; compose(f, g) = f after g
    result_a, result_c = 1, 0
    step_a, step_c = A, C
    n = iterations
    while n:
        if n & 1:
            result_a, result_c = (step_a * result_a) & MASK, (step_a * result_c + step_c) & MASK
        step_a, step_c = (step_a * step_a) & MASK, (step_a * step_c + step_c) & MASK
        n >>= 1
    return (result_a * i + result_c) & MASK


def run_pipeline(n: int, iterations: int) -> tuple[float, list[tuple[int, int]]]:
    """millstream: scatter -> map(burn) -> buffer(8) -> gather -> collect, emit per element."""

    import millstream
    import millstream.dask

    out: list[tuple[int, int]] = []
    done = threading.Event()

    def collect(result: tuple[int, int]) -> None:
        out.append(result)
        if len(out) == n:
            done.set()

    source: Any = millstream.Stream()
    source.scatter().map(burn, iterations).buffer(IN_FLIGHT).gather().sink(collect)
    elapsed = run_emitting(source, range(n), n, lambda: len(out), done)
    return elapsed, out


def run_raw(client: Any, n: int, iterations: int) -> tuple[float, list[tuple[int, int]]]:
    """``client.submit(burn, i)``, at most 8 in flight, ``as_completed``; sorted at the end."""
    from distributed import as_completed

    out: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    items = iter(range(n))
    pending = as_completed(with_results=True)

    def submit_next() -> None:
        i = next(items, None)
        if i is not None:
            pending.add(client.submit(burn, i, iterations, pure=False))

    for _ in range(IN_FLIGHT):
        submit_next()
    for _future, result in pending:
        out.append(result)
        submit_next()
    elapsed = time.perf_counter() - t0
    out.sort()
    return elapsed, out


def local_seconds(iterations: int, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        burn(1, iterations)
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 250)
    parser.add_argument(
        "--work-iterations",
        type=int,
        default=300_000,
        help="generator steps per element (default 300000, about 20 ms of CPU here)",
    )
    parser.add_argument(
        "--no-extra", action="store_true", help="skip the informational raw client loop"
    )
    args = parser.parse_args(argv)
    n, iterations = args.size, args.work_iterations
    load_before = load_avg()
    work_s = local_seconds(iterations)
    expected = [(i, burn_closed_form(i, iterations)) for i in range(max(n, WARM_UP))]
    assert burn(7, 1000)[1] == burn_closed_form(7, 1000)

    figures: dict[str, tuple[int, Callable[[Any], tuple[float, list[tuple[int, int]]]]]] = {
        "millstream_1_worker": (1, lambda client: run_pipeline(n, iterations)),
        "millstream_2_workers": (2, lambda client: run_pipeline(n, iterations)),
    }
    if not args.no_extra:
        figures["raw_1_worker"] = (1, lambda client: run_raw(client, n, iterations))
        figures["raw_2_workers"] = (2, lambda client: run_raw(client, n, iterations))
    times: dict[str, list[float]] = {name: [] for name in figures}
    checks: dict[str, bool] = {}
    for _ in range(max(1, args.repeat)):
        for name, (workers, run) in figures.items():  # in turn: 1, 2, 1, 2...
            with cluster(workers) as (_local, client):
                warm_out = run_pipeline(WARM_UP, iterations)[1]
                checks[f"{name}_warm_up_correct"] = (
                    checks.get(f"{name}_warm_up_correct", True) and warm_out == expected[:WARM_UP]
                )
                gc.collect()
                elapsed, out = run(client)
                times[name].append(elapsed)
                key = f"{name}_results_correct"
                checks[key] = checks.get(key, True) and out == expected[:n]
                key = f"{name}_cluster_had_{workers}_workers"
                checks[key] = len(client.scheduler_info()["workers"]) == workers

    best = {name: min(ts) for name, ts in times.items()}
    ratios = {
        "millstream_1_over_2_workers": best["millstream_1_worker"] / best["millstream_2_workers"],
        "millstream_2_workers_efficiency": n * work_s / (2 * best["millstream_2_workers"]),
    }
    if not args.no_extra:
        ratios["raw_1_over_2_workers"] = best["raw_1_worker"] / best["raw_2_workers"]
        ratios["raw_over_millstream_2_workers"] = (
            best["raw_2_workers"] / best["millstream_2_workers"]
        )
    targets = {
        "millstream_2_vs_1_worker": target(
            ratios["millstream_1_over_2_workers"],
            1.7,
            "millstream time on 1 worker / on 2 workers",
        )
    }
    info = dask_machine(load_before)
    emit_json(
        {
            "benchmark": "dask_scaling",
            "workload": f"{n} ints -> burn(i): {iterations} steps of an LCG "
            f"({work_s * 1000:.1f} ms each here) -> (i, x) collected in order",
            "size": n,
            "work_iterations": iterations,
            "work_per_element_local_s": round(work_s, 5),
            "pipeline": f"Stream().scatter().map(burn, {iterations}).buffer({IN_FLIGHT})"
            ".gather().sink(collect), source.emit(i) per element",
            "cluster": "LocalCluster(n_workers=N, threads_per_worker=1, processes=True), "
            "a fresh one per run",
            "method": "time.perf_counter from the first element handed over to the last "
            f"result, best of {args.repeat}, the figures taken in turn, each run on a fresh "
            f"cluster after a warm-up of {WARM_UP} elements",
            "machine": info,
            "times_s": {k: round(v, 4) for k, v in best.items()},
            "all_times_s": {k: [round(t, 4) for t in v] for k, v in times.items()},
            "ratios": {k: round(v, 3) for k, v in ratios.items()},
            "ratios_note": "millstream_2_workers_efficiency: size x local work time / "
            "(2 x the 2-worker time), 1.0 being both workers busy all the time",
            "checks": checks,
            "targets": targets,
        }
    )
    if not all(checks.values()):
        raise SystemExit("check failed: " + ", ".join(k for k, v in checks.items() if not v))


if __name__ == "__main__":
    main()
