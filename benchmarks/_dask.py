"""Dask helpers of the benchmark scripts: local clusters, the machine's load, a streamed run.

The Dask benchmarks start their own ``LocalCluster`` (worker processes of one thread
each); their worker functions are defined in the scripts themselves, which cloudpickle
ships by value (the workers re-import a script only as ``__mp_main__``, so every script
keeps its work under ``if __name__ == "__main__"``).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

__all__ = [
    "cluster",
    "dask_machine",
    "futures_held",
    "load_avg",
    "run_emitting",
]


@contextlib.contextmanager
def cluster(n_workers: int) -> Iterator[Any]:
    """``(LocalCluster, Client)``: ``n_workers`` processes of one thread each, closed at exit.

    The client is the most recently created one, so it is ``distributed.default_client()``
    (which Dask nodes of millstream and Streamz use) until it closes.
    """
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            # the scheduler's HTTP endpoints (always served) on a free loopback port
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.ERROR,
        ) as local,
        Client(local) as client,
    ):
        client.wait_for_workers(n_workers, timeout=60)
        yield local, client


def load_avg() -> list[float]:
    """``os.getloadavg()`` (1, 5 and 15 minutes), rounded: how busy the machine was."""
    return [round(v, 2) for v in os.getloadavg()]


def dask_machine(load_before: list[float]) -> dict[str, Any]:
    """``_common.machine()`` plus the load averages before and now, dask's version and the
    commit measured (``git describe --always --dirty``: the working tree may hold changes)."""
    import subprocess

    import distributed
    from _common import machine

    info = machine()
    info["dask_distributed"] = distributed.__version__
    info["load_avg_before"] = load_before
    info["load_avg_after"] = load_avg()
    try:
        info["git"] = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=os.path.dirname(os.path.abspath(__file__)),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        info["git"] = "unknown"
    return info


def futures_held(client: Any, baseline: int = 0, timeout: float = 2.0) -> int:
    """How many more futures than ``baseline`` the client holds once the count settles.

    Waits (at most ``timeout``) for futures being released to go; what is left is held
    by something alive: a run that releases everything gives 0.
    """
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()
        held = len(client.futures) - baseline
        if held <= 0 or time.monotonic() > deadline:
            return max(held, 0)
        time.sleep(0.02)


def run_emitting(
    source: Any,
    items: Iterable[Any],
    n_results: int,
    results: Callable[[], int],
    done: threading.Event,
    timeout: float = 900.0,
) -> float:
    """``source.emit(x)`` for each item from this thread; wait until ``n_results`` arrived.

    ``results()`` tells how many results the sink has taken so far and ``done`` is set by
    the sink at the last one. Returns the seconds from the first emit to the last result.
    """
    t0 = time.perf_counter()
    emit = source.emit
    for x in items:
        emit(x)
    if not done.wait(timeout):
        raise TimeoutError(f"{results()} of {n_results} results after {timeout} s")
    return time.perf_counter() - t0
