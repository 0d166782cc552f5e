"""Import cost of ``import millstream`` beside ``import streamz``, each in a fresh interpreter.

Prints one JSON line: the best of ``--repeat`` cold imports of each, and whether
millstream imported any heavy optional dependency (dask, distributed, pandas, numpy,
tornado). Target: millstream <= 0.2 s and none of those modules.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

PROBE = (
    "import sys, time; t = time.perf_counter(); import {name}; t = time.perf_counter() - t; "
    "heavy = sorted(m for m in ('dask', 'distributed', 'pandas', 'numpy', 'tornado') "
    "if m in sys.modules); print(t, ','.join(heavy))"
)


def cold_import(name: str) -> tuple[float, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(name=name)], capture_output=True, text=True, check=True
    ).stdout.split()
    return float(out[0]), (out[1].split(",") if len(out) > 1 else [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args, _ = parser.parse_known_args(argv)  # run_all passes --size etc. to every script
    ms = [cold_import("millstream") for _ in range(args.repeat)]
    sz = [cold_import("streamz") for _ in range(args.repeat)]
    best_ms, best_sz = min(t for t, _ in ms), min(t for t, _ in sz)
    heavy = sorted({m for _, mods in ms for m in mods})
    print(
        json.dumps(
            {
                "benchmark": "import_time",
                "repeat": args.repeat,
                "millstream_import_s": round(best_ms, 4),
                "streamz_import_s": round(best_sz, 4),
                "millstream_heavy_modules": heavy,
                "streamz_heavy_modules": sorted({m for _, mods in sz for m in mods}),
                "targets": {
                    "import_time": {
                        "value": round(best_ms, 4),
                        "target": "<= 0.2",
                        "pass": best_ms <= 0.2,
                    },
                    "no_heavy_imports": {"value": heavy, "target": "[]", "pass": not heavy},
                },
                "all_checks_passed": not heavy,
                "all_targets_passed": best_ms <= 0.2 and not heavy,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
