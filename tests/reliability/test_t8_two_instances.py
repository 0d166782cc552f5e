"""T8 (reliability.md §6): two instances of an exactly-once Kafka -> Kafka pipeline in one
consumer group, repeated rebalances, and a paused (SIGSTOP) instance fenced as a zombie.

The pipeline (:mod:`.t8_instance`, one child process per instance, each with its own
checkpoint location, all in one group): ``from_kafka(IN, keys=True)`` -> ``(key,
value|RUN|ms)`` -> ``to_kafka(OUT, keys=True)`` with ``enable(..., interval='200ms',
exactly_once=True)``. RUN names the instance and its run (``A1``, ``B2``, ...) and ``ms``
the wall time of the processing, so that every output record says who made it and when.

Input: unique values on ``PARTITIONS`` partitions, produced at ``RATE`` records/s while
the instances run, at least ``N`` of them and on until the last fault is over. The
seeded faults, at fractions of ``N`` produced (printed first, with the seed):

* ``join C`` / ``leave C``: a third instance (a dynamic member: it leaves the group when
  it stops) starts or stops cleanly; the group rebalances;
* ``kill -9 A|B``: SIGKILL inside an open transaction, then the same instance again (same
  checkpoint location: the same transactional id aborts the old transaction, the same
  static ``group.instance.id`` takes the partitions back);
* ``pause A|B``: SIGSTOP until the group has given its partitions to the others (its
  session times out after 6 s) and they have committed some of them, then SIGCONT. The
  zombie must be fenced: it exits with ``KafkaFencedError``, nothing it processed after
  waking is committed, and the transaction it had open is aborted. A pause that finds no
  transaction of the paused instance open (no stuck last stable offset on OUT) is undone
  at once (SIGCONT within 2 s, before the session times out) and done again later.

After each fault the test waits until the group is stable again: every running instance
reports a share of the partitions (together all of them, none twice) and has committed
since. Then it checks, all against the input it produced:

* a ``read_committed`` reader at the end and one reading all along see every input value
  exactly once, with its input key, and each key's values in input order;
* the group's committed offsets equal the input's end offsets, and never went back
  (sampled every 100 ms during the run);
* the faults happened: each kill and pause left an open transaction whose records were
  aborted (``read_uncommitted`` sees records of that run that ``read_committed`` does
  not), every zombie said ``FENCED: KafkaFencedError`` and exited with
  ``FENCED_EXIT``; no instance exited otherwise; no transaction is left open.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from .harness import (
    RUNNING,
    Children,
    ConcurrentReader,
    Fault,
    FaultSchedule,
    Record,
    aborted_records,
    check_delivery,
    committed_offsets,
    create_topics,
    end_offsets,
    fault_schedule,
    read_topic,
    sized,
    wait_no_open_transactions,
    wait_until,
)
from .t8_instance import FENCED_EXIT, SESSION_TIMEOUT_MS

N = sized(8_000, 200_000)
PARTITIONS = sized(4, 6)
RATE = sized(400, 2_000)
REBALANCES = sized((3, 4), (8, 12))
PAUSES = sized(1, 2)
#: faults done again because they proved nothing: a pause or kill that found no open
#: transaction of its instance (SIGSTOP lands between a commit and the next records on
#: OUT about 40 % of the time here), a pause that caught the instance between sending its
#: offsets and committing (the others wait for that transaction: they take nothing over)
MAX_MISSES = 12
CHILD = Path(__file__).with_name("t8_instance.py")
SRC = Path(__file__).resolve().parents[2] / "src"


# -- the input ------------------------------------------------------------------------------


class PacedInput:
    """Writes ``b'<i>'`` (key ``b'k<i % keys>'``, partition ``i % partitions``) at ``rate``
    records/s from a thread, until :meth:`finish`; keeps each record as delivered."""

    def __init__(self, bootstrap: str, topic: str, partitions: int, rate: float):
        self.topic, self.partitions, self.rate = topic, partitions, rate
        self.keys = 10 * partitions
        self.producer = Producer(
            {"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5}
        )
        self.produced = 0
        self.delivered: dict[int, Record] = {}
        self.errors: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="t8-input", daemon=True)

    def start(self) -> PacedInput:
        self._thread.start()
        RUNNING.append(self)
        return self

    def halt(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _report(self, i: int) -> Any:
        def on_delivery(error: Any, msg: Any) -> None:
            if error is not None:
                self.errors.append(error)
            else:
                self.delivered[i] = Record(msg.partition(), msg.offset(), msg.key(), msg.value())

        return on_delivery

    def _run(self) -> None:
        began = time.monotonic()
        while not self._stop.is_set():
            due = int((time.monotonic() - began) * self.rate)
            while self.produced < due:
                i = self.produced
                self.producer.produce(
                    self.topic, b"%d" % i, b"k%d" % (i % self.keys),
                    partition=i % self.partitions, on_delivery=self._report(i),
                )  # fmt: skip
                self.produced += 1
            self.producer.poll(0.01)

    def finish(self) -> list[Record]:
        """Stop writing; every record written, as delivered, in the order written."""
        self._stop.set()
        self._thread.join(30)
        left = self.producer.flush(60)
        n = self.produced
        assert not left and not self.errors and len(self.delivered) == n, (
            f"input: {left} not delivered, errors {self.errors[:3]}, {len(self.delivered)}/{n}"
        )
        return [self.delivered[i] for i in range(n)]


# -- the instances -------------------------------------------------------------------------


@dataclasses.dataclass
class Status:
    t: float
    assigned: list[int]
    processed: int
    commits: int
    aborts: int


class Instance:
    """One instance (``A``, ``B``, ``C``): its checkpoint location, its runs."""

    def __init__(self, name: str, location: Path, dynamic: bool = False):
        self.name, self.location, self.dynamic = name, location, dynamic
        self.runs = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.statuses: list[Status] = []
        self._log: Path | None = None
        self._read = 0

    @property
    def tag(self) -> str:
        return f"{self.name}{self.runs}"

    @property
    def running(self) -> bool:
        return self.process is not None

    def start(self, children: Children, args: list[str]) -> None:
        self.runs += 1
        command = [sys.executable, str(CHILD), *args, str(self.location), self.tag]
        if self.dynamic:
            command.append("--dynamic")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in [str(SRC), env.get("PYTHONPATH")] if p)
        self.process = children.start(command, self.tag, env)
        self._log = children.logs[self.process.pid]
        self.statuses, self._read = [], 0

    def refresh(self) -> list[Status]:
        """Read the status lines written since the last call."""
        if self._log is None:
            return self.statuses
        with open(self._log, "rb") as f:
            f.seek(self._read)
            chunk = f.read()
        end = chunk.rfind(b"\n") + 1
        self._read += end
        for line in chunk[:end].splitlines():
            if line.startswith(b"{") and line.endswith(b"}"):
                self.statuses.append(Status(**json.loads(line)))
        return self.statuses

    def latest(self) -> Status | None:
        statuses = self.refresh()
        return statuses[-1] if statuses else None

    def log(self) -> str:
        return self._log.read_text(errors="replace") if self._log is not None else ""


class OffsetSampler:
    """Samples the group's committed offsets every ``period`` s from a thread; notes every
    partition whose committed offset went back (or disappeared)."""

    def __init__(self, bootstrap: str, group: str, topic: str, period: float = 0.1):
        self.bootstrap, self.group, self.topic, self.period = bootstrap, group, topic, period
        self.samples: list[dict[int, int | None]] = []
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="t8-offsets", daemon=True)

    def start(self) -> OffsetSampler:
        self._thread.start()
        RUNNING.append(self)
        return self

    def halt(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _run(self) -> None:
        try:
            while not self._stop.wait(self.period):
                offsets = committed_offsets(self.bootstrap, self.group, self.topic, stable=False)
                self.samples.append(offsets)
        except BaseException as error:  # reported by finish()
            self.error = error

    def last(self) -> dict[int, int | None]:
        return self.samples[-1] if self.samples else {}

    def finish(self) -> list[str]:
        self._stop.set()
        self._thread.join(30)
        assert self.error is None, f"sampling the committed offsets failed: {self.error!r}"
        return regressions(self.samples)


def regressions(samples: Iterable[dict[int, int | None]]) -> list[str]:
    """Each time a partition's committed offset went back (or vanished) between samples.

    >>> regressions([{0: None, 1: 5}, {0: 3, 1: 5}, {0: 2, 1: None}])
    ['partition 0: 3 -> 2 (sample 2)', 'partition 1: 5 -> None (sample 2)']
    """
    found, high = [], {}
    for number, sample in enumerate(samples):
        for partition, offset in sorted(sample.items()):
            before = high.get(partition)
            if before is not None and (offset is None or offset < before):
                found.append(f"partition {partition}: {before} -> {offset} (sample {number})")
            if offset is not None and (before is None or offset > before):
                high[partition] = offset
    return found


# -- the checks of the output ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Output:
    """One OUT record: the input value it carries, the run that made it, when (ms)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    run: str
    ms: int


