"""Kafka -> to_postgres with checkpoints, killed at random moments and at the SQL commit's
fail-points: every record of the topic is one row, the positions recorded in PostgreSQL
are the topic's end offsets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psycopg
from confluent_kafka import Producer

from millstream.sinks.postgres import CHECKPOINT_TABLE
from millstream.sinks.postgres import FAILPOINTS as SQL_FAILPOINTS
from millstream.testing import crash_and_recover

from .conftest import rows_of

SEED = int(os.environ.get("MILLSTREAM_TEST_SEED", "20261205"))
CHILD = str(Path(__file__).with_name("kafka_child.py"))
N = 60000


def test_kafka_to_postgres_killed_and_restarted_writes_each_record_once(
    kafka_bootstrap, kafka_topic, postgres_dsn, pg_table, tmp_path
):
    topic = kafka_topic(3)
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i in range(N):
        producer.produce(topic, str(i).encode(), key=str(i % 3).encode(), partition=i % 3)
        if i % 10000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    table = pg_table("id integer, part integer, kafka_offset bigint")
    location = tmp_path / "ck"
    command = [sys.executable, CHILD, postgres_dsn, table, str(location), kafka_bootstrap,
               topic, str(N)]  # fmt: skip
    report = crash_and_recover(
        command,
        kills=3,
        failpoints=[f"{p}:kill@2" for p in SQL_FAILPOINTS],
        seed=SEED,
        between=(1.5, 2.5),
        timeout=180,
    )
    print(report.describe())
    for fault, run in report.faults:
        if fault.startswith("fail-point"):
            assert run.failpoints_hit == [fault.split()[1].split(":")[0]], run.stderr[-500:]
    assert report.final.returncode == 0, report.final.stderr
    got = rows_of(postgres_dsn, table, order="id")
    assert [r[0] for r in got] == list(range(N))  # each record once, none missing
    assert {(r[1], r[2]) for r in got} == {(i % 3, i // 3) for i in range(N)}
    with psycopg.connect(postgres_dsn) as conn:
        (positions,) = conn.execute(
            f"SELECT positions FROM {CHECKPOINT_TABLE} WHERE pipeline = %s",
            (f"{location}#out",),
        ).fetchone()
    (source_position,) = positions.values()
    assert source_position == {topic: {"0": N // 3, "1": N // 3, "2": N // 3}}
