"""Smoke tests of the benchmark scripts: tiny sizes, output shape and correctness checks.

No timing is asserted here (the figures are meaningless at these sizes); see
docs/benchmarks.md for the real runs.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


def test_the_benchmark_reference_is_installed():
    """The benchmarks run beside Streamz, which the test extra installs: its absence fails."""
    assert importlib.util.find_spec("streamz") is not None, "pip install -e '.[test]'"


def test_bytewax_is_installed():
    """event_windows.py runs beside bytewax 0.21.1 (in the test extra): its absence fails."""
    assert importlib.util.find_spec("bytewax") is not None, "pip install -e '.[test]'"


TINY = ["--size", "300", "--repeat", "1"]

COMMON_KEYS = {
    "benchmark",
    "workload",
    "size",
    "streamz_size",
    "streamz_time_scaled",
    "method",
    "machine",
    "times_s",
    "streamz_times_scaled_to_size_s",
    "ratios",
    "peak_memory_bytes",
    "checks",
    "targets",
    "all_targets_passed",
    "all_checks_passed",
}

EXPECTED = {
    "map_chain": {
        "times": {
            "plain",
            "millstream_from_iterable",
            "streamz_from_iterable",
            "millstream_emit",
            "streamz_emit",
        },
        "targets": {
            "a_from_iterable_vs_plain",
            "a_from_iterable_vs_streamz",
            "b_emit_vs_streamz",
            "c_memory_from_iterable_vs_streamz",
            "c_memory_emit_vs_streamz",
        },
        "n_checks": 10,
    },
    "wordcount": {
        "times": {
            "counter",
            "millstream_from_iterable",
            "streamz_from_iterable",
            "millstream_emit",
            "streamz_emit",
        },
        "targets": {
            "from_iterable_vs_counter",
            "from_iterable_vs_streamz",
            "emit_vs_streamz",
            "memory_from_iterable_vs_streamz",
            "memory_emit_vs_streamz",
        },
        "n_checks": 10,
    },
}


def run_script(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / name), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def check_result(name: str, result: dict) -> None:
    expected = EXPECTED[name]
    assert result["benchmark"] == name
    assert set(result) >= COMMON_KEYS
    assert result["size"] == 300
    assert set(result["times_s"]) == expected["times"]
    assert all(t > 0 for t in result["times_s"].values())
    assert set(result["peak_memory_bytes"]) == expected["times"]
    assert set(result["targets"]) == expected["targets"]
    for t in result["targets"].values():
        assert set(t) == {"what", "value", "target", "pass"}
        assert isinstance(t["pass"], bool)
    assert result["all_targets_passed"] == all(t["pass"] for t in result["targets"].values())
    # the correctness checks (outputs equal to the plain reference) all passed
    assert len(result["checks"]) == expected["n_checks"]
    assert all(result["checks"].values()), result["checks"]
    assert result["all_checks_passed"] is True
    assert result["machine"]["streamz"] == "0.6.6"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_benchmark_prints_one_valid_json_line(name: str) -> None:
    proc = run_script(f"{name}.py", *TINY)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout
    check_result(name, json.loads(lines[0]))


def test_wordcount_scales_streamz_input() -> None:
    proc = run_script("wordcount.py", *TINY, "--streamz-size", "100", "--no-memory")
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["streamz_size"] == 100
    assert result["streamz_time_scaled"] is True
    assert result["peak_memory_bytes"] == {}
    times, scaled = result["times_s"], result["streamz_times_scaled_to_size_s"]
    assert scaled["streamz_emit"] == pytest.approx(times["streamz_emit"] * 3, rel=1e-3, abs=1e-5)
    assert all(result["checks"].values())
    assert "memory_emit_vs_streamz" not in result["targets"]


def test_event_windows_prints_one_valid_json_line() -> None:
    """Plain, millstream (both feeds) and bytewax give the same windows; memory in children."""
    proc = run_script("event_windows.py", *TINY, "--memory-small", "300", "--memory-large", "3000")
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "event_windows"
    assert result["size"] == 300
    assert result["windows"] > 0
    assert set(result["times_s"]) == {
        "plain",
        "millstream_from_iterable",
        "millstream_emit",
        "bytewax",
    }
    assert all(t > 0 for t in result["times_s"].values())
    assert set(result["targets"]) == {"millstream_vs_bytewax", "memory_bounded"}
    for t in result["targets"].values():
        assert set(t) == {"what", "value", "target", "pass"}
        assert isinstance(t["pass"], bool)
    assert result["all_targets_passed"] == all(t["pass"] for t in result["targets"].values())
    assert set(result["checks"]) == {
        "millstream_warm_up_equal_plain",
        "bytewax_warm_up_equal_plain",
        "plain_windows_equal_plain",
        "millstream_from_iterable_windows_equal_plain",
        "millstream_emit_windows_equal_plain",
        "bytewax_windows_equal_plain",
        "memory_small_windows_equal_plain",
        "memory_large_windows_equal_plain",
    }
    assert all(result["checks"].values()), result["checks"]
    assert result["all_checks_passed"] is True
    assert result["bytewax_late_events"] == 0
    assert result["machine"]["bytewax"] == "0.21.1"
    assert [result["memory"][k]["events"] for k in ("small", "large")] == [300, 3000]
    assert all(result["memory"][k]["peak_rss_bytes"] > 0 for k in ("small", "large"))


def test_checkpoints_benchmark_prints_one_valid_json_line() -> None:
    """Hold, recovery and the word count against bytewax with recovery, at tiny sizes."""
    proc = run_script("checkpoints.py", *TINY, "--keys", "30000", "--recovery-keys", "2000")
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "checkpoints"
    assert set(result["times_s"]) == {
        "recovery_s",
        "cold_start_s",
        "millstream_checkpoints",
        "millstream_no_checkpoints",
        "bytewax_recovery",
        "bytewax_no_recovery",
    }
    assert set(result["targets"]) == {
        "held_30000_keys",
        "recovery",
        "millstream_vs_bytewax_with_recovery",
    }
    assert result["hold"]["30000"]["checkpoints"] >= 1
    assert result["hold"]["30000"]["size_bytes_max"] > 30000 * 5
    assert all(result["checks"].values()), result["checks"]
    assert result["all_checks_passed"] is True


def test_dataframe_ops_prints_one_valid_json_line() -> None:
    """Every op beside Streamz at tiny sizes: outputs equal (each other and pandas), the
    figures and targets there for what millstream has, the rest reported not available."""
    proc = run_script("dataframe_ops.py", "--size", "30", "--rows", "20", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "dataframe_ops"
    assert (result["size"], result["rows"]) == (30, 20)
    ops = result["ops"]
    assert set(ops) == {"groupby_sum", "rolling_mean", "window_mean", "cumsum", "filter_sum"}
    assert result["not_available"] == sorted(op for op, e in ops.items() if not e["available"])
    assert {"cumsum", "filter_sum"}.isdisjoint(result["not_available"])  # on main already
    for op, entry in ops.items():
        libraries = {"millstream", "streamz"} if entry["available"] else {"streamz"}
        assert set(entry["times_s"]) == set(entry["chunks_per_s"]) == libraries
        assert all(t > 0 for t in entry["times_s"].values())
        assert all(entry["peak_memory_bytes"][lib] > 0 for lib in libraries)
        speed = result["targets"][f"{op}_vs_streamz"]
        assert set(speed) == {"what", "value", "target", "pass"}
        if entry["available"]:
            assert speed["value"] == pytest.approx(entry["streamz_over_millstream"], abs=1e-3)
            assert f"{op}_memory_vs_streamz" in result["targets"]
            assert result["checks"][f"{op}_millstream_equals_streamz"] is True
        else:
            assert speed["value"] is None and speed["pass"] is False
            assert "Error" in entry["not_available"]
        assert result["checks"][f"{op}_streamz_equals_pandas"] is True
    assert result["all_checks_passed"] is True
    assert result["machine"]["streamz"] == "0.6.6"


def test_dataframe_ops_fails_loudly_when_outputs_differ() -> None:
    """A wrong millstream output makes the script exit non-zero and name the check."""
    code = (
        f"import sys; sys.path.insert(0, {str(BENCH)!r}); import dataframe_ops as d;"
        "d.same = lambda a, b: False; d.main(['--size', '5', '--rows', '20',"
        "'--repeat', '1', '--op', 'cumsum', '--no-memory'])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode != 0
    assert "output check failed: cumsum_millstream_equals_pandas" in proc.stderr


def test_http_server_benchmark_prints_one_valid_json_line() -> None:
    """from_http_server beside a bare aiohttp server: every request answered and received."""
    proc = run_script("http_server.py", *TINY, "--concurrency", "4")
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "http_server"
    assert (result["size"], result["concurrency"]) == (300, 4)
    assert set(result["requests_per_s"]) == {"bare_aiohttp", "millstream"}
    assert all(v > 0 for v in result["requests_per_s"].values())
    assert set(result["targets"]) == {"millstream_vs_bare_aiohttp"}
    assert len(result["checks"]) == 2 and result["all_checks_passed"] is True


LOCAL = ["map_chain", "wordcount", "import_time"]  # the Kafka ones: tests/kafka/


def test_run_all_prints_one_line_per_benchmark() -> None:
    proc = run_script("run_all.py", "--only", *LOCAL, "--", *TINY, "--no-memory")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    names = [json.loads(line)["benchmark"] for line in lines]
    assert names == LOCAL
    assert all(json.loads(line)["all_checks_passed"] for line in lines)


def test_kafka_produce_is_run_by_run_all_and_documents_its_options() -> None:
    """Its smoke run needs a broker: tests/kafka/test_to_kafka.py; here, no broker."""
    spec = importlib.util.spec_from_file_location("run_all", BENCH / "run_all.py")
    assert spec is not None and spec.loader is not None
    run_all = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run_all)
    assert "kafka_produce" in run_all.BENCHMARKS
    proc = run_script("kafka_produce.py", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--bootstrap" in proc.stdout and "--size" in proc.stdout


def test_import_time_prints_one_json_line_and_millstream_imports_no_heavy_module() -> None:
    proc = run_script("import_time.py", "--repeat", "1")
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "import_time"
    assert result["millstream_heavy_modules"] == []
    assert result["all_checks_passed"]
