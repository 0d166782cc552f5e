"""``to_postgres`` with checkpoints: a child process killed with SIGKILL at random moments
and at every fail-point (the checkpoint's and the SQL commit's), then restarted; the table
ends exactly as after a run that was never killed: no row missing, none twice."""

from __future__ import annotations

import json
import os
from pathlib import Path

from millstream.checkpoint import FAILPOINTS, CheckpointStore
from millstream.sinks.postgres import FAILPOINTS as SQL_FAILPOINTS
from millstream.testing import crash_and_recover, run_child

from . import progress
from .conftest import rows_of
from .exactly_once_child import command

SEED = int(os.environ.get("MILLSTREAM_TEST_SEED", "20261205"))
N = 20000


def child(dsn: str, table: str, location: Path, mode: str, n: int = N) -> list[str]:
    return command(dsn, table, location, mode, n)


def checkpoint_record(dsn: str, location: Path) -> tuple[int, dict]:
    record = progress.checkpoint_record(dsn, f"{location}#out")
    assert record is not None
    return record


def test_an_uninterrupted_run_writes_every_row_once_and_records_its_checkpoint(
    postgres_dsn, pg_table, tmp_path
):
    table = pg_table("id integer, word text")
    run = run_child(child(postgres_dsn, table, tmp_path / "ck", "insert", 500))
    assert run.returncode == 0, run.stderr
    assert rows_of(postgres_dsn, table) == [(i, f"w{i % 7}") for i in range(500)]
    checkpoint_id, positions = checkpoint_record(postgres_dsn, tmp_path / "ck")
    assert checkpoint_id == CheckpointStore(tmp_path / "ck").ids()[0]
    assert positions == {"numbers": 500}
    again = run_child(child(postgres_dsn, table, tmp_path / "ck", "insert", 500))
    assert again.returncode == 0, again.stderr
    assert len(rows_of(postgres_dsn, table)) == 500  # nothing left to write


def test_killed_and_restarted_insert_writes_every_row_exactly_once(
    postgres_dsn, pg_table, tmp_path
):
    table = pg_table("id integer, word text")
    location = tmp_path / "ck"
    points = [f"{p}:kill@2" if p == "before_hold" else f"{p}:kill" for p in FAILPOINTS]
    points += [f"{p}:kill" for p in SQL_FAILPOINTS]
    report = crash_and_recover(
        child(postgres_dsn, table, location, "insert"),
        kills=5,
        failpoints=points,
        seed=SEED,
        between=(0.6, 1.2),
        timeout=120,
    )
    print(report.describe())
    for fault, run in report.faults:
        assert run.crashed, fault
        if fault.startswith("fail-point"):
            point = fault.split()[1].split(":")[0]
            assert run.failpoints_hit == [point], (fault, run.stderr[-500:])
    assert report.final.returncode == 0, report.final.stderr
    got = rows_of(postgres_dsn, table, order="id")
    ids = [r[0] for r in got]
    assert len(ids) == len(set(ids)), "a row was written twice"
    assert got == [(i, f"w{i % 7}") for i in range(N)]
    checkpoint_id, positions = checkpoint_record(postgres_dsn, location)
    assert positions == {"numbers": N}
    assert checkpoint_id > len(points)  # checkpoints were committed along the way


def test_killed_and_restarted_upsert_ends_with_the_right_counts(postgres_dsn, pg_table, tmp_path):
    table = pg_table("word text PRIMARY KEY, n integer")
    location = tmp_path / "ck"
    report = crash_and_recover(
        child(postgres_dsn, table, location, "upsert"),
        kills=3,
        failpoints=[f"{p}:kill" for p in SQL_FAILPOINTS],
        seed=SEED + 1,
        between=(0.6, 1.2),
        timeout=120,
    )
    assert report.final.returncode == 0, report.final.stderr
    expected = {f"w{k}": len(range(k, N, 7)) for k in range(7)}
    assert dict(rows_of(postgres_dsn, table)) == expected
    print(json.dumps(expected))
