"""The live table's current rate (not the average since start) and, with Kafka, the
consumer lag, checked against the broker's own offsets."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from rich.console import Console

from millstream.cli import kafka as cli_kafka
from millstream.cli import main
from millstream.cli._display import RateMeter
from millstream.cli._lag import LagProbe
from millstream.cli.main import build_parser
from millstream.cli.wordcount import WordCount

TEXT = "".join(f"line {i} of the text\n" for i in range(50))
RATE = re.compile(r"([\d,]+) lines, .*?, ([\d,]+) lines/s(?!\s+on average)(?:, (lag .*))?$")


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def frames(output: str) -> list[tuple[int, int, str | None]]:
    """(lines, lines/s, lag text) of every live frame's statistics line."""
    found = []
    for line in output.splitlines():
        m = RATE.search(line.strip())
        if m:
            found.append((int(m[1].replace(",", "")), int(m[2].replace(",", "")), m[3]))
    return found


def test_rate_meter_is_the_rate_of_the_last_window() -> None:
    now = [0.0]
    meter = RateMeter(window=1.0, clock=lambda: now[0])
    assert meter.rate(0) == 0
    for step in range(1, 9):  # 4 reads a second, 100 more each time
        now[0] = step / 4
        assert meter.rate(100 * step) == pytest.approx(400)
    for step in range(9, 13):  # idle: the rate falls to 0 within the window
        now[0] = step / 4
        rate = meter.rate(800)
    assert rate == 0
    now[0] = 3.25
    assert meter.rate(1000) == pytest.approx(200)  # 200 more within the last second


def test_an_idle_count_shows_rate_zero_and_keeps_its_total() -> None:
    wc = WordCount()
    wc.stats()  # the first read: the live table's first frame
    wc.feed(["a b c"] * 2000)
    busy = wc.stats()
    assert re.search(r"^2,000 lines, 6,000 words \(3 distinct\), [\d.]+ s, [\d,]+ lines/s$", busy)
    assert not busy.endswith(" 0 lines/s")
    time.sleep(1.3)
    idle = wc.stats()
    assert idle.startswith("2,000 lines, 6,000 words")
    assert idle.endswith(", 0 lines/s")
    wc.finish()
    assert wc.stats().endswith("lines/s on average")


# -- Kafka: the lag ------------------------------------------------------------------------


def load(bootstrap: str, topic: str, path: Path) -> None:
    assert main(["load-kafka", str(path), "--kafka", bootstrap, "--topic", topic]) == 0


def ends(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "test-probe"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def test_lag_probe_equals_the_records_left(
    kafka_bootstrap: str, kafka_topic, tmp_path: Path
) -> None:
    topic = kafka_topic(partitions=3)
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    load(kafka_bootstrap, topic, text)
    end = ends(kafka_bootstrap, topic, 3)
    assert sum(end.values()) == 50
    progress: dict[int, int] = {}
    probe = LagProbe(
        kafka_bootstrap, topic, "never-committed-" + topic, lambda: [0, 1, 2], lambda: progress
    )
    try:
        assert probe.refresh() == end  # a new group: the whole topic is left
        progress.update({0: 4, 2: end[2] - 1})  # offsets 0-4 of p0 and all of p2 counted
        assert probe.refresh() == {0: end[0] - 5, 1: end[1], 2: 0}
    finally:
        probe.stop()


def test_kafka_live_table_shows_lag_then_idle_rate_zero(
    kafka_bootstrap: str, kafka_topic, tmp_path: Path
) -> None:
    topic = kafka_topic(partitions=2)
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    load(kafka_bootstrap, topic, text)
    buffer = TTY()
    console = Console(file=buffer, force_terminal=True, width=200, color_system=None)
    argv = ["wordcount", "--kafka", kafka_bootstrap, "--topic", topic, "--group", topic]
    args = build_parser().parse_args([*argv, "--idle-exit", "2.5", "--top", "2"])
    assert cli_kafka.run_wordcount(args, console) == 0
    out = buffer.getvalue()
    seen = frames(out)
    assert seen, out
    last_lines, last_rate, last_lag = seen[-1]
    assert last_lines == 50  # the total stays while idle
    assert last_rate == 0  # ... and the current rate is 0
    assert last_lag == "lag 0 (p0 0, p1 0)"
    final = out[out.rindex("Top 2 words") :]
    assert "lines/s on average, lag 0 (p0 0, p1 0)" in final
    # the group committed everything: a new run starts with the whole topic counted
    assert main([*argv, "--exit-at-end"]) == 0


def test_kafka_lag_of_records_produced_while_the_group_was_stopped(
    kafka_bootstrap: str, kafka_topic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    topic = kafka_topic(partitions=1)
    text = tmp_path / "text.txt"
    text.write_text(TEXT, encoding="utf-8")
    load(kafka_bootstrap, topic, text)
    argv = ["wordcount", "--kafka", kafka_bootstrap, "--topic", topic, "--group", topic]
    assert main([*argv, "--exit-at-end"]) == 0  # the group counts and commits all 50
    load(kafka_bootstrap, topic, text)  # 50 more while the group is stopped
    capsys.readouterr()

    args = build_parser().parse_args([*argv, "--exit-at-end"])
    job = cli_kafka._KafkaWordCount(args, Console(file=io.StringIO(), width=200))
    job._start_lag_probe()  # before the source starts: nothing of the 50 counted yet
    assert job.lag_probe is not None
    try:
        assert job.lag_probe.refresh() == {0: 50}
        assert job._lag() == {0: 50}
    finally:
        job.lag_probe.stop()
    assert job.run() == 0
    out = job.console.file.getvalue()  # type: ignore[attr-defined]
    assert "50 lines, " in out
    assert "lines/s on average, lag 0" in out
