"""The reference run of the reliability suite: Kafka's own ``TransactionalMessageCopier``
(kafka-tools) under a seeded kill -9 schedule must lose and duplicate nothing.

One copier per input partition (as in Kafka's ``transactions_test.py``), each with its
own transactional id, all committing their offsets for one group. At each planned fault
the copy job is killed with SIGKILL (every copier still running: the job's processes,
as T1 kills the millstream process) while a transaction is open on the output, and
started again with the same transactional ids; this repeats until all input is copied.
Checks: a ``read_committed`` reader (at the end, and one reading all along) sees each
input value exactly once and each partition in input order; the group's committed
offsets equal the input's end offsets; every kill left an open transaction behind and
the output holds aborted records (a kill that hit no open transaction proves nothing).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from subprocess import Popen

from .harness import (
    Children,
    ConcurrentReader,
    aborted_records,
    check_delivery,
    committed_offsets,
    copier_command,
    create_topics,
    fault_schedule,
    open_transactions,
    produce_input,
    read_topic,
    sized,
    wait_no_open_transactions,
    wait_until,
)

N = sized(60_000, 1_000_000)
PARTITIONS = sized(3, 4)
KILLS = sized((3, 5), (10, 15))
TRANSACTION_SIZE = 200
#: A copier killed after sending its offsets leaves them pending in its transaction, and
#: a restarted copier asks for its committed offsets (require_stable) BEFORE its
#: init_transactions would abort that transaction: it waits until the broker times the
#: transaction out. A short timeout (and the fixture's 200 ms abort check) keeps that wait
#: near 2 s instead of 60 s + 10 s.
TRANSACTION_TIMEOUT_MS = 2000
MAX_UNPLANNED_EXITS = 5


class CopyJob:
    """The copiers of one copy, one per input partition, restarted with the same ids."""

    def __init__(self, children: Children, bootstrap: str, source: str, target: str):
        self.children, self.bootstrap = children, bootstrap
        self.source, self.target = source, target
        self.tag = uuid.uuid4().hex[:8]
        self.group = f"copier-{self.tag}"
        self.running: dict[int, Popen[bytes]] = {}
        self.finished: set[int] = set()
        self.runs: dict[int, int] = {}
        self.unplanned: list[str] = []

    def start(self, partition: int) -> None:
        run = self.runs[partition] = self.runs.get(partition, 0) + 1
        command = copier_command(
            self.bootstrap, self.source, partition, self.target, self.group,
            f"copier-{self.tag}-{partition}", TRANSACTION_SIZE, TRANSACTION_TIMEOUT_MS,
        )  # fmt: skip
        self.running[partition] = self.children.start(command, f"copier-p{partition}-run{run}")

    def status(self, partition: int) -> list[dict]:
        """The JSON status lines of the partition's current copier."""
        lines = self.children.log(self.running[partition]).splitlines()
        return [json.loads(line) for line in lines if line.startswith("{") and line.endswith("}")]

    def committed_in_this_run(self, partition: int) -> bool:
        """This copier has committed a transaction: the one its predecessor left open is
        aborted (an open transaction on its partition is its own from now on)."""
        return any(s.get("totalProcessed", 0) > 0 for s in self.status(partition))

    def ready_for_a_fault(self) -> bool:
        return all(self.committed_in_this_run(p) for p in self.running)

    def check(self) -> None:
        """Note copiers that finished; restart one that failed (and say so)."""
        for partition, process in list(self.running.items()):
            code = process.poll()
            if code == 0:
                del self.running[partition]
                self.finished.add(partition)
            elif code is not None:
                tail = self.children.log(process)[-600:]
                self.unplanned.append(f"copier of partition {partition} exited {code}: {tail}")
                assert len(self.unplanned) <= MAX_UNPLANNED_EXITS, "\n".join(self.unplanned)
                self.start(partition)

    def kill_all(self) -> list[int]:
        killed = sorted(self.running)
        self.children.kill(*(self.running[p] for p in killed))
        return killed

    def done(self) -> bool:
        self.check()
        return not self.running


