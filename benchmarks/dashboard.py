"""Benchmark: what the dashboard costs a running graph.

Two long-running graphs, each fed by ``Stream.from_iterable`` and timed from ``start()``
until the source has pushed its last element through (``run_millstream_source``):

* ``chain``: ``--size`` ints (default 3,000,000) through 5 x ``map(inc)`` into a sink
  that keeps the last value;
* ``wordcount``: the bundled text (``millstream/data/opticks.txt``) repeated
  ``--text-repeat`` times (default 20), ``map(str.split).flatten().frequencies()``.

Each graph is timed three ways in the same process, the runs taken in turn (round
robin): without a server (``plain``), with ``millstream.metrics.serve(source)`` started
(``server``), and with the server started and one ``/events`` client connected, reading
every message in a thread (``client``). The server collects the graph once per
``--interval`` seconds (default 1, the dashboard's default) whether or not a client is
connected; the client gets each collection as one JSON message.

Target: the graph with a client connected takes <= 1.05x its time without a server.

Prints one JSON line. ``python benchmarks/dashboard.py --help`` for the options.
"""

from __future__ import annotations

import collections
import http.client
import threading
import time
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from _common import base_parser, best_times, emit_json, machine, max_target, run_millstream_source

import millstream
from millstream.metrics import serve

N_MAPS = 5


def inc(x: int) -> int:
    return x + 1


class EventsClient:
    """Reads ``/events`` in a daemon thread until the server closes it; counts messages."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.connection.request("GET", "/events")
        self.response = self.connection.getresponse()
        self.messages = 0
        self.first = threading.Event()
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()
        if not self.first.wait(30):
            raise TimeoutError("no message from /events")

    def read(self) -> None:
        try:
            for line in self.response:
                if line.startswith(b"data: "):
                    self.messages += 1
                    self.first.set()
        except (OSError, http.client.HTTPException):
            pass

    def close(self) -> None:
        self.thread.join(10)
        self.connection.close()


def run(
    build: Any, items: list[Any], mode: str, interval: float, seen: list[int], cpu: list[float]
) -> Any:
    """One timed run of the graph ``build(source)`` over ``items``: ``mode`` is ``plain``,
    ``server`` or ``client``. Returns ``(seconds, last value)``; appends the process's CPU
    seconds over the same span (every thread: the graph's, the server's, the client's)
    to ``cpu``."""
    source = millstream.Stream.from_iterable(items)  # type: ignore[attr-defined]
    last = build(source)
    server = client = None
    if mode != "plain":
        server = serve(source, interval=interval)
    if mode == "client":
        assert server is not None
        client = EventsClient(server.url)
    cpu0 = time.process_time()
    try:
        elapsed = run_millstream_source(source)
        cpu.append(time.process_time() - cpu0)
    finally:
        if server is not None:
            server.stop()
        if client is not None:
            client.close()
            seen.append(client.messages)
    return elapsed, last[0]


def chain(source: Any) -> list[Any]:
    node = source
    for _ in range(N_MAPS):
        node = node.map(inc)
    last: list[Any] = [None]
    node.sink(lambda v: last.__setitem__(0, v))
    return last


def wordcount(source: Any) -> list[Any]:
    last: list[Any] = [None]
    source.map(str.split).flatten().frequencies().sink(lambda v: last.__setitem__(0, v))
    return last


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.split("\n\n")[0], 3_000_000)
    parser.add_argument(
        "--text-repeat", type=int, default=20, help="copies of the bundled text (default 20)"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between collections (default 1)"
    )
    args = parser.parse_args(argv)
    ints = list(range(args.size))
    text = resources.files("millstream").joinpath("data/opticks.txt").read_text()
    lines = text.splitlines() * args.text_repeat
    expected = {"chain": args.size - 1 + N_MAPS if args.size else None}
    counts: collections.Counter[str] = collections.Counter()
    for line in lines:
        counts.update(line.split())
    graphs = {"chain": (chain, ints), "wordcount": (wordcount, lines)}
    seen: dict[str, list[int]] = {name: [] for name in graphs}

    for build, items in graphs.values():  # warm-up: every mode once on a small input
        for mode in ("plain", "server", "client"):
            run(build, items[:20_000], mode, args.interval, [], [])

    cpu: dict[str, list[float]] = {}
    runs = {}
    for name, (build, items) in graphs.items():
        for mode in ("plain", "server", "client"):
            cpu[f"{name}_{mode}"] = spent = []
            runs[f"{name}_{mode}"] = lambda b=build, i=items, m=mode, s=seen[name], c=spent: run(
                b, i, m, args.interval, s, c
            )

    def correct(name: str, out: Any) -> bool:
        if name.startswith("chain"):
            return bool(out == expected["chain"])
        return dict(out) == counts

    times, ok = best_times(runs, args.repeat, correct)
    checks = {f"{name}_output_correct": good for name, good in ok.items()}
    for name in graphs:
        checks[f"{name}_client_got_messages"] = all(n >= 1 for n in seen[name])
    ratios = {}
    targets = {}
    cpu_best = {k: min(v) for k, v in cpu.items()}
    for name in graphs:
        ratios[f"{name}_client_over_plain_cpu"] = (
            cpu_best[f"{name}_client"] / cpu_best[f"{name}_plain"]
        )
        ratios[f"{name}_server_over_plain"] = times[f"{name}_server"] / times[f"{name}_plain"]
        ratios[f"{name}_client_over_plain"] = times[f"{name}_client"] / times[f"{name}_plain"]
        targets[f"{name}_with_client"] = max_target(
            ratios[f"{name}_client_over_plain"], 1.05, "time with a client / time without server"
        )
    emit_json(
        {
            "benchmark": "dashboard",
            "workload": f"chain: {args.size} ints -> {N_MAPS} x map(inc) -> sink; wordcount: "
            f"{len(lines)} lines (opticks.txt x {args.text_repeat}) -> split, flatten, "
            "frequencies",
            "size": args.size,
            "lines": len(lines),
            "interval_s": args.interval,
            "method": f"time.perf_counter from start() to the source's end, best of "
            f"{args.repeat} (figures taken in turn) after a warm-up run of each; cpu_times_s: "
            "time.process_time over the same span (all threads), best of the runs",
            "machine": machine(),
            "times_s": {k: round(v, 6) for k, v in times.items()},
            "cpu_times_s": {k: round(v, 6) for k, v in cpu_best.items()},
            "ratios": {k: round(v, 4) for k, v in ratios.items()},
            "events_per_client_run": {k: v for k, v in seen.items()},
            "checks": checks,
            "targets": targets,
        }
    )


if __name__ == "__main__":
    main()