def parse_output(records: Iterable[Record]) -> list[Output]:
    """OUT records as :class:`Output` s (``value|RUN|ms``).

    >>> parse_output([Record(1, 7, b'k3', b'42|A2|1700000000123')])
    [Output(partition=1, offset=7, key=b'k3', value=b'42', run='A2', ms=1700000000123)]
    """
    parsed = []
    for r in records:
        value, run, ms = (r.value or b"").rsplit(b"|", 2)
        parsed.append(Output(r.partition, r.offset, r.key, value, run.decode(), int(ms)))
    return parsed


def order_and_key_problems(inputs: list[Record], outputs: list[Output]) -> list[str]:
    """Output records whose key is not their input's, and keys whose values came out in
    another order than they went in (each key's records are in one OUT partition).

    >>> ins = [Record(0, 0, b'k0', b'1'), Record(0, 1, b'k0', b'2')]
    >>> order_and_key_problems(ins, parse_output([Record(0, 0, b'k0', b'2|A1|0'),
    ...                                           Record(0, 1, b'k9', b'1|A1|0')]))
    ["b'1' came out with key b'k9', went in with b'k0'", "key b'k0': out of order"]
    """
    problems = []
    key_of = {r.value: r.key for r in inputs}
    for out in outputs:
        if out.value in key_of and key_of[out.value] != out.key:
            problems.append(f"{out.value!r} came out with key {out.key!r}, went in with "
                            f"{key_of[out.value]!r}")  # fmt: skip
    wanted: dict[bytes | None, list[bytes | None]] = defaultdict(list)
    for r in inputs:
        wanted[r.key].append(r.value)
    got: dict[bytes | None, list[bytes]] = defaultdict(list)
    for out in sorted(outputs, key=lambda o: (o.partition, o.offset)):
        got[key_of.get(out.value, out.key)].append(out.value)
    for key, values in got.items():
        present = set(values)
        if values != [v for v in wanted[key] if v in present]:
            problems.append(f"key {key!r}: out of order")
    return problems