@dataclass
class KillOutcome:
    fault: str
    killed: list[int]
    copied_before: int
    open_before: list[int]
    open_after: list[int]

    def __str__(self) -> str:
        return (
            f"  {self.fault}: {self.copied_before} copied; killed the copiers of partitions "
            f"{self.killed} with a transaction open on {self.open_before}; left open: "
            f"{self.open_after}"
        )


def test_transactional_message_copier_killed_and_restarted_copies_each_record_once(
    reliability_broker, children
):
    bootstrap = reliability_broker
    schedule = fault_schedule("copier_reference", KILLS, spread=(0.05, 0.75), max_delay_s=0.2)
    schedule.show()
    print(f"  {N} records, {PARTITIONS} partitions, transactions of {TRANSACTION_SIZE}")
    source, target = create_topics(bootstrap, PARTITIONS)
    data = produce_input(bootstrap, source, N, PARTITIONS)
    reader = ConcurrentReader(bootstrap, target).start()
    job = CopyJob(children, bootstrap, source, target)

    def copied() -> int:
        offsets = committed_offsets(bootstrap, job.group, source, stable=False)
        return sum(offset or 0 for offset in offsets.values())

    def open_now() -> list[int]:
        if not job.running:
            raise AssertionError("the input ran out before the fault: raise N")
        return [p for p in open_transactions(bootstrap, target) if p in job.running]

    started = time.monotonic()
    for partition in range(PARTITIONS):
        job.start(partition)
    outcomes: list[KillOutcome] = []
    misses: list[KillOutcome] = []
    for fault in schedule.faults:
        due = fault.at * N

        def due_now(due: float = due) -> bool:
            return job.ready_for_a_fault() and copied() >= due

        wait_until(due_now, 120, f"{fault}", check=job.check)
        time.sleep(fault.delay_s)
        while True:  # a kill that left no open transaction behind is done again
            what = f"{fault}: an open transaction"
            open_before = wait_until(open_now, 30, what, 0.002, job.check)
            killed = job.kill_all()
            outcome = KillOutcome(
                str(fault), killed, copied(), open_before, open_transactions(bootstrap, target)
            )
            print(outcome, flush=True)
            for partition in killed:
                job.start(partition)
            if outcome.open_after:
                outcomes.append(outcome)
                break
            misses.append(outcome)
            assert len(misses) <= len(schedule.faults), "most kills missed the transactions"
            wait_until(job.ready_for_a_fault, 120, f"{fault}: copiers back", check=job.check)
    wait_until(job.done, 300, "every copier at the end of its partition", 0.05)
    took = time.monotonic() - started
    print(f"  copied in {took:.1f} s ({N / took:,.0f} records/s with the kills), "
          f"copier runs per partition {job.runs}, {len(misses)} kill(s) redone: they "
          "left no open transaction")  # fmt: skip
    for line in job.unplanned:
        print(f"  unplanned: {line}")

    wait_no_open_transactions(bootstrap, target)
    committed = read_topic(bootstrap, target, "read_committed")
    uncommitted = read_topic(bootstrap, target, "read_uncommitted")
    concurrent = reader.finish()
    aborted = aborted_records(committed, uncommitted)
    print(f"  read_committed: {len(committed)}, read_uncommitted: {len(uncommitted)}, "
          f"aborted: {len(aborted)}")  # fmt: skip

    final = check_delivery(data.values, committed)
    assert final.ok, final.describe()
    along = check_delivery(data.values, concurrent)
    assert along.ok, f"the concurrent read_committed reader: {along.describe()}"
    for partition in range(PARTITIONS):  # the copier keeps the partition and its order
        got = [r.value for r in committed if r.partition == partition]
        assert got == [r.value for r in data.records if r.partition == partition], partition
    assert committed_offsets(bootstrap, job.group, source) == data.end_offsets

    # The faults happened: each planned kill left an open transaction, later aborted.
    assert len(outcomes) == len(schedule.faults)
    assert all(o.open_after for o in outcomes)
    assert aborted, "no aborted record in the output: no kill hit an open transaction"
    assert {r.value for r in aborted} <= set(data.values)
