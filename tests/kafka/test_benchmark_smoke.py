"""Smoke test of benchmarks/kafka_wordcount.py, run by run_all.py against the session's broker.

No timing is asserted (the figures mean nothing at this size): the script must print one
JSON line of the documented shape whose counts all equal the Counter's and whose
bounded-memory pass kept the source's in-flight batches under the cap.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def test_kafka_wordcount_prints_one_valid_json_line(kafka_bootstrap):
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run_all.py"),
            "--only",
            "kafka_wordcount",
            "--",
            "--bootstrap",
            kafka_bootstrap,
            "--size",
            "400",
            "--streamz-size",
            "200",
            "--streamz-words-size",
            "100",
            "--memory-size",
            "300",
            "--slow-sink",
            "0.001",
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "kafka_wordcount"
    assert result["size"] == 400
    assert (result["streamz_size"], result["streamz_words_size"]) == (200, 100)
    assert result["streamz_time_scaled"] is True
    names = {"raw", "millstream_batch", "streamz_batch", "millstream_per_word", "streamz_per_word"}
    assert set(result["times_s"]) == names
    assert all(t > 0 for t in result["times_s"].values())
    scaled = result["times_scaled_to_size_s"]
    assert abs(scaled["streamz_batch"] - 2 * result["times_s"]["streamz_batch"]) < 1e-3
    assert set(result["targets"]) == {
        "millstream_vs_raw",
        "millstream_vs_streamz",
        "memory_in_flight_capped",
        "memory_bounded",
    }
    for t in result["targets"].values():
        assert set(t) == {"what", "value", "target", "pass"}
    assert result["all_targets_passed"] == all(t["pass"] for t in result["targets"].values())
    # every reader's last counts equal the Counter over the lines it read
    assert len(result["checks"]) == 8
    assert all(result["checks"].values()), result["checks"]
    assert result["all_checks_passed"] is True
    memory = result["memory"]
    assert set(memory) >= {"capped", "uncapped", "raw_floor", "topic_value_bytes"}
    assert memory["capped"]["max_in_flight_seen"] >= 1
    assert memory["capped"]["samples"] > 0
    assert result["machine"]["streamz"] == "0.6.6"


def test_kafka_checkpoints_prints_one_valid_json_line(kafka_bootstrap):
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--only", "kafka_checkpoints", "--",
         "--bootstrap", kafka_bootstrap, "--size", "3000", "--repeat", "1", "--interval", "0.02"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "kafka_checkpoints"
    assert set(result["times_s"]) == {
        "batch_plain", "batch_checkpoints", "per_word_plain", "per_word_checkpoints"
    }  # fmt: skip
    assert set(result["targets"]) == {"batch_checkpoints_vs_plain", "per_word_checkpoints_vs_plain"}
    assert result["checkpoints"]["per_word_checkpoints"]["checkpoints"] >= 1
    assert all(result["checks"].values()), result["checks"]


def test_kafka_exactly_once_prints_one_valid_json_line(kafka_bootstrap):
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--only", "kafka_exactly_once", "--",
         "--bootstrap", kafka_bootstrap, "--records", "2000", "--repeat", "1",
         "--interval", "0.1"],
        capture_output=True, text=True, timeout=110, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "kafka_exactly_once"
    assert result["size"] == 2000
    variants = result["variants"]
    assert set(variants) == {
        "millstream_at_least_once", "millstream_exactly_once",
        "quix_at_least_once", "quix_exactly_once",
    }  # fmt: skip
    assert variants["millstream_at_least_once"]["available"] is True
    available = {name for name, v in variants.items() if v["available"]}
    assert set(result["times_s"]) == available
    assert all(t > 0 for t in result["times_s"].values())
    # every variant that ran wrote one output record per input record, each word's counts
    # 1..n in order, as a read_committed reader sees them
    for name in available:
        assert result["checks"][f"{name}_records_equal_input"] is True, name
        assert result["checks"][f"{name}_counts_1_to_n"] is True, name
    assert result["checks"]["millstream_at_least_once_took_checkpoints"] is True
    assert result["all_checks_passed"] is True
    assert set(result["targets"]) == {
        "exactly_once_vs_at_least_once", "millstream_vs_quix_exactly_once"
    }  # fmt: skip
    for t in result["targets"].values():
        assert t["value"] is None or t["value"] > 0
        assert (t["value"] is None) == ("unavailable" in t)
        assert t["pass"] is (t["value"] is not None and t["value"] >= float(t["target"][3:]))


def test_kafka_copy_prints_one_valid_json_line(kafka_bootstrap):
    """TransactionalMessageCopier and millstream exactly-once copy the same topic, each
    output read_committed is exactly the input."""
    proc = subprocess.run(
        [sys.executable, str(BENCH / "run_all.py"), "--only", "kafka_copy", "--",
         "--bootstrap", kafka_bootstrap, "--size", "600", "--repeat", "1", "--partitions", "2",
         "--interval", "0.2"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (line,) = proc.stdout.splitlines()
    result = json.loads(line)
    assert result["benchmark"] == "kafka_copy"
    assert (result["size"], result["partitions"]) == (600, 2)
    assert result["millstream"]["available"] is True, result["millstream"]["reason"]
    assert set(result["times_s"]) == set(result["records_per_s"]) == {"copier", "millstream"}
    assert all(t > 0 for t in result["times_s"].values())
    assert set(result["targets"]) == {"millstream_vs_copier"}
    assert result["ratios"]["millstream_over_copier"] > 0
    assert result["copier"]["processes"] == 2
    assert result["millstream"]["checkpoints"][0] >= 1
    assert result["checks"] == {
        "copier_output_exactly_input": True,
        "millstream_output_exactly_input": True,
    }
    assert result["all_checks_passed"] is True