@dataclasses.dataclass
class Pause:
    """One pause of an instance (a zombie once its group moved on)."""

    run: str
    stopped_at: float
    partitions: list[int]
    stuck: list[int]
    continued_at: float = 0.0
    taken_over: bool = False  # others committed its partitions while it was stopped
    #: the others got its partitions but could not read them: it was stopped between
    #: sending its offsets and committing (they wait for that transaction: KIP-447)
    pending: bool = False
    exit_code: int | None = None
    fenced: str = ""

    def __str__(self) -> str:
        return (
            f"  pause of {self.run} (partitions {self.partitions}): OUT stuck on "
            f"{self.stuck}, stopped {self.continued_at - self.stopped_at:.1f} s, taken over "
            f"{self.taken_over}, pending {self.pending}, exit {self.exit_code}, "
            f"{self.fenced[:160]}"
        )


def after_wake(pause: Pause, committed: list[Output]) -> list[Output]:
    """Committed records the zombie processed after it woke (there must be none).

    >>> p = Pause('A1', 10.0, [0], [0], continued_at=20.0)
    >>> [o.value for o in after_wake(p, parse_output([Record(0, 1, b'k', b'1|A1|19999'),
    ...     Record(0, 2, b'k', b'2|A1|20000'), Record(0, 3, b'k', b'3|B1|30000')]))]
    [b'2']
    """
    since = int(pause.continued_at * 1000)
    return [o for o in committed if o.run == pause.run and o.ms >= since]


