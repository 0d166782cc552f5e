"""Smoke tests of the Dask benchmark scripts: tiny sizes, output shape and correctness checks.

No timing is asserted (the figures mean nothing at these sizes; each script starts its
own ``LocalCluster`` of worker processes, which takes a few seconds): each script must
print one JSON line of the documented shape whose correctness checks all passed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
DASK_BENCHMARKS = ["dask_wordcount", "dask_scaling", "dask_kafka"]


def run(*args: str, timeout: float = 120) -> dict:
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    return json.loads(line)


def check_common(result: dict, name: str, size: int, times: set[str], targets: set[str]) -> None:
    assert result["benchmark"] == name
    assert result["size"] == size
    assert set(result["times_s"]) == times
    assert all(t > 0 for t in result["times_s"].values())
    assert set(result["all_times_s"]) == times
    assert set(result["targets"]) == targets
    for t in result["targets"].values():
        assert set(t) == {"what", "value", "target", "pass"}
        assert isinstance(t["pass"], bool)
    assert result["all_targets_passed"] == all(t["pass"] for t in result["targets"].values())
    assert result["checks"] and all(result["checks"].values()), result["checks"]
    assert result["all_checks_passed"] is True
    machine = result["machine"]
    assert machine["streamz"] == "0.6.6"
    assert len(machine["load_avg_before"]) == len(machine["load_avg_after"]) == 3


def test_run_all_lists_the_dask_benchmarks() -> None:
    spec = importlib.util.spec_from_file_location("run_all", BENCH / "run_all.py")
    assert spec is not None and spec.loader is not None
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    assert set(DASK_BENCHMARKS) <= set(run_all.BENCHMARKS)


def test_dask_wordcount_through_run_all() -> None:
    result = run(
        str(BENCH / "run_all.py"),
        "--only",
        "dask_wordcount",
        "--",
        "--size",
        "6",
        "--batch-lines",
        "40",
        "--repeat",
        "1",
    )
    names = {"millstream", "streamz", "raw", "raw_all_at_once", "raw_submit_inline"}
    check_common(result, "dask_wordcount", 6, names, {"millstream_vs_streamz", "millstream_vs_raw"})
    assert result["batch_lines"] == 40
    # every figure's merged counts equal the Counter's, in the warm-up and the timed run
    assert len(result["checks"]) == 3 + len(names)
    assert set(result["ratios"]) == {f"{n}_over_millstream" for n in names - {"millstream"}}
    # the raw loops release every future they made
    assert result["futures_held_after_a_run"]["raw"] == 0


def test_dask_scaling_tiny() -> None:
    result = run(
        str(BENCH / "dask_scaling.py"),
        "--size",
        "5",
        "--work-iterations",
        "2000",
        "--repeat",
        "1",
    )
    names = {"millstream_1_worker", "millstream_2_workers", "raw_1_worker", "raw_2_workers"}
    check_common(result, "dask_scaling", 5, names, {"millstream_2_vs_1_worker"})
    assert result["work_iterations"] == 2000
    # warm-up, results in order, and the cluster size of every figure
    assert len(result["checks"]) == 3 * len(names)
    assert result["checks"]["millstream_2_workers_cluster_had_2_workers"] is True


def test_dask_kafka_tiny(kafka_bootstrap) -> None:
    result = run(
        str(BENCH / "dask_kafka.py"),
        "--bootstrap",
        kafka_bootstrap,
        "--size",
        "300",
        "--work-iterations",
        "10",
        "--max-batch-size",
        "40",
        "--poll-interval",
        "0.05",
        "--repeat",
        "1",
    )
    check_common(result, "dask_kafka", 300, {"single_process", "dask"}, {"dask_vs_single_process"})
    assert len(result["checks"]) == 4
    assert set(result["load_s"]) == {"300"}
