"""Running :mod:`eos_child` (millstream's exactly-once Kafka -> keyed count -> Kafka
pipeline) under faults, and checking its output; shared by T1, T3 and T5.

The output check is stronger than "each input value once": every output value is
``<input value>:<count>``, and for each key the counts, in the output partition's order,
must be 1, 2, 3, ... with the key's input values in their input order. A count written
twice, skipped, or computed from state that saw a record twice fails it.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from .harness import (
    Children,
    ConcurrentReader,
    FaultSchedule,
    InputData,
    Record,
    check_delivery,
    wait_until,
)

CHILD = Path(__file__).with_name("eos_child.py")


def child_command(
    bootstrap: str,
    in_topic: str,
    out_topic: str,
    group: str,
    checkpoints: Path,
    total: int,
    dead_letters: str | None = None,
    interval: float = 0.2,
    pace: float = 0.02,
) -> list[str]:
    command = [
        sys.executable, str(CHILD), bootstrap, in_topic, out_topic, group, str(checkpoints),
        str(total), "--interval", str(interval), "--pace", str(pace),
    ]  # fmt: skip
    if dead_letters is not None:
        command += ["--dead-letters", dead_letters]
    return command


def kill_and_finish(
    children: Children,
    command: list[str],
    schedule: FaultSchedule,
    reader: ConcurrentReader,
    expected: int,
) -> str:
    """Run ``command`` once per fault of ``schedule``, killing it (SIGKILL) once the reader
    has seen ``fault.at * expected`` committed records plus the fault's delay (each run
    must still be running then), then once to the end (it must exit 0); return the last
    run's output."""
    for fault in schedule.faults:
        child = children.start(command, f"run{fault.number}")

        def running(child: Any = child, fault: Any = fault) -> None:
            assert child.poll() is None, (
                f"{fault}: the child ended first:\n{children.log(child)[-3000:]}"
            )

        wait_until(
            lambda at=fault.at: len(reader.records) >= at * expected, 120, str(fault),
            check=running,
        )  # fmt: skip
        time.sleep(fault.delay_s)
        running()
        children.kill(child)
        print(f"{fault}: killed with {len(reader.records)} records committed", flush=True)
    final = children.start(command, "final")
    assert final.wait(180) == 0, children.log(final)[-3000:]
    return children.log(final)


def input_of(record: Record) -> Record:
    """The output record with its value cut back to the input value (``v:count`` -> ``v``)."""
    value = record.value.rpartition(b":")[0] if record.value is not None else None
    return Record(record.partition, record.offset, record.key, value)


def check_running_counts(data: InputData, output: list[Record], left_out: set[bytes]) -> None:
    """Assert the output of :mod:`eos_child` is exactly-once, state included (see the
    module); ``left_out``: input values that must not be in it (dead letters)."""
    wanted = [v for v in data.values if v not in left_out]
    check = check_delivery(wanted, [input_of(r) for r in output])
    assert check.ok, check.describe()
    expected: dict[bytes | None, list[bytes]] = defaultdict(list)
    for record in data.records:  # in the order produced, which is each key's order
        if record.value is not None and record.value not in left_out:
            expected[record.key].append(record.value)
    got: dict[bytes | None, list[tuple[bytes, int]]] = defaultdict(list)
    for record in sorted(output, key=lambda r: (r.partition, r.offset)):
        assert record.value is not None
        value, _, n = record.value.rpartition(b":")
        got[record.key].append((value, int(n)))
    for key, values in expected.items():
        want = [(v, i) for i, v in enumerate(values, 1)]
        assert got[key] == want, (
            f"key {key!r}: the running counts differ from an exactly-once run "
            f"(first difference at {_first_difference(got[key], want)})"
        )


def _first_difference(a: list, b: list) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"#{i}: got {x}, expected {y}"
    return f"lengths {len(a)} and {len(b)}"