# -- the run --------------------------------------------------------------------------------


class Group:
    """The instances of the test, their faults and what came of them."""

    def __init__(self, children: Children, bootstrap: str, source: str, target: str, root: Path):
        self.children, self.bootstrap = children, bootstrap
        self.source, self.target = source, target
        self.group = f"t8-{uuid.uuid4().hex[:8]}"
        self.instances = {
            "A": Instance("A", root / "A"),
            "B": Instance("B", root / "B"),
            "C": Instance("C", root / "C", dynamic=True),
        }
        self.pauses: list[Pause] = []
        self.misses: list[Pause] = []
        self.killed: list[tuple[str, list[int]]] = []  # run, OUT partitions left open
        self.kill_misses: list[str] = []
        self.sampler = OffsetSampler(bootstrap, self.group, source)

    def redone(self) -> int:
        """How many faults were done again (they proved nothing)."""
        return len(self.misses) + sum(p.pending for p in self.pauses) + len(self.kill_misses)

    def running(self) -> list[Instance]:
        return [i for i in self.instances.values() if i.running]

    def start(self, name: str) -> None:
        instance = self.instances[name]
        instance.start(self.children, [self.bootstrap, self.source, self.target, self.group])

    def check(self) -> None:
        """Fail on an instance that ended without being told to."""
        for instance in self.running():
            assert instance.process is not None
            code = instance.process.poll()
            assert code is None, (
                f"{instance.tag} exited {code} unplanned:\n{instance.log()[-3000:]}"
            )

    def stable(self, since: float) -> bool:
        """Every running instance reported a share of the partitions after ``since``, the
        shares cover all partitions once each, and each has committed since."""
        seen: list[int] = []
        for instance in self.running():
            statuses = [s for s in instance.refresh() if s.t >= since]
            if len(statuses) < 2 or not statuses[-1].assigned:
                return False
            if statuses[-1].commits <= statuses[0].commits:
                return False
            seen += statuses[-1].assigned
        return sorted(seen) == list(range(PARTITIONS))

    def wait_stable(self, what: str, timeout: float = 60.0) -> None:
        since = time.time()
        wait_until(lambda: self.stable(since), timeout, f"{what}: a stable group", 0.05,
                   self.check)  # fmt: skip

    def stop(self, name: str) -> None:
        """SIGTERM: the instance's last checkpoint commits, then it exits 0."""
        instance = self.instances[name]
        process = instance.process
        assert process is not None
        process.send_signal(signal.SIGTERM)
        code = process.wait(60)
        instance.process = None
        assert code == 0 and "STOPPED" in instance.log(), (
            f"{instance.tag} stopped with {code}:\n{instance.log()[-3000:]}"
        )

    def stuck(self) -> list[int]:
        """The OUT partitions whose last stable offset stays behind the end for 0.6 s
        while the running instances commit every 200 ms: held by a transaction left open
        by a stopped or dead instance."""
        time.sleep(0.8)
        first = end_offsets(self.bootstrap, self.target, "read_committed")
        time.sleep(0.6)
        second = end_offsets(self.bootstrap, self.target, "read_committed")
        high = end_offsets(self.bootstrap, self.target)
        return [p for p in high if first[p] == second[p] < high[p]]

    def kill(self, name: str) -> bool:
        """SIGKILL, then the instance again (its transactional id aborts what the killed
        run left open). False for a miss: the killed run had no transaction open."""
        instance = self.instances[name]
        assert instance.process is not None
        run = instance.tag
        self.children.kill(instance.process)
        instance.process = None
        stuck = self.stuck()
        self.start(name)
        if not stuck:
            self.kill_misses.append(run)
            return False
        self.killed.append((run, stuck))
        return True

    def pause(self, name: str) -> Pause | None:
        """SIGSTOP until the others took the partitions over, then SIGCONT; the outcome,
        or None for a miss (no open transaction of its own on OUT: undone at once)."""
        instance = self.instances[name]
        process = instance.process
        assert process is not None
        latest = instance.latest()
        assert latest is not None
        os.kill(process.pid, signal.SIGSTOP)
        stopped_at = time.time()
        pause = Pause(instance.tag, stopped_at, latest.assigned, self.stuck())
        if not pause.stuck:
            os.kill(process.pid, signal.SIGCONT)
            pause.continued_at = time.time()
            self.misses.append(pause)
            return None
        before = self.sampler.last()

        def taken_over() -> bool:
            now = self.sampler.last()
            return all((now.get(p) or 0) > (before.get(p) or 0) for p in pause.partitions)

        def assigned_elsewhere() -> bool:
            shares = [i.latest() for i in self.running() if i is not instance]
            now = {p for s in shares if s is not None for p in s.assigned}
            return set(pause.partitions) <= now

        # the session times out, the others get the partitions and commit some of them
        timeout = SESSION_TIMEOUT_MS / 1000 + 20
        try:
            wait_until(assigned_elsewhere, timeout, f"{pause.run}'s partitions moved", 0.05)
            wait_until(taken_over, 8, f"{pause.run}'s partitions committed by others", 0.05)
            pause.taken_over = True
        except TimeoutError:
            pause.pending = assigned_elsewhere()
        os.kill(process.pid, signal.SIGCONT)
        pause.continued_at = time.time()
        try:
            pause.exit_code = process.wait(60)
        except subprocess.TimeoutExpired:
            pause.exit_code = None
        lines = [line for line in instance.log().splitlines() if line.startswith("FENCED: ")]
        pause.fenced = lines[-1] if lines else instance.log()[-2000:]
        instance.process = None
        self.pauses.append(pause)
        self.start(name)  # the input of its partitions goes on: the group has two again
        return pause


