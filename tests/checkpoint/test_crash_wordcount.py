"""``millstream wordcount PATH --checkpoint DIR --json`` killed with SIGKILL at random
moments and at every fail-point of the checkpoint protocol, then restarted: the final
counts equal those of a run that was never killed."""

from __future__ import annotations

import json
import os
import sys
from importlib import resources

import pytest

from millstream.checkpoint import FAILPOINTS, CheckpointStore
from millstream.testing import crash_and_recover, run_child

SEED = int(os.environ.get("MILLSTREAM_TEST_SEED", "20261205"))


@pytest.fixture(scope="module")
def big_text(tmp_path_factory):
    text = (resources.files("millstream") / "data" / "opticks.txt").read_text(encoding="utf-8")
    path = tmp_path_factory.mktemp("text") / "opticks-x80.txt"
    path.write_text(text * 80, encoding="utf-8")
    return path


def wordcount(*args: str) -> list[str]:
    return [sys.executable, "-m", "millstream", "wordcount", *args]


def test_killed_and_restarted_wordcount_counts_every_word_once(big_text, tmp_path):
    expected = json.loads(run_child(wordcount(str(big_text), "--json")).stdout)
    location = tmp_path / "ck"
    command = wordcount(
        str(big_text), "--json", "--checkpoint", str(location), "--checkpoint-interval", "100ms"
    )
    # each fail-point at the first checkpoint that has something new (before_hold is
    # also reached by checks that find nothing new: its 2nd hit), then random kills;
    # kept early, so that the input outlasts the faults on a fast machine
    report = crash_and_recover(
        command,
        kills=5,
        failpoints=[f"{p}:kill@2" if p == "before_hold" else f"{p}:kill" for p in FAILPOINTS],
        seed=SEED,
        between=(0.6, 1.0),
    )
    print(report.describe())
    for fault, run in report.faults:
        assert run.crashed, fault
        if fault.startswith("fail-point"):
            point = fault.split()[1].split(":")[0]
            assert run.failpoints_hit == [point], (fault, run.stderr[-500:])
    assert report.final.returncode == 0, report.final.stderr
    got = json.loads(report.final.stdout)
    assert sum(got.values()) == sum(expected.values())
    assert got == expected
    store = CheckpointStore(location)
    assert store.ids()[0] > len(FAILPOINTS)  # checkpoints were taken along the way


def test_restart_after_the_end_prints_the_same_counts(big_text, tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("a b\nb c\n")
    location = str(tmp_path / "ck")
    first = run_child(wordcount(str(small), "--json", "--checkpoint", location))
    again = run_child(wordcount(str(small), "--json", "--checkpoint", location))
    assert json.loads(first.stdout) == json.loads(again.stdout) == {"a": 1, "b": 2, "c": 1}


def test_checkpoint_needs_a_file_not_stdin(tmp_path):
    run = run_child(wordcount("-", "--checkpoint", str(tmp_path)))
    assert run.returncode == 2
    assert "standard input cannot be read again" in run.stderr
