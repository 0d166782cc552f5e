"""``millstream wordcount --kafka B --topic T --checkpoint DIR --exit-at-end --json``
killed with SIGKILL at every fail-point of the checkpoint protocol and at random moments,
then restarted: it prints exactly the counts of the whole topic (issue 11's main job)."""

from __future__ import annotations

import json
import os
import sys
from importlib import resources

from millstream.checkpoint import FAILPOINTS, CheckpointStore
from millstream.cli.main import main
from millstream.testing import crash_and_recover, run_child

SEED = int(os.environ.get("MILLSTREAM_TEST_SEED", "20261205"))
COPIES = 80  # of Newton's Opticks: about 740,000 records, 6 million words


def test_kafka_wordcount_killed_and_restarted_counts_the_topic_exactly(
    kafka_bootstrap, kafka_topic, tmp_path
):
    text = (resources.files("millstream") / "data" / "opticks.txt").read_text(encoding="utf-8")
    path = tmp_path / "text.txt"
    path.write_text(text * COPIES, encoding="utf-8")
    topic = kafka_topic(4)
    assert main(["load-kafka", "--kafka", kafka_bootstrap, "--topic", topic, str(path)]) == 0
    expected = json.loads(
        run_child([sys.executable, "-m", "millstream", "wordcount", str(path), "--json"]).stdout
    )
    location = tmp_path / "ck"
    command = [
        sys.executable, "-m", "millstream", "wordcount", "--kafka", kafka_bootstrap,
        "--topic", topic, "--group", f"crash-{topic}", "--checkpoint", str(location),
        "--checkpoint-interval", "200ms", "--exit-at-end", "--json",
    ]  # fmt: skip
    report = crash_and_recover(
        command,
        kills=5,
        # each fail-point at the first checkpoint that has something new (before_hold is
        # also reached by checks that find nothing new: its 2nd hit), then random kills;
        # kept early, so that the input outlasts the faults on a fast machine
        failpoints=[f"{p}:kill@2" if p == "before_hold" else f"{p}:kill" for p in FAILPOINTS],
        seed=SEED,
        between=(1.0, 1.6),
        timeout=180,
    )
    print(report.describe())
    for fault, run in report.faults:
        if fault.startswith("fail-point"):
            point = fault.split()[1].split(":")[0]
            assert run.failpoints_hit == [point], (fault, run.stderr[-500:])
    assert report.final.returncode == 0, report.final.stderr
    got = json.loads(report.final.stdout)
    assert sum(got.values()) == sum(expected.values())
    assert got == expected
    assert CheckpointStore(location).ids()[0] > len(FAILPOINTS)