def t8_schedule() -> FaultSchedule:
    """The seeded faults: rebalances (C joins or leaves, A or B killed and restarted) and
    pauses of A or B, at sorted fractions of N."""
    base = fault_schedule("t8_two_instances", REBALANCES, kind="rebalance", max_delay_s=0.2)
    rng, count = base.rng, len(base.faults) + PAUSES
    spread = sorted(round(rng.uniform(0.05, 0.85), 4) for _ in range(count))
    pauses = set(rng.sample(range(count), PAUSES))
    faults, c_running = [], False
    for number, at in enumerate(spread):
        if number in pauses:
            kind, target = "pause", rng.choice("AB")
        elif rng.random() < 0.7 or c_running:
            kind, target = ("leave" if c_running else "join"), "C"
            c_running = not c_running
        else:
            kind, target = "kill -9", rng.choice("AB")
        delay = round(rng.uniform(0, 0.2), 3)
        faults.append(Fault(number + 1, kind, at, delay, target))
    return dataclasses.replace(base, faults=faults)


@pytest.mark.timeout(sized(180, 900))
def test_two_instances_rebalanced_and_a_paused_zombie_fenced_deliver_each_record_once(
    reliability_broker, children, tmp_path
):
    bootstrap = reliability_broker
    schedule = t8_schedule()
    schedule.show()
    print(f"  at least {N} records at {RATE}/s on {PARTITIONS} partitions, checkpoints "
          f"every 200 ms, session timeout {SESSION_TIMEOUT_MS} ms")  # fmt: skip
    source, target = create_topics(bootstrap, PARTITIONS)
    group = Group(children, bootstrap, source, target, tmp_path)
    reader = ConcurrentReader(bootstrap, target).start()
    started = time.monotonic()
    group.start("A")
    group.start("B")
    group.wait_stable("A and B")
    feed = PacedInput(bootstrap, source, PARTITIONS, RATE).start()
    group.sampler.start()

    queue = list(schedule.faults)
    while queue:
        fault = queue.pop(0)
        wait_until(lambda f=fault: feed.produced >= f.at * N, 300, str(fault), 0.05, group.check)
        time.sleep(fault.delay_s)
        print(f"  {time.monotonic() - started:5.1f} s: {fault}", flush=True)
        if fault.kind == "join":
            group.start("C")
        elif fault.kind == "leave":
            group.stop("C")
        elif fault.kind == "kill -9" and not group.kill(fault.target):
            assert group.redone() <= MAX_MISSES, group.kill_misses
            queue.insert(0, dataclasses.replace(fault, at=fault.at + 0.02))  # again, later
        elif fault.kind == "pause":
            pause = group.pause(fault.target)
            if pause is None or pause.pending:  # again, later (a pending one proves less)
                attempts = "\n".join(map(str, group.misses + group.pauses))
                assert group.redone() <= MAX_MISSES, attempts
                queue.insert(0, dataclasses.replace(fault, at=fault.at + 0.02))
        group.wait_stable(str(fault))
    wait_until(lambda: feed.produced >= N, 300, "the input", 0.05, group.check)
    inputs = feed.finish()
    ends = end_offsets(bootstrap, source)
    wait_until(lambda: group.sampler.last() == ends, 60, "every input record committed", 0.05,
               group.check)  # fmt: skip
    for instance in group.running():
        group.stop(instance.name)
    took = time.monotonic() - started
    runs = {i.name: i.runs for i in group.instances.values()}
    print(f"  {len(inputs)} records in {took:.1f} s, {len(group.sampler.samples)} samples "
          f"of the committed offsets; runs {runs}")  # fmt: skip
    for pause in group.pauses:
        print(pause)
    for miss in group.misses:
        print(f"  missed (no open transaction of its own): {miss}")
    print(f"  killed inside open transactions: {group.killed}; kills redone (no "
          f"transaction open): {group.kill_misses}")  # fmt: skip

    wait_no_open_transactions(bootstrap, target)
    committed_records = read_topic(bootstrap, target, "read_committed")
    uncommitted = read_topic(bootstrap, target, "read_uncommitted")
    along = parse_output(reader.finish())
    committed = parse_output(committed_records)
    aborted = parse_output(aborted_records(committed_records, uncommitted))
    aborted_by_run = dict(sorted(_count(o.run for o in aborted).items()))
    print(f"  read_committed {len(committed)}, read_uncommitted {len(uncommitted)}, "
          f"aborted by run {aborted_by_run}")  # fmt: skip
    values = [r.value for r in inputs]

    # exactly once, with its key, in order per key; read at the end and all along
    final = check_delivery(values, [_record(o) for o in committed])
    assert final.ok, final.describe()
    concurrent = check_delivery(values, [_record(o) for o in along])
    assert concurrent.ok, f"the concurrent read_committed reader: {concurrent.describe()}"
    problems = order_and_key_problems(inputs, committed)
    assert not problems, problems[:10]
    assert {o.value for o in aborted} <= set(values)

    # the group's committed offsets: the input's ends, never back
    assert committed_offsets(bootstrap, group.group, source) == ends
    regressed = group.sampler.finish()
    assert not regressed, f"committed offsets went back: {regressed[:10]}"
    assert len(group.sampler.samples) >= took, "too few samples of the offsets (< 1/s)"

    # the faults happened: zombies fenced, nothing of theirs after waking, aborts seen
    proved = [p for p in group.pauses if not p.pending]
    assert len(proved) == PAUSES, "\n".join(map(str, group.pauses + group.misses))
    for pause in group.pauses:
        assert pause.taken_over or pause.pending, f"the group did not take over: {pause}"
        assert pause.exit_code == FENCED_EXIT, f"the zombie was not fenced: {pause}"
        assert pause.fenced.startswith("FENCED: KafkaFencedError"), str(pause)
        woke = after_wake(pause, committed)
        assert not woke, f"the zombie {pause.run} committed after waking: {woke[:5]}"
    for pause in proved:
        assert aborted_by_run.get(pause.run), f"no aborted record of the zombie: {pause}"
    for run, _ in group.killed:
        assert aborted_by_run.get(run), f"no aborted record of the killed {run}"


def _record(output: Output) -> Record:
    return Record(output.partition, output.offset, output.key, output.value)


def _count(items: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for item in items:
        counts[item] += 1
    return counts
