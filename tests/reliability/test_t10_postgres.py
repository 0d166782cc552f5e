"""T10 (reliability.md §6): PostgreSQL killed with SIGKILL mid-stream and restarted, and
the pipeline's own process killed with kill -9 and restarted, while an exactly-once
pipeline writes to it; the table ends equal to the oracle of an exactly-once run.

The pipeline is ``tests/postgres/exactly_once_child.py`` (numbers -> to_postgres with
checkpoints every 50 ms): ``counts`` upserts ``(k, count, sum, src_offset)`` per key,
``insert`` COPYs one row per number. The test starts its own server and, at seeded
fractions of the input committed (read from the checkpoint record), SIGKILLs the
postmaster (by the pid in its ``postmaster.pid``), waits a seeded time and starts it
again on the same data and port, or SIGKILLs the child (by pid) and starts it again from
its checkpoints. It prints the seed and the fault schedule first.

Checks: the final table equals the oracle (each number counted once: no row missing,
none twice, no count above the oracle); the recorded position is the end of the input;
and the faults happened: each postmaster killed was down (no connection), came back with
another pid, and the run it hit logged failed checkpoints and committed again after the
restart; each killed child died by SIGKILL and its successor resumed from a checkpoint.

Seed: ``MILLSTREAM_RELIABILITY_SEED`` (else random). Sizes: 30,000 numbers, 1,000 keys,
2 + 2 faults; with ``MILLSTREAM_RELIABILITY_FULL=1`` 1,000,000 numbers, 100,000 keys,
2 server kills + 5 process kills (reliability.md's T10; about 6 minutes for both modes).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from postgres.conftest import own_server
from postgres.exactly_once_child import command, counts_oracle
from postgres.progress import checkpoint_record, committed_count
from postgres.server import PostgresServer, rows_of

from .harness import FULL, FULL_ENV, SEED_ENV, reliability_seed

N = 1_000_000 if FULL else 30_000
KEYS = 100_000 if FULL else 1_000
PACE_S = 0.00003 if FULL else 0.0003  # the input outlasts the faults: ~60 s full, ~10 s CI
SERVER_KILLS = 2
PROCESS_KILLS = 5 if FULL else 2
WAIT_S = 900 if FULL else 240

KILL_SERVER = "kill -9 postgres"
KILL_PROCESS = "kill -9 pipeline"


@dataclass(frozen=True)
class Fault:
    """One planned fault: ``kind`` once ``at`` (a fraction) of the input is committed,
    ``delay_s`` later; a killed server stays down ``down_s``."""

    number: int
    kind: str
    at: float
    delay_s: float
    down_s: float

    def __str__(self) -> str:
        down = f", down {self.down_s:.2f} s" if self.kind == KILL_SERVER else ""
        at = f"at {self.at:.1%} of the input +{self.delay_s:.3f} s"
        return f"#{self.number} {self.kind} {at}{down}"


def fault_schedule(test: str, seed: int) -> list[Fault]:
    """The seeded faults: the kinds in a seeded order at sorted seeded fractions."""
    rng = random.Random(f"{test}:{seed}")
    kinds = [KILL_SERVER] * SERVER_KILLS + [KILL_PROCESS] * PROCESS_KILLS
    rng.shuffle(kinds)
    ats = sorted(rng.uniform(0.08, 0.7) for _ in kinds)
    return [
        Fault(i + 1, kind, round(at, 4), round(rng.uniform(0, 0.2), 3), rng.uniform(0.2, 1.0))
        for i, (kind, at) in enumerate(zip(kinds, ats, strict=True))
    ]


class Pipeline:
    """The child process, started again after each kill; its output in files."""

    def __init__(self, argv: list[str], logs: Path):
        self.argv = argv
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)
        self.runs: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.start()

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.runs[-1][0]

    def start(self) -> None:
        stem = self.logs / f"run{len(self.runs)}"
        with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
            process = subprocess.Popen(self.argv, stdout=out, stderr=err)
        self.runs.append((process, stem))

    def kill(self) -> int:
        """SIGKILL the running child by its pid; its exit status."""
        os.kill(self.process.pid, signal.SIGKILL)
        return self.process.wait(timeout=30)

    def output(self, run: int) -> tuple[str, str]:
        stem = self.runs[run][1]
        return Path(f"{stem}.out").read_text(), Path(f"{stem}.err").read_text()

    def close(self) -> None:
        for process, _ in self.runs:
            if process.poll() is None:
                process.kill()
                process.wait()


def position(dsn: str, pipeline: str) -> tuple[int, int] | None:
    """(checkpoint id, numbers committed) that PostgreSQL holds, or None."""
    record = checkpoint_record(dsn, pipeline, timeout=2)
    return None if record is None else (record[0], int(record[1].get("numbers", 0)))


def wait_for_position(
    dsn: str, pipeline: str, child: Pipeline, numbers: int = 0, after_id: int = 0
) -> tuple[int, int]:
    """Wait until PostgreSQL holds a checkpoint past ``after_id`` with at least ``numbers``
    numbers committed; return (its id, numbers)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        got = position(dsn, pipeline)
        if got is not None and got[0] > after_id and got[1] >= numbers:
            return got
        if child.process.poll() is not None:
            err = child.output(len(child.runs) - 1)[1]
            pytest.fail(
                f"the pipeline ended (exit {child.process.returncode}) before a checkpoint "
                f"past {after_id} with {numbers} numbers was committed: the fault would not "
                f"be mid-stream\n{err[-3000:]}"
            )
        if time.monotonic() > deadline:
            pytest.fail(f"no checkpoint past {after_id} with {numbers} numbers in {WAIT_S} s")
        time.sleep(0.02)


