"""T1: the processing process killed with SIGKILL again and again during an exactly-once
Kafka -> keyed state -> Kafka pipeline (reliability.md §6).

The pipeline (:mod:`eos_child`) is killed at seeded moments tied to its committed output
(5 kills in CI, 15 at full size: the schedule the ``TransactionalMessageCopier``
reference runs under, test_copier_reference.py), restarted each time from its
checkpoints, then left to finish. A ``read_committed`` reader runs all along. Checks: the
reader saw each input exactly once, with each key's running counts 1..N in order (state
exactly-once, not only delivery); the group's committed offsets equal the input's end
offsets; no transaction is left open; and the kills really hit open transactions
(aborted records in the output).
"""

from __future__ import annotations

import uuid

from .eos_pipeline import check_running_counts, child_command, kill_and_finish
from .harness import (
    Children,
    ConcurrentReader,
    aborted_records,
    committed_offsets,
    create_topics,
    kill_schedule,
    produce_input,
    read_topic,
    sized,
    wait_no_open_transactions,
)

N = sized(20_000, 500_000)
PARTITIONS = 4


def test_t1_processing_killed_repeatedly(reliability_broker, tmp_path):
    bootstrap = reliability_broker
    schedule = kill_schedule()  # the same kills as the TransactionalMessageCopier reference
    schedule.show()
    tag = uuid.uuid4().hex[:8]
    in_topic, out_topic = create_topics(bootstrap, PARTITIONS, f"t1-in-{tag}", f"t1-out-{tag}")
    group = f"t1-{tag}"
    data = produce_input(bootstrap, in_topic, N, PARTITIONS)
    command = child_command(bootstrap, in_topic, out_topic, group, tmp_path / "ck", N)
    reader = ConcurrentReader(bootstrap, out_topic).start()
    children = Children(tmp_path / "logs")
    try:
        kill_and_finish(children, command, schedule, reader, N)
    finally:
        children.close()
    committed = reader.finish()
    wait_no_open_transactions(bootstrap, out_topic)
    check_running_counts(data, committed, left_out=set())
    assert committed_offsets(bootstrap, group, in_topic) == data.end_offsets
    uncommitted = read_topic(bootstrap, out_topic, "read_uncommitted")
    aborted = aborted_records(committed, uncommitted)
    print(f"{len(aborted)} aborted record(s) in the output", flush=True)
    assert aborted, "no kill hit an open transaction: the test proved nothing"
