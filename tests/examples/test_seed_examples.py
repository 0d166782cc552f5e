"""The Streamz-on-Dask examples of examples/seed/ run to completion as scripts.

Each runs in its own process (Dask starts worker processes for ``Client()``), against the
session's Kafka broker and a fresh topic loaded with a known text; its last line (JSON)
is checked against an independent ``collections.Counter`` over that text.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from millstream.cli import main

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "examples" / "seed"

TEXT = """\
the quick brown fox
jumps over the lazy dog

the dog sleeps, the fox does not
caf\u00e9 na\u00efve caf\u00e9
a a a b b c
one
two two
"""
LINES = TEXT.splitlines()


def run_example(name: str, **env: str) -> list[str]:
    """Run examples/seed/``name``; return its output lines (it must exit 0)."""
    full_env = {**os.environ, **env}
    proc = subprocess.run(
        [sys.executable, str(SEED / name)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=str(ROOT),
        timeout=90,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines, f"{name} printed nothing; stderr:\n{proc.stderr}"
    return lines


@pytest.fixture
def loaded_topic(kafka_bootstrap: str, kafka_topic, tmp_path: Path, capsys) -> dict[str, str]:
    """A fresh 2-partition topic holding LINES (one record each); the examples' environment."""
    topic = kafka_topic(partitions=2)
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    assert main(["load-kafka", str(path), "--kafka", kafka_bootstrap, "--topic", topic]) == 0
    assert f"wrote {len(LINES)} records" in capsys.readouterr().out
    return {
        "MILLSTREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "MILLSTREAM_KAFKA_TOPIC": topic,
        "MILLSTREAM_KAFKA_GROUP": f"{topic}-example",
        "MILLSTREAM_EXAMPLE_RECORDS": str(len(LINES)),
    }


def test_01_dask_client() -> None:
    result = json.loads(run_example("01_dask_client.py")[-1])
    assert result["result"] == 42
    assert result["workers"] >= 1


def test_02_scatter_iterable() -> None:
    lines = run_example("02_scatter_iterable.py")
    expected = [x + 1 for x in range(10)]
    assert json.loads(lines[-1]) == expected
    assert lines[:-1] == [str(x) for x in expected]  # sink(print), in order


def test_03_kafka_batched_dask(loaded_topic: dict[str, str]) -> None:
    batches = json.loads(run_example("03_kafka_batched_dask.py", **loaded_topic)[-1])
    assert all(1 <= len(batch) <= 2 for batch in batches)  # max_batch_size=2
    assert Counter(line for batch in batches for line in batch) == Counter(LINES)


def test_04_streaming_wordcount(loaded_topic: dict[str, str]) -> None:
    counts = json.loads(run_example("04_streaming_wordcount.py", **loaded_topic)[-1])
    assert counts == Counter(word for line in LINES for word in line.split())
    assert counts["the"] == 4 and counts["caf\u00e9"] == 2  # by hand