def kill_server(server: PostgresServer, fault: Fault) -> dict:
    """SIGKILL the postmaster, see that it is down, start it again after ``down_s``."""
    killed = server.kill()
    down = committed_count(server.dsn, "pg_class")  # -1: no answer
    time.sleep(fault.down_s)
    server.start()
    return {"killed": killed, "down": down, "pid": server.postmaster_pid()}


def run_t10(mode: str, tmp_path: Path) -> None:
    seed = reliability_seed()
    test = f"T10 {mode}"
    faults = fault_schedule(test, seed)
    print(
        f"{test}: seed {seed} (replay: {SEED_ENV}={seed}), {'full' if FULL else 'CI'} sizes "
        f"({FULL_ENV}=1 for full): {N} numbers, {KEYS} keys, {len(faults)} faults:",
        *[f"  {fault}" for fault in faults],
        sep="\n",
        flush=True,
    )
    table = "counts" if mode == "counts" else "events"
    columns = (
        "k integer PRIMARY KEY, count integer, sum bigint, src_offset bigint"
        if mode == "counts"
        else "id integer, word text"
    )
    location = tmp_path / "ck"
    pipeline = f"{location}#out"
    with own_server() as server:
        dsn = server.dsn
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE {table} ({columns})")
        child = Pipeline(command(dsn, table, location, mode, N, KEYS, PACE_S), tmp_path / "logs")
        hit: list[tuple[Fault, int, dict]] = []  # (fault, the run it hit, what happened)
        try:
            for fault in faults:
                wait_for_position(dsn, pipeline, child, numbers=int(fault.at * N))
                time.sleep(fault.delay_s)
                run = len(child.runs) - 1
                before = position(dsn, pipeline) or (0, 0)
                if fault.kind == KILL_SERVER:
                    facts = kill_server(server, fault)
                else:
                    facts = {"status": child.kill()}
                    child.start()
                # the next fault hits a running pipeline: one that committed again
                facts["after"] = wait_for_position(dsn, pipeline, child, after_id=before[0])
                facts["before"] = before
                print(f"  {fault}: {facts}", flush=True)
                hit.append((fault, run, facts))
            status = child.process.wait(timeout=WAIT_S)
        finally:
            child.close()
        final_err = child.output(len(child.runs) - 1)[1]
        assert status == 0, final_err[-3000:]
        got = rows_of(dsn, table, order="1")
        record = checkpoint_record(dsn, pipeline)
    # the table is the oracle's: every number once
    if mode == "counts":
        expected = counts_oracle(N, KEYS)
        assert len(got) == KEYS
        too_high = [g for g, e in zip(got, expected, strict=True) if g[1] > e[1]]
        assert not too_high, f"counted more than once: {too_high[:5]}"
        assert got == expected
    else:
        ids = [row[0] for row in got]
        assert len(ids) == len(set(ids)), "a row was written twice"
        assert got == [(i, f"w{i % 7}") for i in range(N)]
    assert record is not None and record[1] == {"numbers": N}
    # the faults really happened
    for fault, run, facts in hit:
        if fault.kind == KILL_SERVER:
            assert facts["down"] == -1, f"{fault}: the server still answered"
            assert facts["pid"] not in (None, facts["killed"]), f"{fault}: same postmaster"
            kills = sum(f.kind == KILL_SERVER and r == run for f, r, _ in hit)
            failed = child.output(run)[1].count("checkpoint failed")
            assert failed >= kills, f"{fault}: {failed} failed commits in run {run}"
        else:
            assert facts["status"] == -signal.SIGKILL, f"{fault}: {facts}"
            out, _ = child.output(run + 1)
            assert out.startswith("restored ") and out.split()[1] != "None", (fault, out)
    assert len(child.runs) == PROCESS_KILLS + 1


@pytest.mark.timeout(1800 if FULL else 180)
@pytest.mark.parametrize("mode", ["counts", "insert"])
def test_t10_postgres_killed_mid_stream(mode, tmp_path):
    run_t10(mode, tmp_path)
